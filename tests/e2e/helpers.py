"""Helpers of the end-to-end tests: a private environment, real daemons, a raw socket client.

Everything here talks to real processes over real sockets. Socket paths live under a short
directory in ``/tmp`` because ``sun_path`` holds 108 bytes and pytest's ``tmp_path`` is long.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from burrowd.protocol.build import build_id

__all__ = [
    "BurrowEnv",
    "DaemonProcess",
    "RawClient",
    "burrow_env",
    "current_build",
    "daemon_pids",
    "process_gone",
    "short_tmpdir",
    "wait_until",
]

#: Seconds any single read from a daemon may take before a test fails.
READ_TIMEOUT: Final = 5.0
#: Seconds a daemon may take to report READY=1 (generous: CI machines can be busy).
START_TIMEOUT: Final = 20.0
#: Variables of the developer's environment that would change what the daemon does.
_SCRUBBED: Final = (
    "BURROW_SOCKET",
    "BURROW_CACHE_DIR",
    "BURROW_LOG_FILE",
    "BURROW_IDLE_TIMEOUT",
    "BURROW_LOCK_TIMEOUT",
    "BURROW_INDEX_TTL",
    "BURROW_READY_FD",
    "NOTIFY_SOCKET",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    "PYTHONPATH",
)

JSON = Any


def short_tmpdir() -> Path:
    """Return a fresh private directory with a path short enough for Unix sockets."""
    return Path(tempfile.mkdtemp(prefix="bw", dir="/tmp"))


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def current_build() -> str:
    """Return the build id of the code on disk now (not the one cached at first use)."""
    build_id.cache_clear()
    return build_id()


def process_gone(pid: int) -> bool:
    """Return whether ``pid`` has exited (a zombie counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    # The state follows the command name, which is in parentheses and may hold spaces.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state in ("Z", "X")


def daemon_pids(sock: Path) -> list[int]:
    """Return the pids of live ``burrowd.daemon`` processes started for the socket ``sock``.

    Daemons that the client spawned are not our children, so they are found through
    ``/proc``: by their command line and the ``BURROW_SOCKET`` in their environment.
    """
    wanted = f"BURROW_SOCKET={sock}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"burrowd.daemon" not in cmdline:
                continue
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ and not process_gone(pid):
            found.append(pid)
    return found


def read_ready(fd: int, timeout: float = START_TIMEOUT) -> str:
    """Return the first line written to the ready pipe ``fd`` (``""`` if it closed first)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no line on the ready pipe within {timeout:g}s (got {buf!r})")
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\n", 1)[0].decode()


class RawClient:
    """A blocking client that sends raw bytes and reads NDJSON or LSP-framed replies."""

    def __init__(self, path: Path, *, timeout: float = READ_TIMEOUT, lsp: bool = False) -> None:
        self.path = path
        self.lsp = lsp
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(os.fspath(path))
        except BaseException:
            self.sock.close()
            raise
        self._buf = b""
        self._next_id = 1000

    def __enter__(self) -> RawClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self.sock.close()

    # -- sending ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send raw bytes, exactly as given."""
        self.sock.sendall(data)

    def frame(self, message: JSON) -> bytes:
        """Return ``message`` encoded and framed the way this client speaks."""
        body = json.dumps(message).encode()
        if self.lsp:
            return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        return body + b"\n"

    def send_json(self, message: JSON) -> None:
        """Encode, frame and send one message (or a batch list)."""
        self.send(self.frame(message))

    def new_id(self) -> int:
        """Return an id not used before on this connection."""
        self._next_id += 1
        return self._next_id

    # -- reading ---------------------------------------------------------------------------

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self._buf += chunk
        return True

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buf:
            if not self._fill():
                raise EOFError(f"connection closed; unread {self._buf!r}")
        head, _, self._buf = self._buf.partition(marker)
        return head

    def _read_exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            if not self._fill():
                raise EOFError(f"connection closed {n - len(self._buf)} bytes short")
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def read_lsp_frame(self) -> tuple[dict[str, str], bytes]:
        """Read one LSP frame; return its headers (lower-case names) and body."""
        head = self._read_until(b"\r\n\r\n").decode("ascii")
        headers = {}
        for line in head.split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return headers, self._read_exactly(int(headers["content-length"]))

    def read(self) -> JSON:
        """Read the next message (a dict, or a list for a batch reply)."""
        if self.lsp:
            _, body = self.read_lsp_frame()
        else:
            body = self._read_until(b"\n")
        return json.loads(body)

    def read_reply(self, rid: int | str) -> dict[str, Any]:
        """Read messages until the response to ``rid``; notifications are skipped."""
        while True:
            message = self.read()
            if isinstance(message, dict) and "method" not in message and message["id"] == rid:
                return message

    def read_eof(self) -> bytes:
        """Read until the daemon closes the connection; return whatever came before."""
        data, self._buf = self._buf, b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def nothing_pending(self, wait: float = 0.2) -> bool:
        """Return whether no byte arrives within ``wait`` seconds."""
        if self._buf:
            return False
        ready, _, _ = select.select([self.sock], [], [], wait)
        return not ready

    # -- requests --------------------------------------------------------------------------

    def request(
        self, method: str, params: JSON = None, *, rid: int | str | None = None
    ) -> dict[str, Any]:
        """Send a request and return the whole response object."""
        rid = self.new_id() if rid is None else rid
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            message["params"] = params
        self.send_json(message)
        return self.read_reply(rid)

    def call(self, method: str, params: JSON = None) -> dict[str, Any]:
        """Send a request and return its result; fail the test on an error reply."""
        reply = self.request(method, params)
        assert "error" not in reply, reply
        result: dict[str, Any] = reply["result"]
        return result

    def initialize(self) -> dict[str, Any]:
        """Run the handshake as the real client does."""
        from burrowd.protocol import __version__  # noqa: PLC0415 - keeps the helper's imports light
        from burrowd.protocol.jsonrpc import PROTOCOL_VERSION  # noqa: PLC0415

        return self.call(
            "initialize",
            {
                "protocol_version": PROTOCOL_VERSION,
                "client_version": __version__,
                "client_build": current_build(),
                "client_name": "tests",
            },
        )


@dataclass(eq=False)
class DaemonProcess:
    """A daemon the test started itself (our child process)."""

    proc: subprocess.Popen[bytes]
    ready: str
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        """Return what the daemon wrote to stderr so far."""
        return self.stderr_path.read_text(errors="replace")

    def wait(self, timeout: float = START_TIMEOUT) -> int:
        """Wait for the daemon to exit; return its exit status."""
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 5.0) -> int:
        """Stop the daemon with SIGTERM (SIGKILL if it does not exit in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout)


@dataclass(eq=False)
class BurrowEnv:
    """A private burrowd world: socket, cache, log and XDG dirs under one short directory."""

    root: Path = field(default_factory=short_tmpdir)
    daemons: list[DaemonProcess] = field(default_factory=list)
    idle_timeout: float = 60.0

    def __post_init__(self) -> None:
        self.run_dir = self.root / "run"
        self.socket = self.run_dir / "burrowd.sock"
        self.lock = self.run_dir / "burrowd.lock"
        self.cache = self.root / "cache"
        self.log = self.root / "state" / "burrowd.log"
        self._counter = 0
        # Every BURROW_* setting of the developer's shell too (retries, limits, debounce).
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED and k[:7] != "BURROW_"}
        env.update(
            BURROW_SOCKET=os.fspath(self.socket),
            BURROW_CACHE_DIR=os.fspath(self.cache),
            BURROW_LOG_FILE=os.fspath(self.log),
            BURROW_IDLE_TIMEOUT=f"{self.idle_timeout:g}",
            BURROW_LOCK_TIMEOUT="5",
            XDG_RUNTIME_DIR=os.fspath(self.root / "xdg-run"),
            XDG_STATE_HOME=os.fspath(self.root / "xdg-state"),
            XDG_CACHE_HOME=os.fspath(self.root / "xdg-cache"),
            PYTHONUNBUFFERED="1",
        )
        self.env = env

    def environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Return this environment with ``extra`` variables set."""
        env = dict(self.env)
        env.update(extra or {})
        return env

    # -- the client ------------------------------------------------------------------------

    def cli(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``burrow ARGS`` (``python -m burrowd.client``) and return what it did."""
        return subprocess.run(
            [sys.executable, "-m", "burrowd.client", *args],
            env=self.environ(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def cli_json(self, *args: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Run ``burrow --json ARGS``, require success and return the parsed output."""
        done = self.cli("--json", *args, env=env)
        assert done.returncode == 0, (done.stdout, done.stderr)
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    # -- daemons ---------------------------------------------------------------------------

    def start_daemon(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        wrapper: Sequence[str] = (),
        pass_fds: Sequence[int] = (),
        expect: str | None = "READY=1",
    ) -> DaemonProcess:
        """Start ``python -m burrowd.daemon ARGS`` and wait for its line on the ready pipe.

        ``wrapper`` is a command that execs the daemon command appended to it (same pid).
        ``expect`` is the line the ready pipe must carry (``None`` accepts any).
        """
        self._counter += 1
        stderr_path = self.root / f"daemon-{self._counter}.err"
        read_fd, write_fd = os.pipe()
        try:
            with open(stderr_path, "wb") as err:
                proc = subprocess.Popen(
                    [
                        *wrapper,
                        sys.executable,
                        "-m",
                        "burrowd.daemon",
                        "--ready-fd",
                        str(write_fd),
                        *args,
                    ],
                    env=self.environ(env),
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                    pass_fds=(write_fd, *pass_fds),
                )
            os.close(write_fd)
            write_fd = -1
            daemon = DaemonProcess(proc, "", stderr_path)
            self.daemons.append(daemon)
            try:
                daemon.ready = read_ready(read_fd)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}; daemon stderr: {daemon.stderr()!r}") from None
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        if expect is not None:
            assert daemon.ready == expect, (daemon.ready, daemon.stderr())
        return daemon

    def connect(self, path: Path | None = None, *, lsp: bool = False) -> RawClient:
        """Open a raw connection to the daemon's socket."""
        return RawClient(path or self.socket, lsp=lsp)

    def pids(self) -> list[int]:
        """Return the pids of every live daemon of this environment."""
        return daemon_pids(self.socket)

    def log_text(self) -> str:
        """Return the daemon log, or ``""`` before there is one."""
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- teardown --------------------------------------------------------------------------

    def stop_everything(self) -> list[int]:
        """Stop every daemon of this environment; return the pids that needed a signal."""
        signalled = []
        for daemon in self.daemons:
            if daemon.proc.poll() is None:
                signalled.append(daemon.pid)
            daemon.stop()
        for pid in self.pids():
            signalled.append(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not wait_until(functools.partial(process_gone, pid), 5.0):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_until(functools.partial(process_gone, pid), 5.0)
        return signalled

    def cleanup(self) -> None:
        """Stop every daemon, check none is left, and remove the directory."""
        try:
            self.stop_everything()
            left = self.pids()
            assert not left, f"daemons still running after teardown: {left}"
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def burrow_env(idle_timeout: float = 60.0) -> Iterator[BurrowEnv]:
    """Yield a private environment and clean it up (stopping every daemon) afterwards."""
    env = BurrowEnv(idle_timeout=idle_timeout)
    try:
        yield env
    finally:
        env.cleanup()
