"""Composition root: the instance lock, the bound socket, the services and the serve loop.

The socket is bound by hand, only while holding the instance lock, and served with
``asyncio.start_unix_server(sock=...)``. aiohttp's ``UnixSite`` (and ``create_unix_server``
given a path) unlink an existing socket file first, which would let a second daemon steal a
live one's path; and the wire here is JSON-RPC over a stream, not HTTP, so aiohttp serves
only as the index client. Readiness is reported the way systemd expects (``READY=1``), both
to ``NOTIFY_SOCKET`` and to the pipe of a client that spawned the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path

from msgspec import Struct

from burrowd.daemon import pyquery
from burrowd.daemon.config import Config
from burrowd.daemon.errors import DaemonError
from burrowd.daemon.handlers import Handlers
from burrowd.daemon.interpreters import inherited_environment_request
from burrowd.daemon.locks import FileLock
from burrowd.daemon.rpc import STREAM_LIMIT, RpcServer
from burrowd.daemon.services import Services, open_services
from burrowd.daemon.warmer import Warmer
from burrowd.protocol.build import build_id

__all__ = [
    "AlreadyRunning",
    "Daemon",
    "Listener",
    "SocketBusy",
    "bind_listener",
    "sd_notify",
    "tighten_umask",
    "tune_gc",
]

log = logging.getLogger(__name__)

#: Seconds a stopping daemon waits for requests in flight before cancelling them.
SHUTDOWN_GRACE = 30.0
#: Seconds after start-up before the HTTP client is loaded, unless a request loaded it.
PRELOAD_DELAY = 0.1
SD_LISTEN_FDS_START = 3
#: Allocations between two young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 10_000
#: Permission bits the daemon never grants, whatever umask it inherited: nothing it writes
#: (cache, environments) is writable by every user, or another user could plant a wheel.
UMASK_FLOOR = 0o002


class AlreadyRunning(Exception):
    """Another daemon holds the instance lock: a client can simply connect to it."""


class SocketBusy(AlreadyRunning):
    """Something serves the socket without holding the lock: nothing a client can use."""


class Listener(Struct, eq=False, dict=True):
    """A listening socket and the instance lock that entitles us to it."""

    sock: socket.socket
    path: Path
    lock: FileLock
    #: Inherited from systemd: systemd owns the file, we never unlink it.
    inherited: bool
    inode: tuple[int, int] | None

    def still_ours(self) -> bool:
        """Return whether the socket file on disk is still the one we listen on."""
        if self.inherited or self.inode is None:
            return True
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return (st.st_dev, st.st_ino) == self.inode

    def unlink(self) -> None:
        """Remove our socket file, if it is still ours."""
        if not self.inherited and self.inode is not None and self.still_ours():
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self.inode = None


def tune_gc() -> None:
    """Make the cycle collector cheap for a process that parses large index pages.

    A cold resolve allocates millions of short-lived containers; at CPython's default
    threshold the young generation is collected every 700 of them, and each older
    collection walks every module, class and function imported at start-up. Freezing the
    start-up objects moves them out of every collection, and a larger young threshold
    collects less often: together they take the collector from about a tenth of a cold
    resolve to a fortieth (bench/, e-jupyter). Cycles are still collected. The daemon's
    entry point turns the collector off while it imports; this turns it on.
    """
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)
    gc.enable()


def tighten_umask() -> int:
    """Add :data:`UMASK_FLOOR` to the process umask; return the umask it had."""
    old = os.umask(0o077)
    os.umask(old | UMASK_FLOOR)
    return old


def sd_notify(message: str, env: dict[str, str] | None = None) -> bool:
    """Send ``message`` to systemd's ``NOTIFY_SOCKET``; return whether one was set."""
    addr = (env if env is not None else os.environ).get("NOTIFY_SOCKET", "")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", addr, exc)
    return True


def _inherited_socket() -> socket.socket | None:
    """Return the listening socket systemd passed us (fd 3), if any."""
    try:
        pid = int(os.environ.get("LISTEN_PID", ""))
        nfds = int(os.environ.get("LISTEN_FDS", ""))
    except ValueError:
        return None
    if pid != os.getpid() or nfds < 1:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        raise AlreadyRunning(
            f"the socket passed on fd {SD_LISTEN_FDS_START} is not a Unix stream socket; "
            "check ListenStream= in burrowd.socket"
        )
    os.set_inheritable(sock.fileno(), False)
    sock.setblocking(False)
    return sock


def _prepare_dir(directory: Path) -> None:
    """Create the socket's directory 0700; tighten it if it is our own runtime dir."""
    try:
        directory.mkdir(mode=0o700, parents=True)
        return
    except FileExistsError:
        pass
    st = directory.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise AlreadyRunning(f"{directory} exists and is not a directory")
    if st.st_uid not in (os.getuid(), 0):
        # Its owner could replace our socket with theirs, and read what clients send.
        raise AlreadyRunning(
            f"{directory} belongs to another user (uid {st.st_uid}); the socket must be in a "
            "directory of yours: set BURROW_SOCKET (or XDG_RUNTIME_DIR) to one"
        )
    if (
        directory.name == "burrowd"
        and st.st_uid == os.getuid()
        and stat.S_IMODE(st.st_mode) != 0o700
    ):
        directory.chmod(0o700)


def _live(path: Path) -> bool:
    """Return whether something accepts connections on the socket at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
    return True


def bind_listener(config: Config) -> Listener:
    """Take the instance lock, then bind (or inherit) the socket.

    Raise :class:`AlreadyRunning` when another daemon owns the lock or serves the socket.
    """
    inherited = _inherited_socket()
    path = config.socket_path
    if inherited is not None:
        name = inherited.getsockname()
        if isinstance(name, str) and name:
            path = Path(name)
    _prepare_dir(config.lock_path.parent)
    lock = FileLock(config.lock_path, "the burrowd instance", holder=f"pid {os.getpid()}")
    if not lock.try_acquire():
        holder = lock.read_holder()
        raise AlreadyRunning(
            f"burrowd is already running ({holder or 'unknown pid'}) and owns {path}; "
            "use `burrow daemon stop` to stop it"
        )
    try:
        if inherited is not None:
            return Listener(inherited, path, lock, inherited=True, inode=None)
        _prepare_dir(path.parent)
        if path.exists() or path.is_symlink():
            if not stat.S_ISSOCK(path.lstat().st_mode) and not path.is_symlink():
                # Never delete a user's file that BURROW_SOCKET happens to name.
                raise FileExistsError(errno.EEXIST, "exists and is not a socket", os.fspath(path))
            if _live(path):
                raise SocketBusy(
                    f"something already serves {path} without holding {config.lock_path} "
                    "(a systemd socket unit?); stop it or set BURROW_SOCKET to another path"
                )
            log.info("removing stale socket %s", path)
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        old_umask = os.umask(0o177)
        try:
            sock.bind(os.fspath(path))
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        # The kernel's own cap (net.core.somaxconn): a burst of clients waits in the queue
        # instead of failing a non-blocking connect with EAGAIN.
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
        st = os.stat(path)
        return Listener(sock, path, lock, inherited=False, inode=(st.st_dev, st.st_ino))
    except BaseException:
        lock.release()
        raise


class Daemon:
    """One running daemon: serves until shutdown, a signal, idle timeout or lost ownership."""

    def __init__(
        self,
        config: Config,
        listener: Listener,
        *,
        on_ready: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.listener = listener
        self.on_ready = on_ready
        self.rpc = RpcServer({}, on_activity=self._activity)
        self.services = Services(
            config=config, rpc=self.rpc, socket_path=listener.path, lifecycle=self
        )
        self.services.warmer = Warmer(self.services)
        self.rpc.handlers = Handlers(self.services).table()
        # Fixed at start: an edit of the checkout while running makes this an old build.
        self.build = build_id()
        self._server: asyncio.Server | None = None
        self._stop: asyncio.Event | None = None
        self.stop_reason = ""

    def _activity(self) -> None:
        self.services.touch()

    # -- lifecycle --------------------------------------------------------------------------

    def begin_shutdown(self, reason: str) -> None:
        """Stop listening and give up socket and lock now; exit once requests are done."""
        if not self.rpc.accepting:
            return
        log.info("shutting down: %s", reason)
        self.stop_reason = reason
        self.rpc.accepting = False
        sd_notify("STOPPING=1")
        if self._server is not None:
            self._server.close()
        self.listener.unlink()
        self.listener.lock.release()
        if self._stop is not None:
            asyncio.get_running_loop().call_soon(self._stop.set)

    def _idle(self) -> bool:
        timeout = self.config.idle_timeout
        if timeout <= 0 or self.rpc.connections or self.rpc.in_flight:
            return False
        if self.services.warmer is not None and self.services.warmer.watches:
            return False
        return time.monotonic() - self.services.last_activity >= timeout

    async def _watchdog(self) -> None:
        idle = self.config.idle_timeout
        tick = max(0.05, min(1.0, idle / 10)) if idle > 0 else 1.0
        next_check = time.monotonic() + self.config.ownership_check_interval
        while self.rpc.accepting:
            await asyncio.sleep(tick)
            if self._idle():
                self.begin_shutdown(f"idle for {idle:g}s")
            elif time.monotonic() >= next_check:
                next_check = time.monotonic() + self.config.ownership_check_interval
                if not self.listener.still_ours():
                    self.begin_shutdown(f"socket {self.listener.path} was removed or replaced")
                elif not self.config.lock_path.exists():
                    self.begin_shutdown(f"instance lock {self.config.lock_path} was removed")

    async def _warm_interpreter(self) -> None:
        """Query the default interpreter of the starting environment in the background.

        Querying an interpreter the cache does not know runs it (tens to hundreds of
        milliseconds, more behind a pyenv shim); a daemon started by ``burrow`` is about to
        be asked for exactly that interpreter, so the query runs while the client connects
        and the first request's pages download. A failure here is no error: the request
        that needs the interpreter reports it.
        """
        try:
            # Shared root lock, as every request holds it: clean must not race the write.
            async with self.services.cache.operation():
                await self.services.interpreters.find(inherited_environment_request())
        except DaemonError as exc:
            log.info("no default interpreter to warm up: %s", exc)
        except OSError as exc:  # e.g. the cache is not writable: the request will say so
            log.warning("warming up the default interpreter failed: %s", exc)
        finally:
            # The query started before the imports, if this did not take it (it failed
            # first, or the cache had the answer by now): nothing else will.
            await asyncio.to_thread(pyquery.discard_early)

    async def run(self) -> None:
        """Serve until asked to stop, then finish requests and clean up."""
        tighten_umask()
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.begin_shutdown, f"signal {sig.name}")
        loop.add_signal_handler(signal.SIGHUP, lambda: None)
        try:
            async with open_services(self.services):
                self._server = await asyncio.start_unix_server(
                    self.rpc.handle_stream, sock=self.listener.sock, limit=STREAM_LIMIT
                )
                log.info(
                    "burrowd %d serving %s (cache %s, idle timeout %gs)",
                    os.getpid(),
                    self.listener.path,
                    self.config.cache_dir,
                    self.config.idle_timeout,
                )
                sd_notify(f"READY=1\nMAINPID={os.getpid()}")
                self.on_ready()
                # Ready before the HTTP client is loaded (about 115 ms, on this thread): a
                # first ``status`` is answered before it, a first compile loads it itself.
                preload = asyncio.get_running_loop().call_later(
                    PRELOAD_DELAY, self.services.http.preload
                )
                watchdog = asyncio.create_task(self._watchdog())
                warm = asyncio.create_task(self._warm_interpreter())
                warmer = self.services.warmer
                assert warmer is not None
                try:
                    await warmer.start()
                    await self._stop.wait()
                finally:
                    preload.cancel()
                    watchdog.cancel()
                    warm.cancel()
                    await asyncio.gather(watchdog, warm, return_exceptions=True)
                    # Also here: a warm-up cancelled before it ran never reached its finally.
                    await asyncio.to_thread(pyquery.discard_early)
                    self.begin_shutdown(self.stop_reason or "stopping")
                    # Warming is background work: it stops at once, requests finish.
                    await warmer.close()
                if not await self.rpc.wait_idle(SHUTDOWN_GRACE):
                    log.warning("cancelling %d requests still running", self.rpc.in_flight)
                    self.rpc.cancel_everything()
                    await self.rpc.wait_idle(5.0)
                # A cancelled request finishes the environment change it began (worker
                # threads cannot be stopped halfway): the services wait for it.
                busy = self.services.environments.busy()
                if busy:
                    log.warning("finishing the changes to %s before stopping", ", ".join(busy))
                    await self.rpc.wait_idle(None)
                for conn in list(self.rpc.connections):
                    conn.closed = True
                    if hasattr(conn, "writer"):
                        conn.writer.close()
                await asyncio.sleep(0)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            self.listener.unlink()
            self.listener.lock.release()
            with contextlib.suppress(OSError):
                self.listener.sock.close()
            log.info("burrowd %d stopped", os.getpid())
