"""plain (issue 17): cold paths and warm compiles as users type them, beside uv.

No ``--exclude-newer`` and no ``--python-version``: ``burrow compile SET.in -o OUT`` and
``uv pip compile SET.in -o OUT``, each resolving for the venv's interpreter against the live
index. Per set, cold rounds then warm rounds; inside a round the tools run interleaved, the order
rotating by one each round:

* burrow first compile: a fresh cache and no daemon; the timed ``burrow compile`` starts the
  daemon itself (a new user's first command);
* burrow cold: a fresh cache and a daemon already running (``burrow daemon start``, then
  :data:`SETTLE` seconds, untimed: a daemon that has been up a moment, as one that serves a
  desktop session is);
* uv cold: a fresh ``--cache-dir``;
* warm rounds (after the last cold round): the same burrow daemon again, ``uv pip compile`` with
  the last cold round's cache (it revalidates every page here: the public index's responses reach
  this machine without validators), and ``uv pip compile --offline`` (uv reading its own cache,
  the fairer lower bound).

Targets (ratios of medians): first compile <= 1.2x uv cold; cold <= 1.0x uv cold; warm <= 1.0x
``uv pip compile --offline``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.context import Context
from bench.daemon import BurrowDaemon, DaemonError
from bench.pins import Pins, read_pins
from bench.report import (
    RatioColumn,
    Row,
    SuiteResult,
    Table,
    faster_than,
    fmt_seconds,
)
from bench.timing import Outcome, Series, rotated, run_timed
from bench.tools import clean_env, load_average

NAME = "plain"
#: Seconds a started daemon is left alone before its cold compile.
SETTLE = 1.0
FIRST_TARGET = 1.2
COLD_TARGET = 1.0
WARM_TARGET = 1.0

FIRST = "burrow first compile"
COLD = "burrow cold"
UV_COLD = "uv cold"
WARM = "burrow warm"
UV_WARM = "uv warm"
UV_OFFLINE = "uv --offline"


@dataclass
class _Set:
    name: str
    cold: dict[str, Series] = field(
        default_factory=lambda: {FIRST: Series(), COLD: Series(), UV_COLD: Series()}
    )
    warm: dict[str, Series] = field(
        default_factory=lambda: {WARM: Series(), UV_WARM: Series(), UV_OFFLINE: Series()}
    )
    pins: dict[str, list[Pins]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class _Runner:
    """Runs burrow and uv on one set, plain commands, and keeps their outputs apart."""

    def __init__(self, ctx: Context, name: str) -> None:
        self.ctx = ctx
        self.uv, _ = ctx.tools.require_resolvers()
        self.src = ctx.set_file(name, ".in")
        self.dir = ctx.root / f"plain-{name}"
        self.outs = self.dir / "outputs"
        self.outs.mkdir(parents=True, exist_ok=True)
        self.env = clean_env()
        self.result = _Set(name)
        self.runs = 0

    def _out(self, tool: str) -> Path:
        self.runs += 1
        return self.outs / f"{tool.replace(' ', '-')}-{self.runs}.txt"

    def _record(self, series: Series, tool: str, outcome: Outcome, out: Path) -> None:
        if not series.record(outcome):
            self.result.problems.append(
                f"{tool} failed on `{self.result.name}`:\n\n{outcome.describe()}"
            )
            return
        pins = read_pins(out)
        if pins is not None:
            self.result.pins.setdefault("uv" if tool.startswith("uv") else "burrow", []).append(
                pins
            )

    def burrow(self, daemon: BurrowDaemon, series: Series, tool: str) -> None:
        out = self._out(tool)
        outcome = daemon.run(
            "compile", "-o", out, self.src, timeout=self.ctx.options.compile_timeout
        )
        self._record(series, tool, outcome, out)

    def uv_compile(self, cache: Path, series: Series, tool: str, *, offline: bool) -> None:
        out = self._out(tool)
        argv: list[str | Path] = [self.uv, "pip", "compile", "--no-config", "--cache-dir", cache]
        argv += [*(["--offline"] if offline else []), "-o", out, self.src]
        cache.parent.mkdir(parents=True, exist_ok=True)
        outcome = run_timed(
            argv, env=self.env, cwd=cache.parent, timeout=self.ctx.options.compile_timeout
        )
        self._record(series, tool, outcome, out)

    def first(self, round_dir: Path, series: Series) -> None:
        """Time a compile that starts its own daemon on a fresh cache, then stop that daemon."""
        daemon = self.ctx.daemon(round_dir / "first")
        try:
            self.burrow(daemon, series, FIRST)
            pid = daemon.status().get("pid")
            daemon.pid = pid if isinstance(pid, int) else None
        except DaemonError as exc:
            self.result.problems.append(f"the first compile's daemon did not answer: {exc}")
        finally:
            self.ctx.release(daemon)

    def run(self) -> _Set:
        ctx, res = self.ctx, self.result
        opts = ctx.options
        daemon: BurrowDaemon | None = None
        uv_cache = self.dir / "uv" / "cache"
        try:
            for r in range(opts.cold_runs):
                ctx.log(f"{NAME}: {res.name} cold round {r + 1}/{opts.cold_runs}")
                round_dir = self.dir / f"cold{r}"
                if daemon is not None:
                    ctx.release(daemon)
                    daemon = None
                for tool in rotated([FIRST, COLD, UV_COLD], r):
                    if tool == FIRST:
                        self.first(round_dir, res.cold[FIRST])
                    elif tool == COLD:
                        daemon = ctx.started_daemon(round_dir / "burrow", res.problems)
                        if daemon is None:
                            continue
                        time.sleep(SETTLE)
                        self.burrow(daemon, res.cold[COLD], COLD)
                    else:
                        shutil.rmtree(uv_cache.parent, ignore_errors=True)
                        self.uv_compile(uv_cache, res.cold[UV_COLD], UV_COLD, offline=False)
            for i in range(opts.warm_runs):
                ctx.log(f"{NAME}: {res.name} warm round {i + 1}/{opts.warm_runs}")
                for tool in rotated([WARM, UV_WARM, UV_OFFLINE], i):
                    if tool == WARM:
                        if daemon is not None:
                            self.burrow(daemon, res.warm[WARM], WARM)
                    else:
                        self.uv_compile(uv_cache, res.warm[tool], tool, offline=tool == UV_OFFLINE)
        finally:
            if daemon is not None:
                ctx.release(daemon)
            shutil.rmtree(self.dir / "uv", ignore_errors=True)
        return res

    def pins_note(self) -> str:
        """Say whether burrow's pins equal uv's (they can differ: no upload cutoff here)."""
        ours, theirs = self.result.pins.get("burrow", []), self.result.pins.get("uv", [])
        if not ours or not theirs:
            return ""
        if all(p in theirs for p in ours):
            return "pins equal uv's"
        names = {n for p in ours for n in p} ^ {n for p in theirs for n in p}
        changed = sorted(names) or sorted(
            n for n in ours[0] if any(n in t and t[n] != ours[0][n] for t in theirs)
        )
        return f"pins differ from uv's ({', '.join(changed[:5])}): the resolvers chose differently"


def run(ctx: Context) -> SuiteResult:
    """Run the suite."""
    opts = ctx.options
    result = SuiteResult(NAME, "plain: cold paths and warm compiles as typed, beside uv (issue 17)")
    result.load_start = load_average()
    started = time.monotonic()
    result.method = [
        f"Sets: {', '.join(f'`{s}.in`' for s in opts.sets)}. Per set: {opts.cold_runs} cold "
        f"round(s), then {opts.warm_runs} warm rounds, the tools interleaved, the order rotating "
        "each round.",
        "Plain commands: `burrow compile SET.in -o OUT` and `uv pip compile SET.in -o OUT` "
        "(`--no-config`), no `--exclude-newer`, no `--python-version`; every run writes a new "
        "output file.",
        "First compile: a fresh cache and no daemon; the timed command starts the daemon. "
        f"Cold: a fresh cache; the daemon was started {SETTLE:.0f} s before (untimed). "
        "uv cold: a fresh `--cache-dir`.",
        "Warm: the cold daemon again; uv with the last cold round's cache, plain (it revalidates "
        "every page here) and `--offline`.",
        f"Targets: first compile <= {FIRST_TARGET}x uv cold; cold <= {COLD_TARGET}x uv cold; "
        f"warm <= {WARM_TARGET}x `uv --offline`.",
    ]
    cold = Table(
        "Cold, the daemon running",
        [COLD, UV_COLD],
        [RatioColumn("burrow/uv", COLD, UV_COLD)],
    )
    first = Table(
        "First compile, starting the daemon",
        [FIRST, UV_COLD],
        [RatioColumn("burrow/uv", FIRST, UV_COLD)],
    )
    warm = Table(
        "Warm, plain commands",
        [WARM, UV_WARM, UV_OFFLINE],
        [
            RatioColumn("burrow/uv", WARM, UV_WARM),
            RatioColumn("burrow/uv --offline", WARM, UV_OFFLINE),
        ],
    )
    for name in opts.sets:
        runner = _Runner(ctx, name)
        res = runner.run()
        note = runner.pins_note()
        c, w = res.cold, res.warm
        for table, kind, cells, tool, base, limit in (
            (cold, "cold", c, COLD, UV_COLD, COLD_TARGET),
            (first, "first compile", c, FIRST, UV_COLD, FIRST_TARGET),
            (warm, "warm", w, WARM, UV_OFFLINE, WARM_TARGET),
        ):
            table.rows.append(
                Row(
                    f"`{name}` {kind}",
                    cells,
                    target=f"<= {limit}x {base}",
                    verdict=faster_than(cells[tool], cells[base], limit + 1e-9),
                    note=note,
                )
            )
        result.problems += res.problems
    result.tables += [cold, first, warm]
    result.load_end = load_average()
    result.seconds = time.monotonic() - started
    ctx.log(f"{NAME}: done in {fmt_seconds(result.seconds)}")
    return result
