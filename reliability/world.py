"""A private burrowd world for the harness: a fake index on loopback and one daemon.

The daemon runs with its own socket, cache, log and XDG directories (those of
:class:`tests.e2e.helpers.BurrowEnv`) and is started the way a person starts it, with
``burrow daemon start``; the harness learns its pid from the ``initialize`` handshake and
kills exactly that pid. The index is the tests' :class:`FakeIndex` served by a
:class:`ThreadedServer` on 127.0.0.1, so nothing leaves the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from burrowd.client.connection import SocketTransport, connect
from burrowd.protocol import __version__
from burrowd.protocol.build import build_id
from burrowd.protocol.jsonrpc import PROTOCOL_VERSION
from burrowd.protocol.messages import (
    InitializeParams,
    InitializeResult,
    StatusParams,
    StatusResult,
)
from tests.e2e.helpers import BurrowEnv, process_gone, wait_until
from tests.install_e2e.support import make_venv, site_packages
from tests.support.dists import DistCache
from tests.support.index import FakeIndex, ThreadedServer

__all__ = ["World", "make_venv", "site_packages", "world"]

#: Seconds the daemon may take to start or to die after SIGKILL.
START_TIMEOUT = 30.0


class HarnessError(RuntimeError):
    """The harness itself could not do what it needs (not a finding about burrowd)."""


@dataclass(eq=False)
class World:
    """One fake index and one daemon environment, under a private temp root."""

    env: BurrowEnv
    index: FakeIndex
    work: Path
    pid: int | None = None
    log_offset: int = 0
    started: list[int] = field(default_factory=list)

    @property
    def index_url(self) -> str:
        """Return the fake index's ``simple`` URL."""
        return self.index.simple_url

    # -- the CLI ---------------------------------------------------------------------------

    def cli(self, *args: str | Path, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run ``burrow ARGS`` from the work directory (no VIRTUAL_ENV) and return what it did."""
        environ = self.env.environ()
        environ.pop("VIRTUAL_ENV", None)
        return subprocess.run(
            [sys.executable, "-m", "burrowd.client", *(os.fspath(a) for a in args)],
            env=environ,
            cwd=self.work,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def cli_ok(self, *args: str | Path, timeout: float = 120.0) -> str:
        """Run ``burrow ARGS``; raise :class:`HarnessError` unless it succeeds."""
        done = self.cli(*args, timeout=timeout)
        if done.returncode != 0:
            raise HarnessError(
                f"burrow {' '.join(map(str, args))} failed ({done.returncode}): "
                f"{done.stderr.strip()[-2000:]}"
            )
        return done.stdout

    # -- the daemon ------------------------------------------------------------------------

    def start(self) -> int:
        """Start the daemon with ``burrow daemon start``; return its pid."""
        self.cli_ok("daemon", "start", timeout=START_TIMEOUT + 30)
        with self.transport() as (_, info):
            self.pid = info.pid
        if self.pid not in self.started:
            self.started.append(self.pid)
        return self.pid

    @contextlib.contextmanager
    def transport(self) -> Iterator[tuple[SocketTransport, InitializeResult]]:
        """Yield a connection to the running daemon (after the handshake) and close it."""
        sock = connect(self.env.socket)
        if sock is None:
            raise HarnessError(f"no daemon answers on {self.env.socket}")
        transport = SocketTransport(sock, self.env.socket)
        try:
            info = transport.call(
                "initialize",
                InitializeParams(
                    protocol_version=PROTOCOL_VERSION,
                    client_version=__version__,
                    client_build=build_id(),
                    client_name="reliability",
                ),
                InitializeResult,
            )
            yield transport, info
        finally:
            transport.close()

    def status(self) -> StatusResult:
        """Return the daemon's ``status``."""
        with self.transport() as (t, _):
            return t.call("status", StatusParams(), StatusResult)

    def settle(self, timeout: float = 15.0) -> bool:
        """Wait until the daemon serves no request and runs no job; return whether it did."""

        def quiet() -> bool:
            st = self.status()
            return not st.requests and not st.jobs

        return wait_until(quiet, timeout, interval=0.05)

    def kill(self) -> None:
        """SIGKILL the daemon (only the pid it reported) and wait until it is gone."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.wait_gone()

    def wait_gone(self) -> None:
        """Wait until the daemon that was signalled has exited."""
        pid = self.pid
        if pid is None:
            return
        if not wait_until(lambda: process_gone(pid), START_TIMEOUT):
            raise HarnessError(f"the daemon {pid} is still alive after SIGKILL")
        self.pid = None

    def stop(self) -> None:
        """Stop every daemon of this world (``burrow daemon stop``, then signals)."""
        if self.pid is not None and not process_gone(self.pid):
            self.cli("daemon", "stop", timeout=60)
            wait_until(lambda: self.pid is None or process_gone(self.pid), 10.0)
        self.pid = None
        self.env.stop_everything()

    def peak_rss_kib(self) -> int | None:
        """Return the daemon's peak resident set size (VmHWM, KiB), if it runs."""
        if self.pid is None:
            return None
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return None

    # -- the log ---------------------------------------------------------------------------

    def mark_log(self) -> None:
        """Remember where the log ends now; :meth:`new_log` returns what comes after."""
        try:
            self.log_offset = self.env.log.stat().st_size
        except OSError:
            self.log_offset = 0

    def new_log(self) -> str:
        """Return the log written since :meth:`mark_log` (all of it after a rotation)."""
        try:
            data = self.env.log.read_bytes()
        except OSError:
            return ""
        if len(data) < self.log_offset:
            return data.decode(errors="replace")
        return data[self.log_offset :].decode(errors="replace")


@contextlib.contextmanager
def world(root: Path, **knobs: Any) -> Iterator[World]:
    """Yield a :class:`World` with a served, empty fake index; stop everything afterwards.

    ``root`` holds the index files and builds; the daemon's own directories live in a short
    directory under ``/tmp`` (socket paths are limited to 108 bytes).
    """
    root.mkdir(parents=True, exist_ok=True)
    index = FakeIndex(root / "index", cache=DistCache(root / "dist-cache"))
    for name, value in knobs.items():
        setattr(index, name, value)
    env = BurrowEnv(idle_timeout=0.0)
    work = env.root / "work"
    work.mkdir()
    w = World(env=env, index=index, work=work)
    try:
        with ThreadedServer(index):
            try:
                yield w
            finally:
                w.stop()
    finally:
        env.cleanup()


def elapsed_since(start: float) -> float:
    """Return seconds since the monotonic moment ``start``."""
    return time.monotonic() - start
