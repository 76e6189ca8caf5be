"""One thin async handler per RPC method, composing the services of the daemon."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec

from burrowd.daemon.cache.maintenance import bucket_stats, clean, prune
from burrowd.daemon.errors import DaemonError, RequestCancelled, WatchRefused
from burrowd.daemon.installer import service as installer
from burrowd.daemon.prefetch import Prefetcher
from burrowd.daemon.requests import merge_index_options, prepare, read_requirement_inputs
from burrowd.daemon.resolver.service import resolve as resolve_requirements
from burrowd.daemon.scheduler import Priority, working_for
from burrowd.protocol import __version__
from burrowd.protocol import messages as m
from burrowd.protocol.build import build_id
from burrowd.protocol.errors import ErrorCode
from burrowd.protocol.jsonrpc import PROTOCOL_VERSION, WATCH_EVENT

if TYPE_CHECKING:
    from burrowd.daemon.rpc import Handler, RequestContext
    from burrowd.daemon.services import Services
    from burrowd.daemon.warmer import Warmer

__all__ = ["Handlers"]

R = TypeVar("R")

#: Methods doing package work for a person: warming jobs wait while any runs.
FOREGROUND: Final = frozenset({"resolve", "prefetch", "sync", "install", "uninstall", "venv"})


class Handlers:
    """The methods of the daemon, bound to its services."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def table(self) -> dict[str, Handler]:
        """Return method name -> handler for every method served."""
        return {name: self._attributed(name, handler) for name, handler in self._methods().items()}

    def _attributed(self, method: str, handler: Handler) -> Handler:
        """Wrap ``handler``: its work is done for its request, and its failure remembered.

        Package work counts as foreground: warming jobs wait while it runs.
        """
        services = self.services
        foreground = method in FOREGROUND

        async def run(params: Any, ctx: RequestContext) -> msgspec.Struct:
            label = f"request {ctx.id} ({ctx.method}, {ctx.connection.peer})"
            with working_for(Priority(label)):
                try:
                    if not foreground:
                        return await handler(params, ctx)
                    with services.foreground.running():
                        return await handler(params, ctx)
                except DaemonError as exc:
                    if not isinstance(exc, RequestCancelled):
                        services.record_error(label, int(exc.code), exc.message)
                    raise
                except (asyncio.CancelledError, KeyboardInterrupt):
                    raise
                except Exception as exc:
                    services.record_error(
                        label, int(ErrorCode.INTERNAL_ERROR), f"{type(exc).__name__}: {exc}"
                    )
                    raise

        return run

    def _methods(self) -> dict[str, Handler]:
        return {
            "initialize": self.initialize,
            "status": self.status,
            "shutdown": self.shutdown,
            "cache.dir": self.cache_dir,
            "cache.stats": self.cache_stats,
            "cache.clean": self.cache_clean,
            "cache.prune": self.cache_prune,
            "prefetch": self.prefetch,
            "resolve": self.resolve,
            "sync": self.sync,
            "install": self.install,
            "uninstall": self.uninstall,
            "list": self.list_packages,
            "venv": self.venv,
            "watch.add": self.watch_add,
            "watch.remove": self.watch_remove,
            "watch.list": self.watch_list,
            "watch.events": self.watch_events,
        }

    # -- lifecycle --------------------------------------------------------------------------

    async def initialize(
        self, params: m.InitializeParams, ctx: RequestContext
    ) -> m.InitializeResult:
        """Exchange versions and build ids with a client."""
        return m.InitializeResult(
            protocol_version=PROTOCOL_VERSION,
            server_version=__version__,
            server_build=build_id(),
            pid=os.getpid(),
        )

    async def status(self, params: m.StatusParams, ctx: RequestContext) -> m.StatusResult:
        """Describe the daemon; answers at once whatever else is running."""
        s = self.services
        now = time.monotonic()
        memory = s.index.memory_stats()
        size, size_age = s.cache_size.read()
        return m.StatusResult(
            pid=os.getpid(),
            version=__version__,
            build=build_id(),
            started_at=s.started_at,
            uptime=now - s.started_monotonic,
            socket=str(s.socket_path),
            cache_dir=str(s.config.cache_dir),
            log_file=str(s.config.log_file),
            connections=len(s.rpc.connections),
            requests=[r for r in s.rpc.request_infos() if r.id != ctx.id or r.method != "status"],
            idle_timeout=s.config.idle_timeout,
            idle_for=now - s.last_activity,
            memory_pages=memory["pages"],
            memory_metadata=memory["metadata"],
            http_requests=s.http.requests,
            downloads=s.index.downloads,
            builds=s.builder.builds,
            git_fetches=s.builder.git.fetches,
            jobs=[
                m.JobInfo(
                    kind=f.kind,
                    what=f.what,
                    elapsed=f.elapsed,
                    waiters=f.waiters,
                    background=f.background,
                )
                for flights in s.flight_maps()
                for f in flights.flights(now)
            ],
            queues=[
                m.QueueInfo(
                    name=q.name,
                    limit=q.limit,
                    running=q.running,
                    waiting=(waiting := q.waiting())[0],
                    waiting_background=waiting[1],
                    running_background=q.running_background,
                    background_limit=q.background_limit,
                )
                for q in s.limits.all()
            ],
            watches=s.warmer.infos() if s.warmer is not None else [],
            errors=list(s.errors),
            cache_size=size,
            cache_size_age=size_age,
            foreground=s.foreground.active,
            subscribers=s.rpc.subscribers(WATCH_EVENT),
        )

    async def shutdown(self, params: m.ShutdownParams, ctx: RequestContext) -> m.ShutdownResult:
        """Stop listening, give up the socket and lock, then exit once requests are done."""
        self.services.lifecycle.begin_shutdown("shutdown requested by a client")
        return m.ShutdownResult(pid=os.getpid())

    # -- cache ------------------------------------------------------------------------------

    async def cache_dir(self, params: m.CacheDirParams, ctx: RequestContext) -> m.CacheDirResult:
        """Return the cache root."""
        self.services.cache.ensure()
        return m.CacheDirResult(path=str(self.services.cache.root))

    async def cache_stats(
        self, params: m.CacheStatsParams, ctx: RequestContext
    ) -> m.CacheStatsResult:
        """Return entries and size per bucket."""
        cache = self.services.cache
        async with cache.operation():
            rows = await asyncio.to_thread(bucket_stats, cache)
        memory = self.services.index.memory_stats()
        return m.CacheStatsResult(
            path=str(cache.root),
            buckets=[m.BucketStats(bucket=b, entries=e, size=z) for b, e, z in rows],
            size=sum(z for _, _, z in rows),
            memory_pages=memory["pages"],
            memory_metadata=memory["metadata"],
        )

    async def cache_clean(
        self, params: m.CacheCleanParams, ctx: RequestContext
    ) -> m.CacheCleanResult:
        """Remove the cache's entries for some packages, or all of it."""
        cache = self.services.cache
        report = await self._exclusively(ctx, "cleaning", clean, cache, params.packages)
        self.services.index.forget(params.packages or None)
        self.services.candidates.clear()
        # A resolution kept may rest on what was just removed (a metadata file that failed
        # to read, a page): cleaning is how a user asks for everything to be read again.
        self.services.resolutions.clear()
        return m.CacheCleanResult(
            path=str(cache.root), packages=params.packages, entries=report.entries, size=report.size
        )

    async def cache_prune(
        self, params: m.CachePruneParams, ctx: RequestContext
    ) -> m.CachePruneResult:
        """Remove temporary debris, unreferenced archives and old bucket versions."""
        cache = self.services.cache
        report = await self._exclusively(ctx, "pruning", prune, cache)
        return m.CachePruneResult(path=str(cache.root), removed=report.removed, size=report.size)

    async def _exclusively(
        self, ctx: RequestContext, phase: str, work: Callable[..., R], *args: object
    ) -> R:
        """Run ``work`` in a worker thread while holding the cache alone."""

        def waiting() -> None:
            ctx.progress("waiting for the cache lock", force=True)

        async with self.services.exclusive(waiting):
            ctx.progress(phase, force=True)
            return await asyncio.to_thread(work, *args)

    # -- packages ---------------------------------------------------------------------------

    async def resolve(self, params: m.ResolveParams, ctx: RequestContext) -> m.ResolveResult:
        """Resolve requirements to pins in the pip-compile format."""

        def progress(phase: str, current: int, total: int | None) -> None:
            ctx.progress(phase, current, total)

        return await resolve_requirements(self.services, params, progress)

    async def prefetch(self, params: m.PrefetchParams, ctx: RequestContext) -> m.PrefetchResult:
        """Download and unpack pinned wheels into the cache."""
        s = self.services
        start = time.monotonic()
        async with s.cache.operation():
            inputs = await asyncio.to_thread(
                read_requirement_inputs, params.env, params.requirements, params.requirement_files
            )
            index = merge_index_options(params.index, inputs.options)
            request = await prepare(s, params.env, index, params.python, build=params.build)
            prefetcher = Prefetcher(s.index, s.candidates, request, ctx.progress, builder=s.builder)
            wheels = await prefetcher.run(inputs.entries)
        return m.PrefetchResult(
            target=request.target.describe(),
            wheels=wheels,
            downloaded=sum(1 for w in wheels if not w.cached),
            bytes=prefetcher.downloaded_bytes,
            elapsed=time.monotonic() - start,
            warnings=prefetcher.warnings,
        )

    # -- environments -----------------------------------------------------------------------

    async def sync(self, params: m.SyncParams, ctx: RequestContext) -> m.SyncResult:
        """Make an environment hold exactly the pins of requirements files."""
        return await installer.sync(self.services, params, ctx.progress)

    async def install(self, params: m.InstallParams, ctx: RequestContext) -> m.InstallResult:
        """Resolve requirements and add what they need to an environment."""
        return await installer.install(self.services, params, ctx.progress)

    async def uninstall(self, params: m.UninstallParams, ctx: RequestContext) -> m.UninstallResult:
        """Remove distributions from an environment."""
        return await installer.uninstall(self.services, params, ctx.progress)

    async def list_packages(self, params: m.ListParams, ctx: RequestContext) -> m.ListResult:
        """List the distributions of an environment."""
        return await installer.list_packages(self.services, params)

    async def venv(self, params: m.VenvParams, ctx: RequestContext) -> m.VenvResult:
        """Create a virtual environment."""
        return await installer.create_venv(self.services, params, ctx.progress)

    # -- watches ----------------------------------------------------------------------------

    def _warmer(self) -> Warmer:
        warmer = self.services.warmer
        if warmer is None:
            raise WatchRefused(
                "",
                "watches need the daemon, and this request runs in-process (--no-daemon)",
                "run the command without --no-daemon",
            )
        return warmer

    async def watch_add(self, params: m.WatchAddParams, ctx: RequestContext) -> m.WatchAddResult:
        """Watch requirement inputs and warm them now and on every change."""
        return m.WatchAddResult(watches=await self._warmer().add(params))

    async def watch_remove(
        self, params: m.WatchRemoveParams, ctx: RequestContext
    ) -> m.WatchRemoveResult:
        """Stop watching files; cancel their warming."""
        return m.WatchRemoveResult(removed=await self._warmer().remove(params))

    async def watch_list(self, params: m.WatchListParams, ctx: RequestContext) -> m.WatchListResult:
        """List the watches."""
        warmer = self.services.warmer
        return m.WatchListResult(watches=warmer.infos() if warmer is not None else [])

    async def watch_events(
        self, params: m.WatchEventsParams, ctx: RequestContext
    ) -> m.WatchEventsResult:
        """Subscribe the connection to ``watch.event`` notifications, or unsubscribe it."""
        warmer = self._warmer()
        self.services.rpc.subscribe(ctx.connection, WATCH_EVENT, params.subscribe)
        return m.WatchEventsResult(subscribed=params.subscribe, watches=warmer.infos())
