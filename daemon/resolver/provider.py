"""The resolver's provider: versions and dependencies from the index, for one target.

The PubGrub solver (``pubgrub.py``) is pure; this provider answers its questions with data
from the index client and the cache. It applies everything that is policy rather than
algorithm: markers and extras, ``Requires-Python``, tags, yanked files, pre-release modes,
constraints and overrides, resolution strategy, preferences from an existing output file,
``--exclude-newer`` and ``--no-deps``.

Speed comes from prefetching: as soon as a package appears as a dependency its project page
is requested in the background, and as soon as a page arrives the metadata of the version
the solver will most likely pick is requested too, so the network works on many packages
while the solver walks the graph one step at a time.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, Final
from urllib.parse import unquote

from msgspec import Struct, field
from packaging.requirements import InvalidRequirement as PackagingInvalidRequirement
from packaging.requirements import Requirement
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from burrowd.daemon.builder.source import Source, direct_source, pinned_url, sdist_source
from burrowd.daemon.candidates import (
    CandidateCache,
    ProjectCandidates,
    unsupported_wheel,
    uploaded_by,
)
from burrowd.daemon.errors import (
    BuildRequired,
    DaemonError,
    InvalidDistribution,
    InvalidRequirement,
    PackageNotFound,
    ResolutionImpossible,
)
from burrowd.daemon.index.client import DIRECT, IndexClient
from burrowd.daemon.index.http import redact
from burrowd.daemon.index.models import IndexFile
from burrowd.daemon.index.parse import SDIST_SUFFIXES, parse_sdist, split_hash
from burrowd.daemon.index.sdist import tree_metadata
from burrowd.daemon.inputs.model import RequirementEntry
from burrowd.daemon.interfaces import SourceBuilder
from burrowd.daemon.metadata import CoreMetadata
from burrowd.daemon.requests import PackageRequest
from burrowd.daemon.resolver.pubgrub import NoVersion, Unavailable
from burrowd.daemon.resolver.ranges import VersionSet

__all__ = [
    "ROOT",
    "ROOT_VERSION",
    "Pkg",
    "PrereleaseMode",
    "Provider",
    "ResolutionMode",
    "ResolveOptions",
    "check_requirement_names",
]

log = logging.getLogger(__name__)


class Pkg(Struct, frozen=True):
    """A package as the solver sees it: a project, or a project with one extra."""

    name: str
    extra: str | None = None

    def __str__(self) -> str:
        return f"{self.name}[{self.extra}]" if self.extra else self.name

    @property
    def base(self) -> Pkg:
        """Return the package without its extra."""
        return Pkg(self.name) if self.extra else self


ROOT: Final = Pkg("")
ROOT_VERSION: Final = Version("0")


class PrereleaseMode(enum.Enum):
    """When pre-release versions may be chosen (uv's modes)."""

    DISALLOW = "disallow"
    ALLOW = "allow"
    IF_NECESSARY = "if-necessary"
    EXPLICIT = "explicit"
    IF_NECESSARY_OR_EXPLICIT = "if-necessary-or-explicit"


class ResolutionMode(enum.Enum):
    """Which version of a package to prefer."""

    HIGHEST = "highest"
    LOWEST = "lowest"
    LOWEST_DIRECT = "lowest-direct"


class ResolveOptions(Struct):
    """Policy of one resolution."""

    prerelease: PrereleaseMode = PrereleaseMode.IF_NECESSARY_OR_EXPLICIT
    resolution: ResolutionMode = ResolutionMode.HIGHEST
    exclude_newer: datetime | None = None
    no_deps: bool = False
    #: Versions to keep when still allowed (pins of the existing output file).
    preferences: dict[str, Version] = field(default_factory=dict)
    #: ``--only-binary`` / ``--no-binary`` names (canonical, or ``:all:``), pip's semantics.
    only_binary: frozenset[str] = frozenset()
    no_binary: frozenset[str] = frozenset()
    #: ``--no-build``: a version with only an sdist is passed over (as uv does), unless it
    #: is the preferred one (installed, or pinned by the output file).
    no_build: bool = False

    def formats(self, name: str) -> str:
        """Return which files of ``name`` may be used: "any", "binary" or "source".

        A name given to one option wins over ``:all:`` given to the other, as in pip.
        """
        if name in self.only_binary:
            return "binary"
        if name in self.no_binary:
            return "source"
        if ":all:" in self.only_binary:
            return "binary"
        if ":all:" in self.no_binary:
            return "source"
        return "any"


class _Req(Struct, frozen=True):
    """A parsed ``Requires-Dist`` entry with what filtering it needs, computed once."""

    req: Requirement
    name: NormalizedName
    marker: str | None
    mentions_extra: bool


@lru_cache(maxsize=65536)
def _requirement(text: str) -> _Req | None:
    try:
        req = Requirement(text)
    except PackagingInvalidRequirement:
        return None
    marker = str(req.marker) if req.marker is not None else None
    return _Req(req, canonicalize_name(req.name), marker, marker is not None and "extra" in marker)


@lru_cache(maxsize=16384)
def _specifier_set(spec: str) -> VersionSet:
    return VersionSet.from_specifiers(spec)


class _Choice(Struct):
    """Which file the provider chose for a version (the one whose metadata counts)."""

    file: IndexFile
    location: str
    yanked: bool


class Provider:
    """Answer the solver's questions for one resolution."""

    def __init__(
        self,
        index: IndexClient,
        candidates: CandidateCache,
        request: PackageRequest,
        options: ResolveOptions,
        *,
        requirements: list[RequirementEntry],
        constraints: list[RequirementEntry],
        overrides: list[RequirementEntry],
        on_progress: Callable[[str, int, int | None], None] = lambda *_: None,
        builder: SourceBuilder | None = None,
    ) -> None:
        self.index = index
        #: Builds what only a build can tell (dynamic metadata, repositories); ``None``
        #: (build environments resolving their own requirements) refuses instead.
        self.builder = builder
        self.candidate_cache = candidates
        self.request = request
        self.options = options
        self.target = request.target
        self.on_progress = on_progress
        #: Versions ruled out because a file of theirs could not be read.
        self.ruled_out_by_errors = 0
        self.requirements = [r for r in requirements if self._applies(r)]
        self.constraints = self._by_name([c for c in constraints if self._applies(c)])
        # An override replaces every requirement on its package, as in uv: one whose
        # marker does not hold for the target leaves the package out altogether.
        self.overrides = {
            name: [o for o in group if self._applies(o)]
            for name, group in self._by_name(overrides).items()
        }
        self.direct: set[str] = {r.name for r in self.requirements}
        self.pinned_exact: dict[str, Version] = {}
        self.explicit_pre: set[str] = set()
        constraint_entries = [c for group in self.constraints.values() for c in group]
        for entry in [*self.requirements, *constraint_entries]:
            for spec in entry.requirement.specifier:
                try:
                    # "===" takes any string; one that is no version pins nothing.
                    named = Version(spec.version.removesuffix(".*"))
                except InvalidVersion:
                    continue
                if spec.operator in ("==", "===") and "*" not in spec.version:
                    self.pinned_exact[entry.name] = named
                if named.is_prerelease:
                    self.explicit_pre.add(entry.name)
        self.direct_files: dict[str, tuple[IndexFile, Version]] = {}
        #: Metadata of local project directories, read with their version.
        self.direct_metadata: dict[str, CoreMetadata] = {}
        #: Direct references only a build (or a checkout) can tell the version of.
        self.to_build: dict[str, tuple[RequirementEntry, Source]] = {}
        #: The resolved sources of built direct references (a git one with its commit).
        self.sources: dict[str, Source] = {}
        for entry in self.requirements:
            if entry.requirement.url:
                try:
                    file, version, meta = _direct_file(entry)
                    refusal = (
                        unsupported_wheel(file.filename, self.target) if file.is_wheel else None
                    )
                    if refusal is not None:
                        raise InvalidDistribution(file.filename, refusal)
                except BuildRequired:
                    if self.builder is None:
                        raise
                    known = self.to_build.get(entry.name)
                    if known is not None and known[0].requirement.url != entry.requirement.url:
                        raise InvalidRequirement(
                            f"{entry.requirement.name} is required from two places, "
                            f"{redact(known[0].requirement.url or '')} and "
                            f"{redact(entry.requirement.url or '')}; keep one of them",
                            file=entry.origin.file,
                            line=entry.origin.line,
                        ) from None
                    self.to_build[entry.name] = (entry, direct_source(entry))
                    continue
                self._add_direct(entry, file, version, meta)
        self._projects: dict[str, ProjectCandidates] = {}
        self._pending: dict[str, asyncio.Task[ProjectCandidates]] = {}
        self._metadata_tasks: dict[tuple[str, Version], asyncio.Task[CoreMetadata]] = {}
        self.choices: dict[tuple[str, Version], _Choice] = {}
        self.metadata: dict[tuple[str, Version], CoreMetadata] = {}
        self.discovered: set[str] = set()
        self.decided_names: set[str] = set()
        self.warnings: list[str] = []
        self._background: set[asyncio.Task[object]] = set()

    def _add_direct(
        self, entry: RequirementEntry, file: IndexFile, version: Version, meta: CoreMetadata | None
    ) -> None:
        known = self.direct_files.get(entry.name)
        if known is not None and known[0].url != file.url:
            raise InvalidRequirement(
                f"{entry.requirement.name} is required from two places, "
                f"{redact(known[0].url)} and {redact(file.url)}; keep one of them",
                file=entry.origin.file,
                line=entry.origin.line,
            )
        self.direct_files[entry.name] = (file, version)
        if meta is not None:
            self.direct_metadata[entry.name] = meta

    async def prepare(self) -> None:
        """Build (or check out) the direct references only that can tell the version of.

        Run before solving: the root's dependencies name those versions exactly. A git
        reference is pinned to the commit it resolved to, as compile writes it.
        """
        builder = self.builder
        if not self.to_build or builder is None:
            return

        async def one(entry: RequirementEntry, source: Source) -> None:
            resolved = await builder.prepare(source, self.request)
            meta = await builder.metadata(resolved, self.request)
            try:
                version = Version(meta.version)
            except InvalidVersion:
                raise InvalidDistribution(
                    resolved.describe(), f"its version {meta.version!r} is not a valid version"
                ) from None
            url = pinned_url(resolved, entry)
            filename = unquote(url.split("#")[0].rstrip("/").rsplit("/", 1)[-1])
            file = IndexFile(filename=filename, url=url, hashes={})
            self._add_direct(entry, file, version, meta)
            self.sources[entry.name] = resolved

        self.on_progress("building", 0, len(self.to_build))
        await asyncio.gather(*(one(e, src) for e, src in self.to_build.values()))

    # -- inputs -----------------------------------------------------------------------------

    def _applies(self, entry: RequirementEntry) -> bool:
        marker = entry.requirement.marker
        return marker is None or self.target.evaluate(marker, str(marker))

    @staticmethod
    def _by_name(entries: list[RequirementEntry]) -> dict[str, list[RequirementEntry]]:
        out: dict[str, list[RequirementEntry]] = {}
        for e in entries:
            out.setdefault(e.name, []).append(e)
        return out

    def _constrained(self, name: str, versions: VersionSet) -> VersionSet:
        for c in self.constraints.get(name, ()):
            versions = versions.intersection(_specifier_set(str(c.requirement.specifier)))
        return versions

    def _add(self, deps: dict[Pkg, VersionSet], req: Requirement, *, from_root: bool) -> None:
        name = canonicalize_name(req.name)
        if name in self.overrides and not from_root:
            # An override replaces what every package says about ``name``.
            return
        direct = self.direct_files.get(name)
        if req.url and direct is None:
            raise _TransitiveUrl(f"it depends on {name} @ {req.url}")
        if direct is not None:
            versions = VersionSet.exact(direct[1])
            self._merge(deps, Pkg(name), versions)
            for extra in sorted(req.extras):
                self._merge(deps, Pkg(name, canonicalize_name(extra)), versions)
            return
        # Constraints are applied when a version is chosen, not here: a dependency keeps its
        # own bounds, so an explanation names both them and the constraint that excludes them.
        versions = _specifier_set(str(req.specifier))
        self._merge(deps, Pkg(name), versions)
        for extra in sorted(req.extras):
            self._merge(deps, Pkg(name, canonicalize_name(extra)), versions)
        self.prefetch(name, versions, req.extras)

    @staticmethod
    def _merge(deps: dict[Pkg, VersionSet], pkg: Pkg, versions: VersionSet) -> None:
        old = deps.get(pkg)
        deps[pkg] = versions if old is None else old.intersection(versions)

    def root_dependencies(self) -> dict[Pkg, VersionSet]:
        """Return the root's dependencies: requirements, with overrides applied."""
        deps: dict[Pkg, VersionSet] = {}
        seen_overridden: set[str] = set()
        for entry in self.requirements:
            req = entry.requirement
            if entry.name in self.overrides:
                if entry.name in seen_overridden:
                    continue
                seen_overridden.add(entry.name)
                for o in self.overrides[entry.name]:
                    merged = Requirement(str(o.requirement))
                    merged.extras |= req.extras
                    self._add(deps, merged, from_root=True)
                continue
            self._add(deps, req, from_root=True)
        self._check_root_ranges(deps)
        return deps

    def _check_root_ranges(self, deps: Mapping[Pkg, VersionSet]) -> None:
        """Refuse requirements that no version of a package can meet, in their own words.

        Merged into one empty range, ``six>=1.16`` and ``six<1.16`` would only read as "an
        empty version range" in the solver's explanation.
        """
        for pkg, versions in deps.items():
            if pkg.extra is not None or not versions.is_empty():
                continue
            wanted = [o.requirement for o in self.overrides.get(pkg.name, ())] or [
                e.requirement for e in self.requirements if e.name == pkg.name
            ]
            specs = list(dict.fromkeys(f"{pkg.name}{r.specifier}" for r in wanted))
            if len(specs) == 1:
                because = f"you require {specs[0]}, a range that holds no version"
            else:
                because = f"you require {', '.join(specs[:-1])} and {specs[-1]}"
            text = f"Because {because}, we can conclude that your requirements are unsatisfiable."
            raise ResolutionImpossible(text, {"text": text, "kind": "root"})

    # -- prefetching ------------------------------------------------------------------------

    def prefetch(self, name: str, versions: VersionSet, extras: Collection[str] = ()) -> None:
        """Start fetching the page, the likely metadata and, from that, the likely
        dependencies of ``name`` (with ``extras``) in the background."""
        if name in self._projects or name in self._pending:
            return
        self.discovered.add(name)
        task = asyncio.ensure_future(self._load_project(name))
        task.add_done_callback(_retrieve)
        self._pending[name] = task
        warm = asyncio.ensure_future(self._warm(name, versions, extras, task))
        self._background.add(warm)
        warm.add_done_callback(self._background.discard)

    async def _warm(
        self,
        name: str,
        versions: VersionSet,
        extras: Collection[str],
        task: asyncio.Task[ProjectCandidates],
    ) -> None:
        try:
            await asyncio.shield(task)
            version = self._pick(name, versions)
            if not isinstance(version, Version) or (name, version) not in self.choices:
                return
            meta = await asyncio.shield(self._metadata_task(name, version))
            if self.options.no_deps or (
                meta.requires_python and not self.target.allows_python(meta.requires_python)
            ):
                return
            # Walk on ahead of the solver: the dependencies of the version it will most
            # likely pick are what it asks for next, so their pages load meanwhile instead
            # of one level of the graph per round trip.
            for extra in (None, *sorted(canonicalize_name(e) for e in extras)):
                requires = self._requires(meta, extra)
                if isinstance(requires, str):
                    return
                for parsed in requires:
                    req = parsed.req
                    if req.url or parsed.name == name or parsed.name in self.overrides:
                        continue
                    self.prefetch(parsed.name, _specifier_set(str(req.specifier)), req.extras)
        except (DaemonError, asyncio.CancelledError):
            return
        except Exception:  # the real request will raise it again, with context
            log.debug("prefetch of %s failed", name, exc_info=True)

    async def _load_project(self, name: str) -> ProjectCandidates:
        files = await self.index.project_files(self.request.settings, name, self.request.fresh)
        project = await self.candidate_cache.get_async(files, self.target)
        self._projects[name] = project
        self.on_progress("fetching project pages", len(self._projects), len(self.discovered))
        return project

    async def project(self, name: str) -> ProjectCandidates:
        """Return the candidates of ``name``, fetching its page if needed."""
        found = self._projects.get(name)
        if found is not None:
            return found
        task = self._pending.get(name)
        if task is None:
            self.discovered.add(name)
            task = asyncio.ensure_future(self._load_project(name))
            task.add_done_callback(_retrieve)
            self._pending[name] = task
        return await asyncio.shield(task)

    def _metadata_task(self, name: str, version: Version) -> asyncio.Task[CoreMetadata]:
        key = (name, version)
        task = self._metadata_tasks.get(key)
        if task is None and name in self.direct_metadata:
            task = asyncio.ensure_future(_given(self.direct_metadata[name]))
            self._metadata_tasks[key] = task
        if task is None:
            choice = self.choices[key]
            task = asyncio.ensure_future(
                self._file_metadata(choice.file, choice.location, name, version)
            )
            task.add_done_callback(_retrieve)
            task.add_done_callback(self._metadata_done)
            self._metadata_tasks[key] = task
        return task

    async def _file_metadata(
        self, file: IndexFile, location: str, name: str, version: Version
    ) -> CoreMetadata:
        """Return a file's metadata; an sdist's comes from the builder (read, else built).

        The builder keeps it per sdist revision, so a second resolve neither downloads nor
        builds the sdist.
        """
        if self.builder is not None and not file.is_wheel:
            return await self.builder.metadata(sdist_source(file, location, name), self.request)
        return await self.index.metadata(
            file, location, name, str(version), offline=self.request.fresh.offline
        )

    def _metadata_done(self, task: asyncio.Task[CoreMetadata]) -> None:
        done = sum(1 for t in self._metadata_tasks.values() if t.done())
        self.on_progress("fetching metadata", done, len(self._metadata_tasks))

    def close(self) -> None:
        """Cancel work nobody needs any more.

        Page loads, metadata reads and downloads they started run shielded in the index
        client's single-flight maps, so they finish (and fill the cache) for whoever else
        waits; only this request's interest in them ends.
        """
        for task in [*self._background, *self._pending.values(), *self._metadata_tasks.values()]:
            task.cancel()

    # -- ChooseVersion ----------------------------------------------------------------------

    def _prerelease_ok(self, name: str) -> bool:
        mode = self.options.prerelease
        if mode is PrereleaseMode.ALLOW:
            return True
        if mode in (PrereleaseMode.EXPLICIT, PrereleaseMode.IF_NECESSARY_OR_EXPLICIT):
            return name in self.explicit_pre
        return False

    def _prerelease_fallback(self) -> bool:
        return self.options.prerelease in (
            PrereleaseMode.IF_NECESSARY,
            PrereleaseMode.IF_NECESSARY_OR_EXPLICIT,
        )

    def _lowest(self, name: str) -> bool:
        mode = self.options.resolution
        return mode is ResolutionMode.LOWEST or (
            mode is ResolutionMode.LOWEST_DIRECT and name in self.direct
        )

    def _constraint_reason(self, name: str) -> str:
        shown = ", ".join(
            f"{name}{c.requirement.specifier} from {c.origin}" for c in self.constraints[name]
        )
        return f"are excluded by the constraint {shown}"

    def _pick(self, name: str, allowed: VersionSet) -> Version | NoVersion:
        """Return the version to try for ``name`` within ``allowed``, recording its file."""
        project = self._projects[name]
        constrained = self._constrained(name, allowed)
        preferred = self.options.preferences.get(name)
        if (
            preferred is not None
            and preferred in constrained
            # A pinned pre-release is kept only where pre-releases are allowed; otherwise
            # the normal choice below decides (and may still need one, if necessary).
            and (not preferred.is_prerelease or self._prerelease_ok(name))
            and self._acceptable(project, preferred) is None
        ):
            return preferred
        order = reversed(project.ordered) if self._lowest(name) else project.ordered
        allow_pre = self._prerelease_ok(name)
        reasons: dict[str, int] = {}
        skipped_pre: list[Version] = []
        for version in order:
            if version not in allowed:
                continue
            if version not in constrained:
                excluded = self._constraint_reason(name)
                reasons[excluded] = reasons.get(excluded, 0) + 1
                continue
            if version.is_prerelease and not allow_pre:
                skipped_pre.append(version)
                continue
            why = self._acceptable(project, version)
            if why is None:
                return version
            reasons[why] = reasons.get(why, 0) + 1
        if skipped_pre and self._prerelease_fallback():
            # if-necessary: only pre-releases fit, so they are allowed for this package.
            for version in skipped_pre:
                why = self._acceptable(project, version)
                if why is None:
                    return version
                reasons[why] = reasons.get(why, 0) + 1
        return NoVersion(self._no_version_reason(name, allowed, reasons, skipped_pre))

    def _no_version_reason(
        self,
        name: str,
        allowed: VersionSet,
        reasons: dict[str, int],
        skipped_pre: list[Version],
    ) -> str | None:
        if skipped_pre and not reasons:
            return (
                f"only pre-releases match ({skipped_pre[0]}); pass --prerelease allow "
                f"or require {name}>={skipped_pre[-1]} explicitly"
            )
        if not reasons:
            return None
        return "; ".join(_count_versions(n, why) for why, n in reasons.items())

    def _recent(self, files: list[tuple[IndexFile, str]]) -> list[tuple[IndexFile, str]]:
        """Return the files ``--exclude-newer`` lets through.

        File by file, as uv does: a wheel added to an old release later is excluded.
        """
        cutoff = self.options.exclude_newer
        if cutoff is None:
            return files
        return [(f, loc) for f, loc in files if uploaded_by(f, cutoff)]

    def _in_format(
        self, name: str, files: list[tuple[IndexFile, str]]
    ) -> list[tuple[IndexFile, str]]:
        """Return the files ``--only-binary``/``--no-binary`` allow for ``name``."""
        formats = self.options.formats(name)
        if formats == "any":
            return files
        return [(f, loc) for f, loc in files if f.is_wheel == (formats == "binary")]

    def _warn(self, warning: str) -> None:
        """Tell the user ``warning`` with the result, once."""
        if warning not in self.warnings:
            self.warnings.append(warning)

    def allowed_files(self, name: str, version: Version) -> list[tuple[IndexFile, str]]:
        """Return every file of a chosen version the options allow, whatever its tags.

        What ``--generate-hashes`` lists: the same filters as choosing the version.
        """
        vc = self._projects[name].versions[version]
        return self._in_format(name, self._recent(vc.all_located()))

    def _acceptable(self, project: ProjectCandidates, version: Version) -> str | None:
        """Return why ``version`` cannot be used, or ``None`` (and remember its file)."""
        vc = project.versions[version]
        name = project.name
        exact = self.pinned_exact.get(name) == version
        usable = vc.usable(allow_yanked=exact)
        for filename, loc, why in vc.skipped():
            # Said, not silent: without it this version may lose to another.
            self._warn(
                f"{filename} on {redact(loc)} was skipped: its index entry is unusable ({why})"
            )
        cutoff = self.options.exclude_newer
        recent = self._recent(usable)
        if usable and not recent:
            return "uploaded after --exclude-newer"
        usable = recent
        formats = self.options.formats(name)
        kept = self._in_format(name, usable)
        if usable and not kept:
            flag = "--only-binary" if formats == "binary" else "--no-binary"
            return f"have no {'wheel' if formats == 'binary' else 'sdist'} ({flag})"
        usable = kept
        if self.options.no_build and self.options.preferences.get(name) != version:
            wheels = [(f, loc) for f, loc in usable if f.is_wheel]
            if usable and not wheels:
                return "have no wheel, and --no-build forbids building one"
            usable = wheels
        if not usable:
            if vc.yanked:
                return "yanked (allowed only with an exact == pin)"
            if vc.other_wheels and not vc.sdists:
                return f"have no wheel for {self.target.describe()}"
            return "have no usable files"
        choice = None
        for f, loc in usable:
            if self.target.allows_python(f.requires_python):
                choice = (f, loc)
                break
        if choice is None:
            need = usable[0][0].requires_python
            return f"require Python {need}"
        f, loc = choice
        if cutoff is not None and f.upload_time is None and loc != DIRECT:
            self._warn(
                f"{redact(loc)} gives no upload times, so --exclude-newer cannot judge its "
                "files and keeps them"
            )
        if exact and vc.yanked:
            why = f" ({vc.yank_reason})" if vc.yank_reason else ""
            self._warn(f"{name}=={version} is yanked{why}; using it because it is pinned with ==")
        self.choices[(name, version)] = _Choice(f, loc, f.yanked is not None)
        return None

    async def choose_version(self, pkg: Pkg, allowed: VersionSet) -> Version | NoVersion:
        """Answer ``ChooseVersion``."""
        direct = self.direct_files.get(pkg.name)
        if direct is not None:
            file, version = direct
            if version not in allowed:
                return NoVersion(f"{file.url} is version {version}")
            if version not in self._constrained(pkg.name, allowed):
                why = self._constraint_reason(pkg.name).removeprefix("are ")
                return NoVersion(f"{file.url} is version {version}, which is {why}")
            self.choices[(pkg.name, version)] = _Choice(file, DIRECT, False)
            return version
        if pkg.extra:
            # An extra follows its base package, which is pinned to one version by now.
            project = await self.project(pkg.name)
            pinned = allowed.singleton()
            if pinned is not None and pinned in project.versions:
                return self._pick(pkg.name, VersionSet.exact(pinned))
            return self._pick(pkg.name, allowed)
        try:
            await self.project(pkg.name)
        except PackageNotFound as exc:
            if pkg.name in self.direct:
                raise
            # A dependency that no index has rules out the versions that need it, as with
            # pip and uv: the solver backtracks and explains it if nothing else fits.
            return NoVersion(f"{pkg.name} was not found on {', '.join(exc.indexes)}")
        result = self._pick(pkg.name, allowed)
        if isinstance(result, Version):
            self._metadata_task(pkg.name, result)
        return result

    # -- GetDependencies --------------------------------------------------------------------

    async def get_dependencies(
        self, pkg: Pkg, version: Version
    ) -> Mapping[Pkg, VersionSet] | Unavailable:
        """Answer ``GetDependencies``."""
        if pkg == ROOT:
            return self.root_dependencies()
        self.decided_names.add(pkg.name)
        self.on_progress("resolving", len(self.decided_names), len(self.discovered))
        key = (pkg.name, version)
        if key not in self.choices:
            project = await self.project(pkg.name)
            self._acceptable(project, version)
        choice = self.choices.get(key)
        if choice is None:
            return Unavailable("it has no usable file")
        try:
            meta = await self._metadata_task(pkg.name, version)
        except InvalidDistribution as exc:
            # A broken file rules out this version only; the solver tries others.
            self.ruled_out_by_errors += 1
            return Unavailable(exc.reason)
        # BuildRequired propagates: uv would build this version rather than fall back to
        # an older one, so quietly backtracking would give a different answer.
        self.metadata[key] = meta
        if meta.requires_python and not self.target.allows_python(meta.requires_python):
            return Unavailable(f"it requires Python {meta.requires_python}")
        deps: dict[Pkg, VersionSet] = {}
        if pkg.extra:
            deps[pkg.base] = VersionSet.exact(version)
            if pkg.extra not in _declared_extras(meta):
                self._warn(f"{pkg.name}=={version} has no extra {pkg.extra!r}")
        if self.options.no_deps:
            # Only the requirements themselves: an extra adds no packages either (pip, uv).
            return deps
        requires = self._requires(meta, pkg.extra)
        if isinstance(requires, str):
            return Unavailable(f"its metadata has an invalid requirement {requires!r}")
        for parsed in requires:
            req, dep = parsed.req, parsed.name
            if dep == pkg.name and not req.extras:
                continue
            if dep in self.overrides:
                for o in self.overrides[dep]:
                    merged = Requirement(str(o.requirement))
                    merged.extras |= req.extras
                    self._add(deps, merged, from_root=True)
                continue
            try:
                self._add(deps, req, from_root=False)
            except _TransitiveUrl as exc:
                return Unavailable(
                    f"{exc}, and a direct reference is allowed only in your own requirements"
                )
        return deps

    def _requires(self, meta: CoreMetadata, extra: str | None) -> list[_Req] | str:
        """Return the requirements of ``meta`` that apply to the base package or ``extra``.

        Unconditional requirements belong to the base package; the ``[extra]`` package adds
        only those whose marker names an extra and holds for that extra. Return the text of
        an invalid requirement instead, if there is one.
        """
        out: list[_Req] = []
        for text in meta.requires_dist:
            parsed = _requirement(text)
            if parsed is None:
                return text
            if parsed.marker is None:
                if extra is None:
                    out.append(parsed)
                continue
            marker = parsed.req.marker
            assert marker is not None
            if extra:
                if parsed.mentions_extra and self.target.evaluate(marker, parsed.marker, extra):
                    out.append(parsed)
            elif self.target.evaluate(marker, parsed.marker):
                out.append(parsed)
        return out

    def dependency_names(self, pkg: Pkg, version: Version) -> list[NormalizedName]:
        """Return the dependencies of a resolved package, for ``# via`` lines."""
        meta = self.metadata.get((pkg.name, version))
        if meta is None:
            return []
        requires = self._requires(meta, pkg.extra)
        return [] if isinstance(requires, str) else [r.name for r in requires]


class _TransitiveUrl(Exception):
    """A package's metadata names a direct URL the user's requirements do not."""


#: Source archives pip names that burrowd does not read (lzip and zstd, which Python's
#: standard library cannot open, and the rare ``.tar.lzma``): a direct reference to one
#: gets an error that says so.
_UNREADABLE_SDIST_SUFFIXES: Final = (".tar.lz", ".tlz", ".tar.lzma", ".tar.zst", ".tzst")


def _direct_file(entry: RequirementEntry) -> tuple[IndexFile, Version, CoreMetadata | None]:
    """Return the file a direct reference names, its version and, if read here, metadata.

    A wheel or an sdist (URL or path) is read through the index client like any file
    (an sdist's static metadata, downloaded first if remote); a local project directory
    is read here, from its static ``pyproject.toml`` ``[project]`` table (or
    ``PKG-INFO``), as uv does without a build. Raise :class:`BuildRequired` for what
    only a build could tell (dynamic metadata, a repository).
    """
    url = entry.requirement.url or ""
    clean, hashes = split_hash(url)
    for item in entry.hashes:
        algorithm, _, digest = item.partition(":")
        hashes.setdefault(algorithm, digest)
    filename = unquote(clean.rstrip("/").rsplit("/", 1)[-1])
    if entry.path is not None and entry.path.is_dir():
        if entry.hashes:
            raise InvalidRequirement(
                f"--hash cannot check a directory ({entry.path}); drop the option or point "
                "the requirement at a built wheel or sdist",
                file=entry.origin.file,
                line=entry.origin.line,
            )
        meta = tree_metadata(entry.path, entry.name)
        _check_direct_name(entry, canonicalize_name(meta.name), str(entry.path))
        try:
            version = Version(meta.version)
        except InvalidVersion:
            raise InvalidDistribution(
                str(entry.path), f"its version {meta.version!r} is not a valid version"
            ) from None
        return IndexFile(filename=filename, url=clean, hashes={}), version, meta
    plain = clean.startswith(("https://", "http://", "file:"))  # not git+https:// etc.
    if plain and filename.endswith(SDIST_SUFFIXES):
        try:
            name, version = parse_sdist(filename)
        except InvalidSdistFilename as exc:
            raise _bad_filename(entry, filename, "sdist", exc) from None
        _check_direct_name(entry, name, filename)
        return IndexFile(filename=filename, url=clean, hashes=hashes), version, None
    if plain and filename.endswith(_UNREADABLE_SDIST_SUFFIXES):
        raise InvalidRequirement(
            f"{filename} is a source archive in a format burrowd cannot read (it reads "
            f"{', '.join(SDIST_SUFFIXES)}); repack it as a .tar.gz, or point the requirement "
            "at a wheel",
            file=entry.origin.file,
            line=entry.origin.line,
        )
    if not filename.endswith(".whl"):
        raise BuildRequired(
            entry.name,
            "?",
            url,
            "a direct reference to a repository needs a checkout and a build, which are not "
            "available yet; point it at a wheel, an sdist or a local project with static "
            "metadata instead",
        )
    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise _bad_filename(entry, filename, "wheel", exc) from None
    _check_direct_name(entry, name, filename)
    return IndexFile(filename=filename, url=clean, hashes=hashes), version, None


def _bad_filename(
    entry: RequirementEntry, filename: str, kind: str, exc: Exception
) -> InvalidRequirement:
    return InvalidRequirement(
        f"{filename} is not a valid {kind} filename ({exc})",
        file=entry.origin.file,
        line=entry.origin.line,
    )


async def _given(meta: CoreMetadata) -> CoreMetadata:
    return meta


def _check_direct_name(entry: RequirementEntry, name: str, what: str) -> None:
    if name != entry.name:
        raise InvalidRequirement(
            f"{what} is a distribution of {name}, not of {entry.requirement.name}",
            file=entry.origin.file,
            line=entry.origin.line,
        )


def _count_versions(n: int, why: str) -> str:
    """Return ``2 versions require ...`` or ``1 version requires ...`` (``why`` is plural)."""
    if n > 1:
        return f"{n} versions {why}"
    verb, sep, rest = why.partition(" ")
    singular = {"are": "is", "have": "has", "require": "requires"}.get(verb)
    return f"1 version {singular}{sep}{rest}" if singular else f"1 version {why}"


def _declared_extras(meta: CoreMetadata) -> set[str]:
    """Return the extras ``meta`` declares or names in an ``extra == "..."`` marker."""
    found: set[str] = {canonicalize_name(e) for e in meta.provides_extra}
    for text in meta.requires_dist:
        parsed = _requirement(text)
        if parsed is not None and parsed.mentions_extra:
            for left, right in _EXTRA_IN_MARKER.findall(parsed.marker or ""):
                found.add(canonicalize_name(left or right))
    return found


_EXTRA_IN_MARKER: Final = re.compile(
    r"""\bextra\s*==\s*["']([^"']+)["']|["']([^"']+)["']\s*==\s*extra\b"""
)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a background task's exception as seen; the awaiting request re-raises it."""
    if not task.cancelled():
        task.exception()


def check_requirement_names(entries: list[RequirementEntry]) -> None:
    """Raise for requirements that can never resolve (an empty name, say)."""
    for e in entries:
        if not e.name:
            raise InvalidRequirement(
                "a requirement without a name", file=e.origin.file, line=e.origin.line
            )
