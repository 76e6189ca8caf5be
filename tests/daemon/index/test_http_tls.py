"""HTTPS: every request verifies the server against the trust anchors, and its host name.

An index served over TLS on 127.0.0.1 with a certificate from a test authority: trusted
through ``SSL_CERT_FILE`` it answers; without that, or under a name its certificate does not
carry, the request fails at once (no retry) with an error that names the fix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple

import pytest
from aiohttp import web

from burrowd.daemon.errors import NetworkError
from burrowd.daemon.index.http import Http, RetryPolicy
from burrowd.daemon.scheduler import Limits
from tests.support.tls import HAVE_OPENSSL, Pki, issue_pki, server_context

pytestmark = pytest.mark.skipif(not HAVE_OPENSSL, reason="needs the openssl CLI")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test authority, and a certificate it issued for the IP address 127.0.0.1 only."""
    return issue_pki(tmp_path_factory.mktemp("pki"))


class Server(NamedTuple):
    port: int
    hits: list[str]


@pytest.fixture
async def server(pki: Pki) -> AsyncIterator[Server]:
    hits: list[str] = []

    async def page(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="<html>a page</html>")

    app = web.Application()
    app.router.add_get("/simple/demo/", page)
    context = server_context(pki)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Server(port, hits)
    finally:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[Http]:
    """An HTTP client as the daemon has one, opened after each test set its environment."""
    client = Http(Limits(), RetryPolicy(retries=2, backoff=0.01, budget=5.0, timeout=5.0))
    yield client
    await client.close()


async def test_a_server_of_an_authority_in_ssl_cert_file_answers(
    pki: Pki, server: Server, http: Http, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    await http.open()
    reply = await http.get(f"https://127.0.0.1:{server.port}/simple/demo/")
    assert reply.status == 200
    assert reply.body == b"<html>a page</html>"
    assert server.hits == ["/simple/demo/"]


async def test_an_untrusted_certificate_is_refused_at_once_naming_the_fix(
    pki: Pki, server: Server, http: Http, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    await http.open()
    url = f"https://127.0.0.1:{server.port}/simple/demo/"
    with pytest.raises(NetworkError) as caught:
        await http.get(url)
    message = str(caught.value)
    assert url in message
    assert "TLS failed" in message
    assert "certificate" in message.lower()
    assert "SSL_CERT_FILE" in message
    assert server.hits == []  # no request got through
    assert http.retries == 0  # a certificate problem would fail the same way again


async def test_a_host_name_the_certificate_does_not_carry_is_refused(
    pki: Pki, server: Server, http: Http, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Trusted authority, but the certificate names 127.0.0.1, not localhost.
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    await http.open()
    with pytest.raises(NetworkError) as caught:
        await http.get(f"https://localhost:{server.port}/simple/demo/")
    message = str(caught.value)
    assert "TLS failed" in message
    assert "localhost" in message
    assert "match" in message  # "... doesn't match 'localhost'": the name, not the authority
    assert server.hits == []
