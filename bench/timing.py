"""Timing whole processes: one run, a series of runs, and interleaved rounds.

A run is timed with :func:`time.perf_counter` around ``Popen`` and ``wait`` (so the figure is the
wall-clock time of the whole process, fork and exec included, the same overhead for every tool).
Output goes to temporary files, not pipes, so a daemon that a command starts cannot keep the
timer waiting for an end of file. A run that exceeds its timeout has its whole process group
killed and is recorded as a timeout, not as a time.

Competitors always run interleaved: round ``r`` runs every tool once, and the order rotates by one
tool each round, so load that comes and goes on this shared machine hits every tool alike and no
tool is always the first to touch a cold network path.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shlex
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")

TAIL_CHARS = 1500


def _read_all(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", "replace")


@dataclass
class Outcome:
    """One finished (or killed) process."""

    argv: list[str]
    cwd: Path
    seconds: float
    returncode: int | None
    stdout: str
    stderr: str
    timeout: float | None = None
    #: CPU seconds (user + system) of the process and the descendants it waited for; not
    #: of a daemon it talked to (see ``BurrowDaemon.cpu``).
    cpu: float | None = None

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def command(self) -> str:
        """Return the command line as a shell would show it."""
        return shlex.join(self.argv)

    def describe(self) -> str:
        """Return a Markdown block: the command, its status, and the tails of its output."""
        if self.timed_out:
            status = f"killed after the {self.timeout:.0f} s timeout"
        else:
            status = f"exit status {self.returncode} after {self.seconds:.2f} s"
        lines = [f"`{self.command()}` (in `{self.cwd}`): {status}"]
        for name, raw in (("stdout", self.stdout), ("stderr", self.stderr)):
            text = raw.strip()
            if text:
                tail = text[-TAIL_CHARS:]
                cut = "…" if len(text) > len(tail) else ""
                lines.append(f"\n{name} (last {len(tail)} chars):\n\n```\n{cut}{tail}\n```")
        return "\n".join(lines)


def run_timed(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float | None = None,
) -> Outcome:
    """Run ``argv`` to completion and return how long it took and what it printed.

    The wait is a blocking ``waitpid``: ``Popen.wait(timeout)`` polls with sleeps of up to 50 ms,
    which would round every timing up to the next poll. A timer thread enforces the timeout.
    """
    args = [str(arg) for arg in argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        # The children reaped meanwhile are this run's alone: the suites run one at a time.
        before = _children_cpu()
        start = time.perf_counter()
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill) if timeout is not None else None
        if timer is not None:
            timer.start()
        try:
            returncode: int | None = proc.wait()
        finally:
            if timer is not None:
                timer.cancel()
        seconds = time.perf_counter() - start
        cpu = _children_cpu() - before
        if killed.is_set():
            returncode = None
        return Outcome(
            argv=args,
            cwd=cwd,
            seconds=seconds,
            returncode=returncode,
            stdout=_read_all(out),
            stderr=_read_all(err),
            timeout=timeout,
            cpu=cpu,
        )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Series:
    """The timings of one tool in one benchmark row."""

    samples: list[float] = field(default_factory=list)
    failures: list[Outcome] = field(default_factory=list)
    timeouts: list[Outcome] = field(default_factory=list)
    skipped: str = ""

    def record(self, outcome: Outcome) -> bool:
        """Add a run; return whether it succeeded (only successful runs are timings)."""
        if outcome.ok:
            self.samples.append(outcome.seconds)
        elif outcome.timed_out:
            self.timeouts.append(outcome)
        else:
            self.failures.append(outcome)
        return outcome.ok

    def add(self, seconds: float) -> None:
        """Add a timing measured elsewhere (by hyperfine)."""
        self.samples.append(seconds)

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def minimum(self) -> float | None:
        return min(self.samples) if self.samples else None

    @property
    def attempts(self) -> int:
        return len(self.samples) + len(self.failures) + len(self.timeouts)


def rotated(items: Sequence[T], round_index: int) -> list[T]:
    """Return ``items`` rotated left by ``round_index`` (the interleaving order of a round)."""
    if not items:
        return []
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


def ratio(numerator: Series, denominator: Series) -> float | None:
    """Return the ratio of the two medians, or ``None`` when either has no timing."""
    num, den = numerator.median, denominator.median
    if num is None or den is None or den <= 0:
        return None
    return num / den
