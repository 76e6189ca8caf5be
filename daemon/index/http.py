"""One aiohttp session for every index and file host, with credentials and retries.

Credentials come from the index URL's user-info (``https://user:token@host/simple``) or from
``~/.netrc`` (``NETRC`` overrides), and are sent to that host only. URLs are redacted before
they reach a log line, an error message or ``status``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import netrc
import os
import random
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp

from burrowd.daemon.errors import NetworkError
from burrowd.daemon.scheduler import Limits

__all__ = ["Http", "Reply", "redact", "split_credentials"]

log = logging.getLogger(__name__)

RETRIES: Final = 3
RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
USER_AGENT: Final = "burrowd/0.1 (+https://github.com/burrowd)"


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """Return ``url`` without user-info, and the ``(user, password)`` it carried."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    clean = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return clean, (unquote(parts.username or ""), unquote(parts.password or ""))


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``****``."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:****@{host}", parts.path, parts.query, ""))


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


@dataclass(frozen=True, slots=True)
class Reply:
    """A fully read HTTP response."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


class Http:
    """The daemon's HTTP client.

    :param limits: bounds concurrent requests (``limits.network``).
    :param offline: refuse every request (``--offline`` is per request; this is a default).
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._session: aiohttp.ClientSession | None = None
        self._credentials: dict[str, tuple[str, str]] = {}
        self._netrc: netrc.netrc | bool | None = False
        self.requests = 0

    async def open(self) -> None:
        """Create the session (inside the running event loop)."""
        if self._session is not None:
            return
        ctx = ssl.create_default_context()
        connector = aiohttp.TCPConnector(
            limit=128, limit_per_host=64, ttl_dns_cache=300, ssl=ctx, enable_cleanup_closed=False
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, connect=30, sock_connect=30, sock_read=60),
            headers={"User-Agent": USER_AGENT},
            auto_decompress=True,
            trust_env=True,
        )

    async def close(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """Return the open session."""
        if self._session is None:
            raise RuntimeError("Http.open() was not called")
        return self._session

    # -- credentials ------------------------------------------------------------------------

    def add_credentials(self, url: str) -> str:
        """Remember credentials carried by ``url``; return the URL without them."""
        clean, creds = split_credentials(url)
        if creds is not None:
            self._credentials[_host(clean)] = creds
        return clean

    def _auth_headers(self, url: str, headers: Mapping[str, str] | None = None) -> dict[str, str]:
        """Return ``headers`` plus an ``Authorization`` header when ``url``'s host has one."""
        out = dict(headers or {})
        host = _host(url)
        creds = self._credentials.get(host)
        if creds is None:
            creds = self._from_netrc(urlsplit(url).hostname or "")
        if creds is not None:
            token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            out["Authorization"] = f"Basic {token}"
        return out

    def _from_netrc(self, host: str) -> tuple[str, str] | None:
        if self._netrc is False:
            path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
            try:
                self._netrc = netrc.netrc(path) if os.path.exists(path) else None
            except (netrc.NetrcParseError, OSError) as exc:
                log.warning("ignoring unreadable netrc %s: %s", path, exc)
                self._netrc = None
        if not isinstance(self._netrc, netrc.netrc):
            return None
        entry = self._netrc.authenticators(host)
        if entry is None:
            return None
        login, _account, password = entry
        return login or "", password or ""

    # -- requests ---------------------------------------------------------------------------

    async def get(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        ok: frozenset[int] = frozenset({200, 206, 304, 404, 410}),
    ) -> Reply:
        """GET ``url`` and read the body; retry transient failures.

        Statuses in ``ok`` are returned; others raise :class:`NetworkError`.
        """
        last: str = ""
        for attempt in range(RETRIES):
            if attempt:
                await asyncio.sleep(0.25 * 2**attempt * (0.5 + random.random()))
            try:
                async with self.limits.network:
                    self.requests += 1
                    async with self.session.get(
                        url, headers=self._auth_headers(url, headers)
                    ) as resp:
                        body = await resp.read()
                        if resp.status in ok:
                            return Reply(resp.status, dict(resp.headers), body, str(resp.url))
                        last = f"HTTP {resp.status} {resp.reason or ''}".strip()
                        if resp.status in (401, 403):
                            raise NetworkError(
                                redact(url),
                                f"{last}: the index wants credentials; put them in the index "
                                "URL (https://user:token@host/simple) or in ~/.netrc",
                                status=resp.status,
                            )
                        if resp.status not in RETRY_STATUSES:
                            raise NetworkError(redact(url), last, status=resp.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.info(
                "GET %s failed (%s), attempt %d of %d", redact(url), last, attempt + 1, RETRIES
            )
        raise NetworkError(redact(url), f"{last} (after {RETRIES} attempts)")

    @contextlib.asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[aiohttp.ClientResponse]:
        """Open one streaming GET of ``url``; raise :class:`NetworkError` unless it is a 200.

        No retry here: a download that fails midway is restarted whole by its caller.
        """
        async with self.limits.network:
            self.requests += 1
            try:
                async with self.session.get(url, headers=self._auth_headers(url)) as resp:
                    if resp.status != 200:
                        raise NetworkError(
                            redact(url),
                            f"HTTP {resp.status} {resp.reason or ''}".strip(),
                            status=resp.status,
                        )
                    yield resp
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                raise NetworkError(redact(url), reason) from exc
