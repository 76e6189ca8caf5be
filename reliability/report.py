"""The Markdown report of a harness run (``docs/reliability.md``)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from reliability.crash import CrashStats, Finding
from reliability.load import LoadStats, percentile
from reliability.suites import SuiteResult

__all__ = ["Run", "render"]

#: Findings listed per scenario and check before "and N more".
LISTED: Final = 25
CHECKS: Final = ("cache", "environment", "repair", "temp")


@dataclass
class Run:
    """Everything one run measured."""

    argv: list[str]
    seed: int
    quick: bool
    started: dt.datetime
    seconds: float = 0.0
    crashes: list[CrashStats] = field(default_factory=list)
    load: LoadStats | None = None
    suites: list[SuiteResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.rstrip()


def machine(repo: Path) -> list[str]:
    """Describe the machine and the code under test."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    revision = _git(repo, "rev-parse", "--short", "HEAD") or "unknown"
    dirty = [
        line[3:]
        for line in _git(
            repo, "status", "--porcelain", "--", "daemon", "client", "protocol"
        ).splitlines()
        if line
    ]
    code = f"burrowd at {revision}"
    if dirty:
        code += (
            f", with uncommitted changes to {len(dirty)} file(s) of daemon/, client/ or "
            f"protocol/ in the working tree ({', '.join(sorted(dirty)[:6])}"
            + (", ..." if len(dirty) > 6 else "")
            + ")"
        )
    return [
        f"- Machine: {usable} usable cores (of {os.cpu_count()}), {platform.platform()}",
        f"- Python {platform.python_version()} ({sys.executable})",
        f"- Code: {code}",
    ]


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def _failed(stats: CrashStats) -> str:
    parts = [f"{check} {stats.failed[check]}" for check in CHECKS if stats.failed[check]]
    return ", ".join(parts) if parts else "0"


def _crash_row(stats: CrashStats) -> str:
    figures = [
        f"repairs {stats.repairs_ok} ok / {stats.repairs_failed} failed",
        f"{stats.seconds:.0f} s",
    ]
    if stats.scenario == "sync":
        figures.insert(
            0,
            "half-changed venv found before the restart after "
            + _count(stats.half_before_restart, "kill"),
        )
    kills = _count(stats.iterations, "kill")
    return (
        f"| kill -9 during {stats.scenario} | {kills} | {_failed(stats)} | {'; '.join(figures)} |"
    )


def _load_rows(load: LoadStats) -> list[str]:
    every = [v for values in load.latencies.values() for v in values]
    rss = (
        f"peak RSS (VmHWM) {load.peak_rss_kib / 1024:.1f} MiB"
        if load.peak_rss_kib
        else "peak RSS unknown"
    )
    before = (
        f" ({load.rss_before_kib / 1024:.1f} MiB before the load)" if load.rss_before_kib else ""
    )
    return [
        f"| load: {load.clients} clients x {load.per_client} requests | {load.requests} requests "
        f"| {len(load.failures)} | {load.requests / load.seconds:.0f} requests/s over "
        f"{load.seconds:.1f} s; all methods p50 {_ms(percentile(every, 50))}, "
        f"p99 {_ms(percentile(every, 99))}; {rss}{before} |"
    ]


def _suite_row(suite: SuiteResult) -> str:
    if not suite.present:
        return f"| {suite.title} (`{suite.path}`) | - | - | {suite.note} |"
    figures = f"{suite.passed} passed, {suite.skipped} skipped, {suite.seconds:.0f} s"
    if suite.note:
        figures += f"; {suite.note}"
    return (
        f"| {suite.title} (`{Path(suite.path).name}`) | {suite.tests} tests | "
        f"{suite.failed + suite.errors} | {figures} |"
    )


def _findings(stats: CrashStats) -> list[str]:
    lines: list[str] = []
    for check in CHECKS:
        found: list[Finding] = stats.failures(check)
        if not found:
            continue
        lines += [f"**{stats.scenario}, {check} check** ({len(found)}):", ""]
        lines += [f"- kill {f.iteration} ({f.phase}): {f.problem}" for f in found[:LISTED]]
        if len(found) > LISTED:
            lines.append(f"- and {len(found) - LISTED} more")
        lines.append("")
    return lines


EXPLANATIONS: Final = """\
- **Crashes.** Each kill interrupts one request sent over the socket. The delay comes from
  a seeded RNG: half uniform over a whole uninterrupted request, half over the part that
  changes the disk (removing and linking files, downloading and unpacking, running the build
  backend). The phase is the last `$/progress` phase the request sent before the kill (for
  builds: whether the log says the build started and whether a wheel was stored). After the
  kill the daemon is restarted with `burrow daemon start` and the disk is read directly:
  - *cache*: every `archive-v0/<sha256>` has its manifest `.burrow-archive`, exactly the number
    of files and bytes it counts, and the files its dist-info's RECORD lists with their sha256
    and size; every `wheels-v0` pointer decodes and leads to such a whole archive; project
    pages decode; every built wheel is a readable zip with its `metadata.msgpack`; no unknown
    entry sits in the cache root (temporary files belong in `.tmp`). A kill during a build must
    leave no built wheel of it.
  - *environment* (sync only): every `.dist-info`'s RECORD files exist with their sha256 and
    size, every file of site-packages belongs to a distribution (`__pycache__` and `.burrow-*`
    aside), no project has two versions, and each project has the old or the new pin (absent
    only where one of the two sets lacks it).
  - *repair*: the same request again through the real CLI (`burrow sync`, `burrow prefetch`)
    succeeds and leaves exactly the new pins (sync), every wheel unpacked (fill), or a built
    wheel (build), with the cache still whole.
  - *temp*: temporary entries the killed daemon left in `.tmp` are gone after that request.
  The "half-changed before the restart" figure counts the kills after which the venv failed
  the environment check before the daemon was restarted, i.e. what recovery had to finish.
- **Load.** Threads, each with its own connection and venv, send a seeded mix of `status`,
  `resolve` (three small `.in` files), `sync` (two pin sets in turn), `cache.stats` and
  `cache.dir` to one daemon, each as soon as the previous answer came. Every answer is checked
  (the resolved pins, the venv holding exactly the pins, the daemon's pid and cache path).
  Latency is measured per request at the client; peak memory is the daemon's `VmHWM`.
- **Test files.** The other reliability tests run with pytest (counts from `--junitxml`); the
  RPC fuzz tests get `BURROW_FUZZ_EXAMPLES` examples.
"""


def render(run: Run, repo: Path) -> str:
    """Return the whole report."""
    mode = "quick" if run.quick else "full"
    lines = [
        "# burrowd reliability",
        "",
        f"Produced by `python -m reliability {' '.join(run.argv)}`".rstrip() + f" ({mode} run), "
        f"on {run.started:%Y-%m-%d %H:%M} UTC, in {run.seconds / 60:.1f} minutes. "
        "Regenerate with `make reliability`.",
        "",
        *machine(repo),
        f"- Seed: {run.seed} (`--seed {run.seed}` repeats the choice of kill moments)",
        "",
        "## Figures",
        "",
        "| what | count | failures | figures |",
        "| --- | --- | --- | --- |",
    ]
    lines += [_crash_row(s) for s in run.crashes]
    if run.load is not None:
        lines += _load_rows(run.load)
    lines += [_suite_row(s) for s in run.suites]
    lines.append("")
    lines += [
        "Failures of a crash row count the kills after which a check failed, per check "
        "(a kill may fail several).",
        "",
    ]
    if run.problems:
        lines += ["## Harness problems", "", *(f"- {p}" for p in run.problems), ""]
    if run.crashes:
        lines += [
            "## Where the kills landed",
            "",
            "| scenario | phase | kills |",
            "| --- | --- | --- |",
        ]
        for stats in run.crashes:
            for phase, count in stats.phases.most_common():
                lines.append(f"| {stats.scenario} | {phase} | {count} |")
        lines.append("")
    if run.load is not None:
        lines += [
            "## Load latency per method",
            "",
            "| method | requests | p50 | p95 | p99 | max |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for method, values in run.load.latencies.items():
            if values:
                lines.append(
                    f"| `{method}` | {len(values)} | "
                    + " | ".join(_ms(percentile(values, q)) for q in (50, 95, 99, 100))
                    + " |"
                )
        lines.append("")
    lines += ["## Violations", ""]
    listed = [line for stats in run.crashes for line in _findings(stats)]
    if run.load is not None and run.load.failures:
        listed += [f"**load** ({len(run.load.failures)}):", ""]
        listed += [f"- {f}" for f in run.load.failures[:LISTED]] + [""]
    for suite in run.suites:
        if suite.failures:
            listed += [f"**{suite.title}** (failed tests):", ""]
            listed += [f"- `{name}`" for name in suite.failures[:LISTED]] + [""]
    lines += listed or ["None.", ""]
    lines += ["## What is checked", "", EXPLANATIONS]
    return "\n".join(lines).rstrip() + "\n"
