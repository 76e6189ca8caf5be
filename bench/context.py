"""What every suite gets: the tools, the temp root, the options, and the daemons it started."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.daemon import BurrowDaemon, DaemonError
from bench.tools import Tools


@dataclass(frozen=True)
class Options:
    """How much to run (``--quick`` picks smaller numbers)."""

    quick: bool
    sets: list[str]
    warm_runs: int
    cold_runs: int
    startup_runs: int
    fill_set: str
    fill_runs: int
    compile_timeout: float
    python_version: str
    sync_sets: list[str] = field(default_factory=lambda: ["d-large", "e-jupyter"])
    sync_runs: int = 5
    build_runs: int = 3


@dataclass
class Context:
    """Shared state of one benchmark run."""

    tools: Tools
    root: Path
    sets_dir: Path
    options: Options
    daemons: list[BurrowDaemon] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def log(self, message: str) -> None:
        """Print progress to stderr (the report goes to stdout)."""
        elapsed = time.monotonic() - self.started
        print(f"[bench {elapsed:7.1f}s] {message}", file=sys.stderr, flush=True)

    def daemon(self, home: Path) -> BurrowDaemon:
        """Return a new daemon handle (not started yet) that is stopped at the end of the run."""
        daemon = BurrowDaemon(self.tools, home)
        self.daemons.append(daemon)
        return daemon

    def started_daemon(self, home: Path, problems: list[str]) -> BurrowDaemon | None:
        """Start a new daemon under ``home``; if it fails, say so in ``problems``."""
        daemon = self.daemon(home)
        try:
            daemon.start()
        except DaemonError as exc:
            problems.append(f"`burrow daemon start` failed:\n\n{exc}")
            self.release(daemon)
            return None
        return daemon

    def release(self, daemon: BurrowDaemon, *, remove: bool = True) -> None:
        """Stop ``daemon`` and, with ``remove``, delete its cache to free the disk."""
        daemon.stop()
        if daemon in self.daemons:
            self.daemons.remove(daemon)
        if remove:
            shutil.rmtree(daemon.home, ignore_errors=True)

    def stop_daemons(self) -> None:
        """Stop every daemon this run started and has not released."""
        while self.daemons:
            self.daemons.pop().stop()

    def set_file(self, name: str, suffix: str) -> Path:
        """Return ``<sets>/<name><suffix>``."""
        return self.sets_dir / f"{name}{suffix}"
