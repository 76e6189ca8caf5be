"""Pointers from a wheel's source and full filename to its unpacked archive.

The pointer lives at the path a wheel of that source and filename would have
(``wheels-v0/index/<index-digest>/<name>/<wheel filename>``) and is written last, after the
archive is whole. Anything else found there (a zipped wheel left by another tool, a
truncated or undecodable file, a pointer to a missing archive) is a miss: it is ignored and
replaced, never used.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Final

import msgspec
from msgspec import Struct

from burrowd.daemon.cache.archive import read_manifest
from burrowd.daemon.cache.layout import Bucket, digest, url_digest
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.metadata import CoreMetadata

__all__ = [
    "CachedMetadata",
    "WheelKey",
    "WheelPointer",
    "metadata_path",
    "pointer_path",
    "read_cached_metadata",
    "read_pointer",
    "write_cached_metadata",
    "write_pointer",
]

log = logging.getLogger(__name__)

_ZIP_MAGIC: Final = b"PK\x03\x04"


class WheelKey(Struct, frozen=True):
    """Where a wheel came from: an index (with its project), a URL, or a local path."""

    kind: str  # "index" | "url" | "path"
    location: str  # index URL, file URL, or absolute path
    filename: str
    project: str = ""  # canonical project name, for index wheels

    @classmethod
    def from_index(cls, index_url: str, project: str, filename: str) -> WheelKey:
        """Return the key of a wheel listed on ``index_url``."""
        return cls("index", index_url, filename, project)

    @classmethod
    def from_url(cls, url: str, filename: str) -> WheelKey:
        """Return the key of a wheel named by a direct URL."""
        return cls("url", url, filename)

    @classmethod
    def from_path(cls, path: Path) -> WheelKey:
        """Return the key of a local wheel file."""
        return cls("path", str(path), path.name)


class WheelPointer(msgspec.Struct, frozen=True, kw_only=True):
    """Where the unpacked tree of one wheel is, and what the wheel was."""

    filename: str
    archive: str
    hashes: dict[str, str]
    url: str
    size: int
    created: float
    #: For path wheels: the source file's mtime and size when it was unpacked.
    source_mtime_ns: int | None = None
    source_size: int | None = None


class CachedMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """Core metadata of one wheel file, keyed by the file's sha256."""

    sha256: str
    metadata: CoreMetadata
    created: float = 0.0
    #: For a local file: its mtime and size when the metadata was read.
    source_mtime_ns: int | None = None
    source_size: int | None = None


_pointer_decoder: Final = msgspec.msgpack.Decoder(WheelPointer)
_metadata_decoder: Final = msgspec.msgpack.Decoder(CachedMetadata)
_encoder: Final = msgspec.msgpack.Encoder()


def pointer_path(cache: Cache, key: WheelKey) -> Path:
    """Return where the pointer of ``key`` lives."""
    if key.kind == "index":
        return cache.path(Bucket.WHEELS, "index", digest(key.location), key.project, key.filename)
    if key.kind == "url":
        return cache.path(Bucket.WHEELS, "url", url_digest(key.location), key.filename)
    return cache.path(Bucket.WHEELS, "path", digest(key.location), key.filename)


def metadata_path(cache: Cache, key: WheelKey) -> Path:
    """Return where the parsed metadata of ``key`` lives (beside its pointer)."""
    p = pointer_path(cache, key)
    return p.with_name(p.name + ".meta")


def read_pointer(cache: Cache, key: WheelKey) -> WheelPointer | None:
    """Return the pointer of ``key`` if it leads to a whole archive; otherwise ``None``."""
    path = pointer_path(cache, key)
    data = Cache.read_file(path)
    if data is None:
        return None
    if data.startswith(_ZIP_MAGIC):
        log.warning("ignoring a zipped wheel where an unpacked one belongs: %s", path)
        return None
    try:
        pointer = _pointer_decoder.decode(data)
    except msgspec.DecodeError:
        log.warning("ignoring an unreadable wheel pointer: %s", path)
        return None
    if pointer.filename != key.filename:
        log.warning("ignoring a wheel pointer for another file: %s", path)
        return None
    if read_manifest(cache.path(Bucket.ARCHIVE, pointer.archive)) is None:
        log.warning("wheel pointer %s leads to a missing or incomplete archive", path)
        return None
    return pointer


def write_pointer(cache: Cache, key: WheelKey, pointer: WheelPointer) -> Path:
    """Write the pointer of ``key`` atomically; return its path."""
    path = pointer_path(cache, key)
    cache.write_file(path, _encoder.encode(pointer))
    return path


def read_cached_metadata(
    cache: Cache, key: WheelKey, sha256: str | None, stamp: tuple[int, int] | None = None
) -> CoreMetadata | None:
    """Return cached metadata of ``key`` if it is for the same file.

    The same file means the same sha256 when the index gives one, and for a local file
    (``stamp``: its mtime in ns and size) the same stamp: a wheel rebuilt under the same
    name must not keep its old requirements.
    """
    data = Cache.read_file(metadata_path(cache, key))
    if data is None:
        return None
    try:
        cached = _metadata_decoder.decode(data)
    except msgspec.DecodeError:
        return None
    if sha256 and cached.sha256 and cached.sha256 != sha256:
        return None
    if stamp is not None and (cached.source_mtime_ns, cached.source_size) != stamp:
        return None
    return cached.metadata


def write_cached_metadata(
    cache: Cache,
    key: WheelKey,
    sha256: str | None,
    metadata: CoreMetadata,
    stamp: tuple[int, int] | None = None,
) -> None:
    """Store parsed metadata of ``key`` atomically."""
    record = CachedMetadata(
        sha256=sha256 or "",
        metadata=metadata,
        created=time.time(),
        source_mtime_ns=stamp[0] if stamp is not None else None,
        source_size=stamp[1] if stamp is not None else None,
    )
    cache.write_file(metadata_path(cache, key), _encoder.encode(record), fsync=False)
