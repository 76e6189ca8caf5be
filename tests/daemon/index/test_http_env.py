""":class:`Http` in the environment it is given: the proxy variables (``NO_PROXY``, a SOCKS
proxy, a proxy's password in errors and logs) and a :meth:`Http.close` that races downloads.

Straight against :class:`Http` (:meth:`Http._proxy`, :meth:`Http.get`,
:meth:`Http.download`), with servers on 127.0.0.1 only: the fake index, :class:`Socks` (a
port that records what it is sent), the authenticating :class:`Proxy` of
``test_proxy_credentials`` and the :class:`StallingServer` of ``test_bodies``.

Every proxy variable is cleared first (:func:`env`); a test sets those it is about. The
hosts a proxy is named for here (``proxy.example``) are never reached: :meth:`Http._proxy`
only answers which proxy a URL would take.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import aiohttp
import pytest
import yarl

from burrowd.daemon.errors import NetworkError
from burrowd.daemon.index import bodies
from burrowd.daemon.index.http import Http, RetriesExhausted, RetryPolicy, TransientError, _describe
from burrowd.daemon.scheduler import Limits, PrioritySemaphore
from tests.daemon.index.test_bodies import CHUNK, StallingServer
from tests.daemon.index.test_proxy_credentials import Proxy
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex, IndexedFile
from tests.support.sockets import SocketServer

#: A proxy that is never reached (the NO_PROXY tests only ask which proxy a URL takes).
PROXY = "http://proxy.example:3128"
WHEEL = "foo-1.0-py3-none-any.whl"
#: How a test reaches the network: :meth:`Http.get` (the daemon's loop, retried) or
#: :meth:`Http.download` (the bodies' loop, one attempt).
How = Literal["get", "download"]
HOWS = [pytest.param(h, id=h) for h in ("get", "download")]
#: The name of the bodies' thread (:class:`~burrowd.daemon.index.bodies.Bodies`).
BODIES_THREAD = "burrowd-download"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """Return ``monkeypatch``, no proxy variable set, and no netrc login from the user
    running the tests."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    return monkeypatch


@pytest.fixture
def foo(fake_index: FakeIndex) -> IndexedFile:
    (entry,) = fake_index.add(DistSpec("foo", "1.0"))
    assert entry.filename == WHEEL
    return entry


def _ignore(chunk: bytes) -> None:
    """A ``consume`` for :meth:`Http.download` that keeps nothing."""


async def _request(http: Http, how: How, url: str, tmp_path: Path) -> None:
    """GET ``url`` the way ``how`` says (a download goes to a file under ``tmp_path``)."""
    if how == "get":
        await http.get(url)
    else:
        dest = tmp_path / "d"
        dest.touch()
        await http.download(url, dest, _ignore)


def _bodies_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == BODIES_THREAD}


# -- 1. NO_PROXY --------------------------------------------------------------------------------


# ``::1`` is in most distributions' default no_proxy. It names a host, which urllib's
# proxy_bypass compares with the host alone: asked about ``[::1]:8080`` (the URL's netloc,
# as the daemon once did), it found no match, and requests to a local index went to the proxy.
@pytest.mark.parametrize("url", ["http://[::1]:8080/simple/", "https://[::1]/simple/"])
def test_no_proxy_matches_an_ipv6_literal(env: pytest.MonkeyPatch, url: str) -> None:
    env.setenv("http_proxy", PROXY)
    env.setenv("https_proxy", PROXY)
    env.setenv("no_proxy", "localhost,127.0.0.1,::1")
    http = Http(Limits())
    assert http._proxy(yarl.URL(url)) is None
    # Another IPv6 host still goes through the proxy (the answer above is not "never").
    assert http._proxy(yarl.URL("http://[::2]:8080/simple/")) is not None


# A ``host:port`` entry exempts that port only: the answer for one port must not be kept
# for the host's other ports (it was, when answers were cached per host).
def test_no_proxy_host_port_entry_is_answered_per_port(env: pytest.MonkeyPatch) -> None:
    env.setenv("http_proxy", PROXY)
    env.setenv("https_proxy", PROXY)
    env.setenv("no_proxy", "example.org:8080")
    http = Http(Limits())
    assert http._proxy(yarl.URL("http://example.org:8080/simple/")) is None
    assert http._proxy(yarl.URL("http://example.org:9090/simple/")) is not None


# A redirect's hop gets its proxy from its own URL as written: yarl leaves a default port out
# of the URL's text, and an entry ``host:443`` must still match ``https://host:443/``.
@pytest.mark.parametrize(
    ("url", "direct"),
    [("https://localhost:443/simple/", True), ("https://localhost/simple/", False)],
)
async def test_each_hop_is_judged_by_its_port_as_written(
    env: pytest.MonkeyPatch, url: str, direct: bool
) -> None:
    env.setenv("https_proxy", PROXY)
    env.setenv("no_proxy", "localhost:443")
    http = Http(Limits())

    class Hop:
        def __init__(self) -> None:
            self.url = yarl.URL(url)
            self.chosen: tuple[object, object] | None = None

        def update_proxy(self, proxy: object, auth: object, headers: object) -> None:
            assert auth is None
            self.chosen = (proxy, headers)

    hop = Hop()

    async def handler(request: object) -> aiohttp.ClientResponse:
        return aiohttp.ClientResponse.__new__(aiohttp.ClientResponse)

    await http._hop_proxy(hop, handler)  # type: ignore[arg-type]
    assert hop.chosen is not None
    proxy, headers = hop.chosen
    if direct:
        assert (proxy, headers) == (None, None)
    else:
        assert str(proxy) == PROXY
        assert isinstance(headers, dict)
        assert headers["User-Agent"].startswith("burrowd/")


# -- 2. a SOCKS proxy ---------------------------------------------------------------------------


class Socks(SocketServer):
    """A port on 127.0.0.1 that records the first bytes each client sends, then hangs up
    (as a SOCKS server does on a greeting that is not SOCKS)."""

    def __init__(self, scheme: str) -> None:
        self.first: list[bytes] = []
        super().__init__()
        #: The proxy's URL, as a proxy variable names it.
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    def serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(2)
            self.first.append(conn.recv(200))


@pytest.fixture(
    params=[
        pytest.param((variable, scheme), id=f"{variable}-{scheme}")
        for variable in ("ALL_PROXY", "http_proxy")
        for scheme in ("socks5", "socks5h", "socks4")
    ]
)
def socks(request: pytest.FixtureRequest, env: pytest.MonkeyPatch) -> Iterator[Socks]:
    """Return a :class:`Socks` that a proxy variable names, as the index's proxy."""
    variable, scheme = request.param
    with Socks(scheme) as server:
        env.setenv(variable, server.url)
        yield server


# ALL_PROXY=socks5://... is what GNOME and KDE proxy settings, ``ssh -D`` users and
# clash/v2ray set. aiohttp speaks HTTP to every proxy: handed a SOCKS one, it failed every
# page and file request (retried as broken connections). pip without its SOCKS extra refuses
# the proxy, uv speaks SOCKS; burrowd ignores the proxy, says so, and goes direct.
@pytest.mark.usefixtures("foo")
@pytest.mark.parametrize("how", HOWS)
async def test_a_socks_proxy_is_ignored_with_a_warning(
    socks: Socks,
    fake_index: FakeIndex,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    how: How,
) -> None:
    caplog.set_level(logging.WARNING)
    url = fake_index.simple_url + "/foo/" if how == "get" else fake_index.url_for(WHEEL)
    http = Http(Limits(), RetryPolicy(retries=0, timeout=5))
    await http.open()
    try:
        await _request(http, how, url, tmp_path)
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__}: {exc}; the SOCKS port got {socks.first!r}")
    finally:
        await http.close()
    assert socks.connections == 0, socks.first  # direct: the SOCKS port heard nothing
    assert f"ignoring the proxy {socks.url}" in caplog.text


# -- 3. a proxy's password ----------------------------------------------------------------------


# A proxy's login rides in its URL, which aiohttp names in its proxy errors: a proxy that
# refused the CONNECT (407) put the password in the error, which reaches the client and the
# logs. A 407 is also no broken connection: the same login would be refused again, so it
# is final (not retried) and says how to give the proxy its login: for an HTTPS target (the
# CONNECT is refused) and for an HTTP one (the request itself is).
@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize("how", HOWS)
async def test_a_407_from_the_proxy_is_final_and_never_shows_the_password(
    env: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    how: How,
    scheme: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    path = "/simple/foo/" if how == "get" else "/x.whl"
    url = f"{scheme}://127.0.0.1:9{path}"
    with Proxy(login=("proxy-user", "right")) as proxy:
        env.setenv(f"{scheme}_proxy", f"http://proxy-user:wrong-secret@127.0.0.1:{proxy.port}")
        http = Http(Limits(), RetryPolicy(retries=2, backoff=0.01, timeout=5))
        await http.open()
        try:
            with pytest.raises(NetworkError) as caught:
                await _request(http, how, url, tmp_path)
        finally:
            await http.close()
    assert "wrong-secret" not in str(caught.value)
    assert "wrong-secret" not in caplog.text
    assert not isinstance(caught.value, TransientError | RetriesExhausted), caught.value
    assert caught.value.status == 407
    assert "HTTPS_PROXY=http://user:password@proxy:port" in str(caught.value)
    # Asked once, not retried.
    assert [s.method for s in proxy.seen] == ["CONNECT" if scheme == "https" else "GET"]


# A variable without a scheme is read as an http:// proxy. One that is no URL even so (a
# port out of range) is ignored with a warning, which shows it redacted: the raw value
# ``user:s3cret@host`` reads as the scheme ``user`` with no login, so redacting the value
# as written left the password in the log.
def test_the_warning_about_a_schemeless_proxy_hides_its_password(
    env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env.setenv("https_proxy", "user:s3cret@proxy.example:99999")
    caplog.set_level(logging.WARNING)
    assert Http(Limits())._proxy(yarl.URL("https://pypi.org/simple/")) is None
    assert "proxy.example" in caplog.text  # warned about it...
    assert "s3cret" not in caplog.text  # ...without its password


# -- 4. close() ---------------------------------------------------------------------------------


# Close's last await is the page session's: the bodies are gone by then, the session not
# yet. A download granted its slots in that window (when a page GET finishing, or a retry's
# backoff, lands in it) started a new bodies' loop (thread, loop, session) after close, ran
# to completion, and nothing ever closed that loop. The window is a few loop iterations in
# practice; a slow connector close stretches it here.
async def test_no_download_starts_once_close_has_begun(
    env: pytest.MonkeyPatch, tmp_path: Path, fake_index: FakeIndex, foo: IndexedFile
) -> None:
    before = _bodies_threads()  # another test's thread that is still ending is not ours
    limits = Limits(network=PrioritySemaphore("network", 1))
    http = Http(limits, RetryPolicy(retries=0, timeout=30))
    await http.open()
    _ = http.session  # a page was fetched before
    dest = tmp_path / "d"
    dest.touch()

    real_close = aiohttp.TCPConnector.close

    async def slow_close(self: aiohttp.TCPConnector, *, abort_ssl: bool = False) -> None:
        await asyncio.sleep(0.3)
        await real_close(self, abort_ssl=abort_ssl)

    env.setattr(aiohttp.TCPConnector, "close", slow_close)

    async def holder() -> None:  # a page GET finishing while the session closes
        async with limits.network:
            await asyncio.sleep(0.1)

    held = asyncio.ensure_future(holder())
    await asyncio.sleep(0)
    download = asyncio.ensure_future(http.download(fake_index.url_for(foo.filename), dest, _ignore))
    await asyncio.sleep(0)
    await http.close()
    await asyncio.wait({held, download}, timeout=10)
    leaked = http._bodies
    threads = [t.name for t in _bodies_threads() - before]
    if not download.done():
        outcome: object = "the download is still running"
    else:
        outcome = download.exception() or f"downloaded {download.result()} bytes after close()"
    if leaked is not None:
        await leaked.close()
    assert leaked is None, (outcome, threads)
    assert threads == [], (outcome, threads)
    assert download.done(), outcome
    assert download.exception() is not None, outcome  # refused, not run after close()


# A write to a stalled disk (or dirty-page throttling) blocks the bodies' loop past close's
# grace. Close then cancelled its own clean-up before the loop ever ran it, and stopped the
# loop under the pending read: the caller of Http.download waited forever, the session was
# never closed, and the loop was dropped with a task pending. Now the caller is told at once
# and the loop cleans up, then stops, when it runs again.
async def test_close_with_the_bodies_loop_blocked_fails_the_download_at_once(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env.setattr(bodies, "_CLOSE_GRACE", 1.0)
    http = Http(Limits(), RetryPolicy(retries=0, timeout=30))
    await http.open()
    dest = tmp_path / "d"
    dest.touch()
    entered = threading.Event()
    slow = [True]

    def consume(chunk: bytes) -> None:  # the first write stalls 1.5 times the grace
        if slow[0]:
            slow[0] = False
            entered.set()
            time.sleep(1.5)

    with StallingServer(b"x" * (4 * CHUNK), upto=CHUNK + 1000) as server:
        download = asyncio.ensure_future(http.download(server.url + "/f.whl", dest, consume))
        assert await asyncio.to_thread(entered.wait, 5)
        pool = http._bodies
        assert pool is not None
        await http.close()
        done, _ = await asyncio.wait({download}, timeout=5)
        if not done:
            download.cancel()
        assert done == {download}, "Http.download still pending 5 s after Http.close()"
        assert isinstance(download.exception(), NetworkError), download.exception()
        # Once the write returns, the loop cancels the read, closes its session and stops.
        thread = pool._thread
        await asyncio.to_thread(thread.join, 5)
        assert not thread.is_alive()
        assert pool._session is None
        pool._loop.close()


# -- the user part of any URL in an error's text ------------------------------------------------


def test_an_error_text_never_shows_a_password_of_a_url_it_names() -> None:
    # aiohttp names URLs in some of its errors (a proxy's, which carries its login): the
    # text that reaches a message or a log hides every URL's user part.
    shown = _describe(
        OSError("via 'http://pu:s3cret@proxy:3128' and https://TOKEN@host/simple, done")
    )
    assert "s3cret" not in shown
    assert "TOKEN" not in shown
    assert "http://****@proxy:3128" in shown
    assert "https://****@host/simple" in shown
