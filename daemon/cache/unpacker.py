"""Unpack large wheels in worker processes, so that unpacking runs beside the event loop.

Unpacking is CPU work (inflating, hashing every member against RECORD, and the kernel's
file creation), and each member also runs Python code. In worker threads it shared the
daemon's interpreter lock with the event loop: filling the cache with the large benchmark
set, downloads that take 1.7 s alone took 4.6 s beside the unpacks, and the unpacks could
not use both CPUs. Worker processes have their own interpreter.

:class:`UnpackPool` keeps up to ``size`` workers (``python -m
burrowd.daemon.cache.unpacker``), started when first needed (by the index client as soon as
a wheel that will need one starts to download: :meth:`UnpackPool.prestart`) and reused. A
job is one :func:`~burrowd.daemon.cache.archive.unpack_wheel` call; its result or error comes
back whole (an :class:`InvalidDistribution` with the same message, a full disk as the same
``OSError``), so callers see what an unpack in a thread gives. ``multiprocessing`` is not
used: its pools re-import the daemon's ``__main__`` and start helper processes, and a dead
worker breaks the whole pool; here a worker is a plain child speaking length-prefixed
msgpack over its stdin and stdout.

A worker dies with the daemon (``PR_SET_PDEATHSIG`` on Linux, set as for build hooks by
:func:`~burrowd.protocol.process.dies_with_parent`, and at the end of its stdin anywhere),
so a killed daemon leaves no writer behind in the cache; the temporary directory of a job
cut short is named with the worker's pid and removed like any other temporary entry of a
dead process. A worker ignores the signals that ask for a graceful stop (a ``systemctl
stop``, a Ctrl-C in the daemon's terminal): the daemon is the one to stop, and a worker
finishes its job, then ends with its stdin.

A worker imports burrowd the way the daemon did (``-P``: not from the working directory)
and checks it runs the daemon's build: code changed on disk since the daemon started (an
upgrade, an edited checkout) answers every job with an error that says so, rather than
unpacking with other code.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Final

import msgspec

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.store import Cache, remove_tree
from burrowd.daemon.errors import CacheError, DiskFull, InvalidDistribution
from burrowd.protocol.build import build_id
from burrowd.protocol.process import dies_with_parent

__all__ = ["UnpackPool", "main"]

_LENGTH: Final = struct.Struct(">I")
#: Seconds a worker gets to exit after its stdin closes, before it is killed.
_EXIT_GRACE: Final = 5.0
#: Seconds between looks at the pool while every worker is busy.
_WAIT_POLL: Final = 0.05


#: glibc's allocator in a worker keeps freed memory for the next member. By default a
#: large inflated member gets pages of its own (``mmap``, from 128 KiB up, a threshold that
#: only grows as such blocks are freed), given back when freed, so the next one is written
#: into memory the kernel must find and clear anew. Below 32 MiB (glibc's ceiling for this
#: threshold) members now reuse the heap, which is trimmed past 64 MiB free. A value the
#: user set stays; other allocators ignore these names.
_MALLOC: Final = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


class WorkerDied(Exception):
    """A worker process ended before it answered."""


def _frame(message: object) -> bytes:
    data = msgspec.msgpack.encode(message)
    return _LENGTH.pack(len(data)) + data


def _send(stream: IO[bytes], frame: bytes) -> None:
    stream.write(frame)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        return None
    return msgspec.msgpack.decode(data)


class _Worker:
    """One worker process and its pipes (used by one thread at a time)."""

    def __init__(self) -> None:
        command = [sys.executable, "-P", "-m", "burrowd.daemon.cache.unpacker", build_id()]
        self.process = subprocess.Popen(
            dies_with_parent(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            env={**_MALLOC, **os.environ},
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def call(self, job: bytes) -> list[Any]:
        """Send ``job`` (a frame); return the reply. Raise :class:`WorkerDied` if none comes."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None
        assert stdout is not None
        try:
            _send(stdin, job)
            reply = _receive(stdout)
        except (BrokenPipeError, ConnectionResetError, ValueError) as exc:
            raise WorkerDied(f"stopped ({exc})") from exc
        if not isinstance(reply, list) or not reply:
            # Its output ended: it is exiting, or has; say how, if it does so soon.
            try:
                code: int | None = self.process.wait(_EXIT_GRACE)
            except subprocess.TimeoutExpired:
                code = None
            raise WorkerDied("stopped" if code is None else f"stopped: {_describe_exit(code)}")
        return reply

    def close_stdin(self) -> None:
        """End the worker's input: it exits once its job (if any) is done."""
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()

    def stop(self, *, kill: bool = False) -> None:
        """Stop the worker: at the end of its stdin, or at once with ``kill``."""
        if kill:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        self.close_stdin()
        try:
            self.process.wait(_EXIT_GRACE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"it was killed by {signal.Signals(-code).name}"
    return f"it exited with status {code}"


class UnpackPool:
    """Up to ``size`` worker processes that unpack wheels; :meth:`unpack` blocks (call it
    from a worker thread), and is safe to call from several threads at once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: set[_Worker] = set()
        self._closed = False

    def prestart(self, wanted: int) -> None:
        """Start workers now, up to ``wanted`` (at most ``size``); blocks (call it from a
        worker thread).

        A worker takes about a tenth of a second of CPU to start (an interpreter and its
        imports). Started when the first wheel is ready to unpack, that is in the way of
        the fill's first unpacks; started when its download begins, it runs while the
        daemon is still reading index pages on one CPU, and the unpacks find it waiting.
        """
        while True:
            with self._lock:
                if self._closed or len(self._workers) >= min(wanted, self.size):
                    return
                worker = _Worker()
                self._workers.add(worker)
            self._idle.put(worker)

    @property
    def started(self) -> int:
        """Return how many workers are running or starting."""
        return len(self._workers)

    def pids(self) -> list[int]:
        """Return the pids of the running workers."""
        with self._lock:
            return sorted(w.pid for w in self._workers)

    def unpack(self, cache: Cache, wheel: Path, *, filename: str, sha256: str) -> Path:
        """Unpack ``wheel`` into ``cache`` in a worker; return the archive.

        Raise what :func:`~burrowd.daemon.cache.archive.unpack_wheel` raises, and
        :class:`CacheError` when the worker died before it answered.
        """
        limits = cache.unpack_limits
        target = cache.path(Bucket.ARCHIVE, sha256)
        # Paths as bytes: a cache path need not be UTF-8. Encoded before a worker is taken,
        # so a job that cannot be sent costs no worker.
        try:
            job = _frame(
                [
                    os.fsencode(cache.root),
                    os.fsencode(wheel),
                    filename,
                    sha256,
                    limits.max_files,
                    limits.max_size,
                ]
            )
        except (OverflowError, ValueError) as exc:
            raise CacheError(target, f"cannot hand {filename} to an unpack worker ({exc})") from exc
        try:
            reply = self._call(self._take(target), job, cache)
        except WorkerDied as first:
            if not _idle_death(first):
                raise CacheError(target, f"the process unpacking {filename} {first}") from first
            # A worker that died while idle never saw the job: a fresh one may run it.
            try:
                reply = self._call(self._take(target), job, cache)
            except WorkerDied as second:
                raise CacheError(target, f"the process unpacking {filename} {second}") from second
        return _result(reply)

    def _call(self, worker: _Worker, job: bytes, cache: Cache) -> list[Any]:
        """Run ``job`` on ``worker``; put it back idle after a reply, else discard it."""
        try:
            reply = worker.call(job)
        except BaseException:
            # Dead, or left mid-message by anything else: no later job may read its output.
            self._discard(worker, cache)
            raise
        self._idle.put(worker)
        return reply

    def close(self) -> None:
        """Stop every worker (each finishes the job it has first); blocks."""
        workers = self._begin_close()
        for worker in workers:
            worker.stop()

    async def aclose(self) -> None:
        """Stop every worker, waiting on the event loop rather than in a thread: each gets
        a few seconds to finish its job, then is killed (what it was writing is a temporary
        entry of a dead process, which the cache's clean-up removes)."""
        workers = self._begin_close()
        deadline = time.monotonic() + _EXIT_GRACE
        # A child's exit is no event the loop can await here (no child watcher): poll.
        running = [w for w in workers if w.process.poll() is None]
        while running and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            running = [w for w in running if w.process.poll() is None]
        for worker in workers:
            worker.stop(kill=worker.process.poll() is None)

    def _begin_close(self) -> list[_Worker]:
        """Take no new jobs; end every worker's stdin (it exits after its job)."""
        with self._lock:
            self._closed = True
            workers, self._workers = list(self._workers), set()
        for worker in workers:
            worker.close_stdin()
        return workers

    def _take(self, target: Path) -> _Worker:
        """Return an idle worker, a new one while there are fewer than ``size``, or the
        next one to come back (checking now and then whether one died meanwhile)."""
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                with self._lock:
                    if self._closed:
                        raise CacheError(target, "the daemon is stopping") from None
                    if len(self._workers) < self.size:
                        worker = _Worker()
                        self._workers.add(worker)
                        return worker
                try:
                    worker = self._idle.get(timeout=_WAIT_POLL)
                except queue.Empty:
                    continue
            if self._closed:
                self._idle.put(worker)
                raise CacheError(target, "the daemon is stopping")
            if worker.process.poll() is None:
                return worker
            self._discard(worker, None)

    def _discard(self, worker: _Worker, cache: Cache | None) -> None:
        with self._lock:
            self._workers.discard(worker)
        worker.stop(kill=True)
        if cache is not None:
            # What the killed worker was writing (named with its pid) can go now.
            for entry in cache.temps_of(worker.pid):
                remove_tree(entry)


def _idle_death(exc: WorkerDied) -> bool:
    """Return whether the worker was gone before the job reached it."""
    return isinstance(exc.__cause__, BrokenPipeError | ConnectionResetError)


def _result(reply: list[Any]) -> Path:
    """Return the archive of a worker's reply, or raise the error it carries."""
    kind = reply[0]
    if kind == "ok":
        return Path(os.fsdecode(reply[1]))
    if kind == "invalid":
        raise InvalidDistribution(reply[1], reply[2])
    if kind == "full":
        raise DiskFull(Path(os.fsdecode(reply[1])) if reply[1] else None, reply[2])
    if kind == "cache":
        raise CacheError(Path(os.fsdecode(reply[1])), reply[2])
    if kind == "os":
        name = os.fsdecode(reply[3])
        raise OSError(reply[1], reply[2], name) if name else OSError(reply[1], reply[2])
    raise CacheError(Path(os.fsdecode(reply[1])), f"unpacking failed: {reply[2]}")


def _reply_for(exc: BaseException, target: bytes) -> list[Any]:
    """Return the reply that carries ``exc`` back to the daemon."""
    if isinstance(exc, InvalidDistribution):
        return ["invalid", exc.source, exc.reason]
    if isinstance(exc, DiskFull):
        code = exc.errno or errno.ENOSPC
        return ["full", os.fsencode(exc.data.get("path") or ""), code]
    if isinstance(exc, CacheError):
        return ["cache", os.fsencode(exc.path), str(exc.data.get("reason", exc.message))]
    if isinstance(exc, OSError) and exc.errno is not None:
        name = os.fsencode(exc.filename) if exc.filename is not None else b""
        return ["os", exc.errno, exc.strerror or "", name]
    return ["error", target, f"{type(exc).__name__}: {exc}"]


def main() -> int:
    """Serve unpack jobs from stdin until it ends."""
    # Imported here: running this module as a worker needs them, importing it does not.
    from burrowd.daemon.cache.archive import unpack_wheel  # noqa: PLC0415
    from burrowd.daemon.config import UnpackLimits  # noqa: PLC0415

    # The daemon decides when to stop: it ends this worker's stdin (or its death kills it).
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    daemons = sys.argv[1] if len(sys.argv) > 1 else None
    ours = build_id()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    caches: dict[tuple[bytes, int, int], Cache] = {}
    while (job := _receive(stdin)) is not None:
        if daemons is not None and daemons != ours:
            reply: list[Any] = [
                "cache",
                job[0] if job and isinstance(job[0], bytes) else b"",
                f"burrowd changed on disk since the daemon started (build {ours}, the daemon's "
                f"{daemons}); run `burrow daemon stop`, and the next command starts the new one",
            ]
            _send(stdout, _frame(reply))
            continue
        root, wheel, filename, sha256, max_files, max_size = job
        key = (root, max_files, max_size)
        cache = caches.get(key)
        if cache is None:
            limits = UnpackLimits(max_files=max_files, max_size=max_size)
            cache = caches[key] = Cache(Path(os.fsdecode(root)), unpack_limits=limits)
        try:
            archive = unpack_wheel(
                cache,
                Path(os.fsdecode(wheel)),
                filename=filename,
                sha256=sha256,
                limits=cache.unpack_limits,
            )
            reply = ["ok", os.fsencode(archive)]
        except Exception as exc:  # every failure goes back to the daemon, which reports it
            reply = _reply_for(exc, root)
        _send(stdout, _frame(reply))
    return 0


if __name__ == "__main__":
    sys.exit(main())
