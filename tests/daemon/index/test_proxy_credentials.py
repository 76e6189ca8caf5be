"""Proxies from the environment: the proxy's credentials go to the proxy only, the index's to
the index only, and ``NO_PROXY`` is honoured.

End to end through :meth:`IndexClient.fetch_wheel`: the project page (:meth:`Http.get`, on the
daemon's loop) and the wheel (:meth:`Http.download`, on the bodies' loop) go through
:class:`Proxy`, an authenticating HTTP proxy on 127.0.0.1 that records what it reads, to a
fake index on 127.0.0.1 (served over HTTP or over TLS) that records what reaches it.

A proxy's credentials (``http_proxy=http://user:secret@proxy``) go in the ``CONNECT`` of an
``https://`` target and in the request itself of an ``http://`` one, which the proxy reads
whole. An index's credentials (from its URL or from netrc) go in the request, so inside the
tunnel of an ``https://`` target: never in a ``CONNECT``.
"""

from __future__ import annotations

import base64
import contextlib
import select
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import msgspec
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.wheels import WheelPointer
from burrowd.daemon.index.client import Freshness
from tests.daemon.cache.harness import Stack, archive_problems, stack_on, tmp_debris
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex, IndexedFile, ThreadedServer
from tests.support.sockets import POLL, SocketServer
from tests.support.tls import HAVE_OPENSSL, Pki, issue_pki, server_context

# aiohttp 3.14 deprecates ``BasicAuth`` and ``proxy_auth``: the daemon must use neither
# (the suite's ``filterwarnings = error`` says so too; this keeps it said here).
pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")

WHEEL = "foo-1.0-py3-none-any.whl"
PAGE_PATH = "/simple/foo/"
FILE_PATH = f"/files/{WHEEL}"
PROXY_LOGIN = ("proxy-user", "proxy-secret")
INDEX_LOGIN = ("index-user", "index-secret")
#: Where the index's credentials come from: nowhere, its URL, or netrc.
Source = Literal["none", "url", "netrc"]
SOURCES = [pytest.param(s, id=s) for s in ("none", "url", "netrc")]
#: Seconds a test's socket waits before it checks whether to stop.


def _basic(login: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()


PROXY_AUTH = _basic(PROXY_LOGIN)
INDEX_AUTH = _basic(INDEX_LOGIN)


@dataclass(frozen=True)
class Seen:
    """One request as a server read it: method, target, headers (names in lower case) and
    the raw head, to look for a secret anywhere in it."""

    method: str
    target: str
    headers: dict[str, str]
    raw: bytes

    def carries(self, auth: str) -> bool:
        """Whether ``auth`` (``Basic ...``) is anywhere in the request's head."""
        return auth.split(" ", 1)[1].encode() in self.raw


def _parse(head: bytes) -> Seen:
    line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _version = line.split(" ", 2)
    headers = {}
    for header in lines:
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Seen(method, target, headers, head)


# -- the proxy ----------------------------------------------------------------------------------


class Proxy(SocketServer):
    """An HTTP proxy on 127.0.0.1 that asks for ``login`` (a 407 without it; None: it asks
    for none) and records the head of every request it reads (:attr:`seen`).

    A ``CONNECT`` opens a tunnel; any other request (absolute-form target) is forwarded,
    without its ``Proxy-*`` headers, one per connection. It reaches 127.0.0.1 only.
    """

    def __init__(self, login: tuple[str, str] | None = PROXY_LOGIN) -> None:
        self.login = login
        self.seen: list[Seen] = []
        super().__init__()

    @property
    def url(self) -> str:
        """The proxy's URL with its login, as ``http_proxy`` names it."""
        login = f"{self.login[0]}:{self.login[1]}@" if self.login else ""
        return f"http://{login}127.0.0.1:{self.port}"

    def _readable(self, *socks: socket.socket) -> list[socket.socket]:
        """Wait until one of ``socks`` can be read; [] once the proxy stops."""
        while not self.stopping:
            ready, _, _ = select.select(socks, [], [], POLL)
            if ready:
                return ready
        return []

    def _head(self, conn: socket.socket) -> tuple[bytes, bytes] | None:
        """Read a head: return it and what came after it, or None if the client left."""
        data = b""
        while b"\r\n\r\n" not in data:
            if not self._readable(conn):
                return None
            got = conn.recv(65536)
            if not got:
                return None
            data += got
        head, _, rest = data.partition(b"\r\n\r\n")
        return head, rest

    def serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            read = self._head(conn)
            if read is None:
                return
            head, rest = read
            seen = _parse(head)
            self.seen.append(seen)
            if self.login and seen.headers.get("proxy-authorization") != _basic(self.login):
                conn.sendall(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="proxy"\r\n'
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                return
            if seen.method == "CONNECT":
                host, _, port = seen.target.rpartition(":")
                assert host == "127.0.0.1", seen.target  # hermetic
                with socket.create_connection((host, int(port)), timeout=5) as up:
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    if rest:
                        up.sendall(rest)
                    self._relay(conn, up)
            else:
                self._forward(conn, head, seen, rest)

    def _relay(self, conn: socket.socket, up: socket.socket) -> None:
        """Move bytes both ways until one side closes."""
        while ready := self._readable(conn, up):
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                (up if sock is conn else conn).sendall(data)

    def _forward(self, conn: socket.socket, head: bytes, seen: Seen, rest: bytes) -> None:
        """Send the request on to its server, as a proxy does, and its answer back."""
        target = urlsplit(seen.target)
        assert target.scheme == "http", seen.target
        assert target.hostname == "127.0.0.1", seen.target  # hermetic
        path = target.path + (f"?{target.query}" if target.query else "")
        dropped = (b"proxy-", b"connection:", b"keep-alive:")
        lines = [f"{seen.method} {path} HTTP/1.1".encode()] + [
            line for line in head.split(b"\r\n")[1:] if not line.lower().startswith(dropped)
        ]
        request = b"\r\n".join([*lines, b"Connection: close", b"", b""]) + rest
        with socket.create_connection(("127.0.0.1", target.port or 80), timeout=5) as up:
            up.sendall(request)
            answer = b""
            while self._readable(up):
                got = up.recv(65536)
                if not got:
                    break
                answer += got
        # One request per connection: the client is told so, and the connection closes.
        status, _, body = answer.partition(b"\r\n\r\n")
        kept = [
            line
            for line in status.split(b"\r\n")
            if not line.lower().startswith((b"connection:", b"keep-alive:"))
        ]
        conn.sendall(b"\r\n".join([*kept, b"Connection: close", b"", b""]) + body)


# -- the index ----------------------------------------------------------------------------------


@dataclass
class Origin:
    """The fake index served over HTTP or HTTPS, and every request that reached it."""

    index: FakeIndex
    url: str = ""
    #: The authority a client must trust (``SSL_CERT_FILE``) for an HTTPS origin.
    ca: Path | None = None
    seen: list[Seen] = field(default_factory=list)

    def index_url(self, source: Source) -> str:
        """Return the index URL a client is given, with the login if ``source`` says so."""
        url = self.url + "/simple"
        if source == "url":
            scheme, _, rest = url.partition("://")
            url = f"{scheme}://{INDEX_LOGIN[0]}:{INDEX_LOGIN[1]}@{rest}"
        return url

    def paths(self) -> list[str]:
        return [s.target for s in self.seen]


@contextlib.asynccontextmanager
async def _serving(index: FakeIndex, pki: Pki | None) -> AsyncIterator[Origin]:
    """Serve ``index`` on 127.0.0.1, over TLS with ``pki``'s certificate if given, in the
    test's loop (it answers while the test awaits)."""
    origin = Origin(index, ca=None if pki is None else pki.ca)

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        raw = "\r\n".join(f"{k}: {v}" for k, v in request.headers.items()).encode()
        origin.seen.append(Seen(request.method, request.path_qs, headers, raw))
        return await handler(request)

    app = index.app()
    app.middlewares.append(record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tls = None if pki is None else server_context(pki)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    try:
        scheme = "http" if tls is None else "https"
        origin.url = f"{scheme}://127.0.0.1:{runner.addresses[0][1]}"
        yield origin
    finally:
        await runner.cleanup()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if not HAVE_OPENSSL:
        pytest.skip("needs the openssl CLI")
    return issue_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def foo(fake_index: FakeIndex) -> IndexedFile:
    (entry,) = fake_index.add(DistSpec("foo", "1.0"))
    return entry


@pytest.fixture
async def http_origin(fake_index: FakeIndex, foo: IndexedFile) -> AsyncIterator[Origin]:
    async with _serving(fake_index, None) as origin:
        yield origin


@pytest.fixture
async def https_origin(fake_index: FakeIndex, foo: IndexedFile, pki: Pki) -> AsyncIterator[Origin]:
    async with _serving(fake_index, pki) as origin:
        yield origin


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    with Proxy() as running:
        yield running


# -- the services -------------------------------------------------------------------------------


@dataclass
class Environment:
    """Opens the services as the daemon starts in an environment that names a proxy."""

    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    proxy: Proxy

    @contextlib.asynccontextmanager
    async def services(
        self,
        origin: Origin,
        *,
        source: Source = "none",
        no_proxy: str | None = None,
        netrc_machine: str = "machine 127.0.0.1",
        proxy: Proxy | None = None,
    ) -> AsyncIterator[Stack]:
        """Open the services with ``proxy`` (:attr:`proxy` by default) as the proxy of both
        schemes, the index's login in netrc (for ``netrc_machine``) if ``source`` says so,
        and the authority of ``origin`` trusted."""
        monkeypatch = self.monkeypatch
        monkeypatch.setenv("BURROW_RETRIES", "0")
        monkeypatch.setenv("BURROW_HTTP_TIMEOUT", "5")
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.lower(), raising=False)
        url = (proxy or self.proxy).url
        monkeypatch.setenv("http_proxy", url)
        monkeypatch.setenv("https_proxy", url)
        if no_proxy is not None:
            monkeypatch.setenv("NO_PROXY", no_proxy)
        netrc = self.tmp_path / "netrc"
        login = f"{netrc_machine} login {INDEX_LOGIN[0]} password {INDEX_LOGIN[1]}\n"
        netrc.write_text(login if source == "netrc" else "")
        monkeypatch.setenv("NETRC", str(netrc))
        if origin.ca is None:
            monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        else:
            monkeypatch.setenv("SSL_CERT_FILE", str(origin.ca))
        async with stack_on(self.tmp_path / "cache") as stack:
            yield stack


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proxy: Proxy) -> Environment:
    return Environment(tmp_path, monkeypatch, proxy)


async def _fetch(stack: Stack, index_url: str) -> WheelPointer:
    """Read the project page (``Http.get``), then download the wheel (``Http.download``)."""
    settings = stack.settings(index_url)
    files = await stack.index.project_files(settings, "foo", Freshness())
    file, location = next((f, loc) for f, loc in files.files if f.filename == WHEEL)
    return await stack.index.fetch_wheel(file, stack.index.wheel_key(file, location, "foo"))


def _stored(stack: Stack, pointer: WheelPointer, entry: IndexedFile) -> None:
    assert pointer.archive == entry.sha256
    assert pointer.size == entry.size
    assert archive_problems(stack.cache.path(Bucket.ARCHIVE, entry.sha256)) == []
    assert tmp_debris(stack.cache) == []


def _index_login(origin: Origin, source: Source) -> str | None:
    """Make the index ask for its login unless ``source`` gives none; return the header the
    index must be sent."""
    if source == "none":
        return None
    origin.index.auth = INDEX_LOGIN
    return INDEX_AUTH


# -- 1. http:// through the proxy ---------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
async def test_an_http_index_through_a_proxy_gets_each_login_where_it_belongs(
    env: Environment, proxy: Proxy, http_origin: Origin, foo: IndexedFile, source: Source
) -> None:
    auth = _index_login(http_origin, source)
    async with env.services(http_origin, source=source) as stack:
        pointer = await _fetch(stack, http_origin.index_url(source))
        _stored(stack, pointer, foo)
    # An http:// request goes to the proxy whole: the page's and the wheel's, each with
    # the proxy's login, and the index's own only when the index has one.
    assert [(s.method, s.target) for s in proxy.seen] == [
        ("GET", http_origin.url + PAGE_PATH),
        ("GET", http_origin.url + FILE_PATH),
    ]
    for seen in proxy.seen:
        assert seen.headers["proxy-authorization"] == PROXY_AUTH
        assert seen.headers.get("authorization") == auth
    assert http_origin.paths() == [PAGE_PATH, FILE_PATH]
    for seen in http_origin.seen:
        assert seen.headers.get("authorization") == auth


# -- 2. https:// through a CONNECT tunnel -------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
async def test_an_https_index_through_a_tunnel_gets_each_login_where_it_belongs(
    env: Environment, proxy: Proxy, https_origin: Origin, foo: IndexedFile, source: Source
) -> None:
    auth = _index_login(https_origin, source)
    async with env.services(https_origin, source=source) as stack:
        pointer = await _fetch(stack, https_origin.index_url(source))
        _stored(stack, pointer, foo)
    # The page's session and the bodies' session each open a tunnel: the proxy sees only
    # their CONNECTs, with its login and never the index's.
    host = https_origin.url.removeprefix("https://")
    assert [(s.method, s.target) for s in proxy.seen] == [("CONNECT", host)] * 2
    for seen in proxy.seen:
        assert seen.headers["proxy-authorization"] == PROXY_AUTH
        # Named burrowd, as every request is (not aiohttp and Python's versions).
        assert seen.headers["user-agent"].startswith("burrowd/")
        assert "authorization" not in seen.headers
        assert not seen.carries(INDEX_AUTH)
    # Inside the tunnel the index gets its login, and never the proxy's.
    assert https_origin.paths() == [PAGE_PATH, FILE_PATH]
    for seen in https_origin.seen:
        assert seen.headers.get("authorization") == auth
        assert "proxy-authorization" not in seen.headers
        assert not seen.carries(PROXY_AUTH)


# -- 3. NO_PROXY --------------------------------------------------------------------------------


def _direct(proxy: Proxy, origin: Origin) -> None:
    """Check that the page and the wheel went straight to the index, with its login only."""
    assert proxy.seen == []
    assert origin.paths() == [PAGE_PATH, FILE_PATH]
    for seen in origin.seen:
        assert seen.headers.get("authorization") == INDEX_AUTH
        assert "proxy-authorization" not in seen.headers  # not even the proxy's login
        assert not seen.carries(PROXY_AUTH)


@pytest.mark.parametrize(
    "no_proxy",
    [pytest.param("example.org,127.0.0.1", id="host"), pytest.param("*", id="any")],
)
async def test_no_proxy_sends_an_http_index_the_requests_directly(
    env: Environment, proxy: Proxy, http_origin: Origin, foo: IndexedFile, no_proxy: str
) -> None:
    _index_login(http_origin, "url")
    async with env.services(http_origin, source="url", no_proxy=no_proxy) as stack:
        pointer = await _fetch(stack, http_origin.index_url("url"))
        _stored(stack, pointer, foo)
    _direct(proxy, http_origin)


async def test_no_proxy_sends_an_https_index_the_requests_directly(
    env: Environment, proxy: Proxy, https_origin: Origin, foo: IndexedFile
) -> None:
    _index_login(https_origin, "url")
    async with env.services(https_origin, source="url", no_proxy="127.0.0.1") as stack:
        pointer = await _fetch(stack, https_origin.index_url("url"))
        _stored(stack, pointer, foo)
    _direct(proxy, https_origin)


# -- 4. bugs ------------------------------------------------------------------------------------


# A netrc written for the index (a ``default`` line, or a ``machine`` that is also the
# proxy's host) must not become the proxy's login: pip (requests) takes a proxy's login
# from its URL only. (aiohttp's own lookup, used before, filled it in from netrc.)
@pytest.mark.parametrize("tls", [pytest.param(False, id="http"), pytest.param(True, id="https")])
async def test_a_netrc_login_of_the_index_never_reaches_a_proxy_without_one(
    env: Environment, fake_index: FakeIndex, foo: IndexedFile, pki: Pki, tls: bool
) -> None:
    with Proxy(login=None) as proxy:
        async with _serving(fake_index, pki if tls else None) as origin:
            _index_login(origin, "netrc")
            async with env.services(
                origin, source="netrc", netrc_machine="default", proxy=proxy
            ) as stack:
                pointer = await _fetch(stack, origin.index_url("netrc"))
                _stored(stack, pointer, foo)
    assert len(proxy.seen) == 2  # the page and the wheel (or their tunnels)
    for seen in proxy.seen:
        assert "proxy-authorization" not in seen.headers
    for seen in origin.seen:
        assert seen.headers.get("authorization") == INDEX_AUTH


# An http:// index URL that redirects to https:// (as ``http://pypi.org/simple`` does): the
# CONNECT of the second hop carries the proxy's login too. (It was lost when the login was
# one of the request's own headers, which aiohttp drops on a redirect to another origin.)
async def test_a_redirect_from_http_to_https_keeps_the_proxy_login(
    env: Environment, proxy: Proxy, https_origin: Origin, foo: IndexedFile
) -> None:
    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(https_origin.url + request.path_qs)

    app = web.Application()
    app.router.add_get("/{tail:.*}", moved)
    with ThreadedServer(app) as http_server:
        async with env.services(https_origin) as stack:
            pointer = await _fetch(stack, http_server.url + "/simple")
            _stored(stack, pointer, foo)
    assert [s.method for s in proxy.seen] == ["GET", "CONNECT", "CONNECT"]
    for seen in proxy.seen:
        assert seen.headers.get("proxy-authorization") == PROXY_AUTH


# -- 5. NO_PROXY on every hop of a redirect -----------------------------------------------------


def _moving_to(target: str) -> web.Application:
    """An app that redirects every request to the same path on ``target``."""

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound(target + request.path_qs)

    app = web.Application()
    app.router.add_get("/{tail:.*}", moved)
    return app


def _by_name(url: str) -> str:
    """Return ``url`` with its host 127.0.0.1 written ``localhost``: another host for
    ``NO_PROXY`` to name, on the same loopback."""
    return url.replace("//127.0.0.1:", "//localhost:", 1)


async def _fetch_via(stack: Stack, index_url: str, files_url: str) -> WheelPointer:
    """Read the page from ``index_url`` (``Http.get``), then download the wheel from
    ``files_url`` (``Http.download``), each request redirected once."""
    settings = stack.settings(index_url)
    files = await stack.index.project_files(settings, "foo", Freshness())
    file, location = next((f, loc) for f, loc in files.files if f.filename == WHEEL)
    moved = msgspec.structs.replace(file, url=files_url + FILE_PATH)
    return await stack.index.fetch_wheel(moved, stack.index.wheel_key(moved, location, "foo"))


# pip (requests) and uv choose the proxy again for each hop of a redirect; aiohttp kept the
# first hop's. A redirect to a host in NO_PROXY went to the proxy (which here refuses any
# host but 127.0.0.1), and one away from such a host skipped the proxy.
@pytest.mark.parametrize(
    "into_no_proxy",
    [pytest.param(True, id="into-no-proxy"), pytest.param(False, id="out-of-no-proxy")],
)
async def test_each_hop_of_a_redirect_gets_its_own_hosts_proxy(
    env: Environment, proxy: Proxy, http_origin: Origin, foo: IndexedFile, into_no_proxy: bool
) -> None:
    # localhost is in NO_PROXY, 127.0.0.1 is not: into it, the first hops (the page's and
    # the wheel's) go to 127.0.0.1 and are redirected to localhost; out of it, the reverse.
    with ThreadedServer(
        _moving_to(_by_name(http_origin.url) if into_no_proxy else http_origin.url)
    ) as mover:
        first = mover.url if into_no_proxy else _by_name(mover.url)
        async with env.services(http_origin, no_proxy="localhost") as stack:
            pointer = await _fetch_via(stack, first + "/simple", first)
            _stored(stack, pointer, foo)
    # Only the hops to 127.0.0.1 went through the proxy, each with its login.
    proxied = mover.url if into_no_proxy else http_origin.url
    assert [(s.method, s.target) for s in proxy.seen] == [
        ("GET", proxied + PAGE_PATH),
        ("GET", proxied + FILE_PATH),
    ]
    for seen in proxy.seen:
        assert seen.headers["proxy-authorization"] == PROXY_AUTH
    assert http_origin.paths() == [PAGE_PATH, FILE_PATH]
    for seen in http_origin.seen:
        assert "proxy-authorization" not in seen.headers
