"""Single-flight and bounded concurrency for work on artifacts.

:class:`OnceMap` makes sure one download, unpack or build per artifact runs at a time in this
daemon, whoever asks; the cache's entry locks do the same across processes. :class:`Limits`
bounds how much network and CPU work runs at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["Limits", "OnceMap"]

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


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
    """

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Task[V]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._running

    def __len__(self) -> int:
        return len(self._running)

    def keys(self) -> list[K]:
        """Return the keys being worked on."""
        return list(self._running)

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        """Return the result of ``work()`` for ``key``, running it at most once at a time."""
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda t, k=key: self._forget(k, t))  # type: ignore[misc]
        return await asyncio.shield(task)

    async def wait_all(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the work running now to end, then cancel it.

        For shutdown: work that spawned a subprocess ends best on its own (cancelling
        ``asyncio.create_subprocess_exec`` halfway can leave the loop waiting forever for
        the child's exit callback).
        """
        tasks = set(self._running.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)

    def _forget(self, key: K, task: asyncio.Task[V]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled() and task.exception() is not None:
            # Retrieved here so a failure nobody waited for is not logged as unhandled.
            log.debug("work for %r failed: %s", key, task.exception())


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass
class Limits:
    """Semaphores for each kind of work."""

    #: Concurrent HTTP requests to indexes and file hosts.
    network: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(48))
    #: Concurrent unpacks, each in a worker thread. More than the CPUs: unpacking a wheel of
    #: small files waits on file creation far more than it computes (the GIL is released).
    unpack: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(max(4, 3 * _cpu_count()))
    )
