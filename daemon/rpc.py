"""JSON-RPC transport: framing, peer check, decode -> dispatch -> encode, cancellation, progress.

A connection speaks newline-delimited JSON unless its first line is a header
(``Content-Length: ...``), in which case it is read and answered with LSP base-protocol
framing. Every request runs in its own task, so one connection can have many requests in
flight; ``$/cancelRequest`` cancels exactly one of them and a dropped connection cancels all of
its own. A malformed message gets its error reply and the connection goes on, except a
message larger than :data:`MAX_MESSAGE`, after which the stream cannot be re-synchronised.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import os
import socket
import struct
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

import msgspec

from burrowd.daemon.errors import DaemonError, ShuttingDown
from burrowd.protocol import jsonrpc
from burrowd.protocol.errors import ErrorCode, ErrorObject
from burrowd.protocol.messages import CancelParams, ProgressParams, RequestInfo

__all__ = [
    "MAX_MESSAGE",
    "Connection",
    "Handler",
    "RequestContext",
    "RpcServer",
    "StreamConnection",
]

log = logging.getLogger(__name__)

#: Largest message accepted, in bytes (a framing limit, not a memory promise).
MAX_MESSAGE: Final = 32 * 1024 * 1024
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
        self.closed = False

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

    def cancel_all(self) -> None:
        """Cancel every request of this connection (it went away)."""
        for task in self.tasks.values():
            task.cancel()


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

    def write(self, data: bytes) -> None:
        if self.writer.is_closing():
            self.closed = True
            return
        self.writer.write(data)

    async def drain(self) -> None:
        await self.writer.drain()

    async def read_message(self, first: bool) -> bytes | None:
        """Return the next message body, or ``None`` at end of stream."""
        if self.framing is Framing.LSP:
            return await self._read_lsp(None)
        line = await self.reader.readline()
        if not line:
            return None
        if first and _looks_like_header(line):
            self.framing = Framing.LSP
            return await self._read_lsp(line)
        return line

    async def _read_lsp(self, first_header: bytes | None) -> bytes | None:
        length: int | None = None
        header = first_header
        while True:
            if header is None:
                header = await self.reader.readline()
                if not header:
                    return None
            text = header.decode("ascii", "replace").strip()
            header = None
            if not text:
                break
            key, _, value = text.partition(":")
            if key.strip().lower() == "content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    raise _FramingError(f"bad Content-Length header {text!r}") from None
        if length is None:
            raise _FramingError("LSP message without a Content-Length header")
        if length > MAX_MESSAGE:
            raise _FramingError(f"message of {length} bytes exceeds the limit of {MAX_MESSAGE}")
        return await self.reader.readexactly(length)


def _looks_like_header(line: bytes) -> bool:
    name, sep, _ = line.partition(b":")
    return bool(sep) and name[:1].isalpha() and name.replace(b"-", b"").isalnum()


class _FramingError(Exception):
    """The stream cannot be read as messages any more."""


OnActivity = Callable[[], None]


class RpcServer:
    """Decode, dispatch and answer JSON-RPC messages for any number of connections.

    :param handlers: method name -> handler; a method absent here answers -32601.
    :param on_activity: called whenever a connection or request starts or ends (idle timer).
    """

    def __init__(
        self, handlers: Mapping[str, Handler], on_activity: OnActivity | None = None
    ) -> None:
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
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("iII"))
        except OSError as exc:
            return False, f"peer credentials unavailable ({exc})"
        # struct ucred: pid_t pid, uid_t uid, gid_t gid (uid_t and gid_t are unsigned).
        pid, uid, _gid = struct.unpack("iII", creds)
        return uid == self._uid, f"pid {pid} uid {uid}"

    async def handle_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve one accepted connection until it closes."""
        allowed, peer = self._peer_allowed(writer)
        if not allowed:
            log.warning("refused connection from %s: not uid %d", peer, self._uid)
            writer.close()
            return
        conn = StreamConnection(self, reader, writer, peer)
        self.connections.add(conn)
        self._on_activity()
        log.debug("connection from %s", peer)
        try:
            await self._read_loop(conn)
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
        first = True
        while True:
            try:
                body = await conn.read_message(first)
            except (asyncio.LimitOverrunError, ValueError, _FramingError) as exc:
                reason = (
                    str(exc)
                    if isinstance(exc, _FramingError)
                    else (f"message exceeds the limit of {MAX_MESSAGE} bytes")
                )
                await conn.send(
                    jsonrpc.ErrorResponse(id=None, error=_error(ErrorCode.INVALID_REQUEST, reason))
                )
                return
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if body is None:
                return
            first = False
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
        if isinstance(decoded, list):
            if not decoded:
                return jsonrpc.ErrorResponse(
                    id=None, error=_error(ErrorCode.INVALID_REQUEST, "empty batch")
                )
            task = asyncio.ensure_future(self._batch(conn, decoded))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
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
        except (msgspec.ValidationError, msgspec.DecodeError):
            log.debug("ignored malformed %s", method)
            return
        task = conn.tasks.get(params.id)
        if task is not None and not task.done():
            conn.cancelled_by_client.add(params.id)
            task.cancel()

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
        except Exception as exc:
            log.exception("%s %r crashed", ctx.method, rid)
            reply = jsonrpc.ErrorResponse(
                id=rid,
                error=_error(
                    ErrorCode.INTERNAL_ERROR,
                    f"internal error in {ctx.method}: {type(exc).__name__}: {exc}",
                    {"traceback": traceback.format_exc()},
                ),
            )
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
