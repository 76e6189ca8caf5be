"""Warm the cache for watched requirement files, in the background.

When a watched file changes (a burst of writes counts once, see :class:`FileWatcher`), its
watch is warmed: a requirements input (``.in``, ``pyproject.toml``, a ``.txt`` with ranges)
is resolved as ``burrow compile`` would resolve it (same interpreter, indexes and options,
the output file's pins preferred, nothing written), and every wheel and build the result
needs is fetched; a file of exact pins (a lock file) is fetched as ``burrow sync`` would
install it. The compile and sync a person runs next then find everything in memory and in
the cache.

Warming is background work (see ``scheduler``): it pauses between steps while requests run,
and shared work it started is promoted when a request joins it. A new change of a file
cancels its running warming and starts again. Before the project pages a watch used expire,
they are revalidated, conditionally when the index gave validators, so a compile run later
still finds them fresh; a page that changed warms the watch again. Subscribers hear of
changed resolutions, yanked pins, finished prefetches and failures (``watch.event``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

import msgspec
from msgspec import Struct, field
from packaging.utils import canonicalize_name

from burrowd.daemon.candidates import parse_version
from burrowd.daemon.errors import DaemonError, WatchRefused
from burrowd.daemon.index.client import is_local
from burrowd.daemon.inputs.model import IndexOptions as FileOptions
from burrowd.daemon.inputs.model import RequirementEntry
from burrowd.daemon.inputs.requirements_txt import parse_requirements_file
from burrowd.daemon.prefetch import Prefetcher, pinned_version, pins_of
from burrowd.daemon.requests import PackageRequest, merge_index_options, prepare
from burrowd.daemon.resolver.service import locate_pins, output_preferences, resolve_pins
from burrowd.daemon.scheduler import Priority, pace, working_for
from burrowd.daemon.services import summary
from burrowd.daemon.watcher import FileWatcher, StoredWatch, WatchFile, WatchList
from burrowd.daemon.watcher import referenced_variables as _referenced
from burrowd.protocol import jsonrpc
from burrowd.protocol import messages as m
from burrowd.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from burrowd.daemon.services import Services

__all__ = ["Warmer", "watchable"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Warmings running at once (each resolves and downloads in parallel already).
CONCURRENT_WARMINGS: Final = 2
#: Seconds after start-up before restored watches are warmed: the request that started
#: the daemon goes first.
RESTORE_DELAY: Final = 0.5
#: A page is revalidated once this share of its freshness lifetime has passed.
REFRESH_AT: Final = 0.75
#: Fewest seconds between two revalidations of one watch's pages.
MIN_REFRESH: Final = 1.0
#: Seconds before pages that could not be revalidated are tried again.
REFRESH_RETRY: Final = 60.0
#: Longest sleep of the refresh loop.
REFRESH_TICK: Final = 60.0


def watchable(path: Path) -> bool:
    """Return whether ``path`` names a requirements input that can be watched."""
    return path.name == "pyproject.toml" or path.suffix in (".in", ".txt")


class _Outcome(Struct):
    """What one warming found."""

    kind: m.WatchKindName
    target: str
    pins: dict[str, str]
    files: frozenset[Path]
    yanked: list[tuple[str, str, str]]
    downloaded: int
    bytes: int
    pages: frozenset[tuple[str, str]]
    #: What to compare the pins with when there is no earlier warming: the lock file.
    baseline: dict[str, str] = field(default_factory=dict)


class _Watch(Struct, eq=False, dict=True):
    """A watch and what warming it did, in memory."""

    stored: StoredWatch
    #: The client's environment with all its variables (the stored one keeps only those the
    #: files name); after a restart both are the stored one.
    env: m.ClientEnv
    priority: Priority
    state: m.WatchStateName = "pending"
    kind: m.WatchKindName | None = None
    target: str = ""
    files: frozenset[Path] = frozenset()
    changed_at: float | None = None
    warmed_at: float | None = None
    elapsed: float = 0.0
    packages: int = 0
    downloaded: int = 0
    runs: int = 0
    error: str | None = None
    pages: frozenset[tuple[str, str]] = frozenset()
    refresh_at: float | None = None
    yanked: set[tuple[str, str]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None

    @property
    def id(self) -> int:
        return self.stored.id

    @property
    def path(self) -> Path:
        return Path(self.stored.params.requirement_files[0])

    def info(self) -> m.WatchInfo:
        state = self.state
        if state == "warming" and self.priority.held:
            state = "yielding"
        return m.WatchInfo(
            id=self.id,
            path=str(self.path),
            kind=self.kind,
            state=state,
            target=self.target,
            added_at=self.stored.added_at,
            files=sorted(str(f) for f in self.files),
            changed_at=self.changed_at,
            warmed_at=self.warmed_at,
            elapsed=self.elapsed,
            packages=self.packages,
            downloaded=self.downloaded,
            runs=self.runs,
            pages=len(self.pages),
            refresh_in=None if self.refresh_at is None else max(0.0, self.refresh_at - time.time()),
            error=self.error,
        )


def _describe_change(change: m.PinChange) -> str:
    if change.old is None:
        return f"+{change.name} {change.new}"
    if change.new is None:
        return f"-{change.name} {change.old}"
    return f"{change.name} {change.old} -> {change.new}"


def _quiet(*_args: Any, **_kwargs: Any) -> None:
    """Take progress nobody watches."""


async def _all(coros: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Await every coroutine; on the first failure cancel the others and raise it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class Warmer:
    """The watches of the daemon and the background work that keeps them warm."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.watches: dict[int, _Watch] = {}
        self._list = WatchList(services.config.watch_file)
        self._next_id = 1
        self._files = FileWatcher(self._changed, step=services.config.watch_debounce)
        self._slots = asyncio.Semaphore(CONCURRENT_WARMINGS)
        self._save_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._refresher: asyncio.Task[None] | None = None
        self._suspended = 0
        self._deferred: set[int] = set()
        self._reported_missing: set[int] = set()
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Restore the stored watches, warm them, and start watching and refreshing."""
        contents = await asyncio.to_thread(self._list.load)
        self._next_id = max(contents.next_id, 1 + max((w.id for w in contents.watches), default=0))
        for stored in contents.watches:
            watch = self._new_watch(stored, stored.params.env)
            self.watches[watch.id] = watch
            self._schedule(watch, delay=RESTORE_DELAY)
        if contents.watches:
            log.info("watching %d files again", len(contents.watches))
        self._watch_files()
        self._refresher = asyncio.ensure_future(self._refresh_loop())

    async def close(self) -> None:
        """Cancel every warming and stop watching (the watch list stays on disk)."""
        self._closing = True
        tasks = [w.task for w in self.watches.values() if w.task is not None]
        if self._refresher is not None:
            tasks.append(self._refresher)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._files.close()
        if self.watches:
            await self._save()  # what a cancelled warming had not saved yet

    def _new_watch(self, stored: StoredWatch, env: m.ClientEnv) -> _Watch:
        label = f"watch {stored.id} ({Path(stored.params.requirement_files[0]).name})"
        priority = Priority(label, background=True, gate=self.services.foreground)
        watch = _Watch(stored, env, priority)
        watch.files = frozenset([watch.path])
        return watch

    # -- the methods ----------------------------------------------------------------------

    def infos(self) -> list[m.WatchInfo]:
        """Describe every watch, in the order added."""
        return [w.info() for w in sorted(self.watches.values(), key=lambda w: w.id)]

    async def add(self, params: m.WatchAddParams) -> list[m.WatchInfo]:
        """Watch each file of ``params``; warm them now."""
        if params.requirements or params.stdin is not None or "-" in params.requirement_files:
            raise WatchRefused(
                "",
                "only files can be watched, not requirements given directly or standard input",
                "put them in a requirements.in and watch that",
            )
        if not params.requirement_files:
            raise WatchRefused(
                "", "no file given", "name a requirements.in, .txt or pyproject.toml"
            )
        cwd = Path(params.env.cwd)
        paths = [Path(os.path.normpath(cwd / f)) for f in params.requirement_files]
        for path in paths:
            if not watchable(path):
                raise WatchRefused(
                    str(path),
                    "not a requirements input",
                    "watch a *.in file, a requirements*.txt file or a pyproject.toml",
                )
            if not path.is_file():
                raise WatchRefused(str(path), "no such file", "create it first, then watch it")
        texts = await asyncio.to_thread(_texts, paths)
        added: list[_Watch] = []
        for path in paths:
            one = msgspec.structs.replace(
                params,
                requirement_files=[str(path)],
                env=msgspec.structs.replace(
                    params.env, variables=_referenced(texts, dict(params.env.variables))
                ),
                output_file=(
                    os.path.normpath(cwd / params.output_file) if params.output_file else None
                ),
                constraint_files=[os.path.normpath(cwd / f) for f in params.constraint_files],
                override_files=[os.path.normpath(cwd / f) for f in params.override_files],
            )
            existing = next((w for w in self.watches.values() if w.path == path), None)
            if existing is not None:
                existing.stored.params = one
                existing.env = params.env
                existing.yanked.clear()
                watch = existing
            else:
                stored = StoredWatch(id=self._next_id, added_at=time.time(), params=one)
                self._next_id += 1
                watch = self._new_watch(stored, params.env)
                self.watches[watch.id] = watch
            watch.changed_at = time.time()
            self._schedule(watch)
            added.append(watch)
        self._watch_files()
        await self._save()
        return [w.info() for w in added]

    async def remove(self, params: m.WatchRemoveParams) -> list[m.WatchInfo]:
        """Stop watching the named files; cancel their warming."""
        cwd = Path(params.env.cwd) if params.env is not None else None
        chosen: list[_Watch] = []
        if params.all:
            chosen = list(self.watches.values())
        for wid in params.ids:
            if wid not in self.watches:
                raise WatchRefused(
                    f"watch {wid}", "no such watch", "`burrow watch list` shows the watches"
                )
            chosen.append(self.watches[wid])
        for name in params.paths:
            path = Path(os.path.normpath(cwd / name if cwd is not None else Path(name)))
            found = [w for w in self.watches.values() if w.path == path]
            if not found:
                raise WatchRefused(
                    str(path), "it is not watched", "`burrow watch list` shows the watches"
                )
            chosen += found
        removed: dict[int, _Watch] = {w.id: w for w in chosen}
        tasks = []
        for watch in removed.values():
            del self.watches[watch.id]
            if watch.task is not None:
                watch.task.cancel()
                tasks.append(watch.task)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._watch_files()
        await self._save()
        return [w.info() for w in removed.values()]

    @contextlib.asynccontextmanager
    async def suspended(self) -> AsyncIterator[None]:
        """Cancel running warmings and start none until the block ends (``cache clean``).

        Warmings hold the cache's shared lock, which ``clean`` waits for; those cancelled
        start again afterwards.
        """
        self._suspended += 1
        tasks = []
        for watch in self.watches.values():
            if watch.task is not None:
                self._deferred.add(watch.id)
                watch.task.cancel()
                tasks.append(watch.task)
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            yield
        finally:
            self._suspended -= 1
            if not self._suspended:
                deferred, self._deferred = self._deferred, set()
                for wid in deferred:
                    again = self.watches.get(wid)
                    if again is not None:
                        self._schedule(again)

    # -- changes --------------------------------------------------------------------------

    def _watch_files(self) -> None:
        if self._closing:
            return
        files: set[Path] = set()
        for watch in self.watches.values():
            files |= watch.files | {watch.path}
        self._files.watch(files)

    def _changed(self, paths: set[Path]) -> None:
        """Warm the watches a change of ``paths`` concerns."""
        now = time.time()
        for watch in list(self.watches.values()):
            if not paths & (watch.files | {watch.path}):
                continue
            watch.changed_at = now
            if not watch.path.exists():
                self._missing(watch)
            else:
                self._reported_missing.discard(watch.id)
                self._schedule(watch)

    def _missing(self, watch: _Watch) -> None:
        if watch.task is not None:
            watch.task.cancel()
            watch.task = None
        watch.state = "missing"
        watch.refresh_at = None
        if watch.id not in self._reported_missing:
            self._reported_missing.add(watch.id)
            self._publish(
                watch, "watch-missing", message=f"{watch.path} disappeared; watching for it"
            )

    def _schedule(self, watch: _Watch, delay: float = 0.0) -> None:
        """Start warming ``watch``, cancelling a warming of it that is running."""
        if self._closing:
            return
        if watch.task is not None:
            watch.task.cancel()
            watch.task = None
        if self._suspended:
            self._deferred.add(watch.id)
            watch.state = "pending"
            return
        watch.state = "pending"
        watch.task = asyncio.ensure_future(self._job(watch, delay))

    # -- warming --------------------------------------------------------------------------

    async def _job(self, watch: _Watch, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            async with self._slots:
                with working_for(watch.priority):
                    await self._run(watch)
        finally:
            if watch.task is asyncio.current_task():
                watch.task = None

    async def _run(self, watch: _Watch) -> None:
        # Warming from here: a request running now holds it at once (``yielding``).
        watch.state = "warming"
        try:
            await pace()
        except asyncio.CancelledError:
            watch.state = "pending"
            raise
        if not watch.path.exists():
            self._missing(watch)
            return
        started = time.monotonic()
        try:
            async with self.services.cache.operation():
                outcome = await self._warm(watch)
        except asyncio.CancelledError:
            watch.state = "pending"
            raise
        except DaemonError as exc:
            self._failed(watch, int(exc.code), exc.message)
        except Exception as exc:
            log.exception("warming watch %d (%s) crashed", watch.id, watch.path)
            self._failed(
                watch, int(ErrorCode.INTERNAL_ERROR), f"internal error: {type(exc).__name__}: {exc}"
            )
        else:
            await self._warmed(watch, outcome, time.monotonic() - started)
        finally:
            watch.runs += 1
            self._watch_files()

    def _failed(self, watch: _Watch, code: int, message: str) -> None:
        first = summary(message) or "failed"
        log.info("warming watch %d (%s) failed: %s", watch.id, watch.path, first)
        watch.state = "failed"
        watch.error = first
        self.services.record_error(f"watch {watch.id} ({watch.path})", code, first)
        self._publish(watch, "warming-failed", message=message)
        self._plan_refresh(watch)

    async def _warmed(self, watch: _Watch, outcome: _Outcome, elapsed: float) -> None:
        before = watch.stored.pins or outcome.baseline
        # Saved before it shows as warm: a restart from then on keeps what this run found.
        changed = self._keep_variables(watch, await asyncio.to_thread(_texts, outcome.files))
        if outcome.pins != watch.stored.pins:
            watch.stored.pins = outcome.pins
            changed = True
        if changed:
            await self._save()
        watch.state = "warm"
        watch.error = None
        watch.kind = outcome.kind
        watch.target = outcome.target
        watch.files = outcome.files
        watch.warmed_at = time.time()
        watch.elapsed = elapsed
        watch.packages = len(outcome.pins)
        watch.downloaded = outcome.downloaded
        watch.pages = outcome.pages
        changes = [
            m.PinChange(name=name, old=before.get(name), new=outcome.pins.get(name))
            for name in sorted(set(before) | set(outcome.pins))
            if before.get(name) != outcome.pins.get(name)
        ]
        if changes and before:
            shown = ", ".join(f"{c.name} {c.old or '-'} -> {c.new or '-'}" for c in changes[:5]) + (
                f" and {len(changes) - 5} more" if len(changes) > 5 else ""
            )
            self._publish(watch, "resolution-changed", message=shown, changes=changes)
        found = set()
        for name, version, reason in outcome.yanked:
            found.add((name, version))
            if (name, version) not in watch.yanked:
                self._publish(
                    watch,
                    "yanked-pin",
                    message=f"{name}=={version} is yanked" + (f": {reason}" if reason else ""),
                    name=name,
                    version=version,
                    reason=reason or None,
                )
        watch.yanked = found
        self._publish(
            watch,
            "prefetch-done",
            message=f"{len(outcome.pins)} packages ready, {outcome.downloaded} fetched",
            packages=len(outcome.pins),
            downloaded=outcome.downloaded,
            bytes=outcome.bytes,
            elapsed=elapsed,
        )
        self._plan_refresh(watch)

    @staticmethod
    def _keep_variables(watch: _Watch, texts: list[str]) -> bool:
        """Store the variables every file the warming read names (includes too).

        Return whether they changed. Until a restart ``watch.env`` has all the client's
        variables; after one, the stored ones.
        """
        params = watch.stored.params
        kept = _referenced(texts, dict(watch.env.variables))
        if kept == dict(params.env.variables):
            return False
        watch.stored.params = msgspec.structs.replace(
            params, env=msgspec.structs.replace(params.env, variables=kept)
        )
        return True

    async def _warm(self, watch: _Watch) -> _Outcome:
        inputs = await asyncio.to_thread(_read_watched, watch, watch.path)
        if inputs.pinned:
            return await self._warm_pins(watch, inputs)
        return await self._warm_resolution(watch, inputs)

    async def _warm_resolution(self, watch: _Watch, inputs: _WatchedInputs) -> _Outcome:
        params = watch.stored.params
        shared = {f: getattr(params, f) for f in m.Requirements.__struct_fields__}
        shared["env"] = watch.env
        output = inputs.output
        resolve = m.ResolveParams(
            **shared,
            output_file=str(output) if output is not None else None,
            dry_run=True,
            command="burrow watch",
        )
        resolved = await resolve_pins(self.services, resolve, _quiet)
        entries: dict[str, RequirementEntry] = {}
        for entry in resolved.inputs.requirements:
            entries.setdefault(entry.name, entry)
        located = await locate_pins(self.services, resolved, entries)
        prefetcher = Prefetcher(
            self.services.index,
            self.services.candidates,
            resolved.request,
            _quiet,
            builder=self.services.builder,
        )
        fetched = await _all(
            prefetcher.fetch_located(loc, pins_of(entries[n]) if n in entries else None)
            for n, loc in located.items()
        )
        pins = {n: str(p.version) for n, p in resolved.resolution.pins.items()}
        registry = {n: v for n, v in pins.items() if located[n].direct is None}
        # The lock file's pins: a compile would change those it no longer can keep (yanked).
        found, _ = await asyncio.to_thread(output_preferences, resolve, output)
        locked = {n: str(v) for n, v in found.items()}
        yanked = await self._yanked(resolved.request, {**locked, **registry})
        return _Outcome(
            kind="resolve",
            target=resolved.request.target.describe(),
            pins=pins,
            files=inputs.files,
            yanked=yanked,
            downloaded=sum(1 for f in fetched if not f.cached),
            bytes=prefetcher.downloaded_bytes,
            pages=_remote(resolved.request.fresh.pages),
            baseline=locked,
        )

    async def _warm_pins(self, watch: _Watch, inputs: _WatchedInputs) -> _Outcome:
        params = watch.stored.params
        index = merge_index_options(params.index, inputs.options)
        request = await prepare(self.services, watch.env, index, params.python, build=params.build)
        prefetcher = Prefetcher(
            self.services.index,
            self.services.candidates,
            request,
            _quiet,
            builder=self.services.builder,
        )
        wheels = await prefetcher.run(inputs.entries)
        pins: dict[str, str] = {canonicalize_name(w.name): w.version for w in wheels}
        registry: dict[str, str] = {
            e.name: str(version)
            for e in inputs.entries
            if e.name in pins
            and not e.requirement.url
            and e.path is None
            and (version := pinned_version(e.requirement)) is not None
        }
        yanked = await self._yanked(request, registry)
        return _Outcome(
            kind="pins",
            target=request.target.describe(),
            pins=pins,
            files=inputs.files,
            yanked=yanked,
            downloaded=sum(1 for w in wheels if not w.cached),
            bytes=prefetcher.downloaded_bytes,
            pages=_remote(request.fresh.pages),
        )

    async def _yanked(
        self, request: PackageRequest, pins: Mapping[str, str]
    ) -> list[tuple[str, str, str]]:
        """Return ``(name, version, reason)`` of each pin that its index marks yanked."""

        async def one(name: str, text: str) -> tuple[str, str, str] | None:
            version = parse_version(text)
            if version is None:
                return None
            try:
                files = await self.services.index.project_files(
                    request.settings, name, request.fresh
                )
            except DaemonError:
                return None
            found = self.services.candidates.get(files, request.target).versions.get(version)
            if found is None or not found.yanked:
                return None
            return name, text, found.yank_reason

        # All pages at once (stale ones are revalidated in parallel); the network
        # semaphore bounds them.
        got = await asyncio.gather(*(one(n, t) for n, t in sorted(pins.items())))
        return [y for y in got if y is not None]

    # -- keeping pages fresh --------------------------------------------------------------

    def _plan_refresh(self, watch: _Watch) -> None:
        """Set when the pages ``watch`` used are next revalidated."""
        due: list[float] = []
        for location, name in watch.pages:
            span = self.services.index.page_expiry(location, name)
            if span is not None:
                stored, expires = span
                due.append(stored + REFRESH_AT * (expires - stored))
        if not due:
            watch.refresh_at = None
            return
        watch.refresh_at = max(min(due), time.time() + MIN_REFRESH)
        self._wake.set()

    async def _refresh_loop(self) -> None:
        while True:
            now = time.time()
            for watch in list(self.watches.values()):
                if watch.refresh_at is not None and watch.refresh_at <= now and watch.task is None:
                    watch.refresh_at = None
                    watch.task = asyncio.ensure_future(self._refresh_job(watch))
            upcoming = [w.refresh_at for w in self.watches.values() if w.refresh_at is not None]
            timeout = REFRESH_TICK if not upcoming else min(REFRESH_TICK, min(upcoming) - now)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.01, timeout))

    async def _refresh_job(self, watch: _Watch) -> None:
        changed = False
        try:
            async with self._slots:
                with working_for(watch.priority):
                    await pace()
                    index = self.services.index
                    async with self.services.cache.operation():
                        results = await asyncio.gather(
                            *(index.revalidate(loc, name) for loc, name in sorted(watch.pages)),
                            return_exceptions=True,
                        )
            failures = [r for r in results if isinstance(r, BaseException)]
            for failure in failures:
                if isinstance(failure, asyncio.CancelledError):
                    raise failure
            changed = any(r is True for r in results)
            if failures:
                log.info(
                    "revalidating the pages of watch %d: %d failed (%s)",
                    watch.id,
                    len(failures),
                    failures[0],
                )
        finally:
            if watch.task is asyncio.current_task():
                watch.task = None
        if changed:
            log.info("the index changed for watch %d (%s): warming it", watch.id, watch.path)
            self._schedule(watch)
        else:
            self._plan_refresh(watch)
            if failures and watch.refresh_at is not None:
                watch.refresh_at = max(watch.refresh_at, time.time() + REFRESH_RETRY)

    # -- notifications and persistence ----------------------------------------------------

    def _publish(self, watch: _Watch, event: m.WatchEventName, **fields: Any) -> None:
        message = m.WatchEvent(
            event=event, watch=watch.id, path=str(watch.path), at=time.time(), **fields
        )
        self.services.rpc.publish(jsonrpc.WATCH_EVENT, message)

    async def _save(self) -> None:
        contents = WatchFile(
            next_id=self._next_id,
            watches=[w.stored for w in sorted(self.watches.values(), key=lambda w: w.id)],
        )
        async with self._save_lock:
            try:
                await asyncio.to_thread(self._list.save, contents)
            except OSError as exc:
                log.warning("cannot save the watch list %s: %s", self._list.path, exc)


class _WatchedInputs(Struct):
    """A watched file as read: whether it is all pins, and every file it depends on."""

    pinned: bool
    files: frozenset[Path]
    output: Path | None = None
    entries: list[RequirementEntry] = field(default_factory=list)
    options: FileOptions | None = None


def _texts(paths: Iterable[Path]) -> list[str]:
    out = []
    for path in paths:
        with contextlib.suppress(OSError):
            out.append(path.read_text(encoding="utf-8", errors="replace"))
    return out


def _remote(pages: Iterable[tuple[str, str]]) -> frozenset[tuple[str, str]]:
    """Return the pages of remote indexes (local ones are checked by mtime at each use)."""
    return frozenset((loc, name) for loc, name in pages if name and not is_local(loc))


def _read_watched(watch: _Watch, path: Path) -> _WatchedInputs:
    """Read the watched file (blocking): its kind, its includes and its output file."""
    params = watch.stored.params
    files = {path, *map(Path, params.constraint_files), *map(Path, params.override_files)}
    output: Path | None = None
    if params.output_file:
        output = Path(params.output_file)
    elif path.suffix == ".in":
        beside = path.with_suffix(".txt")
        output = beside if beside.is_file() else None
    if output is not None:
        files.add(output)
    if path.name == "pyproject.toml":
        return _WatchedInputs(False, frozenset(files), output)
    parsed = parse_requirements_file(path, cwd=Path(watch.env.cwd), env=watch.env.variables)
    files.update(parsed.files)
    pinned = path.suffix == ".txt" and all(
        e.requirement.url or e.path is not None or pinned_version(e.requirement) is not None
        for e in parsed.requirements
    )
    if pinned:
        # A lock file: fetched as `burrow sync` installs it, nothing to resolve.
        return _WatchedInputs(True, frozenset(files), None, parsed.requirements, parsed.options)
    return _WatchedInputs(False, frozenset(files), output)
