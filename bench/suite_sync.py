"""sync (issue 13): warm sync into a fresh venv, a no-op sync, and uninstalling the set.

For each set, untimed first: burrow gets a fresh daemon whose cache is filled by
``burrow prefetch -r SET.txt`` and one sync into a scratch venv (so pages and the interpreter
are warm, as they are for a daemon in use); uv syncs once into a scratch venv with its own
``--cache-dir``; pip installs once with its own ``--cache-dir``. Then each round, the tools
interleaved with the order rotating:

* fresh: a new ``python -m venv --without-pip`` (untimed), then the timed command:
  ``burrow sync SET.txt -p VENV``, ``uv pip sync SET.txt --python VENV/bin/python``,
  ``pip --python VENV/bin/python install -r SET.txt`` (pip as users run it: it checks the
  dependencies and compiles bytecode; uv and burrow compile nothing by default);
* no-op: the same command again into the same venv;
* uninstall: ``burrow uninstall -r SET.txt``, ``uv pip uninstall -r SET.txt``,
  ``pip uninstall -y -r SET.txt``.

After each timed command the venv's ``*.dist-info`` directories are counted: a fresh or no-op
sync must leave one per pin, an uninstall none. Dirty pages are flushed (``os.sync``) before each
timed command, so one tool's writes are not paid for by the next.

The floor: ``cp -al`` of every unpacked wheel of the set (burrow's ``archive-v0`` trees) into a
fresh directory, one hard link per file and one ``mkdir`` per directory, in C.

Targets (issue 13): fresh sync <= 1.0x uv and <= 0.1x pip; no-op <= 1.0x uv; uninstall of
d-large <= 0.5x uv.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.context import Context
from bench.daemon import BurrowDaemon, DaemonError
from bench.pins import read_pins
from bench.report import RatioColumn, Row, SuiteResult, Table, fmt_seconds
from bench.timing import Outcome, Series, rotated, run_timed
from bench.tools import clean_env, load_average

NAME = "sync"
TIMEOUT = 1800.0

BURROW = "burrow"
UV = "uv"
PIP = "pip"
FLOOR = "cp -al floor"
#: burrow's uninstall answers once the files are gone from the environment (moved into
#: ``<venv>/.burrow-trash``); the daemon deletes them after answering. This column times the
#: command until that deletion has finished too.
DELETED = "burrow until deleted"
TOOLS = [BURROW, UV, PIP]

TARGET_FRESH_UV = 1.0
TARGET_FRESH_PIP = 0.1
TARGET_NOOP_UV = 1.0
TARGET_UNINSTALL_UV = 0.5
#: The set the uninstall target is about.
UNINSTALL_SET = "d-large"


@dataclass
class _SetState:
    fresh: dict[str, Series] = field(default_factory=lambda: {t: Series() for t in TOOLS})
    noop: dict[str, Series] = field(default_factory=lambda: {t: Series() for t in TOOLS})
    uninstall: dict[str, Series] = field(
        default_factory=lambda: {t: Series() for t in [*TOOLS, DELETED]}
    )
    floor: Series = field(default_factory=Series)
    files: int = 0
    archives: list[Path] = field(default_factory=list)


def dist_infos(venv: Path) -> int:
    """Return how many ``*.dist-info`` directories the venv's site-packages holds."""
    found = 0
    for site in venv.glob("lib/python*/site-packages"):
        found += sum(1 for p in site.iterdir() if p.name.endswith(".dist-info"))
    return found


def _until_deleted(venv: Path, timeout: float = 120.0) -> float:
    """Return how long ``venv``'s trash took to disappear from now (polled every 2 ms)."""
    trash = venv / ".burrow-trash"
    start = time.perf_counter()
    while trash.exists() and time.perf_counter() - start < timeout:
        time.sleep(0.002)
    return time.perf_counter() - start


def _file_count(archives: list[Path]) -> int:
    return sum(len(files) for a in archives for _, _, files in os.walk(a))


class _Runner:
    """The commands of one set, for each tool."""

    def __init__(self, ctx: Context, home: Path, pins: Path, daemon: BurrowDaemon) -> None:
        self.ctx = ctx
        self.home = home
        self.pins = pins
        self.daemon = daemon
        self.env = clean_env()
        self.uv_cache = home / "uv-cache"
        self.pip_cache = home / "pip-cache"

    def venv(self, path: Path) -> Outcome:
        shutil.rmtree(path, ignore_errors=True)
        return run_timed(
            [self.ctx.tools.python, "-m", "venv", "--without-pip", path],
            env=self.env,
            cwd=self.home,
            timeout=300,
        )

    def sync(self, tool: str, venv: Path) -> Outcome:
        python = venv / "bin" / "python"
        os.sync()
        if tool == BURROW:
            return self.daemon.run("-q", "sync", self.pins, "-p", venv, timeout=TIMEOUT)
        if tool == UV:
            uv = self.ctx.tools.uv
            assert uv is not None
            argv: list[str | Path] = [uv, "pip", "sync", "--no-config", "-q"]
            argv += ["--cache-dir", self.uv_cache, "--python", python, self.pins]
            return run_timed(argv, env=self.env, cwd=self.home, timeout=TIMEOUT)
        argv = [self.ctx.tools.python, "-m", "pip", "--python", python, "install", "-q"]
        argv += ["--disable-pip-version-check", "--cache-dir", self.pip_cache, "-r", self.pins]
        return run_timed(argv, env=self.env, cwd=self.home, timeout=TIMEOUT)

    def uninstall(self, tool: str, venv: Path) -> Outcome:
        python = venv / "bin" / "python"
        os.sync()
        if tool == BURROW:
            return self.daemon.run("-q", "uninstall", "-r", self.pins, "-p", venv, timeout=TIMEOUT)
        if tool == UV:
            uv = self.ctx.tools.uv
            assert uv is not None
            argv: list[str | Path] = [uv, "pip", "uninstall", "--no-config", "-q"]
            argv += ["--python", python, "-r", self.pins]
            return run_timed(argv, env=self.env, cwd=self.home, timeout=TIMEOUT)
        argv = [self.ctx.tools.python, "-m", "pip", "--python", python, "uninstall", "-y", "-q"]
        argv += ["--disable-pip-version-check", "-r", self.pins]
        return run_timed(argv, env=self.env, cwd=self.home, timeout=TIMEOUT)


def _check(
    outcome: Outcome, series: Series, label: str, *, venv: Path, want: int, problems: list[str]
) -> None:
    if not series.record(outcome):
        problems.append(f"{label} failed:\n\n{outcome.describe()}")
        return
    have = dist_infos(venv)
    if have != want:
        problems.append(
            f"{label} left {have} distributions in the venv, expected {want}: `{outcome.command()}`"
        )


def _prepare(ctx: Context, runner: _Runner, st: _SetState, problems: list[str]) -> bool:
    """Fill every tool's cache (untimed); return whether all of them could."""
    daemon = runner.daemon
    try:
        daemon.start()
    except DaemonError as exc:
        problems.append(f"`burrow daemon start` failed:\n\n{exc}")
        return False
    fill = daemon.run("--json", "prefetch", "-r", runner.pins, timeout=TIMEOUT)
    if not fill.ok:
        problems.append(f"burrow prefetch failed:\n\n{fill.describe()}")
        return False
    try:
        wheels = json.loads(fill.stdout).get("wheels", [])
        st.archives = [Path(w["archive"]) for w in wheels]
    except (ValueError, KeyError, TypeError, AttributeError):
        problems.append(f"burrow prefetch printed no wheel list: `{fill.command()}`")
        return False
    st.files = _file_count(st.archives)
    ok = True
    for tool in TOOLS:
        scratch = runner.home / f"scratch-{tool}"
        made = runner.venv(scratch)
        if not made.ok:
            problems.append(f"`python -m venv` failed:\n\n{made.describe()}")
            return False
        warm = runner.sync(tool, scratch)
        if not warm.ok:
            problems.append(f"{tool}: the untimed warm-up sync failed:\n\n{warm.describe()}")
            ok = False
        shutil.rmtree(scratch, ignore_errors=True)
    return ok


def _floor(runner: _Runner, st: _SetState, r: int) -> None:
    dest = runner.home / f"floor{r}"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    os.sync()
    outcome = run_timed(
        ["cp", "-al", *st.archives, dest], env=runner.env, cwd=runner.home, timeout=TIMEOUT
    )
    st.floor.record(outcome)
    shutil.rmtree(dest, ignore_errors=True)


def _run_set(ctx: Context, set_name: str, st: _SetState, problems: list[str]) -> None:
    pins = ctx.set_file(set_name, ".txt")
    want = len(read_pins(pins) or {})
    home = ctx.root / f"sync-{set_name}"
    daemon = ctx.daemon(home / "burrow")
    runner = _Runner(ctx, home, pins, daemon)
    try:
        if not _prepare(ctx, runner, st, problems):
            return
        for r in range(ctx.options.sync_runs):
            ctx.log(f"{NAME}: {set_name} round {r + 1}/{ctx.options.sync_runs}")
            order = rotated(TOOLS, r)
            venvs = {tool: home / f"r{r}-{tool}" for tool in TOOLS}
            for tool in order:
                made = runner.venv(venvs[tool])
                if not made.ok:
                    problems.append(f"`python -m venv` failed:\n\n{made.describe()}")
                    return
            for tool in order:
                label = f"{tool} fresh sync of {set_name}"
                _check(
                    runner.sync(tool, venvs[tool]),
                    st.fresh[tool],
                    label,
                    venv=venvs[tool],
                    want=want,
                    problems=problems,
                )
            for tool in order:
                label = f"{tool} no-op sync of {set_name}"
                _check(
                    runner.sync(tool, venvs[tool]),
                    st.noop[tool],
                    label,
                    venv=venvs[tool],
                    want=want,
                    problems=problems,
                )
            for tool in order:
                label = f"{tool} uninstall of {set_name}"
                outcome = runner.uninstall(tool, venvs[tool])
                _check(
                    outcome, st.uninstall[tool], label, venv=venvs[tool], want=0, problems=problems
                )
                if tool == BURROW and outcome.ok:
                    st.uninstall[DELETED].add(outcome.seconds + _until_deleted(venvs[tool]))
            _floor(runner, st, r)
            for venv in venvs.values():
                shutil.rmtree(venv, ignore_errors=True)
    finally:
        ctx.release(daemon, remove=False)
        shutil.rmtree(home, ignore_errors=True)


def _verdict(table: Table, row: Row, column: RatioColumn, limit: float) -> bool | None:
    value = table.ratio(row, column)
    return None if value is None else value <= limit


def run(ctx: Context) -> SuiteResult:
    """Run the suite."""
    opts = ctx.options
    result = SuiteResult(NAME, "sync: fresh, no-op and uninstall, burrow vs uv vs pip (issue 13)")
    result.load_start = load_average()
    started = time.monotonic()
    result.method = [
        f"Sets: {', '.join(f'`{s}.txt`' for s in opts.sync_sets)}; {opts.sync_runs} round(s) "
        "each; burrow, uv and pip interleaved, the order rotating each round.",
        "Warm caches for every tool (filled untimed before the rounds); burrow's daemon stays "
        "up for the whole set, as a daemon in use does.",
        "fresh: `python -m venv --without-pip` (untimed), then `burrow sync SET.txt -p VENV` / "
        "`uv pip sync --no-config SET.txt --python VENV/bin/python` / `pip --python "
        "VENV/bin/python install -r SET.txt` (pip checks dependencies and compiles bytecode, as "
        "users run it). no-op: the same again. uninstall: `burrow uninstall -r SET.txt` / "
        "`uv pip uninstall -r SET.txt` / `pip uninstall -y -r SET.txt`.",
        f"`{DELETED}`: burrow's uninstall answers once the files are out of the environment "
        "(moved into `VENV/.burrow-trash`, deleted by the daemon after it answers); this "
        "column adds the time until that directory is gone.",
        "Each command's result is checked by counting the venv's `*.dist-info` directories; "
        "`os.sync()` flushes dirty pages before every timed command.",
        f"Floor: `{FLOOR}`: `cp -al` of the set's unpacked wheels (burrow's `archive-v0` trees) "
        "into an empty directory: one link per file, in C.",
        f"Targets: fresh <= {TARGET_FRESH_UV}x uv and <= {TARGET_FRESH_PIP}x pip; no-op <= "
        f"{TARGET_NOOP_UV}x uv; uninstall of `{UNINSTALL_SET}` <= {TARGET_UNINSTALL_UV}x uv.",
    ]
    states: dict[str, _SetState] = {}
    for set_name in opts.sync_sets:
        st = states[set_name] = _SetState()
        _run_set(ctx, set_name, st, result.problems)

    vs_uv = RatioColumn("burrow/uv", BURROW, UV)
    vs_pip = RatioColumn("burrow/pip", BURROW, PIP)
    vs_floor = RatioColumn("burrow/floor", BURROW, FLOOR)
    uv_floor = RatioColumn("uv/floor", UV, FLOOR)
    fresh = Table(
        "Warm sync into a fresh venv", [*TOOLS, FLOOR], [vs_uv, vs_pip, vs_floor, uv_floor]
    )
    noop = Table("No-op sync", TOOLS, [vs_uv, vs_pip])
    until_deleted = RatioColumn("deleted/uv", DELETED, UV)
    uninstall = Table("Uninstall the set", [*TOOLS, DELETED], [vs_uv, vs_pip, until_deleted])
    for set_name, st in states.items():
        n = len(read_pins(ctx.set_file(set_name, ".txt")) or {})
        row = Row(
            f"`{set_name}` ({n} pins, {st.files} files)",
            {**st.fresh, FLOOR: st.floor},
            target=f"<= {TARGET_FRESH_UV}x uv, <= {TARGET_FRESH_PIP}x pip",
        )
        a = _verdict(fresh, row, vs_uv, TARGET_FRESH_UV)
        b = _verdict(fresh, row, vs_pip, TARGET_FRESH_PIP)
        row.verdict = None if a is None or b is None else a and b
        fresh.rows.append(row)
        row = Row(f"`{set_name}`", st.noop, target=f"<= {TARGET_NOOP_UV}x uv")
        row.verdict = _verdict(noop, row, vs_uv, TARGET_NOOP_UV)
        noop.rows.append(row)
        row = Row(f"`{set_name}`", st.uninstall)
        if set_name == UNINSTALL_SET:
            row.target = f"<= {TARGET_UNINSTALL_UV}x uv"
            row.verdict = _verdict(uninstall, row, vs_uv, TARGET_UNINSTALL_UV)
        uninstall.rows.append(row)
    result.tables += [fresh, noop, uninstall]
    result.load_end = load_average()
    result.seconds = time.monotonic() - started
    ctx.log(f"{NAME}: done in {fmt_seconds(result.seconds)}")
    return result
