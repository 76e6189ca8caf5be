"""client-startup (issue 2): what a ``burrow`` process costs on top of a bare interpreter.

Against a warm daemon (started, then asked once), time whole processes:

* ``burrow daemon status``: start the client, connect, one RPC, render, exit;
* ``burrow --version``: start the client and exit, no daemon contact (the import floor);
* ``python -c pass`` of the venv ``burrow`` is installed in (by default the venv the bench
  installs burrow's wheel into; ``--install editable``: ``.venv``): the interpreter that runs
  ``burrow``;
* the system ``python3 -c pass`` (``/usr/bin/python3``; a pyenv shim on PATH would time bash).

They run interleaved: with hyperfine (``-N``, no shell) each round is one hyperfine call with
``--runs 1`` per command, in an order that rotates each round, and the first round does
``--warmup 3``; without hyperfine, ``time.perf_counter`` around each process. The target is the
difference of the medians ``burrow daemon status`` minus that ``python -c pass`` <= 30 ms.
``python -X importtime -c "import burrowd.client.cli"`` on the same interpreter (median of 5 runs
per module) shows what the client's imports cost.
"""

from __future__ import annotations

import json
import re
import shlex
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.context import Context
from bench.daemon import BurrowDaemon
from bench.report import RatioColumn, Row, SuiteResult, Table, fmt_seconds
from bench.timing import Outcome, Series, rotated, run_timed
from bench.tools import clean_env, load_average

NAME = "client-startup"
TARGET_MS = 30.0
IMPORTTIME_RUNS = 5
WARMUP = 3

BURROW = "burrow"
VENV_PY = "venv `python -c pass`"
SYS_PY = "system `python3 -c pass`"

_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|( *)(\S.*)$")


def _hyperfine_round(
    ctx: Context,
    daemon: BurrowDaemon,
    *,
    commands: dict[str, list[str]],
    order: list[str],
    warmup: int,
    series: dict[str, Series],
    problems: list[str],
) -> None:
    """Run one round with hyperfine; fall back to the own timer if hyperfine fails."""
    assert ctx.tools.hyperfine is not None
    with tempfile.NamedTemporaryFile(suffix=".json", dir=ctx.root) as export:
        argv: list[str | Path] = [
            ctx.tools.hyperfine,
            "-N",
            "--runs",
            "1",
            "--warmup",
            str(warmup),
            "--style",
            "none",
            "--export-json",
            export.name,
        ]
        argv += [shlex.join(commands[key]) for key in order]
        outcome = run_timed(argv, env=daemon.env, cwd=daemon.home, timeout=300)
        if outcome.ok:
            results = json.loads(Path(export.name).read_text())["results"]
            for key, result in zip(order, results, strict=True):
                for seconds in result["times"]:
                    series[key].add(float(seconds))
            return
    problems.append(
        f"hyperfine failed; this round fell back to the own timer:\n\n{outcome.describe()}"
    )
    _own_round(daemon, commands, order, series)


def _own_round(
    daemon: BurrowDaemon,
    commands: dict[str, list[str]],
    order: list[str],
    series: dict[str, Series],
) -> None:
    for key in order:
        series[key].record(run_timed(commands[key], env=daemon.env, cwd=daemon.home, timeout=60))


def _importtime(ctx: Context) -> tuple[str, list[Outcome]]:
    """Return a Markdown section with the client's costliest imports, and failed runs."""
    cumulative: dict[str, list[int]] = defaultdict(list)
    self_us: dict[str, list[int]] = defaultdict(list)
    depth: dict[str, int] = {}
    failures: list[Outcome] = []
    argv = [str(ctx.tools.burrow_python), "-X", "importtime", "-c", "import burrowd.client.cli"]
    for _ in range(IMPORTTIME_RUNS):
        outcome = run_timed(argv, env=clean_env(), cwd=ctx.root, timeout=60)
        if not outcome.ok:
            failures.append(outcome)
            continue
        for line in outcome.stderr.splitlines():
            match = _IMPORT_LINE.match(line)
            if match:
                module = match.group(4).strip()
                self_us[module].append(int(match.group(1)))
                cumulative[module].append(int(match.group(2)))
                depth[module] = len(match.group(3)) // 2
    if not cumulative:
        return "", failures

    def med(values: list[int]) -> float:
        return float(statistics.median(values)) / 1000

    def table(title: str, key: dict[str, list[int]]) -> list[str]:
        top = sorted(key, key=lambda m: med(key[m]), reverse=True)[:10]
        lines = [
            f"#### {title}",
            "",
            "| module | nesting | cumulative ms | self ms |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| `{m}` | {depth[m]} | {med(cumulative[m]):.1f} | {med(self_us[m]):.1f} |"
            for m in top
        ]
        return lines

    cmd = '`python -X importtime -c "import burrowd.client.cli"`'
    parts = [
        *table(f"{cmd}: top 10 by cumulative time (median of {IMPORTTIME_RUNS})", cumulative),
        "",
        *table("The same imports: top 10 by self time", self_us),
    ]
    return "\n".join(parts), failures


def run(ctx: Context) -> SuiteResult:
    """Run the suite."""
    n = ctx.options.startup_runs
    result = SuiteResult(NAME, "client-startup: a `burrow` process vs a bare interpreter (issue 2)")
    result.load_start = load_average()
    start = time.monotonic()
    timer = (
        f"hyperfine -N, one hyperfine call per round with --runs 1 ({ctx.tools.hyperfine})"
        if ctx.tools.hyperfine
        else "time.perf_counter around subprocess (hyperfine is not installed)"
    )
    result.method = [
        f"N = {n} runs per command, interleaved: each round runs every command once, the order "
        f"rotating by one command each round; {WARMUP} warm-up runs per command first. Timer: "
        f"{timer}.",
        "The daemon is warm: started with a fresh cache, then asked `daemon status` once.",
        f"burrow: {ctx.tools.install}. `PYTHONDONTWRITEBYTECODE` is unset (this machine sets "
        "it, which makes every start compile sources that have no `.pyc` yet).",
        f"venv python = `{ctx.tools.burrow_python}`, the interpreter `burrow` runs on (and the "
        "daemon it starts): its start-up cost is what `burrow` adds to.",
        "`burrow --version` imports the client and exits without contacting the daemon: "
        "the floor of any burrow command.",
        f"Target: median(`burrow daemon status`) - median(venv `python -c pass`) <= "
        f"{TARGET_MS:.0f} ms (the same interpreter binary runs `burrow`).",
    ]

    daemon = ctx.daemon(ctx.root / "startup")
    try:
        daemon.start()
        daemon.run("daemon", "status")
        commands: dict[str, list[str]] = {
            "status": [str(ctx.tools.burrow), "daemon", "status"],
            "version": [str(ctx.tools.burrow), "--version"],
            VENV_PY: [str(ctx.tools.burrow_python), "-c", "pass"],
        }
        if ctx.tools.system_python is not None:
            commands[SYS_PY] = [str(ctx.tools.system_python), "-c", "pass"]
        series = {key: Series() for key in commands}
        keys = list(commands)
        ctx.log(f"{NAME}: {n} interleaved rounds of {len(keys)} commands")
        for r in range(n):
            order = rotated(keys, r)
            warmup = WARMUP if r == 0 else 0
            if ctx.tools.hyperfine is not None:
                _hyperfine_round(
                    ctx,
                    daemon,
                    commands=commands,
                    order=order,
                    warmup=warmup,
                    series=series,
                    problems=result.problems,
                )
            else:
                if warmup:
                    for _ in range(warmup):
                        for key in order:
                            run_timed(commands[key], env=daemon.env, cwd=daemon.home, timeout=60)
                _own_round(daemon, commands, order, series)
    finally:
        ctx.release(daemon)

    columns = [BURROW, VENV_PY] + ([SYS_PY] if SYS_PY in series else [])
    ratios = [RatioColumn("burrow / venv python", BURROW, VENV_PY)]
    if SYS_PY in series:
        ratios.append(RatioColumn("burrow / system python3", BURROW, SYS_PY))
    table = Table("Whole-process time", columns, ratios)
    for what, key, target in (
        ("`burrow daemon status` (warm daemon)", "status", True),
        ("`burrow --version` (no daemon contact)", "version", False),
    ):
        cells = {BURROW: series[key], VENV_PY: series[VENV_PY]}
        if SYS_PY in series:
            cells[SYS_PY] = series[SYS_PY]
        row = Row(what, cells)
        burrow_med, py_med = series[key].median, series[VENV_PY].median
        if burrow_med is not None and py_med is not None:
            diff = 1000 * (burrow_med - py_med)
            row.note = f"adds {diff:+.0f} ms over venv python"
            sys_med = series[SYS_PY].median if SYS_PY in series else None
            if sys_med is not None:
                row.note += f", {1000 * (burrow_med - sys_med):+.0f} ms over system python3"
            if target:
                row.target = f"adds <= {TARGET_MS:.0f} ms"
                row.verdict = diff <= TARGET_MS
        table.rows.append(row)
        for failure in series[key].failures + series[key].timeouts:
            result.problems.append(f"`burrow` failed in {NAME}:\n\n{failure.describe()}")
    result.tables.append(table)

    section, failures = _importtime(ctx)
    if section:
        result.sections.append(section)
    for failure in failures:
        result.problems.append(f"importing the client failed:\n\n{failure.describe()}")
    result.load_end = load_average()
    result.seconds = time.monotonic() - start
    ctx.log(f"{NAME}: done in {fmt_seconds(result.seconds)}")
    return result
