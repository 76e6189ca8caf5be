"""The long-lived services of one daemon (or of one ``--no-daemon`` run), built in one place.

Each resource is opened by a cleanup context (an async generator, as aiohttp's
``cleanup_ctx``): what it sets up before ``yield`` is torn down after it, in reverse order.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol

from msgspec import Struct, field

from burrowd.daemon.builder.builder import Builder
from burrowd.daemon.cache.maintenance import SizeMeter
from burrowd.daemon.cache.store import Cache, remove_tree
from burrowd.daemon.cache.unpacker import UnpackPool
from burrowd.daemon.candidates import CandidateCache
from burrowd.daemon.config import Config
from burrowd.daemon.index.client import IndexClient
from burrowd.daemon.index.http import Http, RetryPolicy
from burrowd.daemon.installer.environment import EnvironmentLocks
from burrowd.daemon.installer.journal import Registry, replay_interrupted
from burrowd.daemon.installer.uninstall import Janitor
from burrowd.daemon.interpreters import Interpreters
from burrowd.daemon.resolver.memo import ResolutionMemo
from burrowd.daemon.scheduler import Foreground, Limits, OnceMap
from burrowd.protocol.messages import ErrorInfo

if TYPE_CHECKING:
    from burrowd.daemon.rpc import RpcServer
    from burrowd.daemon.warmer import Warmer

__all__ = ["CleanupContext", "Lifecycle", "Services", "open_services", "summary"]

#: Failures ``status`` remembers.
MAX_ERRORS: Final = 20


class Lifecycle(Protocol):
    """What handlers may ask of the process that hosts them."""

    def begin_shutdown(self, reason: str) -> None:
        """Stop taking work, give up the socket and lock, and exit when requests are done."""


class _NoLifecycle:
    """The lifecycle of an in-process run: there is nothing to shut down."""

    def begin_shutdown(self, reason: str) -> None:
        return None


class Services(Struct, eq=False, dict=True):
    """Everything a handler composes."""

    config: Config
    rpc: RpcServer
    socket_path: Path
    lifecycle: Lifecycle = field(default_factory=_NoLifecycle)
    started_at: float = field(default_factory=time.time)
    started_monotonic: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    limits: Limits = field(default_factory=Limits)
    candidates: CandidateCache = field(default_factory=CandidateCache)
    #: Requests doing package work now: warming waits for them.
    foreground: Foreground = field(default_factory=Foreground)
    #: The last failures, for ``status``.
    errors: collections.deque[ErrorInfo] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_ERRORS)
    )
    #: The watches and their warming; only a daemon has them (not ``--no-daemon``).
    warmer: Warmer | None = None
    #: The last resolutions, reused while their inputs and pages are unchanged.
    resolutions: ResolutionMemo[Any, Any] = field(default_factory=ResolutionMemo)
    #: Finish, at start, the changes killed processes left in any environment (a daemon);
    #: a ``--no-daemon`` command finishes only its own environment's, when it changes it.
    replay_at_start: bool = True

    def __post_init__(self) -> None:
        self.cache = Cache(
            self.config.cache_dir,
            lock_timeout=self.config.lock_timeout,
            unpack_limits=self.config.unpack_limits,
        )
        self.http = Http(self.limits, RetryPolicy.from_config(self.config))
        processes = self.config.unpack_processes
        self.unpacker = UnpackPool(processes) if processes else None
        self.index = IndexClient(
            self.cache, self.http, self.limits, ttl=self.config.index_ttl, unpacker=self.unpacker
        )
        self.interpreters = Interpreters(self.cache)
        self.environments = EnvironmentLocks(self.config.lock_timeout)
        self.janitor = Janitor()
        #: The environments with a change under way (replayed at start after a crash).
        self.journals = Registry(self.config.state_dir / "journals")
        self.builder = Builder(self)
        self.cache_size = SizeMeter(self.cache)

    def touch(self) -> None:
        """Record activity (a connection or request started or ended)."""
        self.last_activity = time.monotonic()

    def record_error(self, source: str, code: int, message: str) -> None:
        """Remember a failure for ``status`` (its summary line)."""
        self.errors.append(
            ErrorInfo(at=time.time(), source=source, code=code, message=summary(message))
        )

    @contextlib.asynccontextmanager
    async def exclusive(self, waiting: Callable[[], None] = lambda: None) -> AsyncIterator[Cache]:
        """Hold the cache alone (``cache clean``, ``cache prune``); ``waiting()`` is called
        before the wait for its lock.

        Warming holds the cache's shared lock, so it is suspended until the block ends, and
        the copies stored in the background land first, so a clean removes them too.
        """
        suspended: contextlib.AbstractAsyncContextManager[None] = (
            self.warmer.suspended() if self.warmer is not None else contextlib.nullcontext()
        )
        async with suspended:
            await self.index.drain()
            waiting()
            async with self.cache.exclusive() as cache:
                try:
                    yield cache
                finally:
                    self.cache_size.invalidate()

    def flight_maps(self) -> list[OnceMap[Any, Any]]:
        """Return every single-flight map, for ``status``."""
        return [
            *self.index.flight_maps(),
            *self.builder.flight_maps(),
            *self.interpreters.flight_maps(),
        ]


def summary(message: str) -> str:
    """Return the line that says what failed: the first, with the next if it only opens it.

    ("No solution found when resolving dependencies:" says less than the line after it.)
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    return lines[0]


CleanupContext = Callable[[Services], contextlib.AbstractAsyncContextManager[None]]


#: Worker threads for blocking work (file I/O, hashing, unpacking). The default executor's
#: ``cpu_count + 4`` is too few: a couple of long unpacks would starve the short writes of
#: dozens of concurrent downloads. Unpacks are bounded separately by ``Limits.unpack``.
WORKER_THREADS = 32


@contextlib.asynccontextmanager
async def _executor(services: Services) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=WORKER_THREADS, thread_name_prefix="burrowd-worker"
    )
    loop.set_default_executor(pool)
    try:
        yield
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


@contextlib.asynccontextmanager
async def _http(services: Services) -> AsyncIterator[None]:
    await services.http.open()
    try:
        yield
    finally:
        await services.index.drain()
        await services.http.close()


@contextlib.asynccontextmanager
async def _unpacker(services: Services) -> AsyncIterator[None]:
    try:
        yield
    finally:
        if services.unpacker is not None:
            await services.unpacker.aclose()


@contextlib.asynccontextmanager
async def _interpreters(services: Services) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await services.interpreters.drain()


@contextlib.asynccontextmanager
async def _janitor(services: Services) -> AsyncIterator[None]:
    # What killed processes left half written in the cache's temp directory goes first.
    services.janitor.discard(
        await asyncio.to_thread(services.cache.claim_stale_temps), remove=remove_tree
    )
    try:
        yield
    finally:
        # Directories an uninstall moved aside are deleted before the process exits.
        await services.janitor.drain()
        await services.cache_size.close()


@contextlib.asynccontextmanager
async def _journals(services: Services) -> AsyncIterator[None]:
    # Before the first request: an environment a killed daemon left half changed is whole
    # again before anybody reads it.
    if services.replay_at_start:
        for prefix, exc in await replay_interrupted(services.journals, services.environments):
            services.record_error(f"finishing the change of {prefix}", int(exc.code), exc.message)
    yield


#: Cleanup contexts run in order at start-up and in reverse order at exit.
CLEANUP_CONTEXTS: list[CleanupContext] = [
    _executor,
    _unpacker,
    _http,
    _interpreters,
    _janitor,
    _journals,
]


@contextlib.asynccontextmanager
async def open_services(services: Services) -> AsyncIterator[Services]:
    """Open every cleanup context for ``services`` and close them on exit."""
    async with contextlib.AsyncExitStack() as stack:
        for ctx in CLEANUP_CONTEXTS:
            await stack.enter_async_context(ctx(services))
        yield services
