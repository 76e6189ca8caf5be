"""The ``sync``, ``install``, ``uninstall``, ``list`` and ``venv`` methods.

Each finds its environment, takes the environment's lock before reading what is installed,
plans, fetches what the plan needs into the cache (through the index client's
single-flight, so concurrent requests share downloads), and lets :class:`Changer` check the
whole plan before it changes anything. ``sync`` installs the pins as given, like
``uv pip sync``; ``install`` resolves first with the installed versions as preferences and
removes nothing; both hold the cache root lock shared for the whole request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Final

import msgspec
from packaging.requirements import InvalidRequirement as InvalidRequirementError
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import InvalidVersion, Version

from burrowd.daemon.builder.source import (
    Source,
    SourceKind,
    directory_revision,
)
from burrowd.daemon.errors import EnvironmentRefused, InvalidRequirement
from burrowd.daemon.index.http import strip_credentials
from burrowd.daemon.index.parse import split_hash
from burrowd.daemon.inputs.model import RequirementEntry
from burrowd.daemon.installer.apply import (
    Changer,
    Outcome,
    ProgressSink,
    Ready,
    check_consistency,
    finish_uncancelled,
    note_outside,
    removed_change,
    settle,
)
from burrowd.daemon.installer.environment import (
    LOCK_FILE,
    SEED_PACKAGES,
    VENV_MARKER,
    Environment,
    find_environment,
    remove_environment_tree,
)
from burrowd.daemon.installer.installed import (
    ArchiveInfo,
    DirectUrl,
    DirInfo,
    SitePackages,
    VcsInfo,
    scan,
)
from burrowd.daemon.installer.journal import (
    Journal,
    Writer,
    journal_removals,
    pending,
    replay,
)
from burrowd.daemon.installer.plan import SOURCE_RECORD, Plan, Step, Wanted, make_plan
from burrowd.daemon.installer.uninstall import Trash, check_removable, recorded_by, remove_dist
from burrowd.daemon.interpreters import PythonRequest, Target
from burrowd.daemon.prefetch import (
    FetchedWheel,
    Located,
    Prefetcher,
    pinned_version,
    pins_of,
)
from burrowd.daemon.requests import (
    PackageRequest,
    merge_index_options,
    prepare,
    read_requirement_inputs,
)
from burrowd.daemon.resolver.resolve import Pin
from burrowd.daemon.resolver.service import locate_pins, project_of, resolve_pins
from burrowd.daemon.services import Services
from burrowd.protocol import __version__
from burrowd.protocol import messages as m

__all__ = ["create_venv", "install", "list_packages", "sync", "uninstall"]

log = logging.getLogger(__name__)

VENV_TIMEOUT: Final = 120.0


def _applicable(entries: list[RequirementEntry], target: Target) -> list[RequirementEntry]:
    """Return the entries whose markers hold for ``target``, one per project."""
    env = target.marker_env()
    chosen: dict[str, RequirementEntry] = {}
    for entry in entries:
        marker = entry.requirement.marker
        if marker is not None and not marker.evaluate(env):
            continue
        other = chosen.get(entry.name)
        if other is not None:
            if _same_requirement(other, entry):
                continue
            raise InvalidRequirement(
                f"{entry.name} is required twice, as {str(other.requirement)!r} "
                f"({other.origin}) and as {str(entry.requirement)!r}; sync takes one pin "
                "per package",
                file=entry.origin.file,
                line=entry.origin.line,
            )
        chosen[entry.name] = entry
    return list(chosen.values())


def _same_requirement(a: RequirementEntry, b: RequirementEntry) -> bool:
    ra, rb = a.requirement, b.requirement
    return (ra.url, str(ra.specifier), a.path) == (rb.url, str(rb.specifier), b.path)


def _has_hash(entry: RequirementEntry) -> bool:
    """Return whether a requirement pins a hash (``--hash``, or a URL's ``#sha256=``)."""
    url = entry.requirement.url
    return bool(entry.hashes) or bool(url and split_hash(url)[1])


def _check_hashes(entries: Iterable[RequirementEntry], required: bool) -> None:
    """With ``--require-hashes``, every requirement must be pinned and carry a hash."""
    if not required:
        return
    for entry in entries:
        req = entry.requirement
        if not _has_hash(entry):
            raise InvalidRequirement(
                f"--require-hashes is on, and {req.name} has no --hash; add one "
                "(`burrow compile --generate-hashes` writes them)",
                file=entry.origin.file,
                line=entry.origin.line,
                text=str(req),
            )
        if not req.url and entry.path is None and pinned_version(req) is None:
            raise InvalidRequirement(
                f"--require-hashes is on, and {req.name} is not pinned with ==",
                file=entry.origin.file,
                line=entry.origin.line,
                text=str(req),
            )


def _hash_pin(entry: RequirementEntry | None) -> str | None:
    """Return the one sha256 a requirement pins (``--hash`` or ``#sha256=``), if exactly one."""
    if entry is None:
        return None
    pins = pins_of(entry) or {}
    found = pins.get("sha256", frozenset())
    return next(iter(found)) if len(found) == 1 else None


def _direct_url(located: Located, fetched: FetchedWheel) -> DirectUrl | None:
    """Return the ``direct_url.json`` of an install (PEP 610), ``None`` from an index."""
    source = fetched.located.origin
    if source is not None:
        return _source_direct_url(source)
    if located.direct is None:
        return None
    return _archive_url(located.direct, fetched.sha256)


def _archive_url(url: str, digest: str | None) -> DirectUrl:
    info = ArchiveInfo(hash=f"sha256={digest}", hashes={"sha256": digest}) if digest else None
    return DirectUrl(url=strip_credentials(url), archive_info=info or ArchiveInfo())


def _source_direct_url(source: Source) -> DirectUrl | None:
    """Return the ``direct_url.json`` of a wheel built from ``source``."""
    if source.kind is SourceKind.REGISTRY:
        return None
    if source.kind is SourceKind.DIRECTORY:
        return DirectUrl(
            url=strip_credentials(source.url), dir_info=DirInfo(editable=source.editable)
        )
    if source.kind is SourceKind.GIT:
        return DirectUrl(
            url=strip_credentials(source.url.removeprefix("git+")),
            vcs_info=VcsInfo(
                vcs="git", commit_id=source.commit or "", requested_revision=source.ref
            ),
            subdirectory=source.subdirectory,
        )
    return _archive_url(source.url, source.sha256)


def _source_wanted(name: str, source: Source, requested: bool = True) -> Wanted:
    """Return what an installed distribution must match to stand for ``source``."""
    canonical = canonicalize_name(name)
    if source.kind is SourceKind.DIRECTORY:
        assert source.path is not None
        return Wanted(
            name=canonical,
            url=source.url,
            editable=source.editable,
            revision=directory_revision(source.path),
            requested=requested,
        )
    if source.kind is SourceKind.GIT:
        return Wanted(
            name=canonical,
            url=source.url.removeprefix("git+"),
            editable=source.editable,
            commit=source.commit,
            subdirectory=source.subdirectory,
            requested=requested,
        )
    return Wanted(name=canonical, url=source.url, sha256=source.sha256, requested=requested)


def _source_record(source: Source | None) -> dict[str, bytes]:
    """Return the extra metadata file recording a project directory's revision."""
    if source is None or source.kind is not SourceKind.DIRECTORY or source.revision is None:
        return {}
    # The revision the wheel was built from, not the directory's now: an edit made during
    # the build is a change the next sync sees.
    record = {"revision": source.revision}
    return {SOURCE_RECORD: json.dumps(record, sort_keys=True).encode()}


def _refreshing(
    index: m.IndexOptions, *, everything: bool, packages: Iterable[str]
) -> m.IndexOptions:
    """Return ``index`` with ``--refresh`` implied, as uv implies it by ``-U``/``--reinstall``.

    Asking for an upgrade or a reinstall means asking what the index has now, not what a
    page cached a few minutes ago said.
    """
    names = [project_of(p) for p in packages]
    if not everything and not names:
        return index
    return msgspec.structs.replace(
        index,
        refresh=index.refresh or everything,
        refresh_packages=[*index.refresh_packages, *names],
    )


def _burrowd_itself(env: Environment, site: SitePackages, target: Target) -> frozenset[str]:
    """Return burrowd and its dependencies when ``env`` is the environment running burrowd.

    pip-sync keeps pip-tools for the same reason: a sync into the tool's own environment
    must not uninstall the tool (or what it imports) from under itself.
    """
    if os.path.realpath(env.prefix) != os.path.realpath(sys.prefix):
        return frozenset()
    marker_env = target.marker_env()
    found: set[str] = set()
    pending = ["burrowd"]
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found:
            continue
        dists = site.get(name)
        if not dists:
            continue
        found.add(name)
        meta = dists[0].metadata()
        for line in meta.requires_dist if meta is not None else []:
            try:
                req = Requirement(line)
            except InvalidRequirementError:
                continue
            if req.marker is None or req.marker.evaluate(marker_env):
                pending.append(req.name)
    return frozenset(found)


def _seeds_to_keep(env: Environment) -> frozenset[str]:
    """Return the seed packages a sync leaves alone: all, unless burrowd made the venv."""
    return frozenset() if env.created_by_burrowd else SEED_PACKAGES


def _result_fields(
    env: Environment, target: Target, outcome: Outcome, plan: Plan
) -> dict[str, object]:
    return {
        "environment": str(env.prefix),
        "python": env.python,
        "target": target.describe(),
        "installed": outcome.installed,
        "removed": outcome.removed,
        "unchanged": len([s for s in plan.keep if s.wanted is not None]),
        "timings": outcome.timings,
        "warnings": outcome.warnings,
        "problems": outcome.problems,
    }


class _Session:
    """What one ``sync`` or ``install`` request shares across its steps."""

    def __init__(self, services: Services, progress: ProgressSink) -> None:
        self.services = services
        self.progress = progress

    def waiting(self, message: str) -> None:
        self.progress(message, force=True)

    def prefetcher(self, request: PackageRequest) -> Prefetcher:
        def on_progress(phase: str, current: int, total: int | None, nbytes: int) -> None:
            self.progress(phase, current, total, nbytes)

        return Prefetcher(
            self.services.index,
            self.services.candidates,
            request,
            on_progress,
            verb="installed",
            builder=self.services.builder,
        )

    async def environment(
        self, env: m.ClientEnv, python: m.PythonOptions, options: m.EnvironmentOptions
    ) -> tuple[Environment, Target]:
        environment = await find_environment(
            self.services.interpreters, env, python, options, write=True
        )
        target = self.services.interpreters.target(
            environment.info,
            python_version=python.python_version,
            python_platform=python.python_platform,
        )
        return environment, target

    async def carry_out(
        self,
        prefetcher: Prefetcher,
        fetch: Callable[[Step], Awaitable[FetchedWheel]],
        *,
        environment: Environment,
        site: SitePackages,
        target: Target,
        plan: Plan,
        local: dict[str, FetchedWheel],
        located: dict[str, Located],
        options: m.InstallOptions,
    ) -> Outcome:
        """Fetch what the plan installs (``local`` wheels are at hand), then apply it."""
        started = time.monotonic()
        todo = [s for s in plan.install if s.name not in local]
        prefetcher.expect(len(todo))
        downloads = await settle(*(fetch(s) for s in todo))
        wheels = dict(local)
        wheels.update((s.name, w) for s, w in zip(todo, downloads, strict=True))
        prepare_time = time.monotonic() - started
        outcome = await self.finish(
            environment=environment,
            site=site,
            target=target,
            plan=plan,
            ready=_ready(plan, wheels, located),
            options=options,
        )
        outcome.timings["prepare"] = prepare_time
        return outcome

    async def finish(
        self,
        *,
        environment: Environment,
        site: SitePackages,
        target: Target,
        plan: Plan,
        ready: list[Ready],
        options: m.InstallOptions,
    ) -> Outcome:
        trash = Trash(environment)
        changer = Changer(
            environment,
            site,
            self.progress,
            link_mode=options.link_mode,
            compile_bytecode=options.compile_bytecode,
            trash=trash,
            journals=self.services.journals,
        )
        try:
            outcome = await changer.run(plan, ready)
        finally:
            self.services.janitor.discard(trash.items)
        if options.strict:
            outcome.problems = await asyncio.to_thread(check_consistency, environment, target)
        return outcome


def _ready(plan: Plan, wheels: dict[str, FetchedWheel], located: dict[str, Located]) -> list[Ready]:
    """Return the plan's installs with their wheels, as the changer takes them."""
    return [
        Ready(
            name=s.name,
            fetched=wheels[s.name],
            reason=s.reason,
            previous=s.installed,
            direct_url=_direct_url(located[s.name], wheels[s.name]),
            requested=s.wanted is None or s.wanted.requested,
            extra_metadata=_source_record(wheels[s.name].located.origin),
        )
        for s in plan.install
    ]


def _dry_outcome(plan: Plan, versions: dict[str, tuple[str, str]]) -> Outcome:
    """Return the outcome a plan would have (``--dry-run``); ``versions``: name -> (v, url)."""
    outcome = Outcome()
    for step in plan.install:
        version, url = versions.get(step.name, ("?", ""))
        outcome.installed.append(
            m.PackageChange(
                name=step.name, version=version, previous=step.previous, reason=step.reason, url=url
            )
        )
        for dist in step.installed:
            outcome.removed.append(removed_change(dist, step.reason))
    for step in plan.remove:
        for dist in step.installed:
            outcome.removed.append(removed_change(dist, step.reason))
    return outcome


# -- sync ---------------------------------------------------------------------------------


async def sync(services: Services, params: m.SyncParams, progress: ProgressSink) -> m.SyncResult:
    """Make the environment hold exactly the requirements' pins."""
    start = time.monotonic()
    session = _Session(services, progress)
    options = params.options
    async with services.cache.operation():
        progress("reading inputs", force=True)
        inputs = await asyncio.to_thread(
            read_requirement_inputs,
            params.env,
            params.requirements,
            params.requirement_files,
            params.stdin,
        )
        if not inputs.entries and not params.allow_empty:
            raise InvalidRequirement(
                "the requirements name no package; pass --allow-empty-requirements to "
                "remove every package from the environment"
            )
        environment, target = await session.environment(
            params.env, params.python, params.environment
        )
        entries = _applicable(inputs.entries, target)
        require_hashes = (
            options.require_hashes
            or (inputs.options is not None and inputs.options.require_hashes)
            or any(e.hashes for e in entries)
        )
        _check_hashes(entries, require_hashes)
        index = _refreshing(
            merge_index_options(params.index, inputs.options),
            everything=options.reinstall,
            packages=options.reinstall_packages,
        )
        request = await prepare(
            services, params.env, index, params.python, target=target, build=params.build
        )
        prefetcher = session.prefetcher(request)
        prefetcher.from_cache = True
        async with services.environments.hold(environment, session.waiting):
            progress("reading the environment", force=True)
            await _sweep(services, environment, prefetcher.warnings, dry_run=options.dry_run)
            site = await asyncio.to_thread(scan, environment.site_dirs)
            by_name: dict[str, RequirementEntry] = {e.name: e for e in entries}
            # Direct references are located without the network; a local wheel is also
            # unpacked now, since whether it changed is decided by its digest.
            located: dict[str, Located] = {}
            local: dict[str, FetchedWheel] = {}
            for entry in entries:
                if entry.path is not None or entry.requirement.url:
                    located[entry.name] = await prefetcher.locate(entry)
            local_entries = [
                by_name[n]
                for n, loc in located.items()
                if loc.direct and loc.direct[:5] == "file:" and loc.origin is None
            ]
            unpacked = await settle(*(prefetcher.fetch(e, located[e.name]) for e in local_entries))
            local.update((e.name, w) for e, w in zip(local_entries, unpacked, strict=True))
            wanted = [_wanted(e, located.get(e.name), local.get(e.name)) for e in entries]
            protected = await asyncio.to_thread(_burrowd_itself, environment, site, target)
            plan = make_plan(
                wanted,
                site,
                exact=True,
                keep=_seeds_to_keep(environment) | protected,
                reinstall=options.reinstall,
                reinstall_packages=frozenset(
                    canonicalize_name(p) for p in options.reinstall_packages
                ),
            )
            missing = [s.name for s in plan.install if s.name not in located]
            found = await settle(*(prefetcher.locate(by_name[n], ranges=True) for n in missing))
            located.update(zip(missing, found, strict=True))
            if options.dry_run:
                versions = {
                    n: (loc.version, strip_credentials(loc.direct or ""))
                    for n, loc in located.items()
                }
                outcome = _dry_outcome(plan, versions)
            else:
                outcome = await session.carry_out(
                    prefetcher,
                    lambda step: prefetcher.fetch(by_name[step.name], located[step.name]),
                    environment=environment,
                    site=site,
                    target=target,
                    plan=plan,
                    local=local,
                    located=located,
                    options=options,
                )
    outcome.warnings[:0] = prefetcher.warnings
    spared = sorted(s.name for s in plan.keep if s.wanted is None and s.name in protected)
    if spared:
        outcome.warnings.append(
            f"kept {', '.join(spared)}: this environment runs burrowd itself, and a sync "
            "does not remove burrowd or what it needs"
        )
    return m.SyncResult(
        **_result_fields(environment, target, outcome, plan),  # type: ignore[arg-type]
        dry_run=options.dry_run,
        downloaded=sum(1 for c in outcome.installed if not c.cached) if not options.dry_run else 0,
        bytes=prefetcher.downloaded_bytes,
        elapsed=time.monotonic() - start,
    )


def _wanted(
    entry: RequirementEntry, located: Located | None, fetched: FetchedWheel | None
) -> Wanted:
    req = entry.requirement
    if located is not None and located.origin is not None:
        return _source_wanted(entry.name, located.origin)
    if located is not None and located.direct is not None:
        sha = fetched.sha256 if fetched is not None else _hash_pin(entry)
        if sha is None and located.file.hashes.get("sha256"):
            sha = located.file.hashes["sha256"]
        return Wanted(
            name=entry.name,
            version=Version(located.version),
            url=located.direct,
            sha256=sha,
        )
    return Wanted(name=entry.name, version=pinned_version(req), specifier=req.specifier)


# -- install ------------------------------------------------------------------------------


async def install(
    services: Services, params: m.InstallParams, progress: ProgressSink
) -> m.InstallResult:
    """Resolve the requirements and add what they need, keeping what is installed."""
    start = time.monotonic()
    session = _Session(services, progress)
    options = params.options
    async with services.cache.operation():
        environment, target = await session.environment(
            params.env, params.python, params.environment
        )
        shared = {f: getattr(params, f) for f in m.Requirements.__struct_fields__}
        shared["index"] = _refreshing(
            params.index,
            everything=params.upgrade or options.reinstall,
            packages=[*params.upgrade_packages, *options.reinstall_packages],
        )
        resolve_params = m.ResolveParams(**shared, dry_run=True, command="burrow install")
        finished: list[str] = []  # what an interrupted change left and this one finished
        async with services.environments.hold(environment, session.waiting):
            await _sweep(services, environment, finished, dry_run=options.dry_run)
            site = await asyncio.to_thread(scan, environment.site_dirs)
            installed = _installed_versions(site)
            started = time.monotonic()
            resolved = await resolve_pins(
                services, resolve_params, progress, installed=installed, target=target
            )
            resolve_time = time.monotonic() - started
            inputs = resolved.inputs
            require_hashes = (
                options.require_hashes
                or (inputs.options is not None and inputs.options.require_hashes)
                or any(e.hashes for e in inputs.requirements)
            )
            entries: dict[str, RequirementEntry] = {}
            for entry in inputs.requirements:
                entries.setdefault(entry.name, entry)
            prefetcher = session.prefetcher(resolved.request)
            if require_hashes:
                for name, pin in resolved.resolution.pins.items():
                    if not (name in entries and _has_hash(entries[name])):
                        raise InvalidRequirement(
                            f"--require-hashes is on, and {name}=={pin.version} (needed by "
                            f"{', '.join(sorted(v.name for v in pin.via))}) has no --hash; pin "
                            "every package with its hashes (`burrow compile --generate-hashes`)"
                        )
            located = await locate_pins(services, resolved, entries)
            local: dict[str, FetchedWheel] = {}
            for n, loc in located.items():
                if loc.direct is not None and loc.direct.startswith("file:") and loc.file.is_wheel:
                    pins = pins_of(entries[n]) if n in entries else None
                    local[n] = await prefetcher.fetch_located(loc, pins)
            wanted = [
                _pin_wanted(name, pin, located[name], local.get(name))
                for name, pin in resolved.resolution.pins.items()
            ]
            plan = make_plan(
                wanted,
                site,
                exact=False,
                reinstall=options.reinstall,
                reinstall_packages=frozenset(
                    canonicalize_name(p) for p in options.reinstall_packages
                ),
            )
            if options.dry_run:
                outcome = _dry_outcome(
                    plan,
                    {
                        n: (loc.version, strip_credentials(loc.direct or ""))
                        for n, loc in located.items()
                    },
                )
            else:

                def fetch(step: Step) -> Awaitable[FetchedWheel]:
                    entry = entries.get(step.name)
                    return prefetcher.fetch_located(
                        located[step.name], pins_of(entry) if entry is not None else None
                    )

                outcome = await session.carry_out(
                    prefetcher,
                    fetch,
                    environment=environment,
                    site=site,
                    target=target,
                    plan=plan,
                    local=local,
                    located=located,
                    options=options,
                )
            outcome.timings["resolve"] = resolve_time
    outcome.warnings[:0] = [*finished, *resolved.warnings, *resolved.resolution.warnings]
    return m.InstallResult(
        **_result_fields(environment, target, outcome, plan),  # type: ignore[arg-type]
        dry_run=options.dry_run,
        downloaded=sum(1 for c in outcome.installed if not c.cached) if not options.dry_run else 0,
        bytes=prefetcher.downloaded_bytes,
        elapsed=time.monotonic() - start,
        resolved=len(resolved.resolution.pins),
    )


def _pin_wanted(name: str, pin: Pin, located: Located, local: FetchedWheel | None) -> Wanted:
    """Return what must be installed for a resolved pin."""
    requested = any(v.kind in ("requirement", "project") for v in pin.via)
    origin = located.origin
    if origin is not None and origin.kind is not SourceKind.REGISTRY:
        return _source_wanted(name, origin, requested)
    return Wanted(
        name=canonicalize_name(name),
        version=pin.version,
        url=located.direct,
        sha256=local.sha256 if local is not None else None,
        requested=requested,
    )


def _installed_versions(site: SitePackages) -> dict[str, Version]:
    """Return the installed versions, to prefer when resolving (whatever their source)."""
    out: dict[str, Version] = {}
    for name, dists in site.by_name.items():
        if len(dists) != 1:
            continue
        try:
            out[name] = Version(dists[0].version)
        except InvalidVersion:
            continue
    return out


# -- uninstall ----------------------------------------------------------------------------


async def _sweep(
    services: Services, environment: Environment, warnings: list[str], *, dry_run: bool = False
) -> Trash:
    """Delete what an interrupted request left in the environment; return a new trash.

    That is the trash's content and the ``.burrow-*`` staging directories and temporary
    files an install writes beside its targets; the caller holds the environment lock, so
    no other request of any process is writing them. First, a change that a killed process
    left half done is finished (its journal says what), and the warnings say so. A dry run
    changes nothing: it only says that such a change waits.
    """
    trash = Trash(environment)
    if dry_run:
        left = await asyncio.to_thread(pending, environment, services.journals)
        if left is not None:
            warnings.append(
                f"a change that an interrupted process (pid {left.pid}) left half done waits "
                "to be finished: the next change of this environment finishes it first"
            )
        return trash
    replayed = await asyncio.to_thread(replay, environment, services.journals)
    if replayed is not None:
        warnings.append(replayed.describe())

    def leftovers() -> list[Path]:
        found = trash.leftovers()
        for directory in {*environment.site_dirs, environment.scripts}:
            with contextlib.suppress(OSError):
                found += [directory / n for n in os.listdir(directory) if n.startswith(".burrow-")]
        return found

    services.janitor.discard(await asyncio.to_thread(leftovers))
    return trash


def _names(
    env: m.ClientEnv, packages: list[str], files: list[str], stdin: str | None
) -> list[NormalizedName]:
    names: list[NormalizedName] = []
    for text in packages:
        # A requirement (``foo>=1``, ``foo[x]``) names its project, as pip and uv accept;
        # anything that does not parse is refused, not cut down to a name.
        try:
            names.append(canonicalize_name(Requirement(text).name))
        except InvalidRequirementError as exc:
            raise InvalidRequirement(
                f"{text!r} is not a package name or requirement ({exc})", text=text
            ) from None
    if files:
        names += [e.name for e in read_requirement_inputs(env, [], files, stdin).entries]
    return list(dict.fromkeys(names))


async def uninstall(
    services: Services, params: m.UninstallParams, progress: ProgressSink
) -> m.UninstallResult:
    """Remove the named distributions from the environment."""
    start = time.monotonic()
    progress("reading inputs", force=True)
    names = await asyncio.to_thread(
        _names, params.env, params.packages, params.requirement_files, params.stdin
    )
    if not names:
        raise InvalidRequirement("name the packages to uninstall, or give -r FILE")
    environment = await find_environment(
        services.interpreters, params.env, params.python, params.environment, write=True
    )
    target = services.interpreters.target(environment.info)
    outcome = Outcome()
    waiting = lambda message: progress(message, force=True)  # noqa: E731
    async with services.environments.hold(environment, waiting):
        trash = await _sweep(services, environment, outcome.warnings, dry_run=params.dry_run)
        site = await asyncio.to_thread(scan, environment.site_dirs)
        dists = []
        for name in names:
            found = site.get(name)
            if not found:
                outcome.warnings.append(f"Skipping {name} as it is not installed")
            dists += found
        records = await settle(*(asyncio.to_thread(check_removable, d, environment) for d in dists))
        if not params.dry_run and dists:
            started = time.monotonic()
            progress("uninstalling", 0, len(dists), force=True)

            journal = Writer(
                environment,
                Journal(
                    info=environment.info,
                    pid=os.getpid(),
                    started=time.time(),
                    removals=journal_removals(dists, records),
                ),
                services.journals,
            )

            gone = {id(d) for d in dists}

            async def remove_all() -> None:
                await asyncio.to_thread(journal.begin)
                # A file that a distribution which stays records too stays with it.
                kept = await asyncio.to_thread(recorded_by, [d for d in site if id(d) not in gone])
                for i, (dist, files) in enumerate(zip(dists, records, strict=True), 1):
                    removal = await asyncio.to_thread(
                        remove_dist, dist, environment, files, trash, keep=kept.__contains__
                    )
                    note_outside(outcome, dist, removal.outside)
                    progress("uninstalling", i, len(dists))
                await asyncio.to_thread(journal.end)

            try:
                # Once started, a removal finishes, also when the request is cancelled.
                await finish_uncancelled(remove_all())
            finally:
                services.janitor.discard(trash.items)
            outcome.timings["uninstall"] = time.monotonic() - started
        outcome.removed = [removed_change(d, "requested") for d in dists]
    if not dists:
        outcome.warnings.append("No packages to uninstall")
    return m.UninstallResult(
        environment=str(environment.prefix),
        python=environment.python,
        target=target.describe(),
        removed=outcome.removed,
        dry_run=params.dry_run,
        elapsed=time.monotonic() - start,
        timings=outcome.timings,
        warnings=outcome.warnings,
    )


# -- list ---------------------------------------------------------------------------------


def _listing(environment: Environment) -> list[m.InstalledPackage]:
    site = scan(environment.site_dirs)
    return [
        m.InstalledPackage(
            name=d.name,
            version=d.version,
            path=str(d.path),
            installer=d.installer,
            requested=d.requested,
            url=d.direct_url.url if d.direct_url is not None else None,
            editable=d.editable,
        )
        for d in sorted(site, key=lambda d: (d.name, d.version))
    ]


async def list_packages(services: Services, params: m.ListParams) -> m.ListResult:
    """List what an environment holds."""
    environment = await find_environment(
        services.interpreters, params.env, params.python, params.environment, write=False
    )
    packages = await asyncio.to_thread(_listing, environment)
    return m.ListResult(
        environment=str(environment.prefix), python=environment.python, packages=packages
    )


# -- venv ---------------------------------------------------------------------------------


async def create_venv(
    services: Services, params: m.VenvParams, progress: ProgressSink
) -> m.VenvResult:
    """Create a virtual environment with ``python -m venv``, marked as burrowd's own."""
    start = time.monotonic()
    cwd = Path(params.env.cwd)
    path = Path(os.path.normpath(cwd / params.path))
    info = await services.interpreters.find(
        PythonRequest(
            python=params.python.python, cwd=params.env.cwd, path=params.env.path, system=True
        )
    )
    if os.path.realpath(path) == os.path.realpath(sys.prefix):
        raise EnvironmentRefused(
            str(path), "burrowd itself runs in this environment", "choose another path"
        )
    async with services.environments.hold_path(
        path, path / LOCK_FILE, lambda message: progress(message, force=True)
    ):
        progress("creating the environment", force=True)
        await asyncio.to_thread(_clear_target, path, params.clear)
        await _run_venv(info.executable, path, params)
    python = str(path / "bin" / "python")
    version = info.version
    seeded: list[m.PackageChange] = []
    if params.seed:
        major, minor = (int(x) for x in version.split(".")[:2])
        seeds = ["pip"] if (major, minor) >= (3, 12) else ["pip", "setuptools", "wheel"]
        result = await install(
            services,
            m.InstallParams(
                env=params.env,
                requirements=seeds,
                index=params.index,
                python=m.PythonOptions(python=python),
                options=m.InstallOptions(link_mode=params.link_mode),
            ),
            progress,
        )
        seeded = result.installed
    return m.VenvResult(
        path=str(path),
        python=python,
        version=version,
        seeded=seeded,
        elapsed=time.monotonic() - start,
    )


async def _run_venv(executable: str, path: Path, params: m.VenvParams) -> None:
    """Run ``python -m venv`` for ``path`` and mark the result as burrowd's."""
    command = [executable, "-m", "venv", "--without-pip"]
    if params.system_site_packages:
        command.append("--system-site-packages")
    if params.prompt:
        command += ["--prompt", params.prompt]
    command.append(str(path))
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), VENV_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise EnvironmentRefused(
            str(path), f"creating it took more than {VENV_TIMEOUT:g}s"
        ) from None
    if proc.returncode != 0:
        tail = out.decode(errors="replace").strip().splitlines()[-3:]
        raise EnvironmentRefused(
            str(path),
            f"`{executable} -m venv` failed: {' / '.join(tail) or 'no output'}",
            "check that the interpreter has the venv module (Debian: python3-venv)",
        )
    await asyncio.to_thread(_mark_venv, path)


def _clear_target(path: Path, clear: bool) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir() and {p.name for p in path.iterdir()} <= {LOCK_FILE}:
        return  # empty, or only the lock this request holds
    is_venv = (path / "pyvenv.cfg").is_file()
    if not is_venv:
        raise EnvironmentRefused(
            str(path),
            "the directory exists and is not a virtual environment",
            "choose another path",
        )
    if not clear:
        raise EnvironmentRefused(
            str(path),
            "a virtual environment already exists there",
            "pass --clear to replace it",
        )
    remove_environment_tree(path)


def _mark_venv(path: Path) -> None:
    cfg = path / "pyvenv.cfg"
    with open(cfg, "a", encoding="utf-8") as f:
        f.write(f"{VENV_MARKER} = {__version__}\n")
    # As uv does: a new environment is not meant to be committed.
    ignore = path / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
