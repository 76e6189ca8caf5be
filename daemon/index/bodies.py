"""File bodies (wheels, sdists) fetched by blocking threads, not by the event loop.

Why not aiohttp, which fetches the index pages: a cold fill of the large benchmark set
streams 250 MB, and on the event loop that was about a second of one CPU (asyncio's TLS
transport, aiohttp's parser, a thread hop per chunk to hash and write it), on the same
thread that reads the pages and hands out unpacks. In a blocking thread the heavy parts
(``SSL_read``, hashing, ``write``) release the GIL, so downloads use a second CPU from the
first wheel on, and cost less CPU in all (a fill: the loop's CPU 1.0 s to 0.5 s, 0.3 to
0.5 s sooner).

urllib3 does the HTTP: connection pools per host, proxies (``CONNECT`` for HTTPS),
redirects without leaking credentials to another host, chunked bodies, timeouts. Each body
is read in 1 MiB chunks straight into one buffer (``readinto``), hashed and written.

:class:`Bodies` is used by :class:`~burrowd.daemon.index.http.Http`, which decides the
credentials, the proxy, the retries and what an HTTP status means; this module only moves
bytes and says how an attempt failed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import http.client
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Final

if TYPE_CHECKING:
    import ssl

    import urllib3

__all__ = [
    "THREADS",
    "Aborted",
    "Bodies",
    "BodyRequest",
    "Failure",
    "Refused",
    "Sink",
    "describe",
]

#: Bodies fetched at once. Eight to twelve connections already take this machine's whole
#: bandwidth (250 MB in half a second); more only start every download later, while the
#: unpacks wait for a first one to finish.
THREADS: Final = 12
_CHUNK: Final = 1024 * 1024
_REDIRECTS: Final = 10


class Aborted(Exception):
    """The body was abandoned: its request was cancelled, or the daemon is stopping."""


class Refused(Exception):
    """The server answered with a status other than 200 (the caller says what it means)."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str]) -> None:
        # ``headers`` is urllib3's: its names match in any case (``retry-after``).
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status = status
        self.reason = reason
        self.headers = headers


class Failure(Exception):
    """One attempt failed on the way (see :attr:`kind`): connecting, TLS, timing out, the
    connection breaking, a redirect loop or a bad URL. ``detail`` says how, for a message.
    """

    TLS: Final = "tls"
    TIMEOUT: Final = "timeout"
    CONNECT: Final = "connect"
    CUT_SHORT: Final = "cut-short"
    DISCONNECTED: Final = "disconnected"
    REDIRECTS: Final = "redirects"
    URL: Final = "url"
    OTHER: Final = "other"

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Sink:
    """Where a body goes: ``dest`` (created or truncated), each chunk to ``consume``
    (hashing) and its length to ``progress`` before it is written; ``abort`` abandons it."""

    dest: Path
    consume: Callable[[memoryview], None]
    progress: Callable[[int], None]
    abort: threading.Event


@dataclass(frozen=True, slots=True)
class BodyRequest:
    """One GET, decided on the event loop's thread (credentials and proxy looked up there)."""

    url: str
    headers: Mapping[str, str]
    proxy: str | None
    proxy_headers: Mapping[str, str]
    connect_timeout: float
    read_timeout: float


class Bodies:
    """A pool of threads and connections that fetch bodies into files.

    :param context: the verified TLS context every HTTPS connection uses.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._executor = concurrent.futures.ThreadPoolExecutor(
            THREADS, thread_name_prefix="burrowd-download"
        )
        self._lock = threading.Lock()
        self._managers: dict[tuple[str | None, tuple[tuple[str, str], ...]], Any] = {}
        #: The fetches under way: each one's abort event, and its socket once it is sent.
        self._active: dict[int, tuple[threading.Event, socket.socket | None]] = {}
        self._closed = False

    def submit(self, request: BodyRequest, sink: Sink) -> concurrent.futures.Future[int]:
        """Start fetching ``request`` into ``sink`` in a thread.

        The future's result is the body's size; it fails with :class:`Refused`,
        :class:`Failure`, :class:`Aborted` (``sink.abort`` set, or :meth:`close`) or an
        :class:`OSError` of ``sink.dest``.
        """
        return self._executor.submit(self._fetch, request, sink)

    def stop(self, abort: threading.Event) -> None:
        """Abandon the fetch of ``abort``'s owner: a read waiting for the server's answer
        or for its body ends now, not after the read timeout."""
        abort.set()
        with self._lock:
            entry = self._active.get(id(abort))
        if entry is not None:
            _hang_up(entry[1])

    def close(self) -> None:
        """Abandon every fetch and let the threads end (without waiting for them)."""
        with self._lock:
            self._closed = True
            active = list(self._active.values())
            managers = list(self._managers.values())
            self._managers.clear()
        for abort, sock in active:
            abort.set()
            _hang_up(sock)
        self._executor.shutdown(wait=False, cancel_futures=True)
        for manager in managers:
            manager.clear()

    # -- in a download thread -----------------------------------------------------------------

    def _sent(self, abort: threading.Event, sock: socket.socket | None) -> None:
        """Note the socket a fetch's request went out on (a reused connection's too): from
        now on :meth:`stop` ends the fetch however long the server takes to answer. The
        socket, not the connection: ``http.client`` lets go of the connection's socket
        when the answer says it will close, while the body is still read from it."""
        with self._lock:
            self._active[id(abort)] = (abort, sock)
        if abort.is_set():
            _hang_up(sock)

    def _manager(self, request: BodyRequest) -> Any:
        import urllib3  # noqa: PLC0415 - on the first download, in its thread

        key = (request.proxy, tuple(sorted(request.proxy_headers.items())))
        with self._lock:
            if self._closed:
                raise Aborted("the daemon is stopping")
            manager = self._managers.get(key)
            if manager is None:
                options: dict[str, Any] = {
                    "maxsize": THREADS,
                    "ssl_context": self._context,
                    "retries": False,
                }
                if request.proxy is None:
                    manager = urllib3.PoolManager(**options)
                else:
                    manager = urllib3.ProxyManager(
                        request.proxy, proxy_headers=dict(request.proxy_headers), **options
                    )
                manager.pool_classes_by_scheme = _pool_classes()
                self._managers[key] = manager
        return manager

    def _fetch(self, request: BodyRequest, sink: Sink) -> int:
        import urllib3  # noqa: PLC0415

        abort = sink.abort

        if abort.is_set():
            raise Aborted("cancelled")
        manager = self._manager(request)
        with self._lock:
            self._active[id(abort)] = (abort, None)
        _sending.hook = functools.partial(self._sent, abort)
        response = None
        done = False
        try:
            response = manager.urlopen(
                "GET",
                request.url,
                headers=dict(request.headers),
                preload_content=False,
                decode_content=True,
                redirect=True,
                retries=urllib3.Retry(
                    total=None, connect=0, read=0, status=0, other=0, redirect=_REDIRECTS
                ),
                timeout=urllib3.Timeout(connect=request.connect_timeout, read=request.read_timeout),
            )
            if abort.is_set():
                raise Aborted("cancelled")
            if response.status != 200:
                raise Refused(response.status, response.reason or "", response.headers)
            with open(sink.dest, "wb") as out:
                size = _copy(response, out, sink)
            if abort.is_set():  # a hang-up reads as the end of a body of no stated length
                raise Aborted("cancelled")
            done = True
            return size
        except Exception as exc:
            # A read ended by stop() or close() fails as a broken connection does (or, on
            # TLS, as a read of a closed socket).
            if abort.is_set():
                raise Aborted("cancelled") from exc
            if isinstance(exc, _network_errors()):
                raise _failure(exc) from exc
            raise
        finally:
            _sending.hook = None
            with self._lock:
                self._active.pop(id(abort), None)
            if response is not None:
                if not done:
                    # A connection left mid-body cannot carry another request.
                    with contextlib.suppress(Exception):
                        response.close()
                with contextlib.suppress(Exception):
                    response.release_conn()


class _Sending(threading.local):
    """Per download thread: what a connection calls with its socket, its request sent."""

    hook: Callable[[socket.socket | None], None] | None = None


_sending = _Sending()


@functools.cache
def _pool_classes() -> dict[str, type]:
    """Return urllib3's connection pools whose connections tell the fetch of their thread
    their socket as they wait for the answer (:meth:`Bodies._sent`)."""
    import urllib3  # noqa: PLC0415
    from urllib3.connection import HTTPConnection, HTTPSConnection  # noqa: PLC0415

    def told(base: Any) -> type:
        def getresponse(self: Any, *args: Any, **kwargs: Any) -> Any:
            hook = _sending.hook
            if hook is not None:
                hook(self.sock)
            return base.getresponse(self, *args, **kwargs)

        return type(f"Told{base.__name__}", (base,), {"getresponse": getresponse})

    return {
        "http": type(
            "ToldHTTPPool", (urllib3.HTTPConnectionPool,), {"ConnectionCls": told(HTTPConnection)}
        ),
        "https": type(
            "ToldHTTPSPool",
            (urllib3.HTTPSConnectionPool,),
            {"ConnectionCls": told(HTTPSConnection)},
        ),
    }


def _copy(response: urllib3.BaseHTTPResponse, out: BinaryIO, sink: Sink) -> int:
    buffer = memoryview(bytearray(_CHUNK))
    size = 0
    while n := response.readinto(buffer):
        if sink.abort.is_set():
            raise Aborted("cancelled")
        chunk = buffer[:n]
        sink.consume(chunk)
        out.write(chunk)
        size += n
        sink.progress(n)
    return size


def _hang_up(sock: socket.socket | None) -> None:
    """Stop reads on ``sock``, from any thread: a read waiting in another ends at once.

    The plain socket's ``shutdown``, also for TLS: ``SSLSocket.shutdown`` would drop the
    TLS state under the reading thread's feet; this way that read just meets the end.
    """
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RD)


def _network_errors() -> tuple[type[BaseException], ...]:
    """Return the exceptions that mean the network failed, not the destination file (whose
    errors, a full disk among them, pass as they are) and not a bug."""
    from urllib3.exceptions import HTTPError  # noqa: PLC0415

    return (HTTPError, http.client.HTTPException, ConnectionError, TimeoutError)


def _failure(exc: BaseException) -> Failure:
    """Return the :class:`Failure` a urllib3 (or socket) exception stands for."""
    from urllib3 import exceptions as e  # noqa: PLC0415

    if isinstance(exc, e.MaxRetryError) and exc.reason is not None:
        if isinstance(exc.reason, e.ResponseError):
            return Failure(Failure.REDIRECTS, f"more than {_REDIRECTS} redirects")
        exc = exc.reason
    if isinstance(exc, e.ProxyError) and exc.original_error is not None:
        inner = _failure(exc.original_error)
        return Failure(inner.kind, f"through the proxy: {inner.detail}")
    detail = describe(exc)
    if isinstance(exc, e.SSLError):
        return Failure(Failure.TLS, detail)
    if isinstance(exc, e.LocationValueError | e.URLSchemeUnknown):
        return Failure(Failure.URL, detail)
    # Before timeouts: urllib3's NewConnectionError is a ConnectTimeoutError.
    if isinstance(exc, e.NewConnectionError | e.ProxyError):
        return Failure(Failure.CONNECT, detail)
    if isinstance(exc, e.TimeoutError | TimeoutError):
        return Failure(Failure.TIMEOUT, detail)
    if isinstance(exc, e.ProtocolError) and any(
        isinstance(arg, http.client.RemoteDisconnected) for arg in exc.args
    ):
        return Failure(Failure.DISCONNECTED, detail)
    if isinstance(exc, e.ProtocolError | e.DecodeError | ConnectionError):
        return Failure(Failure.CUT_SHORT, detail)
    return Failure(Failure.OTHER, detail)


def describe(exc: BaseException) -> str:
    """Return ``exc`` as its type and message, for an error's reason."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
