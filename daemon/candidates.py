"""The distributions of a project grouped by version, judged against one target.

A popular project lists tens of thousands of files, and the resolver usually looks at one
or two versions of it, so the work is split: files are grouped by the version string in
their name with plain string operations (one pass, no parsing), each distinct version
string is parsed once (and memoized across projects and requests), and the tags of a
version's wheels are ranked against the target, and its files built from the page's
entries (:class:`~burrowd.daemon.index.parse.PageFiles`), only when that version is looked
at.
The resolver and ``prefetch`` both pick files from here, so "which file of foo 1.2 would
be installed" has one answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from packaging.version import InvalidVersion, Version

from burrowd.daemon.index.client import ProjectFiles
from burrowd.daemon.index.models import IndexFile
from burrowd.daemon.index.parse import PageFiles
from burrowd.daemon.interpreters import Target

__all__ = [
    "CandidateCache",
    "ProjectCandidates",
    "VersionCandidates",
    "build_tag",
    "parse_version",
    "tag_rank",
    "unsupported_wheel",
    "uploaded_by",
    "wheel_parts",
]

log = logging.getLogger(__name__)

#: Projects with more files than this still to group are grouped in a worker thread.
_THREAD_THRESHOLD: Final = 2000
_VERSIONS: dict[str, Version | None] = {}
_VERSIONS_MAX: Final = 500_000


def parse_version(text: str) -> Version | None:
    """Return ``Version(text)`` (memoized), or ``None`` if it is not a valid version."""
    try:
        return _VERSIONS[text]
    except KeyError:
        pass
    try:
        version: Version | None = Version(text)
    except InvalidVersion:
        version = None
    if len(_VERSIONS) >= _VERSIONS_MAX:
        _VERSIONS.clear()
    _VERSIONS[text] = version
    return version


def wheel_parts(filename: str) -> tuple[str, str, str, str, str] | None:
    """Split a wheel filename into (name, version, python, abi, platform) tags."""
    parts = filename[:-4].split("-")
    if len(parts) == 5:
        return parts[0], parts[1], parts[2], parts[3], parts[4]
    if len(parts) == 6:  # with a build tag
        return parts[0], parts[1], parts[3], parts[4], parts[5]
    return None


def build_tag(filename: str) -> tuple[int, str]:
    """Return the build tag of a wheel filename that has one, as it sorts (PEP 427):
    its leading digits as a number, then the rest."""
    tag = filename.split("-")[2]
    digits = len(tag) - len(tag.lstrip("0123456789"))
    return (int(tag[:digits]) if digits else -1, tag[digits:])


def unsupported_wheel(filename: str, target: Target) -> str | None:
    """Return why ``target`` cannot install the wheel ``filename`` (its tags), or ``None``.

    For a wheel named directly (a path or URL): pip refuses one that is "not a supported
    wheel on this platform", and uv too.
    """
    parts = wheel_parts(filename)
    if parts is None or tag_rank(parts[2], parts[3], parts[4], target.tag_strings) is not None:
        return None
    return (
        f"it is built for {'-'.join(parts[2:])}, which {target.describe()} cannot install; "
        "point the requirement at a wheel for this platform, or an sdist"
    )


def tag_rank(pys: str, abis: str, plats: str, priorities: Mapping[str, int]) -> int | None:
    """Return the best (lowest) priority of a wheel's compressed tag sets, ``None`` if the
    target supports none of them."""
    best: int | None = None
    for py in pys.split("."):
        for abi in abis.split("."):
            for plat in plats.split("."):
                p = priorities.get(f"{py}-{abi}-{plat}")
                if p is not None and (best is None or p < best):
                    best = p
    return best


class VersionCandidates:
    """The files of one version of a project; each is built, and wheels ranked, on first use."""

    __slots__ = ("_other", "_parts", "_sdists", "_target", "_unranked", "_wheels", "version")

    def __init__(self, version: Version, target: Target) -> None:
        self.version = version
        self._target = target
        #: (listing, location, positions in the listing) per version string and page.
        self._parts: list[tuple[PageFiles, str, list[int]]] = []
        self._wheels: list[tuple[int, IndexFile, str]] | None = None
        self._unranked: list[tuple[PageFiles, int]] = []
        self._other: list[IndexFile] | None = None
        self._sdists: list[tuple[IndexFile, str]] | None = None

    def _rank(self) -> list[tuple[int, IndexFile, str]]:
        priorities = self._target.tag_strings
        ranked: list[tuple[int, IndexFile, str]] = []
        builds: dict[int, tuple[int, str]] = {}
        for listing, loc, positions in self._parts:
            names = listing.filenames
            for i in positions:
                parts = wheel_parts(names[i]) if names[i].endswith(".whl") else None
                if parts is None:
                    continue
                best = tag_rank(parts[2], parts[3], parts[4], priorities)
                if best is None:
                    # Built only if asked for (a project may have a hundred wheels a version).
                    self._unranked.append((listing, i))
                elif (f := listing.get(i)) is not None:
                    if names[i].count("-") == 5:
                        builds[id(f)] = build_tag(names[i])
                    ranked.append((best, f, loc))
        if builds:
            # Of wheels with equal tags the higher build wins, as in pip and uv; a wheel
            # without a build tag comes last. (Both sorts keep page order among equals.)
            ranked.sort(key=lambda w: builds.get(id(w[1]), (-1, "")), reverse=True)
        ranked.sort(key=lambda w: w[0])
        return ranked

    @property
    def wheels(self) -> list[tuple[int, IndexFile, str]]:
        """Return compatible wheels as (tag priority, file, location), best first."""
        if self._wheels is None:
            self._wheels = self._rank()
        return self._wheels

    @property
    def other_wheels(self) -> list[IndexFile]:
        """Return the wheels none of whose tags the target supports."""
        if self._other is None:
            self.wheels  # noqa: B018 - ranking sorts them out
            self._other = [f for page, i in self._unranked if (f := page.get(i)) is not None]
        return self._other

    @property
    def sdists(self) -> list[tuple[IndexFile, str]]:
        """Return the source distributions with their locations."""
        if self._sdists is None:
            self._sdists = self._located(sdists=True)
        return self._sdists

    def _located(self, *, sdists: bool) -> list[tuple[IndexFile, str]]:
        """Return the built sdists (or wheels), in page order."""
        out: list[tuple[IndexFile, str]] = []
        for listing, loc, positions in self._parts:
            names = listing.filenames
            for i in positions:
                wheel = names[i].endswith(".whl")
                if wheel == sdists or (wheel and wheel_parts(names[i]) is None):
                    continue
                if (f := listing.get(i)) is not None:
                    out.append((f, loc))
        return out

    def usable(self, *, allow_yanked: bool) -> list[tuple[IndexFile, str]]:
        """Return the files that could be installed, best first (wheels, then sdists)."""
        out = [(f, loc) for _, f, loc in self.wheels]
        out += self.sdists
        if not allow_yanked:
            out = [(f, loc) for f, loc in out if f.yanked is None]
        return out

    def best(self, target: Target, *, allow_yanked: bool) -> tuple[IndexFile, str] | None:
        """Return the file to use for ``target``: the best wheel, else an sdist."""
        for f, loc in self.usable(allow_yanked=allow_yanked):
            if target.allows_python(f.requires_python):
                return f, loc
        return None

    def all_files(self) -> list[IndexFile]:
        """Return every file of this version, whatever its tags."""
        return [f for f, _ in self.all_located()]

    def all_located(self) -> list[tuple[IndexFile, str]]:
        """Return every file of this version with the location it was found at."""
        return self._located(sdists=False) + self.sdists

    def skipped(self) -> list[tuple[str, str, str]]:
        """Return ``(filename, location, why)`` of the files of this version built so far
        that could not be read from their index entry."""
        out: list[tuple[str, str, str]] = []
        for listing, loc, positions in self._parts:
            for i in positions:
                why = listing.skipped(i)
                if why is not None:
                    out.append((listing.filenames[i], loc, why))
        return out

    @property
    def yanked(self) -> bool:
        """Return whether every file of this version is yanked."""
        files = self.all_files()
        return bool(files) and all(f.yanked is not None for f in files)

    @property
    def yank_reason(self) -> str:
        """Return the reason given for the yank, if any."""
        return next((f.yanked for f in self.all_files() if f.yanked), "")


def uploaded_by(file: IndexFile, cutoff: datetime) -> bool:
    """Return whether ``file`` was uploaded before ``cutoff`` (``--exclude-newer``).

    A file whose index gives no upload time cannot be judged and counts as old enough
    (an index without PEP 700 data would otherwise offer nothing). A time without an
    offset is taken as UTC, the zone PEP 700 requires.
    """
    if file.upload_time is None:
        return True
    try:
        when = datetime.fromisoformat(file.upload_time.replace("Z", "+00:00"))
    except ValueError:
        return True
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when < cutoff


class ProjectCandidates:
    """Every version of one project that has at least one file."""

    __slots__ = ("files", "name", "ordered", "versions")

    def __init__(
        self,
        name: str,
        versions: dict[Version, VersionCandidates],
        files: ProjectFiles,
    ) -> None:
        self.name = name
        self.versions = versions
        #: Versions, newest first.
        self.ordered = sorted(versions, reverse=True)
        self.files = files

    @classmethod
    def build(cls, files: ProjectFiles, target: Target) -> ProjectCandidates:
        """Group ``files`` by version (ranking wheels for ``target`` lazily).

        Per version string, not per file: each listing groups its files once
        (:meth:`PageFiles.groups`, done where the page was parsed, off the event loop).
        """
        name = files.name
        versions: dict[Version, VersionCandidates] = {}
        for listing, loc in files.parts:
            for raw, positions in listing.groups(name).items():
                version = parse_version(raw)
                if version is None:
                    continue
                vc = versions.get(version)
                if vc is None:
                    vc = versions[version] = VersionCandidates(version, target)
                vc._parts.append((listing, loc, positions))
        return cls(name, versions, files)


class CandidateCache:
    """Memo of :class:`ProjectCandidates` per (page contents, target), bounded."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._memo: OrderedDict[tuple[int, int], tuple[ProjectFiles, ProjectCandidates]] = (
            OrderedDict()
        )

    def clear(self) -> None:
        """Forget everything (after ``cache.clean``)."""
        self._memo.clear()

    async def get_async(self, files: ProjectFiles, target: Target) -> ProjectCandidates:
        """Return :meth:`get`'s answer, grouping a large project in a worker thread.

        Grouping tens of thousands of filenames takes tens of milliseconds, which the
        event loop must not spend (``status`` answers within 50 ms during a resolve). Index
        pages come grouped from their parse; find-links listings may not.
        """
        hit = self._memo.get((id(files), id(target)))
        if hit is not None:
            return hit[1]
        ungrouped = sum(len(lst) for lst, _ in files.parts if not lst.grouped(files.name))
        if ungrouped < _THREAD_THRESHOLD:
            return self.get(files, target)
        built = await asyncio.to_thread(ProjectCandidates.build, files, target)
        return self._store(files, target, built)

    def get(self, files: ProjectFiles, target: Target) -> ProjectCandidates:
        """Return the candidates of ``files`` for ``target``, building them once.

        The index client hands out one ``ProjectFiles`` object per set of parsed pages, so
        its identity names the contents; the memo keeps it alive, so the id stays valid.
        """
        key = (id(files), id(target))
        hit = self._memo.get(key)
        if hit is not None:
            self._memo.move_to_end(key)
            return hit[1]
        return self._store(files, target, ProjectCandidates.build(files, target))

    def _store(
        self, files: ProjectFiles, target: Target, built: ProjectCandidates
    ) -> ProjectCandidates:
        key = (id(files), id(target))
        self._memo[key] = (files, built)
        while len(self._memo) > self.size:
            self._memo.popitem(last=False)
        return built
