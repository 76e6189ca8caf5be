"""The index client: project pages, core metadata and wheel downloads, cached at three levels.

A page is looked up in memory first (fresh: no disk, no network), then in ``simple-v0`` on
disk, then on the network, conditionally when validators are stored. Metadata comes from
memory, the cache, an already unpacked archive, a PEP 658 file, HTTP range requests, or as
a last resort the whole wheel (which is then kept). Several indexes follow the
first-index-wins strategy; find-links locations add their files to whatever the index has.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import shutil
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import unquote, urlsplit

import msgspec
from msgspec import Struct, field
from packaging.utils import NormalizedName, canonicalize_name

from burrowd.daemon.cache.archive import read_manifest, unpack_wheel, wheel_metadata_bytes
from burrowd.daemon.cache.layout import Bucket, digest
from burrowd.daemon.cache.store import BackgroundWrites, Cache, DiskFull, writing
from burrowd.daemon.cache.unpacker import UnpackPool
from burrowd.daemon.cache.wheels import (
    WheelKey,
    WheelPointer,
    metadata_path,
    pointer_path,
    read_cached_metadata,
    read_pointer,
    write_cached_metadata,
    write_pointer,
)
from burrowd.daemon.errors import (
    HashMismatch,
    InvalidDistribution,
    NetworkError,
    OfflineMiss,
    PackageNotFound,
)
from burrowd.daemon.index import http_cache, lazywheel
from burrowd.daemon.index.http import Http, TransientError, redact
from burrowd.daemon.index.models import CachedPage, CachePolicy, IndexFile, ProjectPage
from burrowd.daemon.index.parse import (
    PageFiles,
    filename_project,
    parse_html_page,
    parse_json_page,
    scan_directory,
    sdist_suffix,
)
from burrowd.daemon.index.sdist import sdist_metadata
from burrowd.daemon.metadata import CoreMetadata, check_identity, parse_metadata
from burrowd.daemon.scheduler import Limits, OnceMap, pace

__all__ = [
    "DEFAULT_INDEX",
    "DIRECT",
    "Freshness",
    "IndexClient",
    "IndexSettings",
    "Pins",
    "ProjectFiles",
    "hash_file",
]

log = logging.getLogger(__name__)

DEFAULT_INDEX: Final = "https://pypi.org/simple/"
#: The "location" of a file named by a direct reference (``name @ url``) rather than an index.
DIRECT: Final = "direct:"
ACCEPT: Final = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, "
    "text/html;q=0.01"
)
T = TypeVar("T")

MEMORY_PAGES: Final = 4096
MEMORY_METADATA: Final = 32768
#: Pages up to this size are parsed on the event loop (about 1 ms); bigger ones in a thread.
INLINE_PARSE: Final = 256 * 1024
#: Wheels from this size up are unpacked in a worker process when the daemon has them.
PROCESS_UNPACK_MIN: Final = 64 * 1024

#: ``--hash`` pins of one requirement: algorithm -> allowed hex digests.
Pins = Mapping[str, frozenset[str]]
ByteProgress = Callable[[int], None]
PinsKey = tuple[tuple[str, tuple[str, ...]], ...]

_page_decoder: Final = msgspec.msgpack.Decoder(CachedPage)
_encoder: Final = msgspec.msgpack.Encoder()


def normalize_index_url(url: str) -> str:
    """Return an index URL with exactly one trailing slash (a path becomes a ``file://`` URL)."""
    if "://" not in url:
        url = Path(url).expanduser().absolute().as_uri()
    return url.rstrip("/") + "/"


def is_local(url: str) -> bool:
    """Return whether ``url`` is a ``file://`` URL."""
    return url.startswith("file:")


def local_path(url: str) -> Path:
    """Return the filesystem path of a ``file://`` URL."""
    return Path(unquote(urlsplit(url).path))


class IndexSettings(Struct, frozen=True):
    """Where to look for distributions, for one request."""

    index_urls: tuple[str, ...] = (DEFAULT_INDEX,)
    find_links: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        http: Http,
        *,
        index_url: str | None = None,
        extra_index_urls: Iterable[str] = (),
        find_links: Iterable[str] = (),
        no_index: bool = False,
    ) -> IndexSettings:
        """Return settings with credentials moved out of the URLs into ``http``.

        The search order is uv's: every extra index, in the order given, then the index
        URL (PyPI by default). A private package on an extra index is then never replaced
        by a same-named one on the public index (dependency confusion).
        """
        urls: list[str] = []
        if not no_index:
            for url in [*extra_index_urls, index_url or DEFAULT_INDEX]:
                clean = normalize_index_url(http.add_credentials(url))
                if clean not in urls:
                    urls.append(clean)
        links: list[str] = []
        for loc in find_links:
            clean = http.add_credentials(loc) if "://" in loc else Path(loc).absolute().as_uri()
            if clean not in links:
                links.append(clean)
        return cls(tuple(urls), tuple(links))

    def describe(self) -> list[str]:
        """Return the locations, redacted, for messages."""
        return [redact(u) for u in (*self.index_urls, *self.find_links)]


class Freshness(Struct):
    """Per-request freshness rules: ``--refresh``, ``--refresh-package``, ``--offline``."""

    refresh_all: bool = False
    refresh_packages: frozenset[str] = frozenset()
    offline: bool = False
    revalidated: set[tuple[str, str]] = field(default_factory=set)
    #: Pages served from memory / disk / network in this request (for ``-v`` and status).
    served: dict[str, int] = field(default_factory=lambda: {"memory": 0, "disk": 0, "network": 0})
    #: The page this request was given first for each ``(location, name)``: what a
    #: resolution saw, whatever memory holds by the time it ends.
    seen: dict[tuple[str, str], ProjectPage | None] = field(default_factory=dict)
    #: Whether the request was given two different copies of one page (it was replaced
    #: meanwhile): its result then answers to no one copy.
    mixed: bool = False
    _counted: set[tuple[str, str]] = field(default_factory=set)

    def record(self, location: str, name: str, source: str) -> None:
        """Count where a page came from: once per page and request, its first source."""
        if (location, name) not in self._counted:
            self._counted.add((location, name))
            self.served[source] += 1

    def saw(self, location: str, name: str, page: ProjectPage | None) -> None:
        """Note the page this request was given for ``name`` on ``location``."""
        key = (location, name)
        if key not in self.seen:
            self.seen[key] = page
        elif (first := self.seen[key]) is not page and first != page:
            self.mixed = True

    @property
    def pages(self) -> frozenset[tuple[str, str]]:
        """Return the ``(location, name)`` of every page this request used."""
        return frozenset(self._counted)

    def wants_revalidation(self, location: str, name: str) -> bool:
        """Return whether ``--refresh`` asks to revalidate this page (once per request)."""
        if (location, name) in self.revalidated:
            return False
        return self.refresh_all or name in self.refresh_packages


class ProjectFiles(Struct, frozen=True):
    """The files of a project found for one request, with the index each came from.

    Kept as the pages' own listings (one per location, in search order) rather than one
    list of (file, location) pairs: a popular project lists tens of thousands of files, and
    pairing (or even building) each of them for every request is measurable in a cold
    resolve.
    """

    name: NormalizedName
    parts: list[tuple[PageFiles, str]]
    searched: list[str]

    @property
    def files(self) -> list[tuple[IndexFile, str]]:
        """Return every file with its location, in search order (building each)."""
        return [(f, loc) for files, loc in self.parts for f in files.all()]

    def __len__(self) -> int:
        return sum(len(files) for files, _ in self.parts)


class IndexClient:
    """Pages, metadata and wheels, shared by every request of the daemon."""

    def __init__(
        self,
        cache: Cache,
        http: Http,
        limits: Limits,
        *,
        ttl: float,
        unpacker: UnpackPool | None = None,
    ) -> None:
        self.cache = cache
        #: Worker processes for large wheels; ``None``: every wheel unpacks in a thread.
        self.unpacker = unpacker
        self.http = http
        self.limits = limits
        self.ttl = ttl
        self._pages: OrderedDict[tuple[str, str], CachedPage] = OrderedDict()
        self._project_files: OrderedDict[
            tuple[str, tuple[tuple[int, str], ...]], tuple[list[PageFiles], ProjectFiles]
        ] = OrderedDict()
        self._metadata: OrderedDict[str, CoreMetadata] = OrderedDict()
        self._page_flights: OnceMap[tuple[str, str, bool], CachedPage] = OnceMap(
            "page", lambda key: f"{key[1]} on {redact(key[0])}"
        )
        self._meta_flights: OnceMap[tuple[str, bool], CoreMetadata] = OnceMap(
            "metadata", lambda key: _file_name(key[0])
        )
        self._wheel_flights: OnceMap[tuple[str, str, PinsKey], WheelPointer] = OnceMap(
            "wheel", lambda key: _file_name(key[0])
        )
        self._digest_flights: OnceMap[tuple[str, tuple[int, int] | None], str] = OnceMap(
            "digest", lambda key: _file_name(key[0])
        )
        self._digests: dict[tuple[str, tuple[int, int] | None], str] = {}
        self.downloads = 0
        #: Wheels downloading or unpacking that an unpack worker will take.
        self._for_workers = 0
        self._writes = BackgroundWrites(cache)

    def flight_maps(self) -> list[OnceMap[Any, Any]]:
        """Return the single-flight maps of this client, for ``status``."""
        return [self._page_flights, self._meta_flights, self._wheel_flights, self._digest_flights]

    # -- memory -----------------------------------------------------------------------------

    def forget(self, names: Iterable[str] | None = None) -> None:
        """Drop in-memory pages and metadata (of ``names``, or all)."""
        self._project_files.clear()
        if names is None:
            self._pages.clear()
            self._metadata.clear()
            return
        wanted = {canonicalize_name(n) for n in names}
        for key in [k for k in self._pages if k[1] in wanted]:
            del self._pages[key]
        self._metadata.clear()

    def memory_stats(self) -> dict[str, int]:
        """Return how much is held in memory."""
        return {"pages": len(self._pages), "metadata": len(self._metadata)}

    def _remember(self, key: tuple[str, str], entry: CachedPage) -> None:
        self._pages[key] = entry
        self._pages.move_to_end(key)
        while len(self._pages) > MEMORY_PAGES:
            self._pages.popitem(last=False)

    # -- pages ------------------------------------------------------------------------------

    def _page_path(self, location: str, name: str) -> Path:
        return self.cache.path(Bucket.SIMPLE, digest(location), f"{name}.msgpack")

    async def page(self, location: str, name: str, fresh: Freshness) -> ProjectPage | None:
        """Return the page of ``name`` on the index ``location``; ``None`` if it is not there."""
        key = (location, name)
        # Offline and online requests never share a load: an offline one must not touch the
        # network, and its OfflineMiss must not fail an online one.
        flight = (location, name, fresh.offline)
        while True:
            joining = flight in self._page_flights
            entry = self._pages.get(key)
            revalidate = fresh.wants_revalidation(location, name)
            # While a load runs, memory may hold the page it is replacing: wait for it.
            if (
                not joining
                and entry is not None
                and not revalidate
                and self._usable(entry, location, time.time(), fresh)
            ):
                fresh.record(location, name, "memory")
                fresh.saw(location, name, entry.page)
                return entry.page
            await pace()
            entry = await self._page_flights.run(
                flight, lambda: self._load_and_remember(location, name, fresh)
            )
            if joining and fresh.wants_revalidation(location, name):
                continue  # the load joined was not a revalidation this request asked for
            # A joined load (another request's, a warming's) is this request's page too; a
            # load of its own has counted itself unless it served a stale copy offline.
            fresh.record(location, name, "memory" if joining else "disk")
            fresh.saw(location, name, entry.page)
            return entry.page

    def page_expiry(self, location: str, name: str) -> tuple[float, float] | None:
        """Return when the page in memory was stored and when it expires (wall clock).

        ``None`` when memory holds no page for it, or it is a local page (checked by mtime).
        """
        entry = self._pages.get((location, name))
        if entry is None or is_local(location) or entry.policy.source == "no-cache":
            return None
        return entry.policy.stored_at, entry.policy.stored_at + entry.policy.lifetime

    async def revalidate(self, location: str, name: str) -> bool:
        """Revalidate a page now (conditionally when it has validators); return if it changed."""
        old = self._pages.get((location, name))
        page = await self.page(location, name, Freshness(refresh_packages=frozenset({name})))
        if old is None:
            return True
        return page is not old.page and page != old.page

    async def _load_and_remember(self, location: str, name: str, fresh: Freshness) -> CachedPage:
        entry = await self._load_page(location, name, fresh)
        self._remember((location, name), entry)
        return entry

    def _usable(self, entry: CachedPage, location: str, now: float, fresh: Freshness) -> bool:
        if is_local(location):
            return self._local_unchanged(entry, location)
        return fresh.offline or entry.policy.is_fresh(now)

    def _local_unchanged(self, entry: CachedPage, location: str) -> bool:
        path = Path(entry.url) if entry.url.startswith("/") else None
        if path is None:
            return False
        try:
            return os.stat(path).st_mtime_ns == entry.policy.mtime_ns
        except OSError:
            return entry.policy.mtime_ns is None

    async def _load_page(self, location: str, name: str, fresh: Freshness) -> CachedPage:
        if is_local(location):
            return await asyncio.to_thread(self._read_local_page, location, name)
        key = (location, name)
        now = time.time()
        stored = self._pages.get(key)
        if stored is None:
            stored = await _if_present(
                self._page_path(location, name), lambda: self._read_disk_page(location, name)
            )
        revalidate = fresh.wants_revalidation(location, name)
        if stored is not None and not revalidate and (fresh.offline or stored.policy.is_fresh(now)):
            fresh.record(location, name, "disk")
            return stored
        if fresh.offline:
            if stored is not None:
                return stored
            raise OfflineMiss(f"the project page of {name} on {redact(location)}")
        fresh.revalidated.add(key)
        fresh.record(location, name, "network")
        entry = await self._fetch_page(location, name, stored)
        path = self._page_path(location, name)
        # Written in the background: the resolver need not wait for the disk (encoding a big
        # page takes milliseconds, off the event loop too). A crash loses only this copy.
        self._writes.put(
            f"the page of {name}",
            lambda: self.cache.write_file(path, _encoder.encode(entry), fsync=False),
        )
        return entry

    async def drain(self) -> None:
        """Wait for background cache writes (at shutdown)."""
        await self._writes.drain()

    def _read_disk_page(self, location: str, name: str) -> CachedPage | None:
        data = Cache.read_file(self._page_path(location, name))
        if data is None:
            return None
        try:
            entry = _page_decoder.decode(data)
            if entry.page is not None:
                entry.page.listing  # noqa: B018 - read its filenames here, off the event loop
        except msgspec.DecodeError:
            log.warning("ignoring an unreadable cached page for %s", name)
            return None
        return entry

    async def _fetch_page(self, location: str, name: str, stored: CachedPage | None) -> CachedPage:
        url = f"{location}{name}/"
        headers = {"Accept": ACCEPT}
        if stored is not None:
            headers.update(http_cache.conditional_headers(stored.policy))
        reply = await self.http.get(url, headers)
        if reply.status == 304 and stored is not None:
            policy = http_cache.revalidated(stored.policy, reply.headers, heuristic_ttl=self.ttl)
            return CachedPage(policy, stored.page, stored.url)
        policy = http_cache.policy_from_headers(reply.headers, heuristic_ttl=self.ttl)
        if reply.status in (404, 410):
            return CachedPage(policy, None, reply.url)
        if reply.status != 200:
            raise NetworkError(redact(url), f"unexpected HTTP {reply.status}", status=reply.status)
        content_type = reply.headers.get("Content-Type", "").split(";")[0].strip().lower()
        body, page_url = reply.body, reply.url
        is_json = content_type == "application/vnd.pypi.simple.v1+json"

        def parse() -> ProjectPage:
            if is_json:
                return parse_json_page(body, page_url, location)
            page = parse_html_page(body, page_url, location, name)
            page.listing  # noqa: B018 - group its files here, off the event loop
            return page

        try:
            # A small page parses faster than a hop to a worker thread and back.
            page = parse() if len(body) <= INLINE_PARSE else await asyncio.to_thread(parse)
        except (msgspec.DecodeError, ValueError) as exc:
            raise NetworkError(
                redact(url), f"the index sent a page that cannot be read: {exc}"
            ) from exc
        return CachedPage(policy, page, reply.url)

    def _read_local_page(self, location: str, name: str) -> CachedPage:
        root = local_path(location) / name
        index = root / "index.html"
        try:
            st = os.stat(index)
        except OSError:
            if root.is_dir():
                page = scan_directory(root, name, location)
                return CachedPage(CachePolicy(time.time(), 0.0, "mtime"), page, str(root))
            return CachedPage(CachePolicy(time.time(), 0.0, "mtime"), None, str(index))
        data = index.read_bytes()
        page = parse_html_page(data, index.as_uri(), location, name)
        page.listing  # noqa: B018 - group its files here, in this worker thread
        return CachedPage(
            CachePolicy(time.time(), 0.0, "mtime", mtime_ns=st.st_mtime_ns), page, str(index)
        )

    async def _find_links(self, location: str, name: str, fresh: Freshness) -> list[IndexFile]:
        if is_local(location):
            path = local_path(location)
            if path.is_dir():
                page = await asyncio.to_thread(scan_directory, path, name, location)
                return page.files
            data = await asyncio.to_thread(path.read_bytes)
            return parse_html_page(data, location, location, name, only_project=True).files
        key = (location, "")
        entry = self._pages.get(key)
        now = time.time()
        if (
            entry is None
            or not self._usable(entry, location, now, fresh)
            or (fresh.wants_revalidation(location, ""))
        ):
            if fresh.offline:
                if entry is None:
                    raise OfflineMiss(f"the find-links page {redact(location)}")
            else:
                fresh.revalidated.add(key)
                reply = await self.http.get(location, {"Accept": "text/html"})
                policy = http_cache.policy_from_headers(reply.headers, heuristic_ttl=self.ttl)
                page = await asyncio.to_thread(
                    parse_html_page, reply.body, reply.url, location, "", only_project=False
                )
                entry = CachedPage(policy, page, reply.url)
                self._remember(key, entry)
        if entry.page is None:
            return []
        return [
            f for f in entry.page.files if (filename_project(f.filename, name) or ("",))[0] == name
        ]

    async def project_files(
        self, settings: IndexSettings, name: str, fresh: Freshness
    ) -> ProjectFiles:
        """Return every file of ``name``: from the first index that has it, plus find-links.

        Raise :class:`PackageNotFound` when no location has the project.
        """
        cname = canonicalize_name(name)
        parts: list[tuple[PageFiles, str]] = []
        searched: list[str] = []
        for location in settings.index_urls:
            searched.append(redact(location))
            page = await self.page(location, cname, fresh)
            if page is not None:
                parts.append((page.listing, location))
                break
        if settings.find_links:
            results = await asyncio.gather(
                *(self._find_links(loc, cname, fresh) for loc in settings.find_links)
            )
            for loc, found_files in zip(settings.find_links, results, strict=True):
                searched.append(redact(loc))
                if found_files:
                    parts.append((PageFiles.of(found_files), loc))
        if not parts:
            raise PackageNotFound(name, searched)
        # Same pages (by identity) -> the same ProjectFiles object, so everything memoized
        # on it (candidates per target) survives from one request to the next.
        key = (cname, tuple((id(files), loc) for files, loc in parts))
        hit = self._project_files.get(key)
        if hit is not None:
            self._project_files.move_to_end(key)
            return hit[1]
        result = ProjectFiles(cname, parts, searched)
        self._project_files[key] = ([files for files, _ in parts], result)
        while len(self._project_files) > MEMORY_PAGES:
            self._project_files.popitem(last=False)
        return result

    # -- metadata ---------------------------------------------------------------------------

    def wheel_key(self, file: IndexFile, location: str, name: str) -> WheelKey:
        """Return the cache key of ``file`` found at ``location`` (or given directly)."""
        if is_local(file.url) and not is_local(location):
            return WheelKey.from_path(local_path(file.url))
        if location == DIRECT:
            return WheelKey.from_url(file.url, file.filename)
        return WheelKey.from_index(location, canonicalize_name(name), file.filename)

    async def metadata(
        self, file: IndexFile, location: str, name: str, version: str, *, offline: bool = False
    ) -> CoreMetadata:
        """Return the core metadata of a distribution listed for ``name`` ``version``.

        With ``offline``, only what memory, the cache or local files hold is used;
        anything else raises :class:`OfflineMiss`.
        """
        stamp = _stamp(file)
        # A local file's stamp is part of the key: a rebuild under the same name is new.
        mkey = file.url if stamp is None else f"{file.url}\0{stamp[0]}\0{stamp[1]}"
        cached = self._metadata.get(mkey)
        if cached is not None:
            self._metadata.move_to_end(mkey)
            return cached
        await pace()
        meta = await self._meta_flights.run(
            (mkey, offline),
            lambda: self._load_metadata(
                file, location, name, version, offline=offline, stamp=stamp
            ),
        )
        self._metadata[mkey] = meta
        while len(self._metadata) > MEMORY_METADATA:
            self._metadata.popitem(last=False)
        return meta

    async def _load_metadata(
        self,
        file: IndexFile,
        location: str,
        name: str,
        version: str,
        *,
        offline: bool,
        stamp: tuple[int, int] | None,
    ) -> CoreMetadata:
        key = self.wheel_key(file, location, name)
        meta = await _if_present(
            metadata_path(self.cache, key),
            lambda: read_cached_metadata(self.cache, key, file.sha256, stamp),
        )
        if meta is not None:
            return meta
        source = f"{file.filename} ({redact(file.url)})"
        if offline and not is_local(file.url):
            pointer = await self.cached_pointer(key)
            if pointer is None:
                raise OfflineMiss(f"the metadata of {file.filename}")
        if file.is_wheel:
            data = await self._metadata_bytes(file, key, source)
            meta = parse_metadata(data, source)
        else:
            meta = await self._sdist_metadata(file, name, version)
        check_identity(meta, name, version, source)
        # Nobody waits for the disk copy: memory serves this daemon from now on.
        self._writes.put(
            f"the metadata of {file.filename}",
            lambda: write_cached_metadata(self.cache, key, file.sha256, meta, stamp),
        )
        return meta

    async def cached_pointer(self, key: WheelKey) -> WheelPointer | None:
        """Return :func:`read_pointer`'s answer; a miss costs a stat, not a thread hop."""
        return await _if_present(
            pointer_path(self.cache, key), lambda: read_pointer(self.cache, key)
        )

    async def usable_pointer(
        self, file: IndexFile, key: WheelKey, pins: Pins | None = None
    ) -> WheelPointer | None:
        """Return the cached pointer of ``file`` if :meth:`fetch_wheel` would use it as it is
        (no download): it describes the same file and can check ``pins``."""
        pointer = await self.cached_pointer(key)
        if pointer is None or not _pointer_matches(pointer, file, key, pins):
            return None
        return pointer

    async def _metadata_bytes(self, file: IndexFile, key: WheelKey, source: str) -> bytes:
        pointer = await self.cached_pointer(key)
        if pointer is not None:
            return await asyncio.to_thread(self._archive_metadata, pointer)
        if is_local(file.url):
            return await asyncio.to_thread(
                self._local_metadata, local_path(file.url), file.filename
            )
        if file.core_metadata is not None:
            reply = await self.http.get(file.url + ".metadata", ok=frozenset({200, 404}))
            if reply.status == 200:
                self._check_metadata_hash(file, reply.body)
                return reply.body
        try:
            got = await lazywheel.fetch_metadata(
                lambda rng: self._range(file.url, rng), file.filename
            )
        except lazywheel.RangeNotSupported as exc:
            log.info("range requests unusable for %s (%s); downloading it", file.filename, exc)
            got = None
        if isinstance(got, bytes):
            return got
        pointer = await self.fetch_wheel(file, key, body=got.data if got else None)
        return await asyncio.to_thread(self._archive_metadata, pointer)

    async def _sdist_metadata(self, file: IndexFile, name: str, version: str) -> CoreMetadata:
        """Read the static metadata of an sdist (downloaded to a temporary file)."""
        if is_local(file.url):
            path = local_path(file.url)
            return await asyncio.to_thread(
                sdist_metadata, path, file.filename, name, version, limits=self.cache.unpack_limits
            )
        suffix = sdist_suffix(file.filename) or ".tar.gz"
        fd, tmp = self.cache.temp_file(prefix="sdist-", suffix=suffix)
        os.close(fd)
        try:
            hashes, _size = await self._stream_to(
                file.url, tmp, _algorithms(file, None), None, file=file
            )
            _verify(file, hashes, None)
            return await asyncio.to_thread(
                sdist_metadata, tmp, file.filename, name, version, limits=self.cache.unpack_limits
            )
        finally:
            tmp.unlink(missing_ok=True)

    def _check_metadata_hash(self, file: IndexFile, body: bytes) -> None:
        for algorithm, expected in (file.core_metadata or {}).items():
            if algorithm in hashlib.algorithms_guaranteed:
                actual = hashlib.new(algorithm, body).hexdigest()
                if actual != expected:
                    raise HashMismatch(
                        f"{file.filename}.metadata", redact(file.url), algorithm, [expected], actual
                    )
                return

    async def _range(self, url: str, rng: str) -> tuple[int, Mapping[str, str], bytes]:
        reply = await self.http.get(
            url, {"Range": rng, "Accept-Encoding": "identity"}, ok=frozenset({200, 206, 416})
        )
        return reply.status, reply.headers, reply.body

    def _archive_metadata(self, pointer: WheelPointer) -> bytes:
        archive = self.cache.path(Bucket.ARCHIVE, pointer.archive)
        manifest = read_manifest(archive)
        if manifest is None:
            raise InvalidDistribution(pointer.filename, "its unpacked archive disappeared")
        return (archive / manifest.dist_info / "METADATA").read_bytes()

    @staticmethod
    def _local_metadata(path: Path, filename: str) -> bytes:
        try:
            with zipfile.ZipFile(path) as zf:
                return wheel_metadata_bytes(zf, filename)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InvalidDistribution(str(path), f"not a readable wheel ({exc})") from exc

    # -- digests ----------------------------------------------------------------------------

    async def sha256_of(
        self, file: IndexFile, location: str, name: str, *, offline: bool = False
    ) -> str:
        """Return the sha256 of ``file``: the index's, else computed (``--generate-hashes``).

        A file the index gives no hash for is hashed where it lies (a local file), taken
        from its cached wheel when there is one, or streamed and dropped (hashing every
        platform's wheel of a pin must not unpack them all into the cache); with
        ``offline`` that last step is an :class:`OfflineMiss`. Digests are remembered
        (bounded), keyed by URL and, for a local file, its stamp.
        """
        if file.sha256:
            return file.sha256
        key = (file.url, _stamp(file))
        known = self._digests.get(key)
        if known is not None:
            return known
        digest = await self._digest_flights.run(
            key, lambda: self._compute_sha256(file, location, name, offline)
        )
        self._digests[key] = digest
        while len(self._digests) > MEMORY_METADATA:
            del self._digests[next(iter(self._digests))]
        return digest

    async def _compute_sha256(
        self, file: IndexFile, location: str, name: str, offline: bool
    ) -> str:
        if is_local(file.url):
            path = local_path(file.url)
            try:
                return (await asyncio.to_thread(hash_file, path, {"sha256"}))["sha256"]
            except OSError as exc:
                raise InvalidDistribution(str(path), f"cannot read it: {exc.strerror}") from exc
        if file.is_wheel:
            key = self.wheel_key(file, location, name)
            pointer = await self.cached_pointer(key)
            if pointer is not None and "sha256" in pointer.hashes:
                return pointer.hashes["sha256"]
        if offline:
            raise OfflineMiss(f"the hash of {file.filename} ({redact(file.url)})")
        # Only the digest is wanted: the bytes go nowhere, and nothing touches the cache.
        hashes, _size = await self._stream_to(file.url, Path(os.devnull), {"sha256"}, None)
        return hashes["sha256"]

    # -- source distributions ---------------------------------------------------------------

    async def download(self, file: IndexFile) -> Path:
        """Download ``file`` to a temporary file of the cache, checked against its hashes.

        The caller owns the file (and moves or deletes it). A local file is copied, never
        moved: the user's file stays where it is.
        """
        path, _hashes = await self.download_hashed(file)
        return path

    async def download_hashed(self, file: IndexFile) -> tuple[Path, dict[str, str]]:
        """Return :meth:`download`'s file with its digests (sha256 always among them)."""
        fd, tmp = self.cache.temp_file(prefix="dl-", suffix="-" + file.filename)
        os.close(fd)
        try:
            if is_local(file.url):
                source = local_path(file.url)
                try:
                    await asyncio.to_thread(_copy, source, tmp)
                except DiskFull:
                    raise
                except OSError as exc:
                    raise InvalidDistribution(
                        str(source), f"cannot read it: {exc.strerror}"
                    ) from exc
                hashes = await asyncio.to_thread(hash_file, tmp, _algorithms(file, None))
            else:
                hashes, _size = await self._stream_to(
                    file.url, tmp, _algorithms(file, None), None, file=file
                )
                self.downloads += 1
            _verify(file, hashes, None)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, hashes

    # -- wheels -----------------------------------------------------------------------------

    async def fetch_wheel(
        self,
        file: IndexFile,
        key: WheelKey,
        *,
        pins: Pins | None = None,
        on_bytes: ByteProgress | None = None,
        body: bytes | None = None,
        usable: WheelPointer | None = None,
    ) -> WheelPointer:
        """Make sure the wheel is unpacked in the cache; return its pointer.

        One download and unpack per wheel at a time in this daemon (single-flight) and across
        processes (the entry lock). ``pins`` are ``--hash`` values the file must match.
        ``usable`` is what :meth:`usable_pointer` just returned for these arguments (not
        read again).
        """
        if usable is not None:
            pointer = usable
        else:
            # Requests with other pins do not share a download: a wrong pin fails only its
            # own request (and stores nothing), and pinned algorithms get computed.
            flight = (file.url, file.sha256 or "", _pins_key(pins))
            await pace()
            pointer = await self._wheel_flights.run(
                flight, lambda: self._fetch_wheel(file, key, pins, on_bytes, body)
            )
        if pins:
            _check_pins(file, pointer.hashes, pins)
        return pointer

    async def _fetch_wheel(
        self,
        file: IndexFile,
        key: WheelKey,
        pins: Pins | None,
        on_bytes: ByteProgress | None,
        body: bytes | None,
    ) -> WheelPointer:
        pointer = await self.usable_pointer(file, key, pins)
        if pointer is not None:
            return pointer
        lock = self.cache.entry_lock(pointer_path(self.cache, key), f"the wheel {file.filename}")
        # The shared root lock is held by the work itself, not only by the requests that
        # wait for it: shielded work may outlive them, and clean/prune must wait for it.
        async with self.cache.operation(), lock:
            pointer = await self.usable_pointer(file, key, pins)
            if pointer is not None:
                return pointer
            if is_local(file.url):
                return await self._unpack_local(file, key, pins)
            return await self._download(file, key, pins, on_bytes, body)

    async def _unpack_local(
        self, file: IndexFile, key: WheelKey, pins: Pins | None
    ) -> WheelPointer:
        path = local_path(file.url)
        try:
            st = os.stat(path)
        except OSError as exc:
            raise InvalidDistribution(str(path), f"cannot read it: {exc.strerror}") from exc
        hashes = await asyncio.to_thread(hash_file, path, _algorithms(file, pins))
        return await self._store(
            file, key, path, hashes=hashes, pins=pins, size=st.st_size, source=st
        )

    async def _download(
        self,
        file: IndexFile,
        key: WheelKey,
        pins: Pins | None,
        on_bytes: ByteProgress | None,
        body: bytes | None,
    ) -> WheelPointer:
        algorithms = _algorithms(file, pins)
        # Created here, not in a worker thread: one ``open`` costs microseconds, and a
        # thread hop while the loop parses a fill's index pages delayed every download's
        # start by tens of milliseconds.
        tmp = self._temp_path("dl-", ".whl")
        for_worker = False
        try:
            for_worker = self._prestart_worker(file)
            if body is not None:
                hashes = {a: hashlib.new(a, body).hexdigest() for a in algorithms}
                with writing(tmp):
                    await asyncio.to_thread(tmp.write_bytes, body)
                size = len(body)
            else:
                hashes, size = await self._stream_to(file.url, tmp, algorithms, on_bytes, file=file)
            self.downloads += 1
            return await self._store(
                file, key, tmp, hashes=hashes, pins=pins, size=size, source=None
            )
        finally:
            self._for_workers -= for_worker
            await _discard(tmp)

    def _prestart_worker(self, file: IndexFile) -> bool:
        """Start an unpack worker while ``file`` downloads, if it will want one and the
        pool has fewer workers than such wheels under way; return whether it will.

        Only a size the index gave counts: a small wheel unpacks in a thread, and a worker
        started for it would be a process for nothing.
        """
        pool = self.unpacker
        if pool is None or file.size is None or file.size < PROCESS_UNPACK_MIN:
            return False
        self._for_workers += 1
        if pool.started < min(self._for_workers, pool.size):
            # A worker that cannot start now is started (or its error raised) by the unpack.
            with contextlib.suppress(RuntimeError):  # the daemon is stopping
                started = asyncio.get_running_loop().run_in_executor(
                    None, pool.prestart, self._for_workers
                )
                started.add_done_callback(_prestart_failed)
        return True

    def _temp_path(self, prefix: str, suffix: str) -> Path:
        """Create an empty temporary file in the cache."""
        fd, path = self.cache.temp_file(prefix=prefix, suffix=suffix)
        os.close(fd)
        return path

    async def _store(
        self,
        file: IndexFile,
        key: WheelKey,
        wheel: Path,
        *,
        hashes: dict[str, str],
        pins: Pins | None,
        size: int,
        source: os.stat_result | None,
    ) -> WheelPointer:
        """Check the hashes, unpack ``wheel`` into the archive, then write the pointer last."""
        _verify(file, hashes, pins)
        # Larger wheels first: they finish downloading last and take longest to unpack, and
        # behind a queue of small ones they were a fill's last second and a half.
        async with self.limits.unpack.weighted(size):
            archive = await asyncio.to_thread(self._unpack, wheel, file.filename, hashes["sha256"])
        pointer = WheelPointer(
            filename=file.filename,
            archive=archive.name,
            hashes=hashes,
            url=file.url,
            size=size,
            created=time.time(),
            source_mtime_ns=source.st_mtime_ns if source is not None else None,
            source_size=source.st_size if source is not None else None,
        )
        await asyncio.to_thread(write_pointer, self.cache, key, pointer)
        return pointer

    def _unpack(self, wheel: Path, filename: str, sha256: str) -> Path:
        """Unpack ``wheel`` into the archive (blocking); a full disk is a :class:`DiskFull`.

        A large wheel goes to a worker process, a small one is unpacked in this thread
        (quicker than the hop to a worker and back).
        """
        with writing(self.cache.path(Bucket.ARCHIVE, sha256)):
            try:
                size = wheel.stat().st_size
            except OSError:
                size = 0  # gone meanwhile: unpacking says so, as for any unreadable wheel
            if self.unpacker is not None and size >= PROCESS_UNPACK_MIN:
                return self.unpacker.unpack(self.cache, wheel, filename=filename, sha256=sha256)
            return unpack_wheel(
                self.cache, wheel, filename=filename, sha256=sha256, limits=self.cache.unpack_limits
            )

    async def _stream_to(
        self,
        url: str,
        dest: Path,
        algorithms: set[str],
        on_bytes: ByteProgress | None,
        *,
        file: IndexFile | None = None,
    ) -> tuple[dict[str, str], int]:
        """Download ``url`` into ``dest``; return its digests in ``algorithms`` and its size.

        Retried whole by the HTTP policy (each attempt rewrites ``dest`` from its first
        byte). A body shorter than the size the index lists for ``file``, whose digest
        does not match the index's either, was cut short without the server saying so (no
        ``Content-Length``): it is retried too, and never reaches the cache.
        """

        async def once() -> tuple[dict[str, str], int]:
            hashers = {a: hashlib.new(a) for a in algorithms}
            got = 0

            def counted(n: int) -> None:
                nonlocal got
                got += n
                if on_bytes is not None:
                    on_bytes(n)

            try:
                # A full disk met on the bodies' loop is a DiskFull naming ``dest``.
                with writing(dest):
                    size = await self.http.download(
                        url, dest, functools.partial(_update, hashers.values()), counted
                    )
                hashes = {a: h.hexdigest() for a, h in hashers.items()}
                if file is not None and _cut_short(file, hashes, size):
                    raise TransientError(
                        redact(url),
                        f"the body was cut short: {size} of {file.size} bytes arrived",
                        hint="the connection keeps breaking: check the network and any "
                        "proxy, then try again",
                    )
            except BaseException:
                if on_bytes is not None and got:
                    on_bytes(-got)  # a retry counts its bytes again
                raise
            return hashes, size

        return await self.http.retrying(url, once)


def _prestart_failed(started: asyncio.Future[None]) -> None:
    if not started.cancelled() and (exc := started.exception()) is not None:
        log.debug("could not start an unpack worker ahead of its wheel: %s", exc)


async def _discard(path: Path) -> None:
    """Remove a temporary file in a worker: freeing a large file's blocks can take a while."""
    try:
        await asyncio.to_thread(path.unlink, missing_ok=True)
    except asyncio.CancelledError:
        path.unlink(missing_ok=True)
        raise


async def _if_present(path: Path, read: Callable[[], T | None]) -> T | None:
    """Return ``read()`` run in a worker thread, or ``None`` at once when ``path`` is
    missing: on a cold cache a miss costs one ``stat`` on the loop, not a thread hop."""
    if not os.path.exists(path):
        return None
    return await asyncio.to_thread(read)


def _file_name(url: str) -> str:
    """Return the file name a (metadata) URL ends with, for ``status``."""
    return unquote(urlsplit(url.split("\0", 1)[0]).path.rsplit("/", 1)[-1]) or redact(url)


def _stamp(file: IndexFile) -> tuple[int, int] | None:
    """Return (mtime_ns, size) of a local file, ``None`` for a remote one (or a missing one)."""
    if not is_local(file.url):
        return None
    try:
        st = os.stat(local_path(file.url))
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _update(hashers: Iterable[hashlib._Hash], chunk: bytes) -> None:
    for h in hashers:
        h.update(chunk)


def _copy(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest``; a full disk is a :class:`DiskFull` naming ``dest``."""
    with open(source, "rb") as src, writing(dest), open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst, 1024 * 1024)


def _cut_short(file: IndexFile, hashes: Mapping[str, str], size: int) -> bool:
    """Return whether a body is shorter than the index says and matches none of its hashes."""
    if file.size is None or size >= file.size:
        return False
    return not any(hashes.get(a) == expected for a, expected in file.hashes.items())


def _algorithms(file: IndexFile, pins: Pins | None) -> set[str]:
    algorithms = {"sha256"}
    for algorithm in (*file.hashes, *(pins or {})):
        if algorithm in hashlib.algorithms_guaranteed:
            algorithms.add(algorithm)
    return algorithms


def hash_file(path: Path, algorithms: set[str]) -> dict[str, str]:
    """Return the hex digests of the file at ``path`` in ``algorithms`` (blocking)."""
    hashers = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            for h in hashers.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashers.items()}


def _verify(file: IndexFile, hashes: Mapping[str, str], pins: Pins | None) -> None:
    """Raise :class:`HashMismatch` if the file differs from the index's hash or the pins."""
    for algorithm, expected in file.hashes.items():
        actual = hashes.get(algorithm)
        if actual is not None and actual != expected:
            raise HashMismatch(file.filename, redact(file.url), algorithm, [expected], actual)
    if pins:
        _check_pins(file, hashes, pins)


def _check_pins(file: IndexFile, hashes: Mapping[str, str], pins: Pins) -> None:
    for algorithm, allowed in pins.items():
        actual = hashes.get(algorithm)
        if actual is None:
            continue
        if actual in allowed:
            return
        raise HashMismatch(file.filename, redact(file.url), algorithm, sorted(allowed), actual)
    known = ", ".join(sorted(pins))
    raise HashMismatch(
        file.filename, redact(file.url), known, ["a pinned hash of a supported algorithm"], "?"
    )


def _pins_key(pins: Pins | None) -> PinsKey:
    return tuple(sorted((a, tuple(sorted(v))) for a, v in (pins or {}).items()))


def _pointer_matches(
    pointer: WheelPointer, file: IndexFile, key: WheelKey, pins: Pins | None = None
) -> bool:
    """Return whether a cached pointer still describes the file the index lists.

    With ``pins``, the pointer must also know the file's digest in a pinned algorithm, or the
    pins could not be checked (a wheel first fetched unpinned has only its sha256).
    """
    usable = [a for a in pins or {} if a in hashlib.algorithms_guaranteed]
    if usable and not any(a in pointer.hashes for a in usable):
        return False
    for algorithm, expected in file.hashes.items():
        have = pointer.hashes.get(algorithm)
        if have is not None and have != expected:
            return False
    # A local file (a find-links folder, a file:// index, a path) may be rebuilt in place
    # under the same name: its mtime and size tell.
    stamp = _stamp(file)
    if stamp is not None:
        return stamp == (pointer.source_mtime_ns, pointer.source_size)
    return True
