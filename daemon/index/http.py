"""One aiohttp session for every index and file host, with credentials and retries.

Credentials come from the index URL's user-info (``https://user:token@host/simple``) or from
``~/.netrc`` (``NETRC`` overrides), and are sent to that host only. URLs are redacted before
they reach a log line, an error message or ``status``.

Every request goes through one retry policy (:class:`RetryPolicy`, :meth:`Http.retrying`):
a transient failure (HTTP 408/429/5xx, a reset or refused connection, a timeout, a body cut
short) is tried again after an exponential, jittered pause, ``Retry-After`` honoured, until
the attempts or the time budget run out; then a :class:`RetriesExhausted` names the URL,
what failed, how many attempts were made and what to do. Anything else fails at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import email.utils
import errno
import importlib.util
import logging
import netrc
import os
import random
import re
import ssl
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib.abc import Loader
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Final, NoReturn, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

from msgspec import Struct

if TYPE_CHECKING:
    import aiohttp

from burrowd.daemon.config import (
    DEFAULT_HTTP_TIMEOUT,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_BACKOFF,
    DEFAULT_RETRY_BUDGET,
    Config,
)
from burrowd.daemon.errors import NetworkError
from burrowd.daemon.index.bodies import Bodies, Refused, Sink, Stopping
from burrowd.daemon.scheduler import Limits


def _lazy(name: str, wrap: Callable[[Loader], Loader] | None = None) -> ModuleType:
    """Return module ``name``, executed on its first attribute access, not now.

    aiohttp costs about 55 ms to import: the daemon answers ``status`` before that, and
    :meth:`Http.preload` loads it on the event loop's thread right after start-up (a lazy
    module must be loaded by one thread: Python 3.11's ``LazyLoader`` is not thread-safe).
    ``wrap`` may wrap the module's own loader, to run code around its execution.
    """
    found = sys.modules.get(name)
    if found is not None:
        return found
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"No module named {name!r}")
    loader = importlib.util.LazyLoader(wrap(spec.loader) if wrap else spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


class _AiohttpLoader(Loader):
    """Executes aiohttp without reading the CA store.

    aiohttp builds two default contexts when imported, and both load the system's trust
    anchors (Debian's bundle of 144 certificates: about 20 ms each, on the thread that
    imports it, which is the event loop's). The daemon uses neither: its connector has its
    own verified context (:func:`verified_context`), built in a worker thread while aiohttp
    executes here (OpenSSL parses the bundle with the GIL released). So while aiohttp
    executes, ``SSLContext.set_default_verify_paths`` does nothing on the importing thread:
    aiohttp's defaults hold no trust anchor (its verified one would refuse every server: it
    fails closed), and the worker thread's context gets the whole store.
    aiohttp's import went from about 100 to 55 ms.
    """

    def __init__(self, inner: Loader) -> None:
        self.inner = inner

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # ssl.SSLContext is a Python class: an attribute set on it shadows the C method (or
        # whatever an ``ssl`` patcher such as truststore put there) until it is put back.
        cls = ssl.SSLContext
        own = vars(cls).get("set_default_verify_paths")
        load = cls.set_default_verify_paths
        importing = threading.get_ident()

        def no_store_on_this_thread(context: ssl.SSLContext) -> None:
            # The class is shared: verified_context(), running meanwhile in its worker
            # thread, loads the store as usual.
            if threading.get_ident() != importing:
                load(context)

        cls.set_default_verify_paths = no_store_on_this_thread  # type: ignore[method-assign,assignment]
        try:
            self.inner.exec_module(module)
        finally:
            if own is None:
                del cls.set_default_verify_paths
            else:
                cls.set_default_verify_paths = own  # type: ignore[method-assign]

    def __getattr__(self, name: str) -> object:
        # The wrapped loader's other methods (``get_source``, ``is_package``...).
        return getattr(self.inner, name)


if TYPE_CHECKING:
    import multidict
    import yarl
else:
    aiohttp = _lazy("aiohttp", _AiohttpLoader)
    multidict = _lazy("multidict")
    yarl = _lazy("yarl")

__all__ = [
    "ALPN",
    "Http",
    "Reply",
    "RetriesExhausted",
    "RetryPolicy",
    "TransientError",
    "redact",
    "split_credentials",
    "verified_context",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: No pause is longer than this (``Retry-After`` included).
MAX_BACKOFF: Final = 10.0
CONNECT_TIMEOUT: Final = 30.0
RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
USER_AGENT: Final = "burrowd/0.1 (+https://github.com/burrowd)"
#: Seconds :meth:`Http.close` waits for the TLS context still being built.
TLS_LOAD_GRACE: Final = 5.0
#: What the TLS handshake offers (ALPN): the client speaks HTTP/1.1, as aiohttp's own contexts.
ALPN: Final = ("http/1.1",)


def verified_context() -> ssl.SSLContext:
    """Return the TLS context every HTTPS request uses: it verifies the server against the
    system's trust anchors (``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` honoured, as by pip and
    uv) and its host name.

    Loading the anchors takes about 25 ms, with the GIL released: :class:`Http` runs this
    in a worker thread while the event loop's thread loads aiohttp.
    """
    context = ssl.create_default_context()
    context.set_alpn_protocols(ALPN)
    return context


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


class Reply(Struct, frozen=True):
    """A fully read HTTP response."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


class RetryPolicy(Struct, frozen=True, kw_only=True):
    """How often, and how patiently, a failing request is tried again.

    :param retries: attempts after the first one (so ``retries + 1`` in all).
    :param backoff: the pause after the first failure; each next pause doubles, up to
        :data:`MAX_BACKOFF`, and is jittered by +-50 % so that many clients failing together
        do not come back together.
    :param budget: seconds after the first attempt past which no retry starts: the total
        time a request may take is about ``budget`` plus one attempt.
    :param timeout: seconds without a byte before an attempt fails (and may be retried).
    """

    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_RETRY_BACKOFF
    budget: float = DEFAULT_RETRY_BUDGET
    timeout: float = DEFAULT_HTTP_TIMEOUT

    @classmethod
    def from_config(cls, config: Config) -> RetryPolicy:
        """Return the policy ``config`` asks for (``BURROW_RETRIES``, ``BURROW_RETRY_BACKOFF``,
        ``BURROW_RETRY_BUDGET``, ``BURROW_HTTP_TIMEOUT``)."""
        return cls(
            retries=config.retries,
            backoff=config.retry_backoff,
            budget=config.retry_budget,
            timeout=config.http_timeout,
        )

    @property
    def attempts(self) -> int:
        """Return the number of attempts a request gets at most."""
        return self.retries + 1

    def delay(self, failed: int, retry_after: float | None = None) -> float:
        """Return the pause after the ``failed``-th failed attempt (1 for the first)."""
        pause = min(MAX_BACKOFF, self.backoff * 2.0 ** (failed - 1)) * (0.5 + random.random())
        if retry_after is not None:
            pause = max(pause, retry_after)
        return min(MAX_BACKOFF, pause)


class TransientError(NetworkError):
    """One attempt failed in a way another attempt may not (5xx, reset, timeout, cut short).

    Outside :meth:`Http.retrying` it is an ordinary :class:`NetworkError`.
    """

    def __init__(
        self,
        url: str,
        reason: str,
        *,
        hint: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.reason = reason
        self.hint = hint
        self.retry_after = retry_after
        super().__init__(url, reason, status=status)


class RetriesExhausted(NetworkError):
    """A request failed transiently on every attempt the policy allows."""

    def __init__(self, last: TransientError, attempts: int, elapsed: float) -> None:
        self.last = last
        self.attempts = attempts
        self.elapsed = elapsed
        plural = "attempt" if attempts == 1 else "attempts"
        super().__init__(
            last.url,
            f"{last.reason} (after {attempts} {plural} over {elapsed:.1f}s); {last.hint}",
            status=last.status,
        )
        self.data.update(attempts=attempts, elapsed=round(elapsed, 3), reason=last.reason)


_SERVER_HINT: Final = (
    "the server is failing or overloaded: try again later, or use another index or mirror"
)
_CONNECTION_HINT: Final = (
    "the connection keeps breaking: check the network and any proxy (HTTPS_PROXY), then "
    "try again; BURROW_RETRIES sets how many times a request is retried"
)


def _retry_after(value: str | None, now: float) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait (delta or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


#: The user part of a URL inside a text (``scheme://user:secret@host``).
_USERINFO: Final = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s'\"]+@")


def _describe(exc: BaseException) -> str:
    """Return ``exc`` as its type and message, any URL's user part hidden: aiohttp names
    the proxy's URL, with the proxy's password, in some of its errors."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return _USERINFO.sub(r"\1****@", text)


def _proxy_url(named: str) -> yarl.URL | None:
    """Return the proxy a variable names, or None (direct) for one burrowd cannot use: a
    SOCKS proxy (aiohttp speaks HTTP to proxies only), or no URL at all; a warning says
    which."""
    written = named if "://" in named else f"http://{named}"
    try:
        proxy = yarl.URL(written)
    except ValueError:
        proxy = None
    if proxy is None or proxy.scheme not in ("http", "https") or not proxy.host:
        log.warning(
            "ignoring the proxy %s: burrowd reaches indexes through HTTP proxies only "
            "(http:// or https://); requests go direct",
            redact(written),
        )
        return None
    return proxy


#: A 407 from the proxy: of a ``CONNECT`` (an HTTPS target), or of an HTTP target's request.
_PROXY_LOGIN_WANTED: Final = (
    "HTTP 407 from the proxy: it wants credentials; put them in the proxy's URL "
    "(HTTPS_PROXY=http://user:password@proxy:port)"
)


def _classify(url: str, exc: BaseException, timeout: float) -> NetworkError:
    """Return the :class:`NetworkError` an aiohttp (or socket) failure of ``url`` stands for.

    Transient kinds become a :class:`TransientError`; a certificate, TLS or URL problem
    would fail the same way again and is final.
    """
    shown = redact(url)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return NetworkError(
            shown,
            f"TLS failed ({_describe(exc)}); if a proxy or a private index uses its own "
            "certificate authority, add it to SSL_CERT_FILE",
        )
    if isinstance(exc, aiohttp.InvalidURL):
        return NetworkError(shown, f"not a valid URL ({exc})")
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        if exc.status == 407:
            return NetworkError(shown, _PROXY_LOGIN_WANTED, status=407)
        return TransientError(
            shown,
            f"the proxy answered HTTP {exc.status} {exc.message}".strip(),
            hint="check the proxy (HTTPS_PROXY, HTTP_PROXY) and the network",
            status=exc.status,
        )
    if isinstance(exc, aiohttp.TooManyRedirects):
        # The same redirects would come again: final, not retried.
        return NetworkError(
            shown, f"{len(exc.history)} redirects in a row: the server redirects in a loop"
        )
    if isinstance(exc, TimeoutError):
        return TransientError(
            shown,
            f"timed out: no data for {timeout:g}s",
            hint="check the network and any proxy, or raise BURROW_HTTP_TIMEOUT for a slow index",
        )
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransientError(
            shown,
            f"the connection closed before the whole body arrived ({exc})",
            hint=_CONNECTION_HINT,
        )
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return TransientError(
            shown, "the server closed the connection without an answer", hint=_CONNECTION_HINT
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransientError(
            shown,
            f"cannot connect ({exc.strerror or _describe(exc)})",
            hint="check the index URL, the network and any proxy (HTTPS_PROXY)",
        )
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return TransientError(shown, "the connection was reset", hint=_CONNECTION_HINT)
    return TransientError(shown, _describe(exc), hint=_CONNECTION_HINT)


class Http:
    """The daemon's HTTP client.

    :param limits: bounds concurrent requests (``limits.network``).
    :param policy: how failing requests are retried; the daemon's comes from its
        :class:`~burrowd.daemon.config.Config` (:meth:`RetryPolicy.from_config`), and
        :class:`RetryPolicy`'s defaults hold when none is given.
    """

    def __init__(self, limits: Limits, policy: RetryPolicy | None = None) -> None:
        self.limits = limits
        self.policy = RetryPolicy() if policy is None else policy
        self._session: aiohttp.ClientSession | None = None
        self._bodies: Bodies | None = None
        self._tls: concurrent.futures.Future[ssl.SSLContext] | None = None
        self._closed = False
        self._credentials: dict[str, tuple[str, str]] = {}
        self._proxies: dict[tuple[str, str, int | None], yarl.URL | None] = {}
        self._netrc: netrc.netrc | bool | None = False
        self.requests = 0
        #: Attempts that failed transiently and were tried again.
        self.retries = 0

    async def open(self) -> None:
        """Allow requests again; the session is made on first use (aiohttp loads then,
        or at :meth:`preload`). The TLS context starts loading now, in a worker thread."""
        self._closed = False
        self._tls_context()

    def preload(self) -> None:
        """Load aiohttp now (on the event loop's thread), before a request needs it."""
        self._tls_context()
        _ = aiohttp.ClientSession

    def _tls_context(self) -> concurrent.futures.Future[ssl.SSLContext]:
        """Return the verified TLS context, started (once) in a worker thread.

        A thread of its own, not the loop's executor: a first request would otherwise find
        the executor's threads busy reading the cache, and wait for them.
        """
        if self._tls is None:
            done: concurrent.futures.Future[ssl.SSLContext] = concurrent.futures.Future()

            def build() -> None:
                try:
                    done.set_result(verified_context())
                except BaseException as exc:  # handed to the first request, which says so
                    done.set_exception(exc)

            threading.Thread(target=build, name="burrowd-tls", daemon=True).start()
            self._tls = done
        return self._tls

    def _open(self) -> aiohttp.ClientSession:
        """Create the session (inside the running event loop)."""
        # Started before aiohttp was loaded, it is ready by now (or in a few ms).
        context = self._tls_context().result()
        connector = aiohttp.TCPConnector(
            limit=128,
            limit_per_host=64,
            ttl_dns_cache=300,
            ssl=context,
            enable_cleanup_closed=False,
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=min(CONNECT_TIMEOUT, self.policy.timeout),
                sock_connect=min(CONNECT_TIMEOUT, self.policy.timeout),
                sock_read=self.policy.timeout,
            ),
            headers={"User-Agent": USER_AGENT},
            auto_decompress=True,
            # Proxies come from the environment per host and per hop (:meth:`_hop_proxy`),
            # credentials from the URL or netrc (:meth:`_authorized`).
            trust_env=False,
            middlewares=(self._hop_proxy,),
        )

    async def _hop_proxy(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        """Send each hop of a request through the proxy of its own URL (a client middleware).

        aiohttp follows a redirect through the proxy its first URL was given. pip (requests)
        and uv choose again for every hop, so a redirect to a host in ``NO_PROXY`` goes
        direct, and one from such a host to another goes through the proxy. The proxy's
        credentials ride in its URL (:meth:`_proxy`): aiohttp sends them in the ``CONNECT``
        of an HTTPS target and in the request of an HTTP one (``proxy_auth`` would do the
        same, but aiohttp 3.14 deprecates it; ``proxy_headers`` reach only a ``CONNECT``).
        """
        proxy = self._proxy(request.url)
        # A fresh dict each hop (aiohttp adds Host to it): the CONNECT names burrowd, as
        # every request does, not aiohttp and Python's versions.
        headers = {"User-Agent": USER_AGENT} if proxy is not None else None
        request.update_proxy(proxy, None, headers)
        return await handler(request)

    async def close(self) -> None:
        """Close the session and its connections; later requests fail, they never
        open a session nobody would close (a task outliving its request, at shutdown)."""
        self._closed = True
        if self._bodies is not None:
            await self._bodies.close()
            self._bodies = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._tls is not None:
            # A thread still inside OpenSSL when the interpreter finalizes crashes it; the
            # load takes tens of milliseconds, and a trust store that hangs (a dead network
            # mount in SSL_CERT_DIR) must not hang the shutdown.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.wrap_future(self._tls), TLS_LOAD_GRACE)

    @property
    def session(self) -> aiohttp.ClientSession:
        """Return the session, made on first use."""
        if self._session is None:
            if self._closed:
                raise RuntimeError("the daemon's HTTP client is closed (shutting down)")
            self._session = self._open()
        return self._session

    # -- credentials ------------------------------------------------------------------------

    def add_credentials(self, url: str) -> str:
        """Remember credentials carried by ``url``; return the URL without them."""
        clean, creds = split_credentials(url)
        if creds is not None:
            self._credentials[_origin(clean)] = creds
        return clean

    def _authorized(self, url: str) -> str | yarl.URL:
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
        return yarl.URL(url).with_user(creds[0]).with_password(creds[1])

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

    async def retrying(self, url: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` until it returns, retrying on :class:`TransientError`.

        ``attempt`` makes one whole request of ``url`` (a fresh download restarts from the
        first byte). Any other exception ends the request at once. When the attempts or the
        time budget are used up, raise :class:`RetriesExhausted`.
        """
        policy = self.policy
        start = time.monotonic()
        failed = 0
        while True:
            try:
                return await attempt()
            except TransientError as exc:
                last = exc
            failed += 1
            elapsed = time.monotonic() - start
            if failed >= policy.attempts:
                break
            pause = policy.delay(failed, last.retry_after)
            if elapsed + pause > policy.budget:
                log.info("no retry of %s: the %gs budget is spent", redact(url), policy.budget)
                break
            log.info(
                "GET %s failed (%s), attempt %d of %d; trying again in %.2fs",
                redact(url),
                last.reason,
                failed,
                policy.attempts,
                pause,
            )
            self.retries += 1
            await asyncio.sleep(pause)
        log.warning("GET %s failed %d times: %s", redact(url), failed, last.reason)
        raise RetriesExhausted(last, failed, elapsed)

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

        async def once() -> Reply:
            async with self.limits.network:
                self.requests += 1
                try:
                    async with self._get(url, headers) as resp:
                        if resp.status not in ok:
                            self._refuse(url, resp.status, resp.reason, resp.headers)
                        body = await resp.read()
                        # Case-insensitive, as HTTP header names are ("Etag" or "etag").
                        got = multidict.CIMultiDict(resp.headers)
                        return Reply(resp.status, got, body, str(resp.url))
                except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                    raise _classify(url, exc, self.policy.timeout) from exc

        return await self.retrying(url, once)

    def _get(
        self, url: str, headers: Mapping[str, str] | None = None
    ) -> aiohttp.client._RequestContextManager:
        """Start a GET of ``url`` with its host's credentials and proxy."""
        return self.session.get(self._authorized(url), headers=dict(headers or {}))

    def _proxy(self, url: yarl.URL) -> yarl.URL | None:
        """Return the proxy the environment names for ``url``'s host and port as written
        (its credentials in the URL, as the variable gave them), looked up once per host.

        ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY`` and ``NO_PROXY``, read as pip and
        uv read them (``urllib.request``). Not aiohttp's lookup: it fills a proxy's missing
        login from netrc, where a ``default`` line would send the index's credentials to
        the proxy; and with ``trust_env`` it would look up again, in a worker thread, for
        every request. The daemon's environment never changes: one answer per host holds.
        """
        # The port as written: yarl leaves a default one out of str(url), and NO_PROXY may
        # name it (``localhost:443``).
        scheme, host, port = url.scheme, (url.host or "").lower(), url.explicit_port
        key = (scheme, host, port)
        if key in self._proxies:
            return self._proxies[key]
        import urllib.request  # noqa: PLC0415 - not at the daemon's start: ~10 ms

        found: yarl.URL | None = None
        proxies = urllib.request.getproxies()
        named = proxies.get(scheme) or proxies.get("all")
        # NO_PROXY names hosts (``::1``, not ``[::1]:8080``), or a host with its port.
        bypass = urllib.request.proxy_bypass
        written = f":{port}" if port is not None else ""
        if named and not (bypass(host) or (written and bypass(f"{host}{written}"))):
            found = _proxy_url(named)
        self._proxies[key] = found
        return found

    async def download(
        self,
        url: str,
        dest: Path,
        consume: Callable[[bytes], None],
        on_bytes: Callable[[int], None] | None = None,
    ) -> int:
        """GET ``url`` into ``dest`` once; return the body's size.

        ``dest`` must exist (it is truncated). The body is read on the bodies' own loop
        (:mod:`.bodies`): each chunk goes to ``consume`` there, in order, then to
        ``on_bytes`` on this loop. Anything but a 200 raises the :class:`NetworkError` it
        stands for, and a failure on the way (a reset, a timeout, a body cut short) a
        :class:`TransientError`: a caller retries by running the whole download again
        inside :meth:`retrying`. An error of ``dest`` itself is raised as it is.
        """
        loop = asyncio.get_running_loop()
        cancelled = False

        def report(n: int) -> None:
            # Once a cancelled call has taken back what it counted, a report posted by the
            # bodies' thread meanwhile must not count again.
            if on_bytes is not None and not cancelled:
                on_bytes(n)

        def progress(n: int) -> None:
            if on_bytes is not None:
                loop.call_soon_threadsafe(report, n)

        # A file is sent as it is: a server that gzips a .tar.gz on the way would change
        # the bytes whose hash is checked.
        options = {"headers": {"Accept-Encoding": "identity"}}
        async with self.limits.downloads, self.limits.network:
            self.requests += 1
            bodies = self._bodies_loop()
            try:
                return await bodies.fetch(
                    self._authorized(url), options, Sink(dest, consume, progress)
                )
            except asyncio.CancelledError:
                cancelled = True
                raise
            except Stopping as exc:
                raise NetworkError(redact(url), "the daemon is stopping") from exc
            except Refused as exc:
                self._refuse(url, exc.status, exc.reason, exc.headers)
            except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
                raise _classify(url, exc, self.policy.timeout) from exc

    def _bodies_loop(self) -> Bodies:
        if self._closed:
            raise RuntimeError("the daemon's HTTP client is closed (shutting down)")
        if self._bodies is None:
            _ = self.session  # aiohttp loads on this thread (LazyLoader is not thread-safe)
            self._bodies = Bodies(self._open)
        return self._bodies

    @staticmethod
    def _refuse(url: str, code: int, reason: str | None, headers: Mapping[str, str]) -> NoReturn:
        """Raise the error a response of an unwanted status stands for."""
        status = f"HTTP {code} {reason or ''}".strip()
        if code == 407:
            # Only a proxy sends it: here to an HTTP target's request (the CONNECT of an
            # HTTPS one fails in _classify), so the fix is the same.
            raise NetworkError(redact(url), _PROXY_LOGIN_WANTED, status=code)
        if code in (401, 403):
            raise NetworkError(
                redact(url),
                f"{status}: the index wants credentials; put them in the index URL "
                "(https://user:token@host/simple) or in ~/.netrc",
                status=code,
            )
        if code in RETRY_STATUSES:
            raise TransientError(
                redact(url),
                status,
                hint=_SERVER_HINT,
                status=code,
                retry_after=_retry_after(headers.get("Retry-After"), time.time()),
            )
        raise NetworkError(redact(url), status, status=code)
