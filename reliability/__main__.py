"""``python -m reliability``: kill the daemon mid-request, load it, run the reliability tests.

Three crash scenarios (a venv sync from an old pin set to a new one, a cache fill, a slow
sdist build), each killed with SIGKILL at moments drawn from a seeded RNG, then checked on
disk and repaired; a load of many concurrent clients; and the other ``tests/reliability``
files under pytest. Everything runs on loopback against the tests' fake index, with private
daemons. The report goes to ``--out`` (``docs/reliability.md``) and to stdout; progress to
stderr. Exit status 0 when nothing failed, 1 when something did, 2 when the harness broke.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from reliability import crash, load, report, suites
from reliability.world import HarnessError, World, world

REPO = Path(__file__).resolve().parent.parent
SCENARIOS: dict[str, Callable[[World, random.Random, crash.Budget, crash.Log], crash.CrashStats]]
SCENARIOS = {"sync": crash.crash_sync, "fill": crash.crash_fill, "build": crash.crash_builds}
PARTS = ["sync", "fill", "build", "load", "suites"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few iterations of everything")
    parser.add_argument("--out", type=Path, help="write the report here too")
    parser.add_argument("--seed", type=int, help="seed of the kill moments (default: random)")
    parser.add_argument("--only", nargs="+", choices=PARTS, metavar="PART", help=str(PARTS))
    parser.add_argument("--iterations", type=int, help="kills per crash scenario (200, quick 5)")
    parser.add_argument(
        "--build-iterations", type=int, help="kills of the build scenario (60, quick 3)"
    )
    parser.add_argument(
        "--minutes", type=float, help="time budget of each crash scenario (8, quick 1)"
    )
    parser.add_argument("--clients", type=int, help="load clients (32, quick 8)")
    parser.add_argument("--requests", type=int, help="requests per load client (50, quick 10)")
    parser.add_argument(
        "--fuzz-examples", type=int, help="BURROW_FUZZ_EXAMPLES of the tests (2000, quick 100)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the harness and write the report; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    quick = bool(args.quick)

    def pick(value: int | float | None, full: float, small: float) -> float:
        return value if value is not None else (small if quick else full)

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    parts = args.only or PARTS
    started_wall = dt.datetime.now(dt.UTC)
    t0 = time.monotonic()

    def log(message: str) -> None:
        print(f"[reliability {time.monotonic() - t0:7.1f}s] {message}", file=sys.stderr, flush=True)

    log(f"seed {seed}")
    run = report.Run(argv=argv, seed=seed, quick=quick, started=started_wall)
    root = Path(tempfile.mkdtemp(prefix="burrow-reliability-"))
    try:
        for name in ("sync", "fill", "build"):
            if name not in parts:
                continue
            iterations = pick(
                args.build_iterations if name == "build" else args.iterations,
                60 if name == "build" else 200,
                3 if name == "build" else 5,
            )
            budget = crash.Budget(int(iterations), pick(args.minutes, 8, 1) * 60)
            rng = random.Random(f"{seed}-{name}")
            try:
                with world(root / name) as w:
                    run.crashes.append(SCENARIOS[name](w, rng, budget, log))
            except HarnessError as exc:
                run.problems.append(f"{name}: {exc}")
                log(f"{name}: harness problem: {exc}")
        if "load" in parts:
            try:
                with world(root / "load") as w:
                    run.load = load.run_load(
                        w,
                        clients=int(pick(args.clients, 32, 8)),
                        per_client=int(pick(args.requests, 50, 10)),
                        seed=seed,
                        log=log,
                    )
            except HarnessError as exc:
                run.problems.append(f"load: {exc}")
        if "suites" in parts:
            junit = root / "junit"
            junit.mkdir()
            run.suites = suites.run_suites(
                REPO,
                junit,
                fuzz_examples=int(pick(args.fuzz_examples, 2000, 100)),
                timeout=1800,
                log=log,
            )
    except KeyboardInterrupt:
        run.problems.append("interrupted (Ctrl-C): the report holds what finished")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    run.seconds = time.monotonic() - t0
    text = report.render(run, REPO)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        log(f"report written to {args.out}")
    print(text)
    if run.problems:
        return 2
    failed = (
        any(s.findings for s in run.crashes)
        or (run.load is not None and bool(run.load.failures))
        or any(s.failed or s.errors for s in run.suites)
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
