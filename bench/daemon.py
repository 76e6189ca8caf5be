"""A burrowd of the benchmark's own: a fresh socket, cache and log under the run's temp root.

A fresh cache plus a fresh socket path is a cold daemon. The daemon is started explicitly with
``burrow daemon start`` (timed on its own, reported as its own row) before the timed command, so
a "cold" burrow figure is cold cache and a just-started daemon, without the process start-up.
Its idle timeout is raised so it cannot exit between the runs of a suite; :meth:`BurrowDaemon.stop`
stops it with ``burrow daemon stop`` and, if that fails, signals the pid it reported (and only
that pid).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from bench.timing import Outcome, run_timed
from bench.tools import SOCKET_PATH_MAX, Tools, clean_env
from burrowd.protocol.process import process_alive

IDLE_TIMEOUT = "7200"


class DaemonError(RuntimeError):
    """The daemon could not be started or asked something."""


def _json_object(outcome: Outcome) -> dict[str, Any]:
    """Parse a command's stdout as a JSON object."""
    if not outcome.ok:
        raise DaemonError(outcome.describe())
    try:
        data = json.loads(outcome.stdout)
    except json.JSONDecodeError as exc:
        raise DaemonError(f"not JSON ({exc}): {outcome.describe()}") from exc
    if not isinstance(data, dict):
        raise DaemonError(f"not a JSON object: {outcome.describe()}")
    return data


def tree_cpu(pid: int) -> float:
    """Return the CPU seconds (user + system) ``pid`` and its descendants have used so far.

    Read from ``/proc``: the process's own time, the time of the children it reaped, and that
    of its live descendants (a daemon's unpack workers). 0 for a process that is gone.
    """
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue  # it ended meanwhile
        # After "(comm) ": state, ppid, ... utime (11), stime, cutime, cstime (14).
        fields = data[data.rindex(b")") + 2 :].split()
        child = int(entry.name)
        parents[child] = int(fields[1])
        used[child] = sum(int(v) for v in fields[11:15]) / tick
    total = 0.0
    for child, seconds in used.items():
        ancestor = child
        while ancestor not in (pid, 0, 1) and ancestor in parents:
            ancestor = parents[ancestor]
        if ancestor == pid:
            total += seconds
    return total


class BurrowDaemon:
    """One daemon with its own socket, cache and log."""

    def __init__(self, tools: Tools, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.tools = tools
        self.home = home
        self.socket = home / "s.sock"
        self.cache = home / "cache"
        self.log = home / "burrowd.log"
        if len(os.fsencode(self.socket)) > SOCKET_PATH_MAX:
            raise DaemonError(f"socket path too long for AF_UNIX: {self.socket}")
        self.env = clean_env(
            {
                "BURROW_SOCKET": str(self.socket),
                "BURROW_CACHE_DIR": str(self.cache),
                "BURROW_LOG_FILE": str(self.log),
                "BURROW_IDLE_TIMEOUT": IDLE_TIMEOUT,
                # The watch list lives in the state dir: a bench daemon never restores (or
                # writes) the user's watches.
                "XDG_STATE_HOME": str(home / "state"),
            }
        )
        self.pid: int | None = None

    def run(self, *args: str | Path, timeout: float | None = 120) -> Outcome:
        """Run ``burrow ARGS`` against this daemon, in its home folder."""
        return run_timed([self.tools.burrow, *args], env=self.env, cwd=self.home, timeout=timeout)

    def start(self) -> Outcome:
        """Start the daemon (timed); remember its pid."""
        outcome = self.run("daemon", "start")
        if not outcome.ok:
            raise DaemonError(outcome.describe())
        pid = self.status().get("pid")
        self.pid = pid if isinstance(pid, int) else None
        return outcome

    def status(self) -> dict[str, Any]:
        """Return ``burrow --json daemon status``."""
        return _json_object(self.run("--json", "daemon", "status"))

    def cache_entries(self) -> dict[str, int]:
        """Return the number of entries per on-disk cache bucket (``burrow cache stats``)."""
        stats = _json_object(self.run("--json", "cache", "stats"))
        entries: dict[str, int] = {}
        buckets = stats.get("buckets")
        if isinstance(buckets, list):
            for bucket in buckets:
                if isinstance(bucket, dict):
                    name, count = bucket.get("bucket"), bucket.get("entries")
                    if isinstance(name, str) and isinstance(count, int):
                        entries[name] = count
        return entries

    def cpu(self) -> float:
        """Return the CPU seconds the daemon and its worker processes have used so far."""
        return 0.0 if self.pid is None else tree_cpu(self.pid)

    def log_tail(self, lines: int = 20) -> str:
        """Return the end of the daemon's log."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the daemon; signal its pid if ``burrow daemon stop`` does not."""
        if self.pid is None:
            return
        self.run("daemon", "stop", timeout=60)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process_alive(self.pid):
            time.sleep(0.05)
        if process_alive(self.pid):
            os.kill(self.pid, signal.SIGTERM)
        self.pid = None
