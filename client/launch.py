"""The ``burrow`` program's entry point, and starting the daemon: the standard library only.

When no daemon runs, a command waits for one to start (about 110 ms, importing it), and
nothing obliges the client to load itself first (msgspec, argparse and the protocol: about
25 ms). So :func:`run` reads the command line before anything else is imported: for a
command that talks to the daemon (:data:`STARTING_COMMANDS`), it connects to the socket and,
when nothing answers, starts a daemon at once, without waiting. Then it loads the client,
whose first request takes what this left (:func:`take_early`): the connected socket, or the
start under way, whose ``READY=1`` it waits for instead of starting a second daemon.

The daemon is spawned with ``posix_spawn`` (new session, stdin from ``/dev/null``, output to
the log file) and a pipe on which it writes ``READY=1`` once it serves, the message it also
sends to systemd.
"""

from __future__ import annotations

import errno
import os
import select
import sys
import time

# The C socket type without socket.py: that module's Python layer (an enum for every
# constant, makefile, sendfile, and the selectors module it imports) is about 2.5 ms of
# every command, and a Unix stream socket with a line reader needs none of it.
from _socket import AF_UNIX, SOCK_CLOEXEC, SOCK_STREAM, SOL_SOCKET
from _socket import socket as Socket

from burrowd.protocol import paths

# ``typing`` (and the ``re`` it imports) would delay the daemon's start: for the type checker.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Final, NoReturn

__all__ = [
    "STARTING_COMMANDS",
    "DaemonUnavailable",
    "Starting",
    "connect",
    "log_tail",
    "run",
    "start_early",
    "take_early",
]

#: Seconds to wait for a spawned daemon to report READY=1.
START_TIMEOUT: Final = 10.0
LOG_TAIL_LINES: Final = 20
#: The commands whose start begins with the daemon's (when none runs): the ones that wait
#: longest for it. Any other starts one too, on its first request, as before.
STARTING_COMMANDS: Final = frozenset(
    {"compile", "sync", "install", "uninstall", "prefetch", "daemon start", "daemon status"}
)
#: Options after which a command starts no daemon (argparse takes any unique prefix).
_NO_DAEMON_OPTIONS: Final = ("--no-daemon", "--help", "--version")


#: The variables systemd gives a service, which a daemon this client starts must not take
#: as its own (systemd's own start of burrowd sets them for burrowd itself).
_SERVICE_VARIABLES: Final = (
    "NOTIFY_SOCKET",
    "INVOCATION_ID",
    "JOURNAL_STREAM",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
)


class DaemonUnavailable(Exception):
    """No daemon answers and none could be started."""


def connect(path: str | os.PathLike[str]) -> Socket | None:
    """Connect to the daemon's socket; return ``None`` when nothing listens there.

    Raise :class:`DaemonUnavailable` when another user serves it: a request carries the
    whole environment, and a socket in a shared directory (the temporary-directory
    fallback when there is no ``XDG_RUNTIME_DIR``) could be anyone's.
    """
    sock = Socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)
    try:
        sock.connect(os.fspath(path))
        if sys.platform == "linux":  # elsewhere the socket's directory is all there is
            from _socket import SO_PEERCRED  # noqa: PLC0415

            # struct ucred {pid, uid, gid}: int.from_bytes, not a struct module to load.
            creds = sock.getsockopt(SOL_SOCKET, SO_PEERCRED, 12)
            uid = int.from_bytes(creds[4:8], sys.byteorder)
            if uid != os.geteuid():
                sock.close()
                raise DaemonUnavailable(
                    f"the socket {path} is served by another user (uid {uid}), so nothing is "
                    "sent to it; set BURROW_SOCKET (or XDG_RUNTIME_DIR) to a directory only "
                    "you can write"
                )
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR):
            return None
        raise DaemonUnavailable(f"cannot connect to burrowd at {path}: {exc.strerror}") from exc
    return sock


def log_tail(log_file: str | os.PathLike[str], lines: int = LOG_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of the daemon log."""
    try:
        with open(log_file, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


class Starting:
    """A detached daemon just spawned: :meth:`wait` until it serves.

    :param env: the daemon's environment (this process's by default).
    :raises OSError: when it cannot be spawned (the log directory, the executable).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        environ = dict(os.environ if env is None else env)
        # What systemd tells the service this command may run in is not the daemon's: it
        # would report READY=1 to that unit's manager and log to its journal, unrotated.
        for name in _SERVICE_VARIABLES:
            environ.pop(name, None)
        self.log_file = paths.log_file(environ)
        os.makedirs(os.path.dirname(self.log_file), mode=0o700, exist_ok=True)
        read_fd, write_fd = os.pipe()
        os.set_inheritable(write_fd, True)
        try:
            self.pid = os.posix_spawn(
                sys.executable,
                # -P: the daemon's code is the installed one, never a ``burrowd`` folder in
                # the directory the command happened to run in.
                [sys.executable, "-P", "-m", "burrowd.daemon", "--ready-fd", str(write_fd)],
                environ,
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (
                        os.POSIX_SPAWN_OPEN,
                        1,
                        self.log_file,
                        os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                        0o600,
                    ),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                ],
                setsid=True,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        self._ready_fd = read_fd

    def wait(self, timeout: float = START_TIMEOUT) -> None:
        """Return once the daemon serves (or another one already does).

        Raise :class:`DaemonUnavailable` with the tail of the daemon log if it dies first.
        """
        try:
            message = _wait_ready(self._ready_fd, timeout)
        finally:
            os.close(self._ready_fd)
        _reap(self.pid)
        if message in ("READY=1", "ALREADY_RUNNING=1"):
            return
        tail = log_tail(self.log_file)
        reason = message.removeprefix("ERROR=") if message else "it exited before it was ready"
        if message is None:
            reason = f"it did not report READY=1 within {timeout:g}s"
        raise DaemonUnavailable(
            f"could not start burrowd: {reason}\n--- last lines of {self.log_file} ---\n{tail}"
        )


def _reap(pid: int) -> None:
    """Collect the spawned daemon if it already exited, so it leaves no zombie."""
    try:  # noqa: SIM105 - contextlib would delay the daemon's start by 4 ms
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _wait_ready(fd: int, timeout: float) -> str | None:
    """Return the first line the daemon writes to the pipe, ``""`` at EOF, ``None`` on timeout."""
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return None
        chunk = os.read(fd, 4096)
        if not chunk:
            return buf.decode(errors="replace").strip()
        buf += chunk
        if b"\n" in buf:
            return buf.split(b"\n", 1)[0].decode(errors="replace").strip()


#: What :func:`start_early` left for the first request: ``(socket path, thing)``.
_early: tuple[str, Socket | Starting] | None = None


def _command(argv: Sequence[str]) -> str | None:
    """Return the command ``argv`` runs (``"compile"``, ``"daemon start"``), if it may start
    the daemon: not with ``--no-daemon``, ``--help`` or ``--version`` (or a prefix of them,
    or a cluster of short options with ``-h``)."""
    words: list[str] = []
    for arg in argv:
        if arg.startswith("--"):
            name = arg.split("=", 1)[0]
            if len(name) > 2 and any(o.startswith(name) for o in _NO_DAEMON_OPTIONS):
                return None
        elif arg.startswith("-"):
            if "h" in arg:
                return None
        elif len(words) < 2:
            words.append(arg)
    for n in (2, 1):
        command = " ".join(words[:n])
        if len(words) >= n and command in STARTING_COMMANDS:
            return command
    return None


def start_early(argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    """Connect to the daemon, or start one, if ``argv`` is a command that needs it.

    Never fails: whatever goes wrong here goes wrong again on the first request, which
    reports it.
    """
    global _early
    if _early is not None or _command(argv) is None:
        return
    try:
        path = paths.socket_path(env)
        sock = connect(path)
        _early = (path, sock if sock is not None else Starting(env))
    except (OSError, ValueError, DaemonUnavailable):
        return


def take_early(path: str) -> Socket | Starting | None:
    """Return (once) the socket :func:`start_early` connected to ``path``, or the daemon it
    started there."""
    global _early
    early, _early = _early, None
    if early is None:
        return None
    if early[0] != path:  # the environment changed since (an embedder's doing)
        if isinstance(early[1], Socket):
            early[1].close()
        return None
    return early[1]


def run() -> NoReturn:
    """Run ``burrow``: start the daemon early if the command needs one, then the client."""
    try:
        start_early(sys.argv[1:])
        # Now what the client needs: msgspec first, the lean way (see burrowd.protocol.lean).
        import burrowd.protocol.lean  # noqa: F401, PLC0415
        from burrowd.client.cli import run as run_client  # noqa: PLC0415
    except KeyboardInterrupt:
        # Ctrl-C while the client loads: as during a command, no traceback.
        sys.stderr.write("interrupted\n")
        os._exit(130)
    run_client()
