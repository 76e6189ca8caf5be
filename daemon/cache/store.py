"""The cache root: atomic writes, temporary directories and the root lock.

Every write lands in a temporary file or directory under ``<root>/.tmp`` (the same
filesystem as its destination) and is renamed into place, so a reader sees a whole entry or
none, and a crash leaves only temporary debris that ``cache.prune`` removes. The root
``.lock`` is held shared by every operation and exclusively by clean and prune.

A full disk (``ENOSPC``, or a quota's ``EDQUOT``) while writing is a :class:`DiskFull`,
raised after the temporary file or directory is removed: nothing half written stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Final

from burrowd.daemon.cache.layout import CACHEDIR_TAG, Bucket
from burrowd.daemon.config import UnpackLimits
from burrowd.daemon.errors import NO_SPACE, CacheError, DiskFull
from burrowd.daemon.locks import FileLock

__all__ = ["TMP_DIR", "BackgroundWrites", "Cache", "DiskFull", "remove_tree", "writing"]

log = logging.getLogger(__name__)

TMP_DIR: Final = ".tmp"
ROOT_LOCK: Final = ".lock"


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a full disk met in the block into :class:`DiskFull` naming ``path``.

    The file the failed call names (``OSError.filename``) wins over ``path`` when it has one.
    """
    try:
        yield
    except DiskFull:
        raise
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            raise
        where = Path(os.fsdecode(exc.filename)) if exc.filename else path
        raise DiskFull(where, exc.errno) from exc


#: Temporary entries are named ``<prefix><pid>~<random>``: the pid says whose they are.
_OWNER: Final = re.compile(r"(\d+)~")
#: Seconds after which a temporary entry with no owner in its name is stale.
UNOWNED_TEMP_AGE: Final = 86400.0


def _owned(prefix: str) -> str:
    return f"{prefix}{os.getpid()}~"


def _alive(pid: int) -> bool:
    """Return whether process ``pid`` runs (as far as this process can tell)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's, or not ours to signal: not ours to judge either
    try:
        # A zombie (killed, not yet reaped by its parent) answers signals but is gone.
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")


class Cache:
    """The cache directory of burrowd.

    :param root: the cache root (created on :meth:`ensure`).
    :param lock_timeout: seconds to wait for a lock before ``LockTimeout``.
    """

    def __init__(
        self,
        root: Path,
        *,
        lock_timeout: float = 300.0,
        unpack_limits: UnpackLimits | None = None,
    ) -> None:
        self.root = root
        self.lock_timeout = lock_timeout
        #: How much a wheel or sdist unpacked into (or for) the cache may hold.
        self.unpack_limits = unpack_limits or UnpackLimits()
        self._ensured = False

    # -- layout -----------------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the root with its ``CACHEDIR.TAG``, ``.gitignore`` and temp directory."""
        # The temp directory, not just the root: ``cache.clean`` removes it with the rest.
        if self._ensured and (self.root / TMP_DIR).is_dir():
            return
        try:
            (self.root / TMP_DIR).mkdir(parents=True, exist_ok=True)
            tag = self.root / "CACHEDIR.TAG"
            if not tag.exists():
                self.write_file(tag, CACHEDIR_TAG.encode(), fsync=False)
            ignore = self.root / ".gitignore"
            if not ignore.exists():
                self.write_file(ignore, b"*\n", fsync=False)
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise DiskFull(self.root, exc.errno) from exc
            raise CacheError(
                self.root, f"cannot create the cache directory: {exc.strerror}"
            ) from exc
        self._ensured = True

    def bucket(self, bucket: Bucket) -> Path:
        """Return the directory of ``bucket``."""
        return self.root / bucket.value

    def path(self, bucket: Bucket, *parts: str) -> Path:
        """Return the path of an entry of ``bucket``."""
        return self.root.joinpath(bucket.value, *parts)

    @property
    def tmp(self) -> Path:
        """Return the directory of temporary files and directories."""
        return self.root / TMP_DIR

    # -- atomic writes ----------------------------------------------------------------------

    def temp_dir(self, prefix: str = "d-") -> Path:
        """Create and return a fresh temporary directory inside the cache."""
        self.ensure()
        with writing(self.tmp):
            return Path(tempfile.mkdtemp(prefix=_owned(prefix), dir=self.tmp))

    def temp_file(self, prefix: str = "f-", suffix: str = "") -> tuple[int, Path]:
        """Create a temporary file inside the cache; return its open fd and path."""
        self.ensure()
        with writing(self.tmp):
            fd, name = tempfile.mkstemp(prefix=_owned(prefix), suffix=suffix, dir=self.tmp)
        return fd, Path(name)

    def temps_of(self, pid: int) -> list[Path]:
        """Return the temporary entries that process ``pid`` created."""
        try:
            entries = list(self.tmp.iterdir())
        except OSError:
            return []
        return [e for e in entries if (m := _OWNER.search(e.name)) and int(m.group(1)) == pid]

    def claim_stale_temps(self) -> list[Path]:
        """Return :meth:`stale_temps`, judged while no operation of any process runs.

        The root lock is tried exclusively, without waiting: every writer of temporary
        entries holds it shared, so a process whose pid this one cannot see (another pid
        namespace, another host on a shared home) is never caught mid-write. Busy: nothing
        is returned, and the next start tries again. Blocking.
        """
        if not self.tmp.is_dir():
            return []
        lock = self.root_lock(shared=False)
        try:
            if not lock.try_acquire():
                return []
        except OSError:
            return []
        try:
            return self.stale_temps()
        finally:
            lock.release()

    def stale_temps(self, now: float | None = None) -> list[Path]:
        """Return the temporary entries that nobody will finish (blocking).

        Each is named after the process that made it; entries of processes that are gone
        (a killed daemon, a killed ``--no-daemon`` client) are stale, and so are entries
        without an owner (older burrowd) once a day old.
        """
        now = time.time() if now is None else now
        try:
            names = os.listdir(self.tmp)
        except OSError:
            return []
        stale = []
        for name in names:
            found = _OWNER.search(name)
            if found is not None:
                if not _alive(int(found.group(1))):
                    stale.append(self.tmp / name)
                continue
            with contextlib.suppress(OSError):
                if now - os.lstat(self.tmp / name).st_mtime > UNOWNED_TEMP_AGE:
                    stale.append(self.tmp / name)
        return stale

    def write_file(self, path: Path, data: bytes, *, fsync: bool = True) -> None:
        """Write ``data`` to ``path`` atomically (temp file, fsync, rename).

        Raise :class:`DiskFull` naming ``path`` when the disk is full; no temp file stays.
        """
        with writing(path):
            # The directories almost always exist: create them only when a write says
            # they do not (two failing mkdir calls per write were a cold resolve's cost).
            tmp = self.root / TMP_DIR
            try:
                fd, name = tempfile.mkstemp(prefix=_owned("w-"), dir=tmp)
            except FileNotFoundError:
                tmp.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(prefix=_owned("w-"), dir=tmp)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    if fsync:
                        f.flush()
                        os.fsync(f.fileno())
                try:
                    os.replace(name, path)
                except FileNotFoundError:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(name, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(name)
                raise

    def persist_dir(self, tmp: Path, target: Path) -> bool:
        """Rename the finished directory ``tmp`` to ``target``.

        Return ``False`` (and remove ``tmp``) when ``target`` already exists: another
        writer got there first with the same content, since targets are content-addressed.
        """
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, target)
        except OSError as exc:
            if target.is_dir():
                remove_tree(tmp)
                return False
            if exc.errno in NO_SPACE:
                raise DiskFull(target, exc.errno) from exc
            raise CacheError(target, f"cannot move a new entry into place: {exc.strerror}") from exc
        return True

    @staticmethod
    def read_file(path: Path) -> bytes | None:
        """Return the bytes at ``path``, or ``None`` if it is missing or unreadable."""
        try:
            return path.read_bytes()
        except OSError:
            return None

    # -- locks ------------------------------------------------------------------------------

    def root_lock(self, *, shared: bool) -> FileLock:
        """Return the root lock: shared per operation, exclusive for clean and prune."""
        self.ensure()
        return FileLock(
            self.root / ROOT_LOCK,
            "the cache",
            shared=shared,
            timeout=self.lock_timeout,
            holder="" if shared else f"pid {os.getpid()}",
        )

    @contextlib.asynccontextmanager
    async def operation(self) -> AsyncIterator[Cache]:
        """Hold the root lock shared for one operation."""
        async with self.root_lock(shared=True):
            yield self

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[Cache]:
        """Hold the root lock exclusively (no other operation of any process runs)."""
        async with self.root_lock(shared=False):
            yield self

    def entry_lock(self, entry: Path, resource: str) -> FileLock:
        """Return the exclusive lock of one entry (a file beside it named ``<entry>.lock``).

        The holder writes its pid into the file, for the error of a waiter that times out.
        """
        return FileLock(
            entry.with_name(entry.name + ".lock"),
            resource,
            timeout=self.lock_timeout,
            holder=f"pid {os.getpid()}",
        )


class BackgroundWrites:
    """Cache writes nobody waits for, done in batches: one worker-thread hop per batch.

    A cold resolve stores a page and a metadata record per package; a thread hop each
    (with the GIL handed back and forth every time) cost more than the writes. Each write
    is atomic on its own (:meth:`Cache.write_file`); a crash loses only copies not yet
    written, which the next request fetches again.
    """

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self._pending: list[tuple[str, Callable[[], None]]] = []
        self._task: asyncio.Task[None] | None = None

    def put(self, what: str, write: Callable[[], None]) -> None:
        """Run ``write()`` in a worker thread soon; ``what`` names it in a warning."""
        self._pending.append((what, write))
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    async with self.cache.operation():
                        await asyncio.to_thread(_write_all, batch)
                except Exception as exc:  # the cache lock timed out, say
                    log.warning("could not store %d entries in the cache: %s", len(batch), exc)
        finally:
            self._task = None

    async def drain(self) -> None:
        """Wait until every write put so far is done (at shutdown, and in tests)."""
        while self._task is not None:
            await asyncio.wait({self._task})


def _write_all(batch: list[tuple[str, Callable[[], None]]]) -> None:
    for what, write in batch:
        try:
            write()
        except Exception as exc:  # a copy is lost, not the request: say so and go on
            log.warning("could not store %s in the cache: %s", what, exc)


def remove_tree(path: Path) -> None:
    """Remove a directory tree, tolerating concurrent removal and read-only files."""

    def onerror(func: object, p: str, exc: BaseException) -> None:
        if isinstance(exc, FileNotFoundError):
            return
        if isinstance(exc, PermissionError):
            with contextlib.suppress(OSError):
                os.chmod(os.path.dirname(p), 0o700)
                os.chmod(p, 0o700)
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    os.unlink(p)
            return
        log.warning("could not remove %s: %s", p, exc)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=onerror)
    else:
        shutil.rmtree(path, onerror=lambda f, p, e: onerror(f, p, e[1]))
