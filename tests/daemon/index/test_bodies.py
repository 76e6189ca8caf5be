"""Wheel bodies read on the bodies' own loop: TLS, redirects, retries, cancelling.

End to end through :meth:`IndexClient.fetch_wheel` (pages from a fake index on 127.0.0.1,
the file wherever the page points: the index itself, an HTTPS server, a server that
redirects, stalls or compresses) and, for what one attempt raises, :meth:`Http.download`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import threading
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.wheels import WheelPointer
from burrowd.daemon.errors import NetworkError
from burrowd.daemon.index.client import Freshness
from burrowd.daemon.index.http import RetriesExhausted, TransientError
from burrowd.daemon.index.models import IndexFile
from tests.daemon.cache.harness import (
    Stack,
    archive_problems,
    random_members,
    stack_on,
    tmp_debris,
    write_wheel,
)
from tests.support.dists import DistCache, DistSpec
from tests.support.index import FakeIndex, Fault, IndexedFile, ThreadedServer
from tests.support.sockets import POLL, SocketServer
from tests.support.tls import HAVE_OPENSSL, Pki, issue_pki, server_context

WHEEL = "foo-1.0-py3-none-any.whl"
FILE_PATH = f"/files/{WHEEL}"
LOGIN = ("user", "pw")
#: Where the stalling servers stop: past the first chunk the bodies' loop reads
#: (``bodies._CHUNK``, 256 KiB), so a stalled download has made its first progress report.
CHUNK = 1024 * 1024
#: The HTTP timeout of the tests that stall: the download must end long before it.
LONG_TIMEOUT = 30.0


# -- the services -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _services(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    timeout: float = LONG_TIMEOUT,
    retries: int = 2,
    ca: Path | None = None,
) -> AsyncIterator[Stack]:
    """Open the services with the retry policy and trust anchors the environment sets, as
    the daemon reads them (the TLS context is built when the client opens)."""
    monkeypatch.setenv("BURROW_HTTP_TIMEOUT", f"{timeout:g}")
    monkeypatch.setenv("BURROW_RETRIES", str(retries))
    monkeypatch.setenv("BURROW_RETRY_BACKOFF", "0.01")
    # Hermetic: no proxy, and no netrc login for 127.0.0.1 from the user running the tests.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    netrc = root.parent / "netrc"
    netrc.touch()
    monkeypatch.setenv("NETRC", str(netrc))
    if ca is None:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    else:
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    async with stack_on(root) as services:
        yield services


@pytest.fixture
async def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    """The services, with quick retries and a long HTTP timeout."""
    async with _services(tmp_path / "cache", monkeypatch) as services:
        yield services


@pytest.fixture
def foo(fake_index: FakeIndex) -> IndexedFile:
    (entry,) = fake_index.add(DistSpec("foo", "1.0"))
    return entry


@pytest.fixture
def big_foo(fake_index: FakeIndex, tmp_path: Path) -> IndexedFile:
    """A wheel of three chunks and a bit (stored, random: its size is what is sent)."""
    members = random_members(3, CHUNK, package="foo")
    path = write_wheel(tmp_path / "built", "foo", "1.0", members, compression=zipfile.ZIP_STORED)
    (entry,) = fake_index.add(path)
    assert entry.filename == WHEEL
    assert entry.size > 3 * CHUNK
    return entry


async def _file(
    stack: Stack, index: FakeIndex, index_url: str | None = None
) -> tuple[IndexFile, str]:
    settings = stack.settings(index_url or index.simple_url)
    files = await stack.index.project_files(settings, "foo", Freshness())
    return next((f, loc) for f, loc in files.files if f.filename == WHEEL)


async def _fetch(
    stack: Stack,
    index: FakeIndex,
    *,
    index_url: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> WheelPointer:
    file, location = await _file(stack, index, index_url)
    key = stack.index.wheel_key(file, location, "foo")
    return await stack.index.fetch_wheel(file, key, on_bytes=on_bytes)


def _serve_file_at(index: FakeIndex, url: str) -> None:
    """Make the index's pages link the wheel at ``url`` (as PyPI links another host)."""
    index.json_overrides[WHEEL] = {"url": url}


def _stored(stack: Stack, pointer: WheelPointer, entry: IndexedFile) -> None:
    assert pointer.hashes["sha256"] == entry.sha256
    assert pointer.size == entry.size
    assert archive_problems(stack.cache.path(Bucket.ARCHIVE, entry.sha256)) == []
    assert tmp_debris(stack.cache) == []


# -- servers ------------------------------------------------------------------------------------


@dataclass
class Hop:
    """One request a server saw: its path (with the query) and its credentials."""

    path: str
    authorization: str | None


@dataclass
class Redirects:
    """A fake index on 127.0.0.1 whose answers for some paths are redirects."""

    index: FakeIndex
    #: request path (with query) -> the Location answered, with a 302.
    moves: dict[str, str] = field(default_factory=dict)
    hops: list[Hop] = field(default_factory=list)

    def file_hops(self) -> list[Hop]:
        return [h for h in self.hops if h.path.startswith(FILE_PATH)]


@pytest.fixture
def redirects(
    tmp_path_factory: pytest.TempPathFactory, dist_cache: DistCache
) -> Iterator[Redirects]:
    index = FakeIndex(tmp_path_factory.mktemp("redirecting-index"), cache=dist_cache)
    state = Redirects(index)

    @web.middleware
    async def redirect(request: web.Request, handler: Handler) -> web.StreamResponse:
        state.hops.append(Hop(request.path_qs, request.headers.get("Authorization")))
        target = state.moves.get(request.path_qs)
        if target is not None:
            return web.Response(status=302, headers={"Location": target})
        return await handler(request)

    app = index.app()
    app.middlewares.append(redirect)
    with ThreadedServer(app) as server:
        index.bind(server.url)
        yield state


class StallingServer(SocketServer):
    """A raw HTTP server on 127.0.0.1 that answers every request with a 200 and a
    ``Content-Length`` for all of ``body`` (or none, ``content_length`` false: the body ends
    when the connection closes), sends only its first ``upto`` bytes (None: not even the
    headers), then sends nothing more until :attr:`release` is set (then the rest) or the
    client hangs up (:attr:`hung_up`).
    """

    def __init__(self, body: bytes, upto: int | None, *, content_length: bool = True) -> None:
        self.body = body
        self.upto = upto
        self.content_length = content_length
        self.connections = 0
        #: A request was read and the part of the answer this server gives was sent.
        self.answered = threading.Event()
        #: A client closed (or reset) its connection while this server was stalling.
        self.hung_up = threading.Event()
        self.release = threading.Event()
        super().__init__()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(POLL)
            request = b""
            while b"\r\n\r\n" not in request:
                try:
                    got = conn.recv(65536)
                except TimeoutError:
                    if self.stopping:
                        return
                    continue
                if not got:
                    return
                request += got
            length = (
                f"Content-Length: {len(self.body)}" if self.content_length else "Connection: close"
            )
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n{length}\r\n\r\n"
            ).encode()
            rest = head + self.body
            if self.upto is not None:
                self._send(conn, head + self.body[: self.upto])
                rest = self.body[self.upto :]
            self.answered.set()
            while not self.stopping:
                if self.release.is_set() and rest:
                    with contextlib.suppress(OSError):
                        self._send(conn, rest)
                    rest = b""
                try:
                    got = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:  # reset: the client closed with our bytes unread
                    self.hung_up.set()
                    return
                if not got:
                    self.hung_up.set()
                    return

    @staticmethod
    def _send(conn: socket.socket, data: bytes) -> None:
        # A megabyte takes the client a moment to read: no 20 ms polling timeout for it.
        conn.settimeout(10)
        try:
            conn.sendall(data)
        finally:
            conn.settimeout(POLL)


def _ignore(chunk: bytes) -> None:
    """A ``consume`` for :meth:`Http.download` that keeps nothing."""


def _progress() -> tuple[list[int], asyncio.Event, Callable[[int], None]]:
    """Return the progress reports, an event set on the first one, and the callback."""
    seen: list[int] = []
    first = asyncio.Event()

    def on_bytes(n: int) -> None:
        seen.append(n)
        first.set()

    return seen, first, on_bytes


# -- 1. HTTPS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return issue_pki(tmp_path_factory.mktemp("pki"))


@dataclass
class HttpsFiles:
    """The fake index's files served over TLS too, with ``pki``'s certificate."""

    pki: Pki
    index: FakeIndex
    foo: IndexedFile
    port: int

    def link(self, host: str = "127.0.0.1") -> str:
        """Make the index's pages link the wheel on this server; return that URL."""
        url = f"https://{host}:{self.port}{FILE_PATH}"
        _serve_file_at(self.index, url)
        return url


@pytest.fixture
async def https(pki: Pki, fake_index: FakeIndex, foo: IndexedFile) -> AsyncIterator[HttpsFiles]:
    runner = web.AppRunner(fake_index.app())  # in the test's loop: it answers while it awaits
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(pki))
    await site.start()
    try:
        yield HttpsFiles(pki, fake_index, foo, runner.addresses[0][1])
    finally:
        await runner.cleanup()


@pytest.mark.skipif(not HAVE_OPENSSL, reason="needs the openssl CLI")
class TestHttps:
    async def test_a_server_of_an_authority_in_ssl_cert_file_serves_the_wheel(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, https: HttpsFiles
    ) -> None:
        url = https.link()
        async with _services(tmp_path / "cache", monkeypatch, ca=https.pki.ca) as stack:
            pointer = await _fetch(stack, https.index)
            assert pointer.url == url
            _stored(stack, pointer, https.foo)
        assert https.index.hits[FILE_PATH] == 1

    async def test_an_untrusted_certificate_fails_at_once_naming_ssl_cert_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, https: HttpsFiles
    ) -> None:
        url = https.link()
        async with _services(tmp_path / "cache", monkeypatch, ca=None) as stack:
            with pytest.raises(NetworkError) as caught:
                await _fetch(stack, https.index)
            assert not isinstance(caught.value, TransientError | RetriesExhausted)
            message = str(caught.value)
            assert url in message
            assert "TLS failed" in message
            assert "certificate" in message.lower()
            assert "SSL_CERT_FILE" in message
            assert stack.http.retries == 0  # it would fail the same way again
            assert tmp_debris(stack.cache) == []
        assert https.index.hits[FILE_PATH] == 0  # no request got through

    async def test_a_host_name_the_certificate_does_not_carry_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, https: HttpsFiles
    ) -> None:
        # A trusted authority, but the certificate names 127.0.0.1, not localhost.
        https.link("localhost")
        async with _services(tmp_path / "cache", monkeypatch, ca=https.pki.ca) as stack:
            with pytest.raises(NetworkError) as caught:
                await _fetch(stack, https.index)
            assert not isinstance(caught.value, TransientError | RetriesExhausted)
            message = str(caught.value)
            assert "TLS failed" in message
            assert "localhost" in message
            assert "match" in message  # "... doesn't match 'localhost'": the name, not the CA
            assert stack.http.retries == 0
        assert https.index.hits[FILE_PATH] == 0


# -- 2. redirects -------------------------------------------------------------------------------


class TestRedirects:
    async def test_a_redirect_on_the_same_host_keeps_the_credentials(
        self, stack: Stack, redirects: Redirects
    ) -> None:
        index = redirects.index
        (foo,) = index.add(DistSpec("foo", "1.0"))
        index.auth = LOGIN  # the file itself is served only with the login
        redirects.moves[FILE_PATH] = FILE_PATH + "?moved=1"
        with_login = index.simple_url.replace("http://", "http://user:pw@")
        pointer = await _fetch(stack, index, index_url=with_login)
        _stored(stack, pointer, foo)
        hops = redirects.file_hops()
        assert [h.path for h in hops] == [FILE_PATH, FILE_PATH + "?moved=1"]
        assert all(h.authorization is not None for h in hops)

    async def test_a_redirect_to_another_host_does_not_carry_the_credentials(
        self, stack: Stack, redirects: Redirects, other_index: FakeIndex
    ) -> None:
        index = redirects.index
        (foo,) = index.add(DistSpec("foo", "1.0"))
        (moved,) = other_index.add(DistSpec("foo", "1.0"))
        assert moved.sha256 == foo.sha256
        index.auth = LOGIN
        redirects.moves[FILE_PATH] = other_index.url_for(WHEEL)  # another port: another host
        with_login = index.simple_url.replace("http://", "http://user:pw@")
        pointer = await _fetch(stack, index, index_url=with_login)
        _stored(stack, pointer, foo)
        (first,) = redirects.file_hops()
        assert first.authorization is not None
        assert first.authorization.startswith("Basic ")
        (there,) = [r for r in other_index.requests if r.path == FILE_PATH]
        assert there.status == 200
        assert "Authorization" not in there.headers

    async def test_a_redirect_loop_fails_at_once(self, stack: Stack, redirects: Redirects) -> None:
        index = redirects.index
        index.add(DistSpec("foo", "1.0"))
        redirects.moves[FILE_PATH] = FILE_PATH
        with pytest.raises(NetworkError) as caught:
            await _fetch(stack, index)
        assert not isinstance(caught.value, TransientError | RetriesExhausted)
        assert "redirects in a loop" in str(caught.value)
        assert index.url_for(WHEEL) in str(caught.value)
        assert stack.http.retries == 0
        # One attempt: aiohttp stops at its tenth response (max_redirects), not retried.
        assert len(redirects.file_hops()) == 10
        assert "10 redirects in a row" in str(caught.value)
        assert tmp_debris(stack.cache) == []


# -- 3. a body cut short ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param("truncate", id="content-length-not-met"),
        pytest.param("cut", id="no-content-length"),
    ],
)
async def test_a_body_cut_short_is_retried_and_counted_once(
    stack: Stack, fake_index: FakeIndex, big_foo: IndexedFile, fault: Fault
) -> None:
    fake_index.fault(FILE_PATH, fault, times=1)
    seen: list[int] = []
    pointer = await _fetch(stack, fake_index, on_bytes=seen.append)
    _stored(stack, pointer, big_foo)
    assert [r.status for r in fake_index.requests if r.path == FILE_PATH] == [0, 200]
    assert stack.http.retries == 1
    # The first attempt's bytes were reported, then taken back when it failed.
    assert any(n < 0 for n in seen)
    assert sum(n for n in seen if n > 0) > big_foo.size
    assert sum(seen) == big_foo.size


# -- 4. a stalled body times out ----------------------------------------------------------------


async def test_a_stalled_body_times_out_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_index: FakeIndex, foo: IndexedFile
) -> None:
    body = fake_index.served_bytes(WHEEL)
    with StallingServer(body, upto=len(body) // 2) as server:
        _serve_file_at(fake_index, server.url + FILE_PATH)
        async with _services(tmp_path / "cache", monkeypatch, timeout=0.5, retries=1) as stack:
            with pytest.raises(RetriesExhausted) as caught:
                await _fetch(stack, fake_index)
            assert isinstance(caught.value, NetworkError)
            message = str(caught.value)
            assert "timed out" in message
            assert "no data for 0.5s" in message
            assert "after 2 attempts" in message
            assert "BURROW_HTTP_TIMEOUT" in message
            assert tmp_debris(stack.cache) == []
        assert server.connections == 2


# -- 5, 6. cancelling, closing ------------------------------------------------------------------


async def _reading(
    stack: Stack,
    fake_index: FakeIndex,
    server: StallingServer,
    on_bytes: Callable[[int], None],
    first: asyncio.Event,
) -> asyncio.Future[WheelPointer]:
    """Start fetching the wheel from ``server``; return once its body is being read."""
    _serve_file_at(fake_index, server.url + FILE_PATH)
    waiter = asyncio.ensure_future(_fetch(stack, fake_index, on_bytes=on_bytes))
    await asyncio.wait_for(first.wait(), 5)
    return waiter


async def _asked(
    stack: Stack, fake_index: FakeIndex, server: StallingServer
) -> asyncio.Future[WheelPointer]:
    """Start fetching the wheel from ``server``; return once the server has the request
    (and answers nothing yet)."""
    _serve_file_at(fake_index, server.url + FILE_PATH)
    waiter = asyncio.ensure_future(_fetch(stack, fake_index))
    assert await asyncio.to_thread(server.answered.wait, 5.0)
    return waiter


def _dest(tmp_path: Path) -> Path:
    """Return a file for a body (``Http.download`` truncates it; it never creates one)."""
    dest = tmp_path / "body"
    dest.touch()
    return dest


async def _cancel_flights(stack: Stack) -> None:
    """Cancel the downloads in flight, as the daemon does at shutdown (a waiter's own
    cancellation never cancels a download others may share)."""
    for flights in stack.index.flight_maps():
        await flights.wait_all(0)


async def test_cancelling_a_download_stalled_mid_body_hangs_up_at_once(
    stack: Stack, fake_index: FakeIndex, big_foo: IndexedFile
) -> None:
    seen, first, on_bytes = _progress()
    with StallingServer(fake_index.served_bytes(WHEEL), upto=CHUNK + 1000) as server:
        waiter = await _reading(stack, fake_index, server, on_bytes, first)
        await _cancel_flights(stack)
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # The HTTP timeout is 30 s: the read hung up because it was told to.
        assert await asyncio.to_thread(server.hung_up.wait, 3.0)
        assert tmp_debris(stack.cache) == []
        assert server.connections == 1
    # What was counted is taken back, in one report, once the cancel is seen.
    assert seen[-1] < 0 < len(seen) - 1
    assert sum(seen[:-1]) == -seen[-1]


async def test_cancelling_a_download_waiting_for_its_headers_hangs_up_at_once(
    stack: Stack, fake_index: FakeIndex, foo: IndexedFile
) -> None:
    with StallingServer(fake_index.served_bytes(WHEEL), upto=None) as server:
        waiter = await _asked(stack, fake_index, server)
        await _cancel_flights(stack)
        with pytest.raises(asyncio.CancelledError):
            await waiter
        hung_up = await asyncio.to_thread(server.hung_up.wait, 2.0)
        server.release.set()  # the answer comes late: nothing may write it anywhere
        await asyncio.to_thread(server.hung_up.wait, 2.0)
        debris = tmp_debris(stack.cache)
        assert (hung_up, debris) == (True, [])


async def test_closing_the_client_ends_a_download_stalled_mid_body(
    stack: Stack, fake_index: FakeIndex, big_foo: IndexedFile
) -> None:
    _, first, on_bytes = _progress()
    with StallingServer(fake_index.served_bytes(WHEEL), upto=CHUNK + 1000) as server:
        waiter = await _reading(stack, fake_index, server, on_bytes, first)
        await stack.http.close()
        # The HTTP timeout is 30 s: the download ends because the client closed.
        done, _ = await asyncio.wait({waiter}, timeout=5)
        assert done == {waiter}
        with pytest.raises((NetworkError, RuntimeError)):
            waiter.result()
        assert await asyncio.to_thread(server.hung_up.wait, 3.0)
        assert tmp_debris(stack.cache) == []


async def test_closing_the_client_ends_a_download_waiting_for_its_headers(
    stack: Stack, fake_index: FakeIndex, foo: IndexedFile
) -> None:
    with StallingServer(fake_index.served_bytes(WHEEL), upto=None) as server:
        waiter = await _asked(stack, fake_index, server)
        await stack.http.close()
        done, _ = await asyncio.wait({waiter}, timeout=3)
        # The server sees the hang-up at its next look at the socket, which may come after
        # the waiter has ended: wait for it (before any release, which would end it too).
        hung_up = await asyncio.to_thread(server.hung_up.wait, 3.0)
        if not done:  # end it, so the test does not leave it behind
            server.release.set()
            await asyncio.wait({waiter}, timeout=5)
        if waiter.done():
            waiter.exception()  # retrieved: whichever way it ended
        assert (done, hung_up) == ({waiter}, True)


@pytest.mark.parametrize(
    "content_length",
    [pytest.param(True, id="content-length"), pytest.param(False, id="until-close")],
)
async def test_closing_the_client_mid_body_is_the_daemon_stopping(
    stack: Stack, fake_index: FakeIndex, big_foo: IndexedFile, tmp_path: Path, content_length: bool
) -> None:
    _, first, on_bytes = _progress()
    body = fake_index.served_bytes(WHEEL)
    with StallingServer(body, upto=CHUNK + 1000, content_length=content_length) as server:
        download = asyncio.ensure_future(
            stack.http.download(server.url + FILE_PATH, _dest(tmp_path), _ignore, on_bytes)
        )
        await asyncio.wait_for(first.wait(), 5)
        await stack.http.close()
        done, _ = await asyncio.wait({download}, timeout=5)
        assert done == {download}  # the HTTP timeout is 30 s
        assert await asyncio.to_thread(server.hung_up.wait, 3.0)
        outcome = download.exception() or f"a body of {download.result()} bytes"
    assert isinstance(outcome, NetworkError)
    assert not isinstance(outcome, TransientError)
    assert "the daemon is stopping" in str(outcome)


# -- 7. a compressed body -----------------------------------------------------------------------


async def test_a_gzip_encoded_body_is_decoded_despite_asking_for_identity(
    stack: Stack, fake_index: FakeIndex, foo: IndexedFile
) -> None:
    asked: list[str | None] = []

    async def gzipped(request: web.Request) -> web.Response:
        asked.append(request.headers.get("Accept-Encoding"))
        body = gzip.compress(fake_index.served_bytes(WHEEL))
        return web.Response(
            body=body,
            headers={"Content-Type": "application/octet-stream", "Content-Encoding": "gzip"},
        )

    app = web.Application()
    app.router.add_get(FILE_PATH, gzipped)
    with ThreadedServer(app) as server:
        _serve_file_at(fake_index, server.url + FILE_PATH)
        seen: list[int] = []
        pointer = await _fetch(stack, fake_index, on_bytes=seen.append)
    assert asked == ["identity"]
    assert pointer.hashes == {"sha256": foo.sha256}
    assert sum(seen) == foo.size  # the bytes of the wheel, not of the gzip stream
    _stored(stack, pointer, foo)


# -- 8. statuses --------------------------------------------------------------------------------


class TestStatuses:
    async def test_401_names_the_credentials_and_is_not_retried(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile
    ) -> None:
        fake_index.fail(FILE_PATH, 401, times=5, headers={"WWW-Authenticate": 'Basic realm="x"'})
        with pytest.raises(NetworkError) as caught:
            await _fetch(stack, fake_index)
        assert not isinstance(caught.value, TransientError | RetriesExhausted)
        assert caught.value.status == 401
        message = str(caught.value)
        assert "HTTP 401" in message
        assert "credentials" in message
        assert fake_index.url_for(WHEEL) in message
        assert fake_index.hits[FILE_PATH] == 1
        assert stack.http.retries == 0
        assert tmp_debris(stack.cache) == []

    async def test_503_with_retry_after_then_200_succeeds(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile
    ) -> None:
        fake_index.fail(FILE_PATH, 503, times=1, headers={"Retry-After": "1"})
        seen: list[int] = []
        pointer = await _fetch(stack, fake_index, on_bytes=seen.append)
        _stored(stack, pointer, foo)
        assert [r.status for r in fake_index.requests if r.path == FILE_PATH] == [503, 200]
        assert stack.http.retries == 1
        assert sum(seen) == foo.size

    @pytest.mark.parametrize("name", ["Retry-After", "retry-after", "RETRY-AFTER"])
    async def test_retry_after_is_read_whatever_the_case_of_its_name(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile, tmp_path: Path, name: str
    ) -> None:
        fake_index.fail(FILE_PATH, 503, times=1, headers={name: "7"})
        with pytest.raises(TransientError) as caught:
            await stack.http.download(fake_index.url_for(WHEEL), _dest(tmp_path), _ignore)
        assert caught.value.status == 503
        assert caught.value.retry_after == 7.0
