"""One aiohttp session for every index and file host, with credentials and retries.

Credentials come from the index URL's user-info (``https://user:token@host/simple``) or from
``~/.netrc`` (``NETRC`` overrides), and are sent to that host only. URLs are redacted before
they reach a log line, an error message or ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import netrc
import os
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp
from multidict import CIMultiDict
from yarl import URL

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
    """Return ``url`` with its secret replaced by ``****``.

    That is the password of ``user:password@``, or the whole user part when it stands
    alone, since ``https://TOKEN@host`` is how many indexes take a token (pip does the same).
    """
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.netloc.rpartition("@")[2]  # as written: an IPv6 address keeps its brackets
    shown = f"{parts.username}:****" if parts.password is not None else "****"
    return urlunsplit((parts.scheme, f"{shown}@{host}", parts.path, parts.query, ""))


def strip_credentials(url: str, *, fragment: bool = True) -> str:
    """Return ``url`` without ``user:password@`` (and without its fragment if not ``fragment``).

    What ``direct_url.json`` records (PEP 610 asks for no credentials) and what two
    references to one file are compared by.
    """
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    kept = parts.fragment if fragment else ""
    if host == parts.netloc and kept == parts.fragment:
        return url
    return urlunsplit((parts.scheme, host, parts.path, parts.query, kept))


def _origin(url: str) -> str:
    """Return ``scheme://host:port``: credentials given for https never go out over http."""
    return f"{urlsplit(url).scheme}://{_host(url)}"


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
        # ssl=True: aiohttp's own verified default context, built when it is imported;
        # a second one would load the CA bundle again (tens of ms of daemon start-up).
        connector = aiohttp.TCPConnector(
            limit=128, limit_per_host=64, ttl_dns_cache=300, ssl=True, enable_cleanup_closed=False
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
            self._credentials[_origin(clean)] = creds
        return clean

    def _authorized(self, url: str) -> str | URL:
        """Return ``url`` carrying the credentials of its host, if it has any.

        aiohttp moves URL credentials into an ``Authorization`` header. They are not passed as
        a header here: with ``trust_env`` aiohttp looks netrc up itself when a request has no
        credentials, and refuses (ValueError) a request with both an explicit header and a
        netrc login for the host; and ``BasicAuth`` is deprecated.
        """
        creds = self._credentials.get(_origin(url))
        if creds is None:
            creds = self._from_netrc(urlsplit(url).hostname or "")
        if creds is None:
            return url
        return URL(url).with_user(creds[0]).with_password(creds[1])

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
                        self._authorized(url), headers=dict(headers or {})
                    ) as resp:
                        body = await resp.read()
                        if resp.status in ok:
                            # Case-insensitive, as HTTP header names are ("Etag" or "etag").
                            headers = CIMultiDict(resp.headers)
                            return Reply(resp.status, headers, body, str(resp.url))
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
                async with self.session.get(self._authorized(url)) as resp:
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
