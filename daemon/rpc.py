"""JSON-RPC transport: framing, peer check, decode -> dispatch -> encode, cancellation, progress.

A connection speaks newline-delimited JSON unless its first line is a header
(``Content-Length: ...``), in which case it is read and answered with LSP base-protocol
framing. Every request runs in its own task, so one connection can have many requests in
flight; ``$/cancelRequest`` cancels exactly one of them and a dropped connection cancels all of
its own, while a connection the client only half-closed (``shutdown(SHUT_WR)``) still gets its
answers before it is closed. A malformed message gets its error reply and the connection goes
on, except a message larger than :data:`MAX_MESSAGE` or broken LSP headers, after which the
stream cannot be re-synchronised: those get a -32600 reply, then the connection is closed.

Hostile or broken clients are bounded: a connection buffers at most one message of
:data:`MAX_MESSAGE` bytes, must finish a message it began (and send its first one) within
:data:`MESSAGE_TIMEOUT`, has at most :data:`MAX_IN_FLIGHT` requests running before the
daemon stops reading from it, and the daemon serves :data:`MAX_CONNECTIONS` at once (a new
one displaces the oldest connection that never sent a message).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import os
import select
import socket
import struct
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

import msgspec

from burrowd.daemon.errors import NO_SPACE, DaemonError, DiskFull, ShuttingDown
from burrowd.protocol import jsonrpc
from burrowd.protocol.errors import ErrorCode, ErrorObject
from burrowd.protocol.messages import CancelParams, ProgressParams, RequestInfo

__all__ = [
    "MAX_BATCH",
    "MAX_CONNECTIONS",
    "MAX_IN_FLIGHT",
    "MAX_MESSAGE",
    "MESSAGE_TIMEOUT",
    "STREAM_LIMIT",
    "Connection",
    "FrameDecoder",
    "FramingError",
    "Handler",
    "RequestContext",
    "RpcServer",
    "StreamConnection",
    "peer_credentials",
]

log = logging.getLogger(__name__)

#: Largest message accepted, in bytes: also the most a connection buffers. A ``sync`` of
#: 20 000 hash-pinned requirements on ``stdin`` is about 3 MiB.
MAX_MESSAGE: Final = 8 * 1024 * 1024
#: Largest header section of an LSP-framed message, in bytes.
MAX_HEADERS: Final = 8 * 1024
#: Most requests one batch may hold.
MAX_BATCH: Final = 1000
#: Requests of one connection running at once; past this the daemon stops reading from it.
MAX_IN_FLIGHT: Final = 1000
#: Connections served at once.
MAX_CONNECTIONS: Final = 256
#: Seconds a connection has to send its first message, and to finish any message it began.
MESSAGE_TIMEOUT: Final = 30.0
#: Bytes read from a socket at once.
READ_CHUNK: Final = 64 * 1024
#: The ``limit`` for ``start_unix_server``: reads are chunked, so this only sets when the
#: transport stops reading (at twice this much unread).
STREAM_LIMIT: Final = READ_CHUNK
#: Seconds between two checks whether a half-closed peer went away altogether.
HALF_CLOSED_POLL: Final = 0.2
#: Seconds between two warnings about refused connections.
REFUSAL_LOG_INTERVAL: Final = 60.0
#: Minimum seconds between two progress notifications of one phase.
PROGRESS_INTERVAL: Final = 0.1

RequestId = int | str


class Handler(Protocol):
    """An RPC method: typed params in, a result struct out."""

    def __call__(self, params: Any, ctx: RequestContext, /) -> Awaitable[msgspec.Struct]: ...


class Framing(enum.Enum):
    """How messages are delimited on a connection."""

    NDJSON = "ndjson"
    LSP = "lsp"


def _error(code: int, message: str, data: Any = None) -> ErrorObject:
    return ErrorObject(code=code, message=message, data=data)


def _too_deep() -> ErrorObject:
    # msgspec stops at the interpreter's recursion limit (about 1000 levels) with a
    # RecursionError, not a DecodeError; no message of the protocol nests a tenth as deep.
    return _error(ErrorCode.PARSE_ERROR, "parse error: JSON nested too deeply")


def _param_path(detail: str) -> str | None:
    """Return the ``$.field`` path msgspec names in a validation message."""
    marker = " - at `"
    if marker in detail:
        return detail.split(marker, 1)[1].rstrip("`")
    return None


class RequestContext:
    """What a handler may know and do about the request it serves."""

    __slots__ = ("_last_phase", "_last_progress", "connection", "id", "method", "phase", "started")

    def __init__(self, connection: Connection, request_id: RequestId, method: str) -> None:
        self.connection = connection
        self.id = request_id
        self.method = method
        self.started = time.monotonic()
        self.phase = ""
        self._last_progress = 0.0
        self._last_phase = ""

    def progress(
        self,
        phase: str,
        current: int = 0,
        total: int | None = None,
        nbytes: int = 0,
        message: str = "",
        *,
        force: bool = False,
    ) -> None:
        """Send a ``$/progress`` notification, at most every 100 ms per phase.

        A new phase, the last step of a phase and ``force`` are always sent.
        """
        now = time.monotonic()
        done = total is not None and current >= total
        if (
            not force
            and not done
            and phase == self._last_phase
            and now - self._last_progress < PROGRESS_INTERVAL
        ):
            self.phase = phase
            return
        self.phase = phase
        self._last_phase = phase
        self._last_progress = now
        params = ProgressParams(
            token=self.id, phase=phase, current=current, total=total, bytes=nbytes, message=message
        )
        self.connection.send_nowait(jsonrpc.Notification(method=jsonrpc.PROGRESS, params=params))


class Connection:
    """One client of the server; subclasses deliver the encoded frames."""

    def __init__(self, server: RpcServer, peer: str) -> None:
        self.server = server
        self.peer = peer
        self.framing = Framing.NDJSON
        self.tasks: dict[RequestId, asyncio.Task[None]] = {}
        self.contexts: dict[RequestId, RequestContext] = {}
        self.cancelled_by_client: set[RequestId] = set()
        #: Batches being answered (they reply once all their requests are done).
        self.batches: set[asyncio.Task[None]] = set()
        self.closed = False
        #: Whether a complete message came (a connection that never sends one may be dropped).
        self.spoke = False
        self.opened = time.monotonic()

    def frame(self, body: bytes) -> bytes:
        """Return ``body`` framed for this connection."""
        if self.framing is Framing.LSP:
            return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        return body + b"\n"

    def write(self, data: bytes) -> None:
        """Deliver one framed message (one call per message, so frames never interleave)."""
        raise NotImplementedError

    async def drain(self) -> None:
        """Wait until the peer has taken what was written."""

    def send_nowait(self, message: Any) -> None:
        """Encode and deliver a message without waiting for the peer."""
        if self.closed:
            return
        self.write(self.frame(jsonrpc.encode(message)))

    async def send(self, message: Any) -> None:
        """Encode and deliver a message, then wait for the peer to take it."""
        if self.closed:
            return
        self.send_nowait(message)
        with contextlib.suppress(ConnectionError):
            await self.drain()

    def close(self) -> None:
        """Close the connection; nothing more is sent on it."""
        self.closed = True

    def cancel_all(self) -> None:
        """Cancel every request of this connection (it went away)."""
        for task in self.tasks.values():
            task.cancel()


class FramingError(Exception):
    """The stream cannot be read as messages any more."""


class FrameDecoder:
    """Split the bytes of one connection into message bodies (sans I/O).

    Newline-delimited JSON, unless the first line is a header (``Content-Length: ...``):
    then LSP base-protocol frames. :meth:`feed` takes bytes as they come, :meth:`next`
    returns each complete body in turn. Nothing beyond ``limit`` bytes of one message (and
    one read chunk) is ever buffered: a longer message raises :class:`FramingError`.
    """

    __slots__ = (
        "_buf",
        "_first",
        "_headers",
        "_in_body",
        "_length",
        "_scanned",
        "framing",
        "limit",
    )

    def __init__(self, limit: int = MAX_MESSAGE) -> None:
        self.limit = limit
        self.framing = Framing.NDJSON
        self._buf = bytearray()
        self._first = True
        #: Header bytes of the LSP message being read (``None``: between messages).
        self._headers: int | None = None
        #: Body length of the LSP message whose headers are read.
        self._length: int | None = None
        #: The headers of the current LSP message are done: its body is being read.
        self._in_body = False
        #: How far the buffer was searched for a newline already.
        self._scanned = 0

    def feed(self, data: bytes) -> None:
        """Take bytes read from the connection."""
        self._buf += data

    @property
    def pending(self) -> bool:
        """Return whether part of a message (more than whitespace) is buffered."""
        return self._headers is not None or (bool(self._buf) and not self._buf.isspace())

    def next(self) -> bytes | None:
        """Return the next complete message body, or ``None`` until more bytes come.

        Raise :class:`FramingError` when the stream cannot be read as messages any more.
        """
        if self.framing is Framing.LSP:
            return self._next_lsp()
        line = self._line(self.limit, f"message exceeds the limit of {self.limit} bytes")
        if line is None:
            return None
        if self._first and _looks_like_header(line):
            self.framing = Framing.LSP
            self._first = False
            self._header(line)
            return self._next_lsp()
        self._first = False
        return line

    def _line(self, limit: int, too_long: str) -> bytes | None:
        end = self._buf.find(b"\n", self._scanned)
        if end < 0:
            self._scanned = len(self._buf)
            if len(self._buf) > limit:
                raise FramingError(too_long)
            return None
        self._scanned = 0
        if end > limit:
            raise FramingError(too_long)
        line = bytes(self._buf[: end + 1])
        del self._buf[: end + 1]
        return line

    def _header(self, line: bytes) -> None:
        self._headers = (self._headers or 0) + len(line)
        if self._headers > MAX_HEADERS:
            raise FramingError(f"LSP headers exceed the limit of {MAX_HEADERS} bytes")
        text = line.decode("ascii", "replace").strip()
        key, _, value = text.partition(":")
        if key.strip().lower() != "content-length":
            return
        try:
            length = int(value.strip())
        except ValueError:
            raise FramingError(f"bad Content-Length header {text[:100]!r}") from None
        if length < 0:
            raise FramingError(f"bad Content-Length header {text[:100]!r}")
        if length > self.limit:
            raise FramingError(f"message of {length} bytes exceeds the limit of {self.limit}")
        self._length = length

    def _next_lsp(self) -> bytes | None:
        while not self._in_body:
            line = self._line(MAX_HEADERS, f"LSP headers exceed the limit of {MAX_HEADERS} bytes")
            if line is None:
                return None
            if line.strip():
                self._header(line)
            elif self._headers is not None:  # the blank line that ends the headers
                if self._length is None:
                    raise FramingError("LSP message without a Content-Length header")
                self._in_body = True
            # A blank line between two frames is skipped.
        length = self._length
        assert length is not None
        if len(self._buf) < length:
            return None
        body = bytes(self._buf[:length])
        del self._buf[:length]
        self._headers = None
        self._length = None
        self._in_body = False
        return body


class StreamConnection(Connection):
    """A connection over an asyncio stream pair (the Unix socket)."""

    def __init__(
        self,
        server: RpcServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        super().__init__(server, peer)
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(server.max_message)

    def write(self, data: bytes) -> None:
        if self.writer.is_closing():
            self.closed = True
            return
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    def peer_gone(self) -> bool:
        """Return whether the peer closed both directions (not merely its write side)."""
        sock = self.writer.get_extra_info("socket")
        if sock is None or self.writer.is_closing():
            return True
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLOUT)
        return any(ev & (select.POLLHUP | select.POLLERR) for _, ev in poller.poll(0))

    def close(self) -> None:
        self.closed = True
        self.writer.close()

    async def read_message(self, timeout: float) -> bytes | None:
        """Return the next message body, or ``None`` at end of stream.

        A first message, or one begun, must be complete within ``timeout`` seconds (0: no
        limit); raise :class:`TimeoutError` otherwise, and :class:`FramingError` when the
        stream cannot be read as messages any more.
        """
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while True:
            try:
                body = self.decoder.next()
            finally:
                # Errors about the framing are framed the way the client speaks, too.
                self.framing = self.decoder.framing
            if body is not None:
                self.spoke = True
                return body
            if timeout > 0 and (self.decoder.pending or not self.spoke):
                if deadline is None:
                    deadline = loop.time() + timeout
            else:
                deadline = None
            async with asyncio.timeout_at(deadline):
                chunk = await self.reader.read(READ_CHUNK)
            if not chunk:
                return None
            self.decoder.feed(chunk)


def _looks_like_header(line: bytes) -> bool:
    name, sep, _ = line.partition(b":")
    return bool(sep) and name[:1].isalpha() and name.replace(b"-", b"").isalnum()


def peer_credentials(sock: Any) -> tuple[int, int, int]:
    """Return the pid, uid and gid of the process at the other end of a Unix socket."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("iII"))
    # struct ucred: pid_t pid, uid_t uid, gid_t gid (uid_t and gid_t are unsigned).
    pid, uid, gid = struct.unpack("iII", creds)
    return pid, uid, gid


OnActivity = Callable[[], None]


class RpcServer:
    """Decode, dispatch and answer JSON-RPC messages for any number of connections.

    :param handlers: method name -> handler; a method absent here answers -32601.
    :param on_activity: called whenever a connection or request starts or ends (idle timer).
    :param max_message: the largest message accepted, in bytes.
    :param max_connections: connections served at once.
    :param max_in_flight: requests of one connection running before it is read no more.
    :param message_timeout: seconds to send a first message, or finish one begun (0: none).
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        on_activity: OnActivity | None = None,
        *,
        max_message: int = MAX_MESSAGE,
        max_connections: int = MAX_CONNECTIONS,
        max_in_flight: int = MAX_IN_FLIGHT,
        message_timeout: float = MESSAGE_TIMEOUT,
    ) -> None:
        self.max_message = max_message
        self.max_connections = max_connections
        self.max_in_flight = max_in_flight
        self.message_timeout = message_timeout
        self._refused = 0
        self._refusal_logged = 0.0
        self._handlers: dict[str, Handler] = {}
        self.handlers = dict(handlers)
        self.connections: set[Connection] = set()
        self.accepting = True
        self._on_activity = on_activity or (lambda: None)
        self._uid = os.getuid()
        self._idle = asyncio.Event()
        self._idle.set()
        self._batches: set[asyncio.Task[None]] = set()
        #: Notification method -> the connections that asked for it.
        self._subscribers: dict[str, set[Connection]] = {}

    @property
    def handlers(self) -> dict[str, Handler]:
        """Return method name -> handler."""
        return self._handlers

    @handlers.setter
    def handlers(self, table: Mapping[str, Handler]) -> None:
        unknown = sorted(set(table) - set(jsonrpc.METHODS))
        if unknown:
            # A programming error: the method table is the contract, handlers follow it.
            raise ValueError(f"handlers for methods missing from jsonrpc.METHODS: {unknown}")
        self._handlers = dict(table)

    # -- subscriptions --------------------------------------------------------------------

    def subscribe(self, conn: Connection, method: str, on: bool = True) -> None:
        """Send (or stop sending) the notifications ``method`` to ``conn``."""
        subscribers = self._subscribers.setdefault(method, set())
        if on and not conn.closed:
            subscribers.add(conn)
        else:
            subscribers.discard(conn)

    def subscribers(self, method: str) -> int:
        """Return how many connections receive the notifications ``method``."""
        return sum(1 for c in self._subscribers.get(method, ()) if not c.closed)

    def publish(self, method: str, params: msgspec.Struct) -> None:
        """Send a notification to every connection subscribed to ``method``."""
        subscribers = self._subscribers.get(method)
        if not subscribers:
            return
        message = jsonrpc.Notification(method=method, params=params)
        for conn in list(subscribers):
            if conn.closed:
                subscribers.discard(conn)
            else:
                conn.send_nowait(message)

    # -- bookkeeping used by status and the idle timer -----------------------------------

    @property
    def in_flight(self) -> int:
        """Return the number of requests being served."""
        return sum(len(c.tasks) for c in self.connections)

    def request_infos(self) -> list[RequestInfo]:
        """Describe every request being served."""
        now = time.monotonic()
        return [
            RequestInfo(
                id=ctx.id,
                method=ctx.method,
                elapsed=now - ctx.started,
                phase=ctx.phase,
                client=conn.peer,
            )
            for conn in self.connections
            for ctx in conn.contexts.values()
        ]

    async def wait_idle(self, timeout: float | None) -> bool:
        """Wait until no request is in flight (``None``: however long); return whether it did."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.in_flight:
                    self._idle.clear()
                    await self._idle.wait()
        return not self.in_flight

    # -- the socket side ------------------------------------------------------------------

    def _peer_allowed(self, writer: asyncio.StreamWriter) -> tuple[bool, str]:
        sock = writer.get_extra_info("socket")
        if sock is None or not hasattr(socket, "SO_PEERCRED"):
            return True, "unknown peer"
        try:
            pid, uid, _gid = peer_credentials(sock)
        except OSError as exc:
            return False, f"peer credentials unavailable ({exc})"
        return uid == self._uid, f"pid {pid} uid {uid}"

    def _make_room(self, peer: str) -> bool:
        """Return whether a new connection may be served, closing a silent one if need be."""
        if len(self.connections) < self.max_connections:
            return True
        silent = [c for c in self.connections if not c.spoke and not c.closed]
        if silent:
            victim = min(silent, key=lambda c: c.opened)
            log.debug("closing the silent connection from %s to serve %s", victim.peer, peer)
            victim.send_nowait(
                jsonrpc.ErrorResponse(
                    id=None,
                    error=_error(
                        ErrorCode.INVALID_REQUEST,
                        f"closed: {len(self.connections)} connections are open and this one "
                        f"sent nothing for {time.monotonic() - victim.opened:.1f}s",
                    ),
                )
            )
            victim.close()
            self.connections.discard(victim)
            return True
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged >= REFUSAL_LOG_INTERVAL:
            log.warning(
                "refused %d connections (the last from %s): %d are open, the limit",
                self._refused,
                peer,
                len(self.connections),
            )
            self._refused = 0
            self._refusal_logged = now
        return False

    async def handle_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve one accepted connection until it closes."""
        allowed, peer = self._peer_allowed(writer)
        if not allowed:
            log.warning("refused connection from %s: not uid %d", peer, self._uid)
            writer.close()
            return
        if not self._make_room(peer):
            refusal = jsonrpc.ErrorResponse(
                id=None,
                error=_error(
                    ErrorCode.INVALID_REQUEST,
                    f"burrowd serves at most {self.max_connections} connections at once; "
                    "try again later",
                ),
            )
            writer.write(jsonrpc.encode(refusal) + b"\n")
            writer.close()
            return
        conn = StreamConnection(self, reader, writer, peer)
        self.connections.add(conn)
        self._on_activity()
        log.debug("connection from %s", peer)
        try:
            await self._read_loop(conn)
        except asyncio.CancelledError:
            # The daemon is stopping. Returned, not raised: Python 3.11's stream callback
            # calls ``exception()`` on a cancelled handler task and logs that as an error
            # ("Exception in callback ... CancelledError") at nearly every stop.
            pass
        except Exception:
            # Whatever a client sends, the daemon goes on serving the others.
            log.exception("connection from %s failed", peer)
        finally:
            conn.closed = True
            conn.cancel_all()
            self.connections.discard(conn)
            for subscribers in self._subscribers.values():
                subscribers.discard(conn)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._on_activity()
            log.debug("connection from %s closed", peer)

    async def _read_loop(self, conn: StreamConnection) -> None:
        while not conn.closed:
            try:
                # Backpressure: a client that does not read its replies, or that keeps too
                # many requests running, is not read from until it catches up.
                await conn.drain()
                await self._wait_in_flight(conn)
                body = await conn.read_message(self.message_timeout)
            except FramingError as exc:
                await self._fail_connection(conn, str(exc))
                return
            except TimeoutError:
                what = "complete message" if conn.decoder.pending else "message"
                await self._fail_connection(
                    conn, f"no {what} within {self.message_timeout:g}s; closing the connection"
                )
                return
            except ConnectionError:
                return
            if body is None:
                if conn.decoder.pending:
                    log.debug("%s closed in the middle of a message", conn.peer)
                await self._answer_half_closed(conn)
                return
            if not body.strip():
                continue
            try:
                reply = self.receive(conn, body)
            except Exception as exc:
                log.exception("failed to dispatch a message")
                reply = jsonrpc.ErrorResponse(
                    id=None,
                    error=_error(ErrorCode.INTERNAL_ERROR, f"internal error: {exc}"),
                )
            if reply is not None:
                await conn.send(reply)

    async def _fail_connection(self, conn: StreamConnection, reason: str) -> None:
        log.info("closing the connection from %s: %s", conn.peer, reason)
        await conn.send(
            jsonrpc.ErrorResponse(id=None, error=_error(ErrorCode.INVALID_REQUEST, reason))
        )

    async def _wait_in_flight(self, conn: Connection) -> None:
        while len(conn.tasks) >= self.max_in_flight and not conn.closed:
            await asyncio.wait(list(conn.tasks.values()), return_when=asyncio.FIRST_COMPLETED)

    async def _answer_half_closed(self, conn: StreamConnection) -> None:
        """Finish the requests of a peer that sent EOF, unless it went away altogether.

        A client that shuts down its write side after its request still reads the answer;
        one that closed the socket cannot, and its requests are cancelled as before.
        """
        while conn.tasks or conn.batches:
            if conn.peer_gone():
                return
            pending = [*conn.tasks.values(), *conn.batches]
            await asyncio.wait(pending, timeout=HALF_CLOSED_POLL)
        with contextlib.suppress(ConnectionError):
            await conn.drain()

    # -- messages -------------------------------------------------------------------------

    def receive(self, conn: Connection, body: bytes) -> Any:
        """Take one message; return an immediate reply or ``None`` (requests reply later)."""
        try:
            decoded = jsonrpc.decode_envelope(body)
        except msgspec.ValidationError as exc:
            return jsonrpc.ErrorResponse(
                id=None, error=_error(ErrorCode.INVALID_REQUEST, f"invalid request: {exc}")
            )
        except msgspec.DecodeError as exc:
            return jsonrpc.ErrorResponse(
                id=None, error=_error(ErrorCode.PARSE_ERROR, f"parse error: {exc}")
            )
        except RecursionError:
            return jsonrpc.ErrorResponse(id=None, error=_too_deep())
        if isinstance(decoded, list):
            if not decoded:
                return jsonrpc.ErrorResponse(
                    id=None, error=_error(ErrorCode.INVALID_REQUEST, "empty batch")
                )
            if len(decoded) > MAX_BATCH:
                return jsonrpc.ErrorResponse(
                    id=None,
                    error=_error(
                        ErrorCode.INVALID_REQUEST,
                        f"batch of {len(decoded)} messages exceeds the limit of {MAX_BATCH}",
                    ),
                )
            task = asyncio.ensure_future(self._batch(conn, decoded))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
            conn.batches.add(task)
            task.add_done_callback(conn.batches.discard)
            return None
        return self._single(conn, decoded, None)

    async def _batch(self, conn: Connection, members: list[msgspec.Raw]) -> None:
        futures: list[asyncio.Future[Any]] = []
        replies: list[Any] = []
        for raw in members:
            try:
                env = jsonrpc.decode_single(raw)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                replies.append(
                    jsonrpc.ErrorResponse(
                        id=None, error=_error(ErrorCode.INVALID_REQUEST, f"invalid request: {exc}")
                    )
                )
                continue
            except RecursionError:
                replies.append(jsonrpc.ErrorResponse(id=None, error=_too_deep()))
                continue
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            reply = self._single(conn, env, fut)
            if reply is not None:
                replies.append(reply)
            elif env.is_request and not env.is_notification:
                futures.append(fut)
        for outcome in await asyncio.gather(*futures, return_exceptions=True):
            if not isinstance(outcome, BaseException):
                replies.append(outcome)
        if replies:
            await conn.send(replies)

    def _single(
        self, conn: Connection, env: jsonrpc.Envelope, fut: asyncio.Future[Any] | None
    ) -> Any:
        rid = None if env.id is msgspec.UNSET else env.id
        if env.jsonrpc != jsonrpc.JSONRPC:
            return jsonrpc.ErrorResponse(
                id=rid,
                error=_error(ErrorCode.INVALID_REQUEST, 'invalid request: "jsonrpc" must be "2.0"'),
            )
        if not env.is_request:
            if env.error is msgspec.UNSET and not env.result:
                # Neither a call nor a response (a misspelt "method"): the sender waits for
                # an answer that would otherwise never come.
                return jsonrpc.ErrorResponse(
                    id=rid,
                    error=_error(ErrorCode.INVALID_REQUEST, 'invalid request: no "method"'),
                )
            # A response or error from the client: nothing here ever asks the client anything.
            return None
        method = env.method
        assert isinstance(method, str)
        if env.is_notification:
            self._notification(conn, method, env.params)
            return None
        if rid is None:
            return jsonrpc.ErrorResponse(
                id=None,
                error=_error(ErrorCode.INVALID_REQUEST, "invalid request: id must not be null"),
            )
        if rid in conn.tasks:
            return jsonrpc.ErrorResponse(
                id=rid,
                error=_error(ErrorCode.INVALID_REQUEST, f"request id {rid!r} is already in flight"),
            )
        handler = self.handlers.get(method)
        if handler is None:
            return jsonrpc.ErrorResponse(
                id=rid,
                error=_error(
                    ErrorCode.METHOD_NOT_FOUND,
                    f"method {method!r} not found",
                    {"method": method, "methods": sorted(self.handlers)},
                ),
            )
        spec = jsonrpc.METHODS[method]
        if env.params and bytes(env.params).lstrip()[:1] != b"{":
            return jsonrpc.ErrorResponse(
                id=rid,
                error=_error(ErrorCode.INVALID_PARAMS, f"params of {method!r} must be an object"),
            )
        try:
            params = jsonrpc.decode_as(env.params, spec.params)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            detail = str(exc)
            return jsonrpc.ErrorResponse(
                id=rid,
                error=_error(
                    ErrorCode.INVALID_PARAMS,
                    f"invalid params for {method!r}: {detail}",
                    {"method": method, "detail": detail, "path": _param_path(detail)},
                ),
            )
        except RecursionError:
            return jsonrpc.ErrorResponse(id=rid, error=_too_deep())
        if not self.accepting and method not in ("status", "initialize"):
            return jsonrpc.ErrorResponse(id=rid, error=ShuttingDown().to_error())
        ctx = RequestContext(conn, rid, method)
        task = asyncio.ensure_future(self._run(conn, ctx, handler, params, fut))
        task.add_done_callback(functools.partial(self._cancelled_before_start, conn, ctx, fut))
        conn.tasks[rid] = task
        conn.contexts[rid] = ctx
        self._on_activity()
        return None

    def _notification(self, conn: Connection, method: str, raw: msgspec.Raw) -> None:
        if method != jsonrpc.CANCEL:
            log.debug("ignored notification %s", method)
            return
        try:
            params = jsonrpc.decode_as(raw, CancelParams)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
            log.debug("ignored malformed %s", method)
            return
        task = conn.tasks.get(params.id)
        if task is not None and not task.done():
            conn.cancelled_by_client.add(params.id)
            task.cancel()

    @staticmethod
    def _crashed(ctx: RequestContext, exc: Exception) -> jsonrpc.ErrorResponse:
        log.exception("%s %r crashed", ctx.method, ctx.id)
        return jsonrpc.ErrorResponse(
            id=ctx.id,
            error=_error(
                ErrorCode.INTERNAL_ERROR,
                f"internal error in {ctx.method}: {type(exc).__name__}: {exc}",
                {"traceback": traceback.format_exc()},
            ),
        )

    async def _run(
        self,
        conn: Connection,
        ctx: RequestContext,
        handler: Handler,
        params: Any,
        fut: asyncio.Future[Any] | None,
    ) -> None:
        rid = ctx.id
        reply: Any
        try:
            result = await handler(params, ctx)
            reply = jsonrpc.Response(id=rid, result=result)
        except asyncio.CancelledError:
            if rid not in conn.cancelled_by_client:
                # The connection went away or the daemon is stopping: nobody to answer.
                self._finish(conn, rid)
                if fut is not None and not fut.done():
                    fut.cancel()
                raise
            reply = jsonrpc.ErrorResponse(
                id=rid, error=_error(ErrorCode.REQUEST_CANCELLED, f"request {rid!r} was cancelled")
            )
        except DaemonError as exc:
            log.info("%s %r failed: %s", ctx.method, rid, exc.message.splitlines()[0])
            reply = jsonrpc.ErrorResponse(id=rid, error=exc.to_error())
        except OSError as exc:
            # A full disk met where no layer turned it into its own error: still the user's
            # problem to fix (free space), not a crash of the daemon.
            if exc.errno not in NO_SPACE:
                reply = self._crashed(ctx, exc)
            else:
                log.warning("%s %r failed: %s", ctx.method, rid, exc)
                full = DiskFull(
                    Path(os.fsdecode(exc.filename)) if exc.filename else None,
                    exc.errno,
                    hint="free space on that file system and run the command again",
                )
                reply = jsonrpc.ErrorResponse(id=rid, error=full.to_error())
        except Exception as exc:
            reply = self._crashed(ctx, exc)
        self._finish(conn, rid)
        try:
            body = jsonrpc.encode(reply)
        except (TypeError, msgspec.EncodeError) as exc:
            log.exception("%s %r returned an unencodable result", ctx.method, rid)
            reply = jsonrpc.ErrorResponse(
                id=rid,
                error=_error(
                    ErrorCode.INTERNAL_ERROR, f"internal error: unencodable result: {exc}"
                ),
            )
            body = jsonrpc.encode(reply)
        if fut is not None:
            if not fut.done():
                fut.set_result(msgspec.Raw(body))
            return
        if not conn.closed:
            conn.write(conn.frame(body))
            with contextlib.suppress(ConnectionError):
                await conn.drain()

    def _cancelled_before_start(
        self,
        conn: Connection,
        ctx: RequestContext,
        fut: asyncio.Future[Any] | None,
        task: asyncio.Task[None],
    ) -> None:
        """Answer and forget a request whose task was cancelled before ``_run`` began.

        A ``$/cancelRequest`` read in the same chunk as its request (or a connection dropped
        at once) cancels the task before its first step: the coroutine then never enters its
        ``try``, so without this nobody would answer the request or take it off the books.
        """
        rid = ctx.id
        if not task.cancelled() or conn.tasks.get(rid) is not task:
            return  # _run finished the request itself.
        by_client = rid in conn.cancelled_by_client
        self._finish(conn, rid)
        if not by_client:
            if fut is not None and not fut.done():
                fut.cancel()
            return
        body = jsonrpc.encode(
            jsonrpc.ErrorResponse(
                id=rid, error=_error(ErrorCode.REQUEST_CANCELLED, f"request {rid!r} was cancelled")
            )
        )
        if fut is not None:
            if not fut.done():
                fut.set_result(msgspec.Raw(body))
        elif not conn.closed:
            conn.write(conn.frame(body))

    def _finish(self, conn: Connection, rid: RequestId) -> None:
        conn.tasks.pop(rid, None)
        conn.contexts.pop(rid, None)
        conn.cancelled_by_client.discard(rid)
        if not self.in_flight:
            self._idle.set()
        self._on_activity()

    def cancel_everything(self) -> None:
        """Cancel every request of every connection."""
        for conn in list(self.connections):
            conn.cancel_all()
