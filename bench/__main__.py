"""``python -m bench``: time burrow against uv and pip-compile, and write a Markdown report.

Suites (``--only`` picks some): ``client-startup`` (issue 2), ``cache-fill`` (issue 3) and
``compile`` (issue 4); each module's docstring states its method. Every figure is a median over N
runs with the minimum beside it, competitors run interleaved in one run, and ratios are ratios of
medians: the machine is shared and noisy, so absolute times only mean something side by side.
The report lands in ``bench/results/<UTC timestamp>.md`` and ``bench/results/latest.md`` and is
printed; progress goes to stderr. burrow is measured from a wheel of the working tree installed
into a venv of its own (``--install editable``: the project venv's editable install). The exit
status is 0 even when a target is missed or a tool failed (those are findings, listed under
"Problems"); 2 for a usage or setup error (also when that install fails).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import (
    suite_builds,
    suite_cache_fill,
    suite_compile,
    suite_plain,
    suite_startup,
    suite_sync,
    suite_watch,
)
from bench.context import Context, Options
from bench.report import SuiteResult, fmt_ratio, fmt_seconds
from bench.tools import (
    DEFAULT_OUT_DIR,
    DEFAULT_SETS_DIR,
    EXCLUDE_NEWER,
    INSTALLS,
    InstallError,
    Machine,
    MissingTool,
    Tools,
    format_load,
    load_average,
    make_temp_root,
    prepare_burrow,
)

SUITES: dict[str, Callable[[Context], SuiteResult]] = {
    suite_startup.NAME: suite_startup.run,
    suite_cache_fill.NAME: suite_cache_fill.run,
    suite_compile.NAME: suite_compile.run,
    suite_plain.NAME: suite_plain.run,
    suite_sync.NAME: suite_sync.run,
    suite_builds.NAME: suite_builds.run,
    suite_watch.NAME: suite_watch.run,
}
ALL_SETS = ["a-trio", "b-black", "c-web", "d-large", "e-jupyter"]
QUICK_SETS = ["a-trio", "b-black"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark burrow against uv and pip-compile; write a Markdown report.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a few minutes: sets a-trio and b-black, 3 warm and 1 cold compile runs, "
        "15 start-up runs, cache-fill of b-black once",
    )
    parser.add_argument(
        "--only", nargs="+", choices=list(SUITES), metavar="NAME", help=f"suites: {list(SUITES)}"
    )
    parser.add_argument(
        "--runs", type=int, metavar="N", help="warm compile runs per set (default 5, quick 3)"
    )
    parser.add_argument("--cold-runs", type=int, metavar="N", help="cold compile runs (2, quick 1)")
    parser.add_argument(
        "--startup-runs", type=int, metavar="N", help="client start-up runs (30, quick 15)"
    )
    parser.add_argument("--fill-runs", type=int, metavar="N", help="cache-fill rounds (3, quick 1)")
    parser.add_argument(
        "--fill-set", metavar="SET", help="pins file for cache-fill (d-large, quick b-black)"
    )
    parser.add_argument(
        "--sets", nargs="+", metavar="SET", help="compile sets (default: all five; quick: two)"
    )
    parser.add_argument(
        "--sync-sets",
        nargs="+",
        metavar="SET",
        help="sync sets (default: d-large e-jupyter; quick: b-black)",
    )
    parser.add_argument(
        "--sync-runs", type=int, metavar="N", help="sync rounds per set (default 5, quick 2)"
    )
    parser.add_argument(
        "--build-runs", type=int, metavar="N", help="builds rounds (default 3, quick 1)"
    )
    parser.add_argument(
        "--sets-dir", type=Path, default=DEFAULT_SETS_DIR, help="where SET.in and SET.txt live"
    )
    parser.add_argument(
        "--python-version",
        metavar="X.Y.Z",
        help="target of uv and burrow (default: the venv interpreter's exact version, the one "
        "pip-compile runs on)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="per-run timeout of a compile (600 s)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help="report folder")
    parser.add_argument(
        "--keep-tmp", action="store_true", help="keep the temporary root (caches, outputs, logs)"
    )
    parser.add_argument(
        "--install",
        choices=INSTALLS,
        default=INSTALLS[0],
        help="the burrow under test: a wheel of the working tree installed into a venv of its "
        "own with compiled .pyc files (default), or the project venv's editable install",
    )
    args = parser.parse_args(argv)
    for name in ("runs", "cold_runs", "startup_runs", "fill_runs", "sync_runs", "build_runs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def options_from(args: argparse.Namespace, tools: Tools) -> Options:
    """Turn the command line into :class:`Options`, with the ``--quick`` defaults."""
    quick = bool(args.quick)

    def pick(value: int | None, full: int, small: int) -> int:
        return value if value is not None else (small if quick else full)

    return Options(
        quick=quick,
        sets=list(args.sets or (QUICK_SETS if quick else ALL_SETS)),
        warm_runs=pick(args.runs, 5, 3),
        cold_runs=pick(args.cold_runs, 2, 1),
        startup_runs=pick(args.startup_runs, 30, 15),
        fill_set=args.fill_set or ("b-black" if quick else "d-large"),
        fill_runs=pick(args.fill_runs, 3, 1),
        compile_timeout=float(args.timeout),
        python_version=args.python_version or tools.python_version,
        sync_sets=list(args.sync_sets or (["b-black"] if quick else ["d-large", "e-jupyter"])),
        sync_runs=pick(args.sync_runs, 5, 2),
        build_runs=pick(args.build_runs, 3, 1),
    )


def _check_sets(ctx: Context, suites: list[str]) -> list[str]:
    missing = []
    if suite_compile.NAME in suites or suite_plain.NAME in suites:
        missing += [str(ctx.set_file(s, ".in")) for s in ctx.options.sets]
    if suite_cache_fill.NAME in suites:
        missing.append(str(ctx.set_file(ctx.options.fill_set, ".txt")))
    if suite_sync.NAME in suites:
        missing += [str(ctx.set_file(s, ".txt")) for s in ctx.options.sync_sets]
    return [path for path in missing if not Path(path).is_file()]


def _verdict_text(verdict: bool | None) -> str:
    if verdict is None:
        return "n/a"
    return "met" if verdict else "**NOT met**"


def render_report(
    *,
    argv: Sequence[str],
    started: dt.datetime,
    seconds: float,
    options: Options,
    tools: Tools,
    versions: dict[str, str],
    machine: Machine,
    load_start: tuple[float, float, float],
    load_end: tuple[float, float, float],
    results: list[SuiteResult],
    crashed: str,
) -> str:
    """Assemble the whole Markdown report."""
    lines = [
        f"# burrowd benchmarks, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"`{shlex.join(['python', '-m', 'bench', *argv])}` — "
        f"{'quick' if options.quick else 'full'} mode, took {fmt_seconds(seconds)}.",
        "",
        "## Machine and method",
        "",
        f"- Machine: `nproc` = {machine.nproc} (of {machine.cpu_count} CPUs), "
        f"{machine.platform}; shared and noisy, so only medians and ratios mean anything.",
        f"- Load average (1, 5, 15 min) at start: {format_load(load_start)}; at end: "
        f"{format_load(load_end)}. Each suite below states its own.",
        f"- Code: burrowd at {machine.revision}.",
        f"- Install measured: {tools.install}.",
        "- Tools: " + "; ".join(f"{name} `{ver}`" for name, ver in versions.items()),
        "- Each cell is the median of the successful runs with the minimum in brackets; a "
        "ratio is the ratio of two medians (< 1.0: burrow is faster). Runs of competing tools "
        "are interleaved (A, B, C, B, C, A, ...: the order rotates each round) within one run.",
        "- Cold: every tool starts from its own empty cache (burrow: an empty cache and a "
        "just-started daemon). Warm: the same cache again (burrow: the same daemon).",
        "- Every tool sees only the public index: the environment has no `PIP_*`, `UV_*` or "
        "`BURROW_*` variable, `PIP_CONFIG_FILE=/dev/null` (this machine's pip.conf adds "
        "file:// indexes and a constraints file), uv runs with `--no-config`.",
        f"- Target: uv and burrow resolve with `--python-version {options.python_version}` "
        f"and (compile) `--exclude-newer {EXCLUDE_NEWER}`; pip-compile runs on the venv's "
        f"CPython {tools.python_version} and has no `--exclude-newer`. The exact version, not "
        "`3.11`: uv and burrow read `3.11` as 3.11.0 and then drop releases that need "
        ">=3.11.5 (soupsieve 4.x), which pip-compile on the real interpreter picks.",
        "",
    ]
    summary = [
        f"| {r.name} | {row.what} | {_verdict_text(row.verdict)} | {row.target} | "
        + ", ".join(f"{col.label} {fmt_ratio(table.ratio(row, col))}" for col in table.ratios)
        + " |"
        for r in results
        for table in r.tables
        for row in table.rows
        if row.target
    ]
    if summary:
        lines += [
            "## Targets",
            "",
            "| suite | what | verdict | target | ratios of medians |",
            "| --- | --- | --- | --- | --- |",
            *summary,
            "",
        ]
    problems = [(r.title, p) for r in results for p in r.problems]
    if crashed:
        problems.insert(0, ("benchmark", crashed))
    lines += ["## Problems", ""]
    if problems:
        for n, (title, problem) in enumerate(problems, 1):
            lines += [f"### {n}. {title}", "", problem, ""]
    else:
        compiled = any(r.name == suite_compile.NAME for r in results)
        pins = " and burrow's pins equal uv's" if compiled else ""
        lines += [f"None: every run succeeded{pins}.", ""]
    for result in results:
        lines += [result.render(), ""]
    samples = [r.render_samples() for r in results]
    if any(samples):
        lines += ["## Raw samples (ms, in run order)", "", *(s for s in samples if s)]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected suites and write the report; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    tools = Tools.discover()
    options = options_from(args, tools)
    suites = list(args.only or SUITES)
    try:
        if suites != [suite_startup.NAME]:
            tools.require_resolvers()
    except MissingTool as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    root = make_temp_root()
    ctx = Context(tools=tools, root=root, sets_dir=args.sets_dir.resolve(), options=options)
    missing = _check_sets(ctx, suites)
    if missing:
        print(f"bench: missing requirement sets: {', '.join(missing)}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
        return 2

    started = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()
    machine = Machine.describe()
    ctx.log(f"installing burrow: {args.install}")
    try:
        tools = ctx.tools = prepare_burrow(tools, args.install, root, machine.revision)
    except InstallError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
        return 2
    ctx.log(f"burrow under test: {tools.burrow}")
    versions = tools.versions()  # before the run: the wheel venv goes with the temp root
    load_start = load_average()
    results: list[SuiteResult] = []
    crashed = ""
    ctx.log(f"temp root {root}; suites {', '.join(suites)}; load {format_load(load_start)}")
    try:
        for name in suites:
            results.append(SUITES[name](ctx))
    except KeyboardInterrupt:
        crashed = "interrupted (Ctrl-C): the report holds the suites that finished"
    except Exception as exc:
        import traceback  # noqa: PLC0415

        crashed = f"the benchmark crashed:\n\n```\n{traceback.format_exc()}\n```"
        ctx.log(f"crashed: {exc!r}")
    finally:
        ctx.stop_daemons()
        if args.keep_tmp:
            ctx.log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    report = render_report(
        argv=argv,
        started=started,
        seconds=time.monotonic() - t0,
        options=options,
        tools=tools,
        versions=versions,
        machine=machine,
        load_start=load_start,
        load_end=load_average(),
        results=results,
        crashed=crashed,
    )
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{started:%Y-%m-%dT%H-%M-%SZ}.md"
    path.write_text(report)
    (out_dir / "latest.md").write_text(report)
    print(report)
    ctx.log(f"report written to {path} and {out_dir / 'latest.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
