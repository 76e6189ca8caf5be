"""Single-flight, bounded concurrency and priorities for the work of the daemon.

:class:`OnceMap` makes sure one download, unpack or build per artifact runs at a time in this
daemon, whoever asks; the cache's entry locks do the same across processes. :class:`Limits`
bounds how much network and CPU work runs at once.

Work is done for someone: a :class:`Priority`, held in a context variable, says for whom (a
request, a warming job) and whether it is background work. Foreground requests always go
first: a :class:`PrioritySemaphore` gives a free slot to a waiting foreground task before any
background one, and background work calls :func:`pace` between its steps, which holds it
while the :class:`Foreground` gate counts requests at work. Shared work started for a warming
job runs at background priority until a request joins it; it is then promoted, so a request
never waits behind work that yields to requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator
from typing import Final, Generic, TypeVar

from msgspec import Struct, field

__all__ = [
    "Foreground",
    "Limits",
    "OnceMap",
    "Priority",
    "PrioritySemaphore",
    "current_priority",
    "pace",
    "working_for",
]

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Longest stretch, in seconds, that paced work keeps the event loop before letting others run
#: (``status`` must answer within 50 ms whatever else runs).
LOOP_SLICE: Final = 0.005


class Priority:
    """For whom work is done: a label for ``status``, and whether it is background work."""

    __slots__ = ("_on_promote", "_waits_on", "background", "gate", "held", "label")

    def __init__(
        self, label: str, *, background: bool = False, gate: Foreground | None = None
    ) -> None:
        self.label = label
        self.background = background
        #: The gate background work waits at (``None``: it never waits).
        self.gate = gate
        #: Waiting at the gate now (``status`` shows the warming job as yielding).
        self.held = False
        self._on_promote: list[Callable[[], None]] = []
        #: The shared work this work waits for now: promoted with it.
        self._waits_on: list[Priority] = []

    def promote(self) -> None:
        """Make this foreground work from now on (a request came to depend on it).

        The shared work it waits for is promoted too: a request must never wait, through a
        chain of shared work, for background work that waits for requests to end.
        """
        if not self.background:
            return
        self.background = False
        callbacks, self._on_promote = self._on_promote, []
        for callback in callbacks:
            callback()
        for other in list(self._waits_on):
            other.promote()

    def __repr__(self) -> str:
        kind = "background" if self.background else "foreground"
        return f"<Priority {self.label!r} {kind}>"


_UNATTRIBUTED: Final = Priority("the daemon")
_current: contextvars.ContextVar[Priority] = contextvars.ContextVar(
    "burrowd_priority", default=_UNATTRIBUTED
)
_last_yield = 0.0


def current_priority() -> Priority:
    """Return the priority of the work running in this task."""
    return _current.get()


@contextlib.contextmanager
def working_for(priority: Priority) -> Iterator[Priority]:
    """Attribute the work of this task (and of the tasks it starts) to ``priority``."""
    token = _current.set(priority)
    try:
        yield priority
    finally:
        _current.reset(token)


async def pace() -> None:
    """Let other work run: yield the event loop when due, and hold background work back.

    Cheap when nothing is due: call it between the steps of long work. Background work
    (a warming job) waits here while foreground requests are at work.
    """
    global _last_yield
    now = time.monotonic()
    if now - _last_yield >= LOOP_SLICE:
        _last_yield = now
        await asyncio.sleep(0)
    priority = _current.get()
    if priority.background and priority.gate is not None and priority.gate.active:
        await priority.gate.hold(priority)


class Foreground:
    """Count the requests doing package work; background work waits while there are any."""

    def __init__(self) -> None:
        self.active = 0
        self._waiters: list[asyncio.Future[None]] = []

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Count a foreground request for as long as the block runs."""
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            if not self.active:
                self._wake()

    @property
    def held(self) -> int:
        """Return how many background tasks wait at the gate now."""
        return sum(1 for f in self._waiters if not f.done())

    async def hold(self, priority: Priority) -> None:
        """Wait until no foreground request runs, or until ``priority`` is promoted."""
        loop = asyncio.get_running_loop()
        priority.held = True
        try:
            await self._hold(priority, loop)
        finally:
            priority.held = False

    async def _hold(self, priority: Priority, loop: asyncio.AbstractEventLoop) -> None:
        while self.active and priority.background:
            waiter: asyncio.Future[None] = loop.create_future()

            def wake(w: asyncio.Future[None] = waiter) -> None:
                if not w.done():
                    w.set_result(None)

            self._waiters.append(waiter)
            priority._on_promote.append(wake)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                with contextlib.suppress(ValueError):
                    priority._on_promote.remove(wake)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class _Waiter(Struct, eq=False):
    future: asyncio.Future[None]
    priority: Priority
    #: Arrival order at the semaphore: among equal weights, the earlier waiter goes first.
    arrival: int
    #: Among waiters of one priority, the heaviest is served first (ties: arrival order).
    weight: float = 0.0
    #: Whether the slot was granted to background work (it counts against the share).
    background: bool = False


#: A waiter in a queue's heap: the smallest entry is the heaviest, earliest waiter.
_Entry = tuple[float, int, _Waiter]

#: Stale heap entries tolerated beyond the queued waiters before the heaps are rebuilt.
_STALE_SLACK: Final = 64


def _entry(waiter: _Waiter) -> _Entry:
    return (-waiter.weight, waiter.arrival, waiter)


class _Promotable:
    """The background waiters of one priority at one semaphore, moved up if it is promoted."""

    __slots__ = ("priority", "semaphore", "waiters")

    def __init__(self, semaphore: PrioritySemaphore, priority: Priority) -> None:
        self.semaphore = semaphore
        self.priority = priority
        self.waiters: dict[_Waiter, None] = {}

    def __call__(self) -> None:
        self.semaphore._promoted(self)


class PrioritySemaphore:
    """A semaphore that gives a free slot to foreground waiters before background ones.

    Waiters are ordered by (priority, weight, arrival): any foreground waiter goes before
    every background one, then the heaviest (the ``weight`` given to :meth:`acquire`, 0 by
    default) goes first, and equal weights keep arrival order. A background waiter promoted
    while it waits (a request joined its shared work) counts as foreground from then on,
    keeping its weight and its place in arrival order. Background work holds at most
    ``background_limit`` slots at once: the rest stay for requests, and fewer busy worker
    threads leave the event loop (and ``status``) quick.

    Waiters wait in two heaps, one per priority, keyed by (-weight, arrival): a large fill
    queues a thousand unpacks, and each release must pick the next one in O(log n), not by
    scanning them all. A cancelled or granted waiter is not searched for in the heaps: its
    entry is dropped when it reaches the top (its future is done), and a promoted waiter is
    pushed on the foreground heap, leaving a stale background entry behind. The heaps are
    rebuilt when stale entries outnumber the waiters, so they never grow with cancellations.
    """

    def __init__(self, name: str, limit: int, background_limit: int | None = None) -> None:
        self.name = name
        self.limit = limit
        self.background_limit = limit if background_limit is None else background_limit
        self.running = 0
        self.running_background = 0
        #: The waiters queued, in arrival order, with those cancelled that have not run since.
        self._waiters: dict[_Waiter, None] = {}
        self._foreground: list[_Entry] = []
        self._background: list[_Entry] = []
        #: Background waiters by priority, to move them up when their priority is promoted.
        self._promotable: dict[Priority, _Promotable] = {}
        self._arrivals = itertools.count()
        #: The slots each task holds (background or not), released in reverse order.
        self._held: dict[asyncio.Task[object] | None, list[bool]] = {}

    def waiting(self) -> tuple[int, int]:
        """Return how many foreground and background tasks wait for a slot."""
        fg = bg = 0
        for waiter in self._waiters:
            if waiter.future.done():
                continue
            if waiter.priority.background:
                bg += 1
            else:
                fg += 1
        return fg, bg

    def _free_for(self, background: bool) -> bool:
        if self.running >= self.limit:
            return False
        return not background or self.running_background < self.background_limit

    async def acquire(self, weight: float = 0.0) -> None:
        """Take a slot, waiting for one if none is free."""
        priority = _current.get()
        if not self._waiters and self._free_for(priority.background):
            self._take(priority.background)
            self._held.setdefault(asyncio.current_task(), []).append(priority.background)
            return
        future = asyncio.get_running_loop().create_future()
        waiter = _Waiter(future, priority, next(self._arrivals), weight=weight)
        self._queue(waiter)
        # Slots may be free while background waiters wait for their share: a request
        # (or background work under its share) takes one at once.
        self._wake()
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self._give_back(waiter.background)  # granted just as it was cancelled
            else:
                self._dequeue(waiter)
            raise
        self._held.setdefault(asyncio.current_task(), []).append(waiter.background)

    def release(self) -> None:
        """Give a slot back, to the next foreground waiter if there is one."""
        task = asyncio.current_task()
        held = self._held.get(task)
        background = held.pop() if held else False
        if held is not None and not held:
            del self._held[task]
        self._give_back(background)

    def _take(self, background: bool) -> None:
        self.running += 1
        if background:
            self.running_background += 1

    def _give_back(self, background: bool) -> None:
        self.running -= 1
        if background:
            self.running_background -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.running < self.limit:
            heap = self._foreground
            if not self._skim(heap):
                heap = self._background
                if not self._skim(heap):
                    self._clear()  # only waiters cancelled since they last ran are left
                    return
                if self.running_background >= self.background_limit:
                    return  # the free slots stay for requests
            waiter = heapq.heappop(heap)[2]
            self._dequeue(waiter)
            waiter.background = waiter.priority.background
            self._take(waiter.background)
            waiter.future.set_result(None)

    @staticmethod
    def _skim(heap: list[_Entry]) -> bool:
        """Drop the stale entries from the top of ``heap``; return whether a waiter is left.

        A promoted waiter's background entry needs no check: while it waits, its foreground
        entry is served first, so the background heap is only read once it is done.
        """
        while heap:
            if not heap[0][2].future.done():
                return True
            heapq.heappop(heap)
        return False

    def _queue(self, waiter: _Waiter) -> None:
        self._waiters[waiter] = None
        priority = waiter.priority
        if not priority.background:
            heapq.heappush(self._foreground, _entry(waiter))
            return
        heapq.heappush(self._background, _entry(waiter))
        promotable = self._promotable.get(priority)
        if promotable is None:
            promotable = self._promotable[priority] = _Promotable(self, priority)
            priority._on_promote.append(promotable)
        promotable.waiters[waiter] = None

    def _dequeue(self, waiter: _Waiter) -> None:
        self._waiters.pop(waiter, None)
        promotable = self._promotable.get(waiter.priority)
        if promotable is not None:
            promotable.waiters.pop(waiter, None)
            if not promotable.waiters:
                # A long warming job must not collect one callback per wait on its priority.
                del self._promotable[waiter.priority]
                with contextlib.suppress(ValueError):
                    waiter.priority._on_promote.remove(promotable)
        stale = len(self._foreground) + len(self._background) - len(self._waiters)
        if stale > len(self._waiters) + _STALE_SLACK:
            self._compact()

    def _promoted(self, promotable: _Promotable) -> None:
        # Called by Priority.promote(), which has already dropped this callback.
        if self._promotable.get(promotable.priority) is not promotable:
            return
        del self._promotable[promotable.priority]
        for waiter in promotable.waiters:
            if not waiter.future.done():
                heapq.heappush(self._foreground, _entry(waiter))

    def _compact(self) -> None:
        """Rebuild the heaps without their stale entries (rebuilt in place: O(n))."""
        self._foreground[:] = [e for e in self._foreground if not e[2].future.done()]
        self._background[:] = [
            e for e in self._background if not e[2].future.done() and e[2].priority.background
        ]
        heapq.heapify(self._foreground)
        heapq.heapify(self._background)

    def _clear(self) -> None:
        self._waiters.clear()
        self._foreground.clear()
        self._background.clear()
        for promotable in self._promotable.values():
            with contextlib.suppress(ValueError):
                promotable.priority._on_promote.remove(promotable)
        self._promotable.clear()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    @contextlib.asynccontextmanager
    async def weighted(self, weight: float) -> AsyncIterator[None]:
        """Hold a slot, asked for with ``weight`` (see :meth:`acquire`)."""
        await self.acquire(weight)
        try:
            yield
        finally:
            self.release()


class _Flight(Struct, Generic[V], eq=False):
    task: asyncio.Task[V]
    priority: Priority
    started: float
    waiters: list[Priority] = field(default_factory=list)


class FlightInfo(Struct, frozen=True):
    """One piece of shared work in flight, for ``status``."""

    kind: str
    what: str
    elapsed: float
    waiters: list[str]
    background: bool


class OnceMap(Generic[K, V]):
    """Run the work for each key once; concurrent callers of the same key share its result.

    Contract:

    - :meth:`run` with a key nobody is working on starts ``work()`` in its own task and
      waits for it; a caller arriving while that task runs waits for the same task.
    - The work is shielded: cancelling one waiter (a client cancelled its request) never
      cancels the shared work, which finishes for the others (and fills the cache).
    - When the work ends, the key is forgotten: its result lives in the cache or in
      memory elsewhere, and a failure is retried by the next caller, not replayed.
    - An exception from the work is raised in every waiter.
    - The work runs with a priority of its own: background if a background caller started
      it, promoted to foreground as soon as a foreground caller waits for it.

    :param kind: what the work is (``wheel``, ``page``), for ``status``.
    :param describe: how ``status`` shows a key.
    """

    def __init__(self, kind: str = "work", describe: Callable[[K], str] = str) -> None:
        self.kind = kind
        self.describe = describe
        self._running: dict[K, _Flight[V]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._running

    def __len__(self) -> int:
        return len(self._running)

    def keys(self) -> list[K]:
        """Return the keys being worked on."""
        return list(self._running)

    def flights(self, now: float) -> list[FlightInfo]:
        """Describe the work in flight and who waits for it."""
        return [
            FlightInfo(
                kind=self.kind,
                what=self.describe(key),
                elapsed=now - flight.started,
                waiters=sorted({w.label for w in flight.waiters}),
                background=flight.priority.background,
            )
            for key, flight in list(self._running.items())
        ]

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        """Return the result of ``work()`` for ``key``, running it at most once at a time."""
        caller = _current.get()
        flight = self._running.get(key)
        if flight is None:
            priority = Priority(caller.label, background=caller.background, gate=caller.gate)
            context = contextvars.copy_context()
            context.run(_current.set, priority)
            task = asyncio.get_running_loop().create_task(_awaited(work), context=context)
            flight = _Flight(task, priority, time.monotonic())
            self._running[key] = flight
            task.add_done_callback(lambda t, k=key: self._forget(k, t))  # type: ignore[misc]
        elif not caller.background:
            flight.priority.promote()
        flight.waiters.append(caller)
        caller._waits_on.append(flight.priority)
        try:
            return await asyncio.shield(flight.task)
        finally:
            with contextlib.suppress(ValueError):
                flight.waiters.remove(caller)
            with contextlib.suppress(ValueError):
                caller._waits_on.remove(flight.priority)

    async def wait_all(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the work running now to end, then cancel it.

        For shutdown: work that spawned a subprocess ends best on its own (cancelling
        ``asyncio.create_subprocess_exec`` halfway can leave the loop waiting forever for
        the child's exit callback).
        """
        tasks = {flight.task for flight in self._running.values()}
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    def _forget(self, key: K, task: asyncio.Task[V]) -> None:
        flight = self._running.get(key)
        if flight is not None and flight.task is task:
            del self._running[key]
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here so a failure nobody waited for is not logged as unhandled.
            log.debug("work for %r failed: %s", key, task.exception())


async def _awaited(work: Callable[[], Awaitable[V]]) -> V:
    return await work()


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Limits(Struct, dict=True):
    """Semaphores for each kind of work."""

    #: Concurrent HTTP requests to indexes and file hosts (a third for warming).
    network: PrioritySemaphore = field(
        default_factory=lambda: PrioritySemaphore("network", 48, background_limit=16)
    )
    #: Concurrent wheel and sdist downloads, read on the bodies' loop (a third for warming).
    #: Eight to twelve connections already take this machine's whole bandwidth (250 MB in
    #: half a second); more only start every download later, while the unpacks wait for a
    #: first one to finish. Each also takes a ``network`` slot, after this one: a download
    #: waiting here holds no slot a page could use.
    downloads: PrioritySemaphore = field(
        default_factory=lambda: PrioritySemaphore("downloads", 12, background_limit=4)
    )
    #: Concurrent unpacks, each in a worker thread: one per CPU. Creating files costs CPU in
    #: the kernel, not waiting, and each member also needs the GIL; more threads only took
    #: it from the downloads (a fill of the large set: downloads done at 4.6 s with six,
    #: 2.3 s with two, and the whole fill sooner). Warming leaves one CPU to requests.
    unpack: PrioritySemaphore = field(
        default_factory=lambda: PrioritySemaphore(
            "unpack", max(2, _cpu_count()), background_limit=max(1, _cpu_count() - 1)
        )
    )
    #: Build backends running at once (each is a process that may use a CPU fully); warming
    #: leaves one CPU free when there are several.
    build: PrioritySemaphore = field(
        default_factory=lambda: PrioritySemaphore(
            "build", _cpu_count(), background_limit=max(1, _cpu_count() - 1)
        )
    )

    def all(self) -> list[PrioritySemaphore]:
        """Return every semaphore, for ``status``."""
        return [self.network, self.downloads, self.unpack, self.build]
