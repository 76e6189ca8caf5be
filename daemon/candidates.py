"""The distributions of a project grouped by version, judged against one target.

Every filename of a project page is parsed once per (page, target): its version, whether it
is a wheel whose tags the target supports (and how well), or a source distribution. The
resolver and ``prefetch`` both pick files from here, so "which file of foo 1.2 would be
installed" has one answer.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from burrowd.daemon.index.client import ProjectFiles
from burrowd.daemon.index.models import IndexFile
from burrowd.daemon.interpreters import Target

__all__ = ["CandidateCache", "ProjectCandidates", "VersionCandidates"]

log = logging.getLogger(__name__)

SDIST_SUFFIXES: Final = (".tar.gz", ".zip")


@dataclass(slots=True)
class VersionCandidates:
    """The files of one version of a project."""

    version: Version
    #: Compatible wheels as (tag priority, file, location), best first.
    wheels: list[tuple[int, IndexFile, str]] = field(default_factory=list)
    #: Wheels none of whose tags the target supports.
    other_wheels: list[IndexFile] = field(default_factory=list)
    sdists: list[tuple[IndexFile, str]] = field(default_factory=list)

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

    @property
    def yanked(self) -> bool:
        """Return whether every file of this version is yanked."""
        files = [f for _, f, _ in self.wheels] + [f for f, _ in self.sdists] + self.other_wheels
        return bool(files) and all(f.yanked is not None for f in files)

    @property
    def yank_reason(self) -> str:
        """Return the reason given for the yank, if any."""
        for _, f, _ in self.wheels:
            if f.yanked:
                return f.yanked
        for f, _ in self.sdists:
            if f.yanked:
                return f.yanked
        return ""

    def uploaded_before(self, cutoff: datetime) -> bool:
        """Return whether some file was uploaded before ``cutoff`` (``--exclude-newer``)."""
        files = [f for _, f, _ in self.wheels] + [f for f, _ in self.sdists]
        for f in files:
            if f.upload_time is None:
                continue
            try:
                when = datetime.fromisoformat(f.upload_time.replace("Z", "+00:00"))
            except ValueError:
                continue
            if when < cutoff:
                return True
        return False


@dataclass(slots=True)
class ProjectCandidates:
    """Every version of one project that has at least one file."""

    name: str
    versions: dict[Version, VersionCandidates]
    #: Versions, newest first.
    ordered: list[Version]
    files: ProjectFiles

    @classmethod
    def build(cls, files: ProjectFiles, target: Target) -> ProjectCandidates:
        """Group ``files`` by version and rank each wheel for ``target``."""
        priorities = target.tag_priorities
        name = files.name
        versions: dict[Version, VersionCandidates] = {}
        version_cache: dict[str, Version] = {}
        for f, loc in files.files:
            filename = f.filename
            try:
                if filename.endswith(".whl"):
                    wname, version, _build, wtags = parse_wheel_filename(filename)
                    if wname != name:
                        continue
                    best = min((priorities.get(t, -1) for t in wtags), key=_rank, default=-1)
                    vc = versions.get(version)
                    if vc is None:
                        vc = versions[version] = VersionCandidates(version)
                    if best >= 0:
                        vc.wheels.append((best, f, loc))
                    else:
                        vc.other_wheels.append(f)
                elif filename.endswith(SDIST_SUFFIXES):
                    sname, raw = _sdist(filename, version_cache)
                    if canonicalize_name(sname) != name:
                        continue
                    vc = versions.get(raw)
                    if vc is None:
                        vc = versions[raw] = VersionCandidates(raw)
                    vc.sdists.append((f, loc))
            except (InvalidWheelFilename, InvalidSdistFilename, ValueError):
                log.debug("skipping unparseable filename %s", filename)
        for vc in versions.values():
            vc.wheels.sort(key=lambda w: w[0])
        ordered = sorted(versions, reverse=True)
        return cls(name, versions, ordered, files)


def _rank(priority: int) -> int:
    """Order tag priorities so that unsupported (-1) comes last."""
    return priority if priority >= 0 else 1 << 30


def _sdist(filename: str, cache: dict[str, Version]) -> tuple[str, Version]:
    name, version = parse_sdist_filename(filename)
    return name, cache.setdefault(str(version), version)


class CandidateCache:
    """Memo of :class:`ProjectCandidates` per (page identity, target), bounded."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._memo: OrderedDict[tuple[int, int], tuple[ProjectFiles, ProjectCandidates]] = (
            OrderedDict()
        )

    def clear(self) -> None:
        """Forget everything (after ``cache.clean``)."""
        self._memo.clear()

    def get(self, files: ProjectFiles, target: Target) -> ProjectCandidates:
        """Return the candidates of ``files`` for ``target``, building them once."""
        key = (id(files.files[0][0]) if files.files else id(files), id(target.tag_priorities))
        hit = self._memo.get(key)
        if hit is not None and hit[0].files == files.files:
            self._memo.move_to_end(key)
            return hit[1]
        built = ProjectCandidates.build(files, target)
        self._memo[key] = (files, built)
        while len(self._memo) > self.size:
            self._memo.popitem(last=False)
        return built
