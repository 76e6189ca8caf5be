"""compile (issue 4): ``burrow compile`` vs ``uv pip compile`` vs ``pip-compile`` on each set.

For each set, cold rounds then warm rounds; inside a round the tools run interleaved, the order
rotating by one tool each round:

* cold: every tool gets a fresh cache (burrow: a fresh cache and a fresh daemon, started with
  ``burrow daemon start`` before the timed compile and timed as its own column);
* warm: the caches of the last cold round are reused: burrow asks the same daemon again, uv and
  pip-compile reuse their ``--cache-dir``. uv also runs warm with ``--offline`` (served from its
  cache without revalidation), the fairer lower bound for uv on this machine: the public index's
  responses arrive here without ``Cache-Control``/``ETag``, so uv revalidates every project page
  on every run, while burrow keeps a page fresh for a heuristic TTL (600 s).

Every run writes to a new output file: all three tools read an existing ``-o`` file as preferred
pins, which would turn a resolve into a check. uv and burrow get ``--python-version`` (the venv
interpreter's exact version) and ``--exclude-newer``; pip-compile runs on that interpreter and
cannot exclude newer uploads. burrow's pins must equal those of some uv run (uv's own runs can
disagree: this index does not always serve the same page); a mismatch is a problem at the top of
the report, and when the two pin different packages the ratios compare different graphs, so that
set's verdicts are n/a. pip-compile's and the shared reference pins are compared to uv's for
information.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.context import Context
from bench.daemon import BurrowDaemon, DaemonError
from bench.pins import Pins, diff_pins, read_pins
from bench.report import (
    RatioColumn,
    Row,
    SuiteResult,
    Table,
    all_verdicts,
    faster_than,
    fmt_seconds,
)
from bench.timing import Outcome, Series, rotated, run_timed
from bench.tools import BURROW_INDEX_TTL, EXCLUDE_NEWER, clean_env, load_average

NAME = "compile"
WARM_TARGET = 1.0
COLD_TARGET = 1.5

BURROW = "burrow"
UV = "uv"
UV_OFFLINE = "uv --offline"
PIP = "pip-compile"
START = "burrow daemon start"


@dataclass
class _Set:
    """Everything measured for one requirement set."""

    name: str
    cold: dict[str, Series] = field(
        default_factory=lambda: {BURROW: Series(), UV: Series(), PIP: Series(), START: Series()}
    )
    warm: dict[str, Series] = field(
        default_factory=lambda: {
            BURROW: Series(),
            UV: Series(),
            UV_OFFLINE: Series(),
            PIP: Series(),
        }
    )
    pins: dict[str, list[tuple[str, Pins]]] = field(default_factory=dict)
    max_page_age: float = 0.0
    mismatch: bool = False
    version_mismatch: bool = False
    uv_unstable: bool = False
    problems: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)


class _Runner:
    """Runs the tools of one set and keeps their outputs apart."""

    def __init__(self, ctx: Context, name: str) -> None:
        uv, pip_compile = ctx.tools.require_resolvers()
        self.ctx = ctx
        self.uv = uv
        self.pip_compile = pip_compile
        self.src = ctx.set_file(name, ".in")
        self.dir = ctx.root / f"compile-{name}"
        self.outs = self.dir / "outputs"
        self.outs.mkdir(parents=True, exist_ok=True)
        self.env = clean_env()
        self.result = _Set(name)

    def _collect(self, tool: str, run: str, outcome: Outcome, out: Path) -> None:
        if not outcome.ok:
            return
        pins = read_pins(out)
        if pins is None:
            self.result.problems.append(
                f"{tool} ({run}) succeeded but wrote no `{out.name}`: `{outcome.command()}`"
            )
            return
        self.result.pins.setdefault(tool, []).append((run, pins))

    def _record(self, series: Series, tool: str, run: str, outcome: Outcome, out: Path) -> None:
        if not series.record(outcome):
            self.result.problems.append(
                f"{tool} failed on `{self.result.name}` ({run}):\n\n{outcome.describe()}"
            )
        self._collect(tool, run, outcome, out)

    def _target_args(self) -> list[str]:
        """Return what burrow and uv both resolve for: the Python and the upload cutoff."""
        return [
            "--python-version",
            self.ctx.options.python_version,
            "--exclude-newer",
            EXCLUDE_NEWER,
        ]

    def burrow(self, daemon: BurrowDaemon, series: Series, run: str) -> Outcome:
        out = self.outs / f"burrow-{run}.txt"
        outcome = daemon.run(
            "compile",
            *self._target_args(),
            "-o",
            out,
            self.src,
            timeout=self.ctx.options.compile_timeout,
        )
        self._record(series, BURROW, run, outcome, out)
        if not outcome.ok:
            self.result.problems[-1] += f"\n\ndaemon log:\n\n```\n{daemon.log_tail()}\n```"
        return outcome

    def uv_compile(self, cache: Path, series: Series, run: str, *, offline: bool) -> Outcome:
        tool = UV_OFFLINE if offline else UV
        out = self.outs / f"{tool.replace(' ', '')}-{run}.txt"
        argv: list[str | Path] = [
            self.uv,
            "pip",
            "compile",
            "--no-config",
            "--cache-dir",
            cache,
            *self._target_args(),
            *(["--offline"] if offline else []),
            "-o",
            out,
            self.src,
        ]
        return self._run_tool(argv, cache, series, tool=tool, run=run, out=out)

    def pip_compile_run(self, cache: Path, series: Series, run: str) -> Outcome:
        out = self.outs / f"pip-compile-{run}.txt"
        argv: list[str | Path] = [
            self.pip_compile,
            "--cache-dir",
            cache,
            "--strip-extras",
            "-o",
            out,
            self.src,
        ]
        return self._run_tool(argv, cache, series, tool=PIP, run=run, out=out)

    def _run_tool(
        self,
        argv: list[str | Path],
        cache: Path,
        series: Series,
        *,
        tool: str,
        run: str,
        out: Path,
    ) -> Outcome:
        """Run one compile of an external tool beside its cache and record the outcome."""
        cache.parent.mkdir(parents=True, exist_ok=True)
        outcome = run_timed(
            argv, env=self.env, cwd=cache.parent, timeout=self.ctx.options.compile_timeout
        )
        self._record(series, tool, run, outcome, out)
        return outcome

    def run(self) -> _Set:
        ctx, res = self.ctx, self.result
        opts = ctx.options
        daemon: BurrowDaemon | None = None
        round_dir = self.dir
        pip_cold_timed_out = False
        burrow_filled_at = time.monotonic()
        try:
            for r in range(opts.cold_runs):
                ctx.log(f"{NAME}: {res.name} cold round {r + 1}/{opts.cold_runs}")
                if daemon is not None:
                    ctx.release(daemon)
                    daemon = None
                shutil.rmtree(round_dir / "uv", ignore_errors=True)
                shutil.rmtree(round_dir / "pip", ignore_errors=True)
                round_dir = self.dir / f"cold{r}"
                for tool in rotated([BURROW, UV, PIP], r):
                    if tool == BURROW:
                        daemon = ctx.daemon(round_dir / "burrow")
                        try:
                            res.cold[START].record(daemon.start())
                        except DaemonError as exc:
                            res.problems.append(f"`burrow daemon start` failed:\n\n{exc}")
                            ctx.release(daemon)
                            daemon = None
                            continue
                        self.burrow(daemon, res.cold[BURROW], f"cold{r}")
                        burrow_filled_at = time.monotonic()
                    elif tool == UV:
                        self.uv_compile(
                            round_dir / "uv" / "cache", res.cold[UV], f"cold{r}", offline=False
                        )
                    else:
                        o = self.pip_compile_run(
                            round_dir / "pip" / "cache", res.cold[PIP], f"cold{r}"
                        )
                        pip_cold_timed_out = o.timed_out
            if pip_cold_timed_out:
                res.warm[PIP].skipped = "skipped (cold run timed out)"
            for i in range(opts.warm_runs):
                ctx.log(f"{NAME}: {res.name} warm round {i + 1}/{opts.warm_runs}")
                for tool in rotated([BURROW, UV, UV_OFFLINE, PIP], i):
                    run = f"warm{i}"
                    if tool == BURROW and daemon is not None:
                        res.max_page_age = max(
                            res.max_page_age, time.monotonic() - burrow_filled_at
                        )
                        self.burrow(daemon, res.warm[BURROW], run)
                    elif tool in (UV, UV_OFFLINE):
                        self.uv_compile(
                            round_dir / "uv" / "cache",
                            res.warm[tool],
                            run,
                            offline=tool == UV_OFFLINE,
                        )
                    elif tool == PIP and not res.warm[PIP].skipped:
                        o = self.pip_compile_run(round_dir / "pip" / "cache", res.warm[PIP], run)
                        if o.timed_out:
                            res.warm[PIP].skipped = "later runs skipped"
        finally:
            if daemon is not None:
                ctx.release(daemon)
            shutil.rmtree(self.dir, ignore_errors=True)
        self._check_pins()
        return res

    def _check_pins(self) -> None:
        """Compare burrow's pins with uv's; note what else differs.

        The index on this machine does not always serve the same project page (a release can be
        missing from one response and present in the next), so uv's own runs may disagree with
        each other. A burrow run is therefore a mismatch only when its pins equal no uv run's.
        """
        res = self.result
        uv_variants = _variants(
            [
                (f"{tool} {run}", pins)
                for tool in (UV, UV_OFFLINE)
                for run, pins in res.pins.get(tool, [])
            ]
        )
        if not uv_variants:
            res.info.append(f"`{res.name}`: no uv output to compare pins with")
            return
        (ref_runs, ref), *others = uv_variants
        if others:
            res.uv_unstable = True
            for runs, pins in others:
                res.info.append(
                    f"uv's own runs disagree on `{res.name}` (the index served different pages "
                    f"during the run): {', '.join(runs)} vs {', '.join(ref_runs)}: "
                    + "; ".join(diff_pins(pins, ref, "the former", "the latter"))
                )
        pip_runs = res.pins.get(PIP, [])
        for runs, pins in _variants(res.pins.get(BURROW, [])):
            if any(pins == theirs for _, theirs in uv_variants):
                continue
            closest_runs, closest = min(
                uv_variants, key=lambda v: len(diff_pins(pins, v[1], "", ""))
            )
            diff = diff_pins(pins, closest, "burrow", "uv")
            same_names = pins.keys() == closest.keys()
            text = (
                f"**PIN MISMATCH** on `{res.name}`: burrow (runs {', '.join(runs)}) vs "
                f"{', '.join(closest_runs)}, {len(diff)} differences:\n\n"
                + "\n".join(f"- {d}" for d in diff)
            )
            if pip_runs:
                vs_pip = diff_pins(pins, pip_runs[0][1], "burrow", "pip-compile")
                text += (
                    f"\n\nFor context, burrow vs pip-compile ({pip_runs[0][0]}, no "
                    "--exclude-newer): " + ("; ".join(vs_pip) if vs_pip else "identical pins")
                )
            if same_names:
                text += (
                    "\n\nOnly versions differ, no package is added or removed. On this machine "
                    "the index has served the same project page with and without a recent "
                    "release between requests, and burrow keeps a page it fetched for its TTL "
                    "while uv revalidates: see whether uv's own runs disagree too (pin "
                    "comparisons below) before suspecting the resolver. The ratios still compare "
                    "(nearly) the same graph."
                )
                res.version_mismatch = True
            else:
                res.mismatch = True
            res.problems.append(text)
        for run, pins in pip_runs[:1]:
            diff = diff_pins(pins, ref, "pip-compile", "uv")
            if diff:
                res.info.append(
                    f"pip-compile ({run}, no --exclude-newer) differs from "
                    f"{ref_runs[0]} on `{res.name}`: " + "; ".join(diff)
                )
        reference = read_pins(self.ctx.set_file(res.name, ".txt"))
        if reference is not None:
            diff = diff_pins(reference, ref, "shared reference", "uv")
            if diff:
                res.info.append(
                    f"the shared reference `{res.name}.txt` (resolved earlier) differs from "
                    f"{ref_runs[0]}: " + "; ".join(diff)
                )

    def pins_note(self) -> str:
        """Summarize the pin comparison for the table."""
        res = self.result
        burrow = res.pins.get(BURROW, [])
        if not burrow:
            return "no burrow output"
        if res.mismatch:
            return "**PINS DIFFER from uv** (see Problems): ratios compare different graphs"
        if res.version_mismatch:
            return "**pin versions differ from uv** (see Problems), same packages"
        note = f"pins: burrow = uv ({len(burrow[0][1])} pins, {len(burrow)} burrow runs checked)"
        if res.uv_unstable:
            note += "; uv's own runs disagree (index pages changed, see pin comparisons)"
        return note


def _variants(runs: list[tuple[str, Pins]]) -> list[tuple[list[str], Pins]]:
    """Group runs by identical pins, in order of first appearance."""
    groups: list[tuple[list[str], Pins]] = []
    for run, pins in runs:
        for labels, seen in groups:
            if seen == pins:
                labels.append(run)
                break
        else:
            groups.append(([run], pins))
    return groups


def run(ctx: Context) -> SuiteResult:
    """Run the suite."""
    opts = ctx.options
    result = SuiteResult(
        NAME, "compile: `burrow compile` vs `uv pip compile` vs `pip-compile` (issue 4)"
    )
    result.load_start = load_average()
    started = time.monotonic()
    result.method = [
        f"Sets: {', '.join(f'`{s}.in`' for s in opts.sets)}. Per set: {opts.cold_runs} cold "
        f"round(s), then {opts.warm_runs} warm rounds; in every round the tools run "
        "interleaved, the order rotating by one tool each round.",
        "Cold: a fresh cache per tool (burrow: fresh cache and a fresh daemon, started by "
        "`burrow daemon start` just before the timed compile; that start is its own column). "
        "Warm: the last cold round's caches again (burrow: the same daemon).",
        f"burrow and uv: `--python-version {opts.python_version} --exclude-newer "
        f"{EXCLUDE_NEWER}`; pip-compile runs on the venv's interpreter and cannot exclude newer "
        "uploads. Every run writes a new `-o` file (an existing one would be read as preferred "
        "pins).",
        "uv revalidates every project page on each warm run here: the public index's responses "
        "arrive on this machine without `Cache-Control`/`ETag`, so nothing in uv's cache is "
        f"fresh. burrow keeps pages fresh for a heuristic TTL ({BURROW_INDEX_TTL:.0f} s, RFC 9111 "
        "4.2.2). That is a real property of this environment, not a trick; the `uv --offline` "
        "column (uv serving from its cache without revalidating) is the fairer lower bound for "
        "uv, and `burrow/uv --offline` compares against it.",
        "Pins: every burrow output must equal some uv output (uv's own runs can disagree when "
        "the index serves a page with and without a recent release); a mismatch is listed "
        "under Problems, and when the package sets differ the set's verdicts are n/a.",
        f"pip-compile has a {opts.compile_timeout:.0f} s timeout per run; a timed-out cold run "
        "skips its warm runs.",
        f"Targets: warm burrow/uv < {WARM_TARGET} and burrow/pip-compile < 1.0; cold burrow/uv "
        f"<= {COLD_TARGET} and burrow/pip-compile < 1.0.",
    ]
    warm = Table(
        "Warm",
        [BURROW, UV, UV_OFFLINE, PIP],
        [
            RatioColumn("burrow/uv", BURROW, UV),
            RatioColumn("burrow/uv --offline", BURROW, UV_OFFLINE),
            RatioColumn("burrow/pip-compile", BURROW, PIP),
        ],
    )
    cold = Table(
        "Cold",
        [BURROW, UV, PIP, START],
        [RatioColumn("burrow/uv", BURROW, UV), RatioColumn("burrow/pip-compile", BURROW, PIP)],
    )
    info: list[str] = []
    for name in opts.sets:
        runner = _Runner(ctx, name)
        res = runner.run()
        note = runner.pins_note()
        w = res.warm
        row = Row(
            f"`{name}` warm",
            w,
            target=f"burrow/uv < {WARM_TARGET}, < pip-compile",
            verdict=all_verdicts(
                faster_than(w[BURROW], w[UV], WARM_TARGET), faster_than(w[BURROW], w[PIP], 1.0)
            ),
            note=note,
        )
        if res.max_page_age > BURROW_INDEX_TTL:
            row.note += (
                f"; burrow's pages were up to {res.max_page_age:.0f} s old (> TTL "
                f"{BURROW_INDEX_TTL:.0f} s): later warm runs revalidated"
            )
        warm.rows.append(row)
        c = res.cold
        cold.rows.append(
            Row(
                f"`{name}` cold",
                c,
                target=f"burrow/uv <= {COLD_TARGET}, < pip-compile",
                verdict=all_verdicts(
                    faster_than(c[BURROW], c[UV], COLD_TARGET + 1e-9),
                    faster_than(c[BURROW], c[PIP], 1.0),
                ),
                note=note,
            )
        )
        if res.mismatch:
            # A ratio between two different graphs says nothing about either resolver's speed.
            warm.rows[-1].verdict = cold.rows[-1].verdict = None
        result.problems += res.problems
        info += res.info
    result.tables += [warm, cold]
    if info:
        result.sections.append(
            "#### Pin comparisons (information)\n\n" + "\n".join(f"- {line}" for line in info)
        )
    result.load_end = load_average()
    result.seconds = time.monotonic() - started
    ctx.log(f"{NAME}: done in {fmt_seconds(result.seconds)}")
    return result
