"""Shared and exclusive ``flock`` locks with a timeout that names the resource.

Written on ``fcntl.flock`` rather than the ``filelock`` library because burrowd needs shared
locks (the cache root is held shared by every operation and exclusively by clean/prune),
which ``filelock`` does not offer on ``flock``, and because uv locks environments and its cache
with ``flock`` too, so both tools exclude each other only if they use the same primitive.

Waiting never blocks the event loop or a worker thread: the lock is tried without blocking,
then retried with a growing back-off until the timeout, so a waiting request can be
cancelled at once. ``flock`` locks belong to an open file description, so two holders in
one process exclude each other just as two processes do.

A lock that times out names its resource, its file, the timeout and, when it can be told,
who holds it: an exclusive holder writes ``pid N`` into the file; otherwise (shared holders,
or a uv that writes nothing) the kernel's ``/proc/locks`` table tells the pids.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import TracebackType

from burrowd.daemon.errors import LockTimeout
from burrowd.protocol.process import process_alive

__all__ = ["FileLock", "LockBusy", "exclusive", "shared"]

log = logging.getLogger(__name__)

_FIRST_DELAY = 0.005
_MAX_DELAY = 0.25


class LockBusy(Exception):
    """A non-blocking attempt found the lock held."""


class FileLock:
    """One ``flock`` on ``path``, shared or exclusive.

    :param path: the lock file; created (mode 0600) with its parent directory if missing.
    :param resource: what the lock protects, named in logs and in :class:`LockTimeout`.
    :param shared: take a shared lock instead of an exclusive one.
    :param timeout: seconds to wait before raising :class:`LockTimeout`; ``None`` waits forever.
    :param holder: written into the file once an exclusive lock is held (a pid, say), so a
        waiter's error can name who holds it.

    Example usage::

        async with FileLock(root / ".lock", "the cache", shared=True, timeout=300):
            ...
    """

    __slots__ = ("_fd", "holder", "path", "resource", "shared", "timeout")

    def __init__(
        self,
        path: Path,
        resource: str,
        *,
        shared: bool = False,
        timeout: float | None = None,
        holder: str = "",
    ) -> None:
        self.path = path
        self.resource = resource
        self.shared = shared
        self.timeout = timeout
        self.holder = holder
        self._fd: int | None = None

    @property
    def locked(self) -> bool:
        """Return whether this object holds the lock."""
        return self._fd is not None

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def try_acquire(self) -> bool:
        """Take the lock if it is free; return whether it was taken."""
        if self._fd is not None:
            raise RuntimeError(f"lock on {self.path} is already held by this object")
        fd = self._open()
        op = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        try:
            fcntl.flock(fd, op | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        self._fd = fd
        if self.holder and not self.shared:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, self.holder.encode(), 0)
        return True

    def read_holder(self) -> str:
        """Return what the current exclusive holder wrote into the file, if anything.

        A ``pid N`` whose process is gone is stale (the holder was killed before it could
        clear it; the lock itself died with it) and is not reported.
        """
        try:
            text = self.path.read_text(errors="replace").strip()[:200]
        except OSError:
            return ""
        match = re.fullmatch(r"pid (\d+)", text)
        if match is not None and not process_alive(int(match.group(1))):
            return ""
        return text

    def describe_holders(self) -> str:
        """Return who holds the lock: what the holder wrote, else what the kernel knows.

        ``/proc/locks`` (Linux) names the pids that hold a ``flock`` on the file: shared
        holders, and tools that write nothing (uv).
        """
        return self.read_holder() or _kernel_holders(self.path)

    def _timeout_error(self) -> LockTimeout:
        return LockTimeout(self.resource, self.path, self.timeout or 0.0, self.describe_holders())

    async def acquire(self) -> None:
        """Wait for the lock without blocking the event loop."""
        if self.try_acquire():
            return
        mode = "shared" if self.shared else "exclusive"
        log.info("waiting for %s lock on %s (%s)", mode, self.resource, self.path)
        start = time.monotonic()
        delay = _FIRST_DELAY
        while True:
            if self.timeout is not None and time.monotonic() - start >= self.timeout:
                raise self._timeout_error()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)
            if self.try_acquire():
                log.info(
                    "got %s lock on %s after %.2fs", mode, self.resource, time.monotonic() - start
                )
                return

    def acquire_blocking(self) -> None:
        """Wait for the lock in this thread (for worker threads and synchronous callers)."""
        if self.try_acquire():
            return
        start = time.monotonic()
        delay = _FIRST_DELAY
        while True:
            if self.timeout is not None and time.monotonic() - start >= self.timeout:
                raise self._timeout_error()
            time.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY)
            if self.try_acquire():
                return

    def release(self) -> None:
        """Release the lock; releasing an unheld lock does nothing."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                if self.holder and not self.shared:
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, 0)  # still ours: the next waiter names no one
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    async def __aenter__(self) -> FileLock:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __enter__(self) -> FileLock:
        self.acquire_blocking()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _command(pid: int) -> str:
    """Return `` (name)`` of a process, from ``/proc/<pid>/comm``; never its arguments.

    The command line is not shown: it may carry an index URL with a token.
    """
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            name = f.read().strip()
    except OSError:
        return ""
    return f" ({name})" if name else ""


def _kernel_holders(path: Path) -> str:
    """Return the ``flock`` holders of ``path`` that ``/proc/locks`` lists, or ``""``."""
    try:
        st = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:2146320 0 EOF"; "1: -> FLOCK ..." is a waiter.
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    holders: list[str] = []
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[5] != wanted:
            continue
        mode = "shared" if fields[3] == "READ" else "exclusive"
        pid = int(fields[4]) if fields[4].lstrip("-").isdigit() else -1
        who = f"pid {pid}{_command(pid)}" if pid > 0 else "a process of another namespace"
        if f"{who}, {mode}" not in holders:
            holders.append(f"{who}, {mode}")
    return "; ".join(holders[:5])


@contextlib.asynccontextmanager
async def shared(path: Path, resource: str, timeout: float | None) -> AsyncIterator[FileLock]:
    """Hold a shared lock on ``path`` for the block."""
    async with FileLock(path, resource, shared=True, timeout=timeout) as lock:
        yield lock


@contextlib.asynccontextmanager
async def exclusive(path: Path, resource: str, timeout: float | None) -> AsyncIterator[FileLock]:
    """Hold an exclusive lock on ``path`` for the block."""
    async with FileLock(path, resource, timeout=timeout) as lock:
        yield lock


@contextlib.contextmanager
def exclusive_blocking(path: Path, resource: str, timeout: float | None) -> Iterator[FileLock]:
    """Hold an exclusive lock on ``path`` for the block, waiting in this thread."""
    with FileLock(path, resource, timeout=timeout) as lock:
        yield lock
