"""Cache statistics, ``clean`` and ``prune``.

These walk the cache and block; the daemon runs them in a worker thread. ``clean`` and
``prune`` are only called with the root lock held exclusively, so no operation of any
process is half way through an entry while they delete.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

import msgspec
from msgspec import Struct, field
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from burrowd.daemon.cache.archive import read_manifest
from burrowd.daemon.cache.layout import Bucket, bucket_version_of
from burrowd.daemon.cache.store import TMP_DIR, Cache, remove_tree
from burrowd.daemon.cache.wheels import WheelPointer

__all__ = ["CleanReport", "PruneReport", "SizeMeter", "bucket_stats", "clean", "prune"]

log = logging.getLogger(__name__)

_pointer_decoder = msgspec.msgpack.Decoder(WheelPointer)


def _tree_size(path: Path) -> tuple[int, int]:
    """Return (files, bytes) under ``path`` (a file counts as one)."""
    if path.is_file() or path.is_symlink():
        try:
            return 1, path.lstat().st_size
        except OSError:
            return 0, 0
    files = size = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(root, name)).st_size
                files += 1
    return files, size


def _entries(cache: Cache, bucket: Bucket) -> int:
    base = cache.bucket(bucket)
    if not base.is_dir():
        return 0
    if bucket is Bucket.ARCHIVE:
        return sum(1 for _ in base.iterdir())
    if bucket is Bucket.WHEELS:
        return sum(1 for p in _pointer_files(cache))
    if bucket is Bucket.SIMPLE:
        return sum(1 for _ in base.glob("*/*.msgpack"))
    if bucket is Bucket.INTERPRETER:
        return sum(1 for _ in base.glob("*.msgpack"))
    return sum(1 for _ in base.iterdir())


def bucket_stats(cache: Cache) -> list[tuple[str, int, int]]:
    """Return (bucket, entries, bytes) for every bucket, then for temporary files."""
    out: list[tuple[str, int, int]] = []
    for bucket in Bucket:
        path = cache.bucket(bucket)
        size = _tree_size(path)[1] if path.exists() else 0
        out.append((bucket.value, _entries(cache, bucket), size))
    tmp = cache.tmp
    if tmp.is_dir():
        entries = sum(1 for _ in tmp.iterdir())
        out.append((TMP_DIR, entries, _tree_size(tmp)[1]))
    return out


class SizeMeter:
    """The cache's size, measured in a worker thread and reused for a while.

    Walking a large cache takes a second; ``status`` must answer at once, so it shows the
    last measurement and its age, and starts a new one when that is older than ``max_age``.
    """

    def __init__(self, cache: Cache, max_age: float = 60.0) -> None:
        self.cache = cache
        self.max_age = max_age
        self.size: int | None = None
        self.measured_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    def read(self) -> tuple[int | None, float | None]:
        """Return the last size and its age in seconds; measure again if it is stale."""
        now = time.monotonic()
        stale = self.measured_at is None or now - self.measured_at > self.max_age
        if stale and self._task is None:
            self._task = asyncio.ensure_future(self._measure())
        age = None if self.measured_at is None else now - self.measured_at
        return self.size, age

    def invalidate(self) -> None:
        """Forget the measurement (the cache was cleaned or pruned)."""
        self.measured_at = None

    async def _measure(self) -> None:
        try:
            root = self.cache.root
            size = await asyncio.to_thread(lambda: _tree_size(root)[1] if root.is_dir() else 0)
            self.size, self.measured_at = size, time.monotonic()
        except OSError as exc:
            log.info("could not measure the cache: %s", exc)
        finally:
            self._task = None

    async def close(self) -> None:
        """Wait for a measurement in progress."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)


def _pointer_files(cache: Cache) -> Iterable[Path]:
    base = cache.bucket(Bucket.WHEELS)
    if not base.is_dir():
        return
    for root, _dirs, names in os.walk(base):
        for name in names:
            if name.endswith(".whl"):
                yield Path(root, name)


def _referenced_archives(cache: Cache) -> set[str]:
    out: set[str] = set()
    for path in _pointer_files(cache):
        data = Cache.read_file(path)
        if data is None:
            continue
        try:
            out.add(_pointer_decoder.decode(data).archive)
        except msgspec.DecodeError:
            continue
    return out


class CleanReport(Struct, dict=True):
    """What ``clean`` removed."""

    entries: int = 0
    size: int = 0


def _remove(path: Path, report: CleanReport | PruneReport, kind: str = "") -> None:
    files, size = _tree_size(path)
    if path.is_dir() and not path.is_symlink():
        remove_tree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    report.size += size
    if isinstance(report, CleanReport):
        report.entries += max(files, 1) if path.is_dir() else 1
    else:
        report.removed[kind] = report.removed.get(kind, 0) + 1


def clean(cache: Cache, packages: Iterable[str]) -> CleanReport:
    """Remove everything (no ``packages``) or every entry of the named packages."""
    report = CleanReport()
    names = {canonicalize_name(p) for p in packages}
    root = cache.root
    if not root.exists():
        return report
    if not names:
        for child in root.iterdir():
            if child.name in ("CACHEDIR.TAG", ".gitignore", ".lock"):
                continue
            files, size = _tree_size(child)
            if child.is_dir() and not child.is_symlink():
                remove_tree(child)
            else:
                child.unlink(missing_ok=True)
            report.entries += files
            report.size += size
        return report
    # Pages of the named projects, on every index.
    simple = cache.bucket(Bucket.SIMPLE)
    if simple.is_dir():
        for page in simple.glob("*/*.msgpack"):
            if page.stem in names:
                _remove(page, report)
    # Pointers (and parsed metadata) of their wheels, and then their archives.
    archives: set[str] = set()
    wheels = cache.bucket(Bucket.WHEELS)
    for pointer in list(_pointer_files(cache)):
        project = _project_of(pointer, wheels)
        if project not in names:
            continue
        data = Cache.read_file(pointer)
        if data is not None:
            with contextlib.suppress(msgspec.DecodeError):
                archives.add(_pointer_decoder.decode(data).archive)
        _remove(pointer, report)
        for extra in (
            pointer.with_name(pointer.name + ".meta"),
            pointer.with_name(pointer.name + ".lock"),
        ):
            if extra.exists():
                _remove(extra, CleanReport())
    # Parsed metadata of wheels that were never downloaded has no pointer beside it.
    if wheels.is_dir():
        for meta in list(wheels.rglob("*.whl.meta")):
            if _project_of(meta.with_suffix(""), wheels) in names:
                _remove(meta, report)
    still_used = _referenced_archives(cache)
    for archive in archives - still_used:
        path = cache.path(Bucket.ARCHIVE, archive)
        if path.exists():
            _remove(path, report)
    built = cache.bucket(Bucket.BUILT_WHEELS) / "index"
    if built.is_dir():
        for project_dir in built.glob("*/*"):
            if project_dir.name in names:
                _remove(project_dir, report)
    return report


def _project_of(pointer: Path, wheels: Path) -> str:
    """Return the canonical project of a wheel pointer (from its filename)."""
    try:
        return str(parse_wheel_filename(pointer.name)[0])
    except InvalidWheelFilename:
        rel = pointer.relative_to(wheels).parts
        return rel[2] if len(rel) > 3 else ""


class PruneReport(Struct, dict=True):
    """What ``prune`` removed, by kind."""

    removed: dict[str, int] = field(default_factory=dict)
    size: int = 0


def prune(cache: Cache) -> PruneReport:
    """Remove what nothing needs: temp debris, unused archives, stale pointers, old buckets."""
    report = PruneReport()
    root = cache.root
    if not root.exists():
        return report
    tmp = cache.tmp
    if tmp.is_dir():
        for child in tmp.iterdir():
            _remove(child, report, "temporary")
    current = {b.stem: b for b in Bucket}
    for child in root.iterdir():
        parsed = bucket_version_of(child.name)
        if parsed is None or not child.is_dir():
            continue
        stem, version = parsed
        bucket = current.get(stem)
        # Only older versions go: a newer burrowd sharing this cache still needs its own.
        if bucket is not None and version < _version_of(bucket):
            _remove(child, report, "old bucket versions")
    # Pointers whose archive is gone, or that are not pointers at all (a zipped wheel).
    referenced: set[str] = set()
    for pointer in list(_pointer_files(cache)):
        data = Cache.read_file(pointer)
        try:
            decoded = _pointer_decoder.decode(data or b"")
        except msgspec.DecodeError:
            _remove(pointer, report, "broken pointers")
            continue
        if read_manifest(cache.path(Bucket.ARCHIVE, decoded.archive)) is None:
            _remove(pointer, report, "broken pointers")
            continue
        referenced.add(decoded.archive)
    archives = cache.bucket(Bucket.ARCHIVE)
    if archives.is_dir():
        for archive in archives.iterdir():
            if archive.name not in referenced:
                _remove(archive, report, "unreferenced archives")
    # A local project's or archive's older revisions: only its newest build is of use.
    built = cache.bucket(Bucket.BUILT_WHEELS) / "path"
    if built.is_dir():
        for source in built.iterdir():
            if not source.is_dir():
                continue
            variants: dict[bool, list[Path]] = {}
            for rev in source.iterdir():
                if rev.is_dir():
                    variants.setdefault(rev.name.endswith("-editable"), []).append(rev)
            for revs in variants.values():
                revs.sort(key=lambda p: p.stat().st_mtime_ns)
                for old in revs[:-1]:
                    _remove(old, report, "old source revisions")
    # Stale lock files of entries that no longer exist. Parsed metadata (``.meta``) stays
    # even without a pointer: resolution uses it for wheels it never downloaded.
    wheels = cache.bucket(Bucket.WHEELS)
    if wheels.is_dir():
        for lock in wheels.rglob("*.lock"):
            if not lock.with_suffix("").exists():
                with contextlib.suppress(OSError):
                    lock.unlink()
    _remove_empty_dirs(cache.bucket(Bucket.WHEELS))
    _remove_empty_dirs(cache.bucket(Bucket.SIMPLE))
    return report


def _version_of(bucket: Bucket) -> int:
    parsed = bucket_version_of(bucket.value)
    assert parsed is not None
    return parsed[1]


def _remove_empty_dirs(base: Path) -> None:
    if not base.is_dir():
        return
    for root, dirs, files in os.walk(base, topdown=False):
        if root != str(base) and not dirs and not files:
            with contextlib.suppress(OSError):
                os.rmdir(root)
