"""``prefetch``: download and unpack pinned wheels into the cache.

Takes ``NAME==VERSION`` pins (from the request or requirements files), local wheel files
and direct wheel URLs; picks for each pin the wheel the target would install, and makes
sure it is unpacked in ``archive-v0``. Everything shared with other requests goes through
the index client's single-flight, so concurrent prefetches of one wheel download it once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from msgspec import Struct
from msgspec.structs import replace
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from burrowd.daemon.builder.source import Source, direct_source, pinned_url, sdist_source
from burrowd.daemon.cache.archive import read_manifest
from burrowd.daemon.cache.layout import Bucket, digest
from burrowd.daemon.cache.wheels import WheelKey, WheelPointer, read_pointer
from burrowd.daemon.candidates import (
    CandidateCache,
    ProjectCandidates,
    parse_version,
    tag_rank,
    unsupported_wheel,
    wheel_parts,
)
from burrowd.daemon.errors import (
    BuildRequired,
    InvalidDistribution,
    InvalidRequirement,
    OfflineMiss,
    PackageNotFound,
)
from burrowd.daemon.index.client import IndexClient, Pins, is_local, local_path
from burrowd.daemon.index.http import redact
from burrowd.daemon.index.models import IndexFile
from burrowd.daemon.index.parse import split_hash
from burrowd.daemon.inputs.model import RequirementEntry
from burrowd.daemon.interfaces import SourceBuilder
from burrowd.daemon.metadata import parse_metadata
from burrowd.daemon.requests import PackageRequest, command_line_entries
from burrowd.daemon.scheduler import pace
from burrowd.protocol.messages import PrefetchedWheel

__all__ = [
    "FetchedWheel",
    "Located",
    "Prefetcher",
    "command_line_entries",
    "direct_key",
    "pinned_version",
    "pins_of",
]

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int | None, int], None]


def pins_of(entry: RequirementEntry) -> Pins | None:
    """Return the ``--hash`` pins of a requirement as algorithm -> digests."""
    if not entry.hashes:
        return None
    out: dict[str, set[str]] = {}
    for item in entry.hashes:
        algorithm, _, value = item.partition(":")
        out.setdefault(algorithm.lower(), set()).add(value.lower())
    return {k: frozenset(v) for k, v in out.items()}


def pinned_version(req: Requirement) -> Version | None:
    """Return V when the requirement is exactly ``==V`` (or ``===V``), else ``None``."""
    specs = list(req.specifier)
    if len(specs) != 1 or specs[0].operator not in ("==", "===") or "*" in specs[0].version:
        return None
    try:
        return Version(specs[0].version)
    except InvalidVersion:
        return None


class Located(Struct, frozen=True):
    """The wheel a requirement names for the target, before it is fetched."""

    file: IndexFile
    key: WheelKey
    #: The canonical project name and the version, as the wheel's filename gives them.
    name: str
    version: str
    yanked: str | None = None
    #: The URL a direct reference names (``file://`` for a local path), else ``None``.
    direct: str | None = None
    #: What to build the wheel from, when there is no wheel to fetch (``file`` and ``key``
    #: then name the source until :meth:`Prefetcher.fetch_located` builds it).
    origin: Source | None = None


class FetchedWheel(Struct, frozen=True):
    """A wheel unpacked in the cache."""

    located: Located
    pointer: WheelPointer
    archive: Path
    #: True when it was unpacked before this request asked.
    cached: bool

    @property
    def sha256(self) -> str:
        """Return the wheel file's sha256."""
        return self.pointer.hashes["sha256"]


def direct_key(file: IndexFile) -> WheelKey:
    """Return the cache key of a wheel named by a direct reference (a URL or a path)."""
    if is_local(file.url):
        return WheelKey.from_path(local_path(file.url))
    return WheelKey.from_url(file.url, file.filename)


class Prefetcher:
    """Locate and fetch the wheels of pinned requirements, for one request."""

    def __init__(
        self,
        index: IndexClient,
        candidates: CandidateCache,
        request: PackageRequest,
        progress: Progress,
        *,
        verb: str = "prefetched",
        builder: SourceBuilder | None = None,
    ) -> None:
        self.index = index
        #: Builds wheels of sources; without one, a source is refused (``BuildRequired``).
        self.builder = builder
        self.candidates = candidates
        self.request = request
        self.progress = progress
        #: What the request does with a yanked pin, for its warning ("installed").
        self.verb = verb
        #: Take an exact pin's wheel from the cache without the project page when it is there
        #: (``sync``, as uv's installer does); ``prefetch`` reports yanked pins, so it looks.
        self.from_cache = False
        self.warnings: list[str] = []
        self._bytes = 0
        self._done = 0
        self._total = 0

    @property
    def downloaded_bytes(self) -> int:
        """Return the bytes downloaded by this prefetch."""
        return self._bytes

    def expect(self, total: int) -> None:
        """Announce how many wheels :meth:`fetch` will be asked for (for progress)."""
        self._total = total
        self._done = 0
        self.progress("downloading", 0, total, self._bytes)

    def _on_bytes(self, n: int) -> None:
        self._bytes += n
        self.progress("downloading", self._done, self._total, self._bytes)

    async def run(self, entries: list[RequirementEntry]) -> list[PrefetchedWheel]:
        """Prefetch every entry whose markers match the target; return what is cached."""
        env = self.request.target.marker_env()
        wanted = [
            e for e in entries if e.requirement.marker is None or e.requirement.marker.evaluate(env)
        ]
        self.expect(len(wanted))
        results = await asyncio.gather(*(self.fetch(e) for e in wanted))
        return [
            PrefetchedWheel(
                name=r.located.name,
                version=r.located.version,
                filename=r.located.file.filename,
                archive=str(r.archive),
                size=r.pointer.size,
                cached=r.cached,
                yanked=r.located.yanked,
            )
            for r in results
        ]

    async def locate(self, entry: RequirementEntry, *, ranges: bool = False) -> Located:
        """Return the wheel ``entry`` names for the target, without fetching it.

        A registry requirement must be an exact pin unless ``ranges`` (``sync`` takes the
        newest version a specifier allows, as ``uv pip sync`` does).
        """
        if entry.path is not None or entry.requirement.url:
            return await self._direct(entry)
        return await self._registry(entry, ranges)

    async def fetch(self, entry: RequirementEntry, located: Located | None = None) -> FetchedWheel:
        """Make sure the wheel of ``entry`` is unpacked in the cache; return where it is."""
        if located is None:
            located = await self.locate(entry)
        return await self.fetch_located(located, pins_of(entry))

    async def fetch_located(self, located: Located, pins: Pins | None) -> FetchedWheel:
        """Fetch a located wheel, checking ``pins`` (``--hash`` values) if given.

        A located source is built first (once per revision; the built wheel is then
        unpacked like a local wheel file).
        """
        await pace()
        if located.origin is not None and not located.file.is_wheel:
            if self.builder is None:
                raise BuildRequired(
                    located.name, located.version or "?", located.origin.describe(), "no builder"
                )
            origin = located.origin
            if pins:
                if "sha256" not in pins:
                    raise InvalidRequirement(
                        f"{origin.describe()} is built from source: its --hash must be a sha256 "
                        "of the source archive"
                    )
                origin = replace(origin, pins=origin.pins | pins["sha256"])
            built = await self.builder.wheel(origin, self.request)
            wheel = IndexFile(filename=built.path.name, url=built.path.as_uri(), hashes={})
            located = replace(
                located,
                file=wheel,
                key=WheelKey.from_path(built.path),
                version=built.metadata.version,
                origin=built.source,
            )
            pins = None  # the pins checked the source archive; the wheel is built here
        file = located.file
        # Cached means usable as it is: a pointer of another file under this name, or one
        # that cannot check a pin's algorithm, needs a download (offline, a miss).
        usable = await self.index.usable_pointer(file, located.key, pins)
        cached = usable is not None
        if not cached and self.request.fresh.offline and not is_local(file.url):
            raise OfflineMiss(f"the wheel {file.filename} ({redact(file.url)})")
        pointer = await self.index.fetch_wheel(
            file, located.key, pins=pins, on_bytes=self._on_bytes, usable=usable
        )
        archive = self.index.cache.path(Bucket.ARCHIVE, pointer.archive)
        self._done += 1
        self.progress("downloading", self._done, self._total, self._bytes)
        return FetchedWheel(located, pointer, archive, cached)

    async def _registry(self, entry: RequirementEntry, ranges: bool) -> Located:
        req = entry.requirement
        version = pinned_version(req)
        if version is None and not ranges:
            raise InvalidRequirement(
                f"prefetch needs exact pins like {req.name}==1.2.3, not {str(req)!r}; "
                "run `burrow compile` to pin a requirements file first",
                file=entry.origin.file,
                line=entry.origin.line,
                text=str(req),
            )
        if version is not None and self.from_cache:
            cached = await asyncio.to_thread(
                self._cached_pin, canonicalize_name(req.name), version, pins_of(entry)
            )
            if cached is not None:
                return cached
        files = await self.index.project_files(self.request.settings, req.name, self.request.fresh)
        project = await self.candidates.get_async(files, self.request.target)
        if version is None:
            version = self._newest(project, req, files.searched)
        vc = project.versions.get(version)
        if vc is None:
            near = ", ".join(str(v) for v in project.ordered[:8]) or "none"
            raise PackageNotFound(
                f"{req.name}=={version}",
                files.searched,
                hint=f"that version does not exist there (newest: {near})",
            )
        target = self.request.target
        fitting = [w for w in vc.wheels if target.allows_python(w[1].requires_python)]
        if vc.wheels and not fitting:
            raise PackageNotFound(
                f"{req.name}=={version}",
                files.searched,
                hint=(
                    f"it requires Python {vc.wheels[0][1].requires_python}, and the target is "
                    f"{target.describe()}; pass --python or --python-version"
                ),
            )
        pins = pins_of(entry)
        if pins and fitting:
            # As pip and uv: with --hash pins, only a file they allow is a candidate (a file
            # the index gives no hash for may still be one, checked once downloaded).
            allowed = [w for w in fitting if _may_match(w[1], pins)]
            fitting = allowed or fitting
        best = fitting[0] if fitting else None
        if best is None and vc.sdists and self.builder is not None:
            sdist, location = vc.sdists[0]
            return Located(
                sdist,
                self.index.wheel_key(sdist, location, files.name),
                str(files.name),
                str(version),
                sdist.yanked,
                origin=sdist_source(sdist, location, files.name),
            )
        if best is None and vc.sdists:
            sdist = vc.sdists[0][0]
            wheels = [f.filename for f in vc.other_wheels]
            raise BuildRequired(
                str(req.name),
                str(version),
                redact(sdist.url),
                f"no wheel of it supports {target.describe()} (wheels: "
                f"{', '.join(wheels[:6]) or 'none'}), and building from source is not available "
                "yet"
                + (
                    "; pass --python-version/--python-platform for a target one fits"
                    if wheels
                    else ""
                ),
            )
        if best is None:
            have = [f.filename for f in vc.other_wheels]
            raise PackageNotFound(
                f"{req.name}=={version}",
                files.searched,
                hint=(
                    f"no wheel of it supports {self.request.target.describe()} "
                    f"(files: {', '.join(have[:6]) or 'none'}); building from source "
                    "is not available yet"
                ),
            )
        _prio, file, location = best
        yanked = None
        if file.yanked is not None:
            yanked = file.yanked
            why = f" ({file.yanked})" if file.yanked else ""
            self.warnings.append(
                f"{req.name}=={version} is yanked{why}; {self.verb} anyway (pinned)"
            )
        key = self.index.wheel_key(file, location, files.name)
        return Located(file, key, str(files.name), str(version), yanked)

    def _cached_pin(self, name: str, version: Version, pins: Pins | None) -> Located | None:
        """Return the best cached wheel of ``name==version`` for the target, if any.

        Only from the first index searched (a project is taken from the first index that
        has it, so a wheel cached from a later one could be the wrong project), without
        find-links (they may offer a better file), unless ``--refresh`` asks for pages, and
        only a file whose sha256 the ``--hash`` pins (if any) allow.
        """
        settings, fresh, target = self.request.settings, self.request.fresh, self.request.target
        if settings.find_links or not settings.index_urls:
            return None
        if fresh.refresh_all or name in fresh.refresh_packages:
            return None
        location = settings.index_urls[0]
        cache = self.index.cache
        directory = cache.path(Bucket.WHEELS, "index", digest(location), name)
        try:
            names = os.listdir(directory)
        except OSError:
            return None
        priorities = target.tag_strings
        best: tuple[int, str] | None = None
        for filename in names:
            parts = wheel_parts(filename) if filename.endswith(".whl") else None
            if parts is None or parse_version(parts[1]) != version:
                continue
            rank = tag_rank(parts[2], parts[3], parts[4], priorities)
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, filename)
        if best is None:
            return None
        key = WheelKey.from_index(location, name, best[1])
        pointer = read_pointer(cache, key)
        if pointer is None or "sha256" not in pointer.hashes:
            return None
        if pins and pointer.hashes["sha256"] not in pins.get("sha256", frozenset()):
            return None  # another file of the version may be the pinned one: ask the page
        archive = cache.path(Bucket.ARCHIVE, pointer.archive)
        requires_python = _requires_python(archive)
        if requires_python is not None and not target.allows_python(requires_python):
            return None  # let the page say why, with the index's own words
        file = IndexFile(
            filename=best[1],
            url=pointer.url,
            hashes={"sha256": pointer.hashes["sha256"]},
            size=pointer.size,
        )
        return Located(file, key, name, str(version))

    def _newest(self, project: ProjectCandidates, req: Requirement, searched: list[str]) -> Version:
        """Return the newest version ``req`` allows that has a wheel for the target.

        Yanked versions are skipped (only an exact pin takes one) and pre-releases only
        count when the specifier names one, as pip and uv decide.
        """
        target = self.request.target
        for version in project.ordered:
            if not req.specifier.contains(version):
                continue
            vc = project.versions[version]
            if vc.yanked:
                continue
            if any(target.allows_python(w[1].requires_python) for w in vc.wheels):
                return version
        raise PackageNotFound(
            str(req),
            searched,
            hint=f"no version that {req.specifier or 'any specifier'} allows has a wheel for "
            f"{target.describe()}",
        )

    async def _direct(self, entry: RequirementEntry) -> Located:
        req = entry.requirement
        url = req.url or ""
        path = entry.path
        filename = Path(path).name if path is not None else url.rsplit("/", 1)[-1].split("#")[0]
        if not filename.endswith(".whl"):
            return await self._direct_source(entry)
        name, version, _b, _t = parse_wheel_filename(filename)
        if canonicalize_name(req.name) != name:
            raise InvalidDistribution(filename, f"it is a wheel of {name}, not of {req.name}")
        refusal = unsupported_wheel(filename, self.request.target)
        if refusal is not None:
            raise InvalidDistribution(filename, refusal)
        if path is not None:
            try:
                size = os.stat(path).st_size
            except OSError:
                raise InvalidRequirement(
                    f"{path} does not exist", file=entry.origin.file, line=entry.origin.line
                ) from None
            file = IndexFile(filename=filename, url=path.as_uri(), hashes={}, size=size)
        else:
            clean, hashes = split_hash(url)
            file = IndexFile(filename=filename, url=clean, hashes=hashes)
        return Located(file, direct_key(file), str(name), str(version), direct=file.url)

    async def _direct_source(self, entry: RequirementEntry) -> Located:
        """Locate a direct reference to an sdist, a project directory or a repository.

        Nothing is built here: a git reference is resolved to its commit (and checked out),
        so what is installed can be compared with it; the build waits for the fetch.
        """
        req = entry.requirement
        if self.builder is None:
            raise InvalidRequirement(
                f"{req.url or entry.path} needs a build; give a wheel",
                file=entry.origin.file,
                line=entry.origin.line,
                text=str(req),
            )
        source = await self.builder.prepare(direct_source(entry), self.request)
        url = pinned_url(source, entry)
        filename = source.filename or url.split("#")[0].rstrip("/").rsplit("/", 1)[-1]
        file = IndexFile(filename=filename, url=url, hashes={})
        return Located(file, direct_key(file), entry.name, "", direct=url, origin=source)


def _may_match(file: IndexFile, pins: Pins) -> bool:
    """Return whether ``file`` may be the one ``pins`` allow, judging by the index's hashes."""
    known = [a for a in pins if a in file.hashes]
    if not known:
        return True
    return any(file.hashes[a] in pins[a] for a in known)


def _requires_python(archive: Path) -> str | None:
    """Return the ``Requires-Python`` of an unpacked wheel's METADATA, if it says one."""
    manifest = read_manifest(archive)
    if manifest is None:
        return None
    try:
        data = (archive / manifest.dist_info / "METADATA").read_bytes()
        return parse_metadata(data, str(archive)).requires_python
    except (OSError, InvalidDistribution):
        return None
