"""A blocking JSON-RPC connection to the daemon, and starting the daemon when none answers.

Everything here is standard library and msgspec: this module runs on every ``burrow`` command
before any work starts. Starting the daemon is :mod:`burrowd.client.launch`'s, which may have
begun before this module loaded.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from _socket import socket as Socket
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

import msgspec

from burrowd.client.launch import (
    START_TIMEOUT,
    DaemonUnavailable,
    Starting,
    connect,
    log_tail,
    take_early,
)
from burrowd.protocol import __version__, jsonrpc, paths
from burrowd.protocol.build import build_id
from burrowd.protocol.errors import ErrorCode, ErrorObject, RpcError
from burrowd.protocol.messages import (
    CancelParams,
    InitializeParams,
    InitializeResult,
    ProgressParams,
    ShutdownParams,
    ShutdownResult,
)
from burrowd.protocol.process import process_alive

__all__ = [
    "DaemonUnavailable",
    "InProcessTransport",
    "SocketTransport",
    "Transport",
    "connect",
    "log_tail",
    "open_transport",
    "spawn_daemon",
]

T = TypeVar("T")
ProgressCallback = Callable[[ProgressParams], None]
#: Receives each notification; returning ``False`` stops :meth:`Transport.listen`.
NotificationCallback = Callable[[jsonrpc.Envelope], "bool | None"]

#: Handshakes tried again when the daemon closes the connection or says it is stopping.
_HANDSHAKE_RETRIES: Final = 5
#: Seconds to wait for an old daemon to give up its socket.
STOP_TIMEOUT: Final = 35.0
#: Bytes asked of the socket per read (a compile's result is one line of up to megabytes).
RECV_SIZE: Final = 256 * 1024


class Transport:
    """Send requests and wait for their results; subclasses move the bytes."""

    _next_id = 1

    def call(
        self,
        method: str,
        params: msgspec.Struct,
        result_type: type[T],
        on_progress: ProgressCallback | None = None,
    ) -> T:
        """Send one request; return its decoded result or raise :class:`RpcError`."""
        env = self.call_raw(method, params, lambda n: _progress(n, on_progress))
        if isinstance(env.error, ErrorObject):
            raise RpcError.from_error(env.error)
        return jsonrpc.decode_as(env.result, result_type)

    def call_raw(
        self,
        method: str,
        params: msgspec.Struct | msgspec.Raw,
        on_notification: NotificationCallback | None = None,
    ) -> jsonrpc.Envelope:
        """Send one request; return the reply as it came (a result or an error)."""
        rid = self._next_id
        self._next_id = rid + 1
        return self._exchange(
            rid, jsonrpc.Request(method=method, id=rid, params=params), on_notification
        )

    def _exchange(
        self, rid: int, request: jsonrpc.Request, on_notification: NotificationCallback | None
    ) -> jsonrpc.Envelope:
        """Deliver ``request``; pass notifications to ``on_notification``; return the reply."""
        raise NotImplementedError

    def listen(self, on_notification: NotificationCallback, timeout: float | None = None) -> bool:
        """Pass the notifications that arrive to ``on_notification`` until it returns ``False``.

        Return ``False`` when ``timeout`` seconds passed without a notification, ``True``
        when the callback asked to stop. Only a daemon sends notifications after a reply.
        """
        raise DaemonUnavailable("notifications need the daemon; run without --no-daemon")

    def close(self) -> None:
        """Release the connection."""


def _progress(env: jsonrpc.Envelope, on_progress: ProgressCallback | None) -> None:
    if on_progress is not None and env.is_request and env.method == jsonrpc.PROGRESS:
        with contextlib.suppress(msgspec.ValidationError, msgspec.DecodeError):
            on_progress(jsonrpc.decode_as(env.params, ProgressParams))


class SocketTransport(Transport):
    """Newline-delimited JSON-RPC over a connected Unix socket."""

    def __init__(self, sock: Socket, path: str | os.PathLike[str]) -> None:
        self.sock = sock
        self.path = os.fspath(path)
        self._reader = _LineReader(sock)

    def _send(self, message: Any) -> None:
        data = jsonrpc.encode(message) + b"\n"
        try:
            self.sock.sendall(data)
        except OSError as exc:
            # Never a BrokenPipeError past here: that is how a closed stdout ends a command
            # quietly, and a request that never reached the daemon must not look done.
            raise DaemonUnavailable(
                f"lost the connection to burrowd on {self.path} ({exc.strerror or exc}); "
                "the request was not sent: run the command again"
            ) from None

    def _read(self) -> jsonrpc.Envelope:
        try:
            line = self._reader.readline()
        except TimeoutError:
            raise
        except OSError as exc:
            raise DaemonUnavailable(
                f"lost the connection to burrowd on {self.path} ({exc.strerror or exc})"
            ) from None
        if not line:
            raise DaemonUnavailable(f"burrowd closed the connection on {self.path}")
        return jsonrpc.decode_single(line)

    def _exchange(
        self, rid: int, request: jsonrpc.Request, on_notification: NotificationCallback | None
    ) -> jsonrpc.Envelope:
        self._send(request)
        try:
            while True:
                env = self._read()
                if env.is_request:
                    if on_notification is not None:
                        on_notification(env)
                elif env.id == rid:
                    return env
        except KeyboardInterrupt:
            self._cancel(rid)
            raise

    def listen(self, on_notification: NotificationCallback, timeout: float | None = None) -> bool:
        self.sock.settimeout(timeout)
        try:
            while True:
                env = self._read()
                if env.is_request and on_notification(env) is False:
                    return True
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(None)

    def _cancel(self, rid: int) -> None:
        """Ask the daemon to cancel ``rid`` and wait briefly for its acknowledgement."""
        with contextlib.suppress(
            OSError, DaemonUnavailable, msgspec.DecodeError, KeyboardInterrupt
        ):
            self._send(jsonrpc.Notification(method=jsonrpc.CANCEL, params=CancelParams(id=rid)))
            self.sock.settimeout(2.0)
            while self._read().id != rid:
                pass

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class _LineReader:
    """Reads newline-terminated messages from a socket, keeping what follows a line.

    A timeout leaves what arrived so far in the buffer, for the next call.
    """

    def __init__(self, sock: Socket) -> None:
        self.sock = sock
        self._buf = bytearray()
        self._scanned = 0

    def readline(self) -> bytes:
        """Return the next line with its newline; at end of stream, what is left (or b"")."""
        while (end := self._buf.find(b"\n", self._scanned)) < 0:
            self._scanned = len(self._buf)
            chunk = self.sock.recv(RECV_SIZE)
            if not chunk:
                rest = bytes(self._buf)
                self._buf.clear()
                self._scanned = 0
                return rest
            self._buf += chunk
        line = bytes(self._buf[: end + 1])
        del self._buf[: end + 1]
        self._scanned = 0
        return line


class InProcessTransport(Transport):
    """Serve each request inside this process (``--no-daemon``)."""

    def __init__(self) -> None:
        # The only place the client loads the daemon, and only for --no-daemon.
        from burrowd.daemon.inprocess import serve_one  # noqa: PLC0415

        self._serve_one = serve_one

    def _exchange(
        self, rid: int, request: jsonrpc.Request, on_notification: NotificationCallback | None
    ) -> jsonrpc.Envelope:
        def deliver(data: bytes) -> None:
            if on_notification is not None:
                on_notification(jsonrpc.decode_single(data))

        return jsonrpc.decode_single(self._serve_one(jsonrpc.encode(request), deliver))


def spawn_daemon(env: Mapping[str, str] | None = None) -> None:
    """Start a detached daemon and wait until it serves (or another one already does).

    Raise :class:`DaemonUnavailable` with the tail of the daemon log if it dies first.
    """
    try:
        starting = Starting(env)
    except OSError as exc:
        raise DaemonUnavailable(f"could not start burrowd: {exc}") from exc
    starting.wait()


def _connect_retrying(path: str, timeout: float) -> Socket | None:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        sock = connect(path)
        if sock is not None or time.monotonic() >= deadline:
            return sock
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _handshake(transport: SocketTransport) -> InitializeResult:
    return transport.call(
        "initialize",
        InitializeParams(
            protocol_version=jsonrpc.PROTOCOL_VERSION,
            client_version=__version__,
            client_build=build_id(),
        ),
        InitializeResult,
    )


def _matches(result: InitializeResult) -> bool:
    return result.protocol_version == jsonrpc.PROTOCOL_VERSION and result.server_build == build_id()


def _wait_gone(path: str, pid: int | None, timeout: float) -> None:
    """Wait until nothing answers on ``path`` or the old daemon ``pid`` has exited.

    Under systemd socket activation the socket keeps listening after the daemon exits
    (systemd owns it), so the process, not the socket, tells when it is gone.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not process_alive(pid):
            return
        sock = connect(path)
        if sock is None:
            return
        sock.close()
        time.sleep(0.02)


def _mismatch_marker(path: str, server_build: str) -> str:
    return os.path.join(os.path.dirname(path), f".mismatch-{server_build}-{build_id()}")


def open_transport(
    *,
    no_daemon: bool = False,
    start: bool = True,
    warn: Callable[[str], None] = lambda text: print(f"warning: {text}", file=sys.stderr),
) -> Transport:
    """Return a transport to a daemon of this very build, starting one if needed.

    :param no_daemon: serve requests in this process instead.
    :param start: start a daemon when none answers; otherwise raise :class:`DaemonUnavailable`.
    :param warn: how to tell the user once that an old daemon keeps coming back.
    """
    if no_daemon:
        return InProcessTransport()
    try:
        path = paths.socket_path()
    except paths.SocketPathError as exc:
        raise DaemonUnavailable(str(exc)) from exc
    restarted = False
    # A daemon that is stopping (another terminal's `daemon stop`, an upgrade) may still
    # accept a connection, then close it or refuse the handshake: connect again.
    lost = 0
    # What ``burrow`` did before the client loaded: connected, or started a daemon.
    early = take_early(path)
    while True:
        sock = early if isinstance(early, Socket) else connect(path)
        if sock is None:
            if not start:
                raise DaemonUnavailable(f"burrowd is not running (no socket at {path})")
            if isinstance(early, Starting):
                early.wait()
            else:
                spawn_daemon()
            sock = _connect_retrying(path, START_TIMEOUT)
            if sock is None:
                raise DaemonUnavailable(f"burrowd started but does not answer on {path}")
        early = None
        transport = SocketTransport(sock, path)
        try:
            result = _handshake(transport)
        except (OSError, DaemonUnavailable, RpcError) as exc:
            transport.close()
            stopping = not isinstance(exc, RpcError) or exc.code == ErrorCode.SHUTTING_DOWN
            if stopping and lost < _HANDSHAKE_RETRIES:
                lost += 1
                time.sleep(0.05 * lost)
                continue
            raise DaemonUnavailable(
                f"burrowd at {path} did not complete the handshake: {exc}"
            ) from exc
        if _matches(result):
            return transport
        marker = _mismatch_marker(path, result.server_build)
        if restarted or os.path.exists(marker):
            transport.close()
            if not os.path.exists(marker):
                with contextlib.suppress(OSError):
                    open(marker, "a").close()
                warn(
                    f"the daemon on {path} runs burrowd {result.server_version} "
                    f"(build {result.server_build}) and keeps coming back after a restart; "
                    f"this is build {build_id()}, so requests run in this process "
                    "(check which burrowd your systemd unit starts)"
                )
            return InProcessTransport()
        # An older (or newer) build answers: ask it to go, then start our own.
        old_pid: int | None = result.pid
        with contextlib.suppress(RpcError, OSError, DaemonUnavailable):
            old_pid = transport.call("shutdown", ShutdownParams(), ShutdownResult).pid
        transport.close()
        _wait_gone(path, old_pid, STOP_TIMEOUT)
        restarted = True
