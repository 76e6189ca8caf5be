"""Carry out a plan: check all of it, then remove, link and compile.

Everything that can refuse a plan runs before the first change: each wheel is laid out
(unsafe paths, unknown schemes, scripts that would replace the interpreter), every
distribution to remove must have a record, and no file may be claimed twice (by two new
wheels, or by a new wheel and a distribution that stays) unless both bring the same bytes.
Only then are the old distributions removed and the new ones linked, many at a time in
worker threads, each wheel's metadata directory renamed into place last.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Final, Protocol, TypeVar

from msgspec import Struct, field
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from burrowd.daemon.errors import DaemonError, EnvironmentRefused, InstallConflict
from burrowd.daemon.installer.environment import Environment
from burrowd.daemon.installer.installed import DirectUrl, InstalledDist, SitePackages, scan
from burrowd.daemon.installer.journal import (
    Journal,
    JournalInstall,
    Registry,
    Writer,
    journal_removals,
)
from burrowd.daemon.installer.plan import Plan
from burrowd.daemon.installer.uninstall import Trash, check_removable, remove_dist
from burrowd.daemon.installer.wheel import Linker, LinkMode, WheelLayout, install_layout, layout
from burrowd.daemon.interpreters import Target
from burrowd.daemon.prefetch import FetchedWheel
from burrowd.protocol.messages import PackageChange

__all__ = ["Changer", "Outcome", "ProgressSink", "Ready", "check_consistency"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Wheels linked at once. Linking is system calls on one file system: more threads than
#: CPUs only add contention (measured: 22,000 links took 0.48 s with 2 threads on 2 CPUs,
#: 0.70 s with 4, 0.87 s with 8).
_PARALLEL: Final = max(2, os.cpu_count() or 1)
COMPILE_TIMEOUT: Final = 600.0

# Runs in the target interpreter: compile the files named on stdin, in parallel when many.
# The pool forks: under spawn or forkserver (macOS, Linux from 3.14) its workers would not
# find ``one`` in a ``-c`` script's ``__main__``.
_COMPILE: Final = r"""
import compileall, os, sys
paths = [p for p in sys.stdin.read().split("\0") if p]
def one(path):
    return bool(compileall.compile_file(path, quiet=2, force=True))
if len(paths) > 200 and (os.cpu_count() or 1) > 1 and hasattr(os, "fork"):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(mp_context=multiprocessing.get_context("fork")) as pool:
        done = sum(pool.map(one, paths, chunksize=64))
else:
    done = sum(map(one, paths))
print(done)
"""


class ProgressSink(Protocol):
    """Where a request reports its phases (the RPC context's ``progress``)."""

    def __call__(
        self,
        phase: str,
        current: int = 0,
        total: int | None = None,
        nbytes: int = 0,
        message: str = "",
        *,
        force: bool = False,
    ) -> None: ...


class Ready(Struct):
    """A planned install whose wheel is unpacked in the cache."""

    name: str
    fetched: FetchedWheel
    reason: str
    previous: list[InstalledDist]
    direct_url: DirectUrl | None = None
    requested: bool = True
    #: More files for the metadata directory (burrowd's record of a source's revision).
    extra_metadata: dict[str, bytes] = field(default_factory=dict)


class Outcome(Struct):
    """What carrying out a plan did."""

    installed: list[PackageChange] = field(default_factory=list)
    removed: list[PackageChange] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class _Conflicts:
    """Check that no file is claimed twice; blocking (runs in a worker thread)."""

    def __init__(self, env: Environment, site: SitePackages, removing: list[InstalledDist]):
        self.env = env
        self.site = site
        self.removing = {id(d) for d in removing}
        self.freed: set[str] = set()
        self._dirs: dict[str, bool] = {
            str(p): True for p in (env.purelib, env.platlib, env.scripts, env.data, env.prefix)
        }
        self._owners: dict[str, tuple[str, str]] | None = None
        self.warnings: list[str] = []
        #: Existing files (or links) where a wheel needs a directory.
        self.blockers: set[str] = set()
        self._real: dict[str, bool] = {}

    def _check_nesting(self, claimed: dict[str, tuple[str, str]]) -> None:
        """Refuse a file that one wheel writes where another writes a directory
        (``clash/a`` beside ``clash/a/b.py``): found before anything is linked, not halfway."""
        parents: dict[str, str] = {}
        for dest in claimed:
            folder = dest.rpartition("/")[0]
            while folder and folder not in parents:
                parents[folder] = dest
                folder = folder.rpartition("/")[0]
        for folder in parents.keys() & claimed.keys():
            under = parents[folder]
            raise InstallConflict(
                under,
                claimed[under][0],
                "",
                self.env.describe(),
                obstacle=f"{claimed[folder][0]} writes a file at {folder}, where this needs a "
                "directory",
                fix="These distributions cannot be installed together",
            )

    def _dir_exists(self, directory: str) -> bool:
        """Return whether ``directory`` exists; note a file found where it must go."""
        known = self._dirs.get(directory)
        if known is not None:
            return known
        parent = os.path.dirname(directory)
        exists = False
        if parent == directory or self._dir_exists(parent):
            exists = os.path.isdir(directory)
            if not exists and os.path.lexists(directory):
                self.blockers.add(directory)
        self._dirs[directory] = exists
        return exists

    def _inside(self, directory: str) -> bool:
        """Return whether an existing ``directory`` really lies in the environment."""
        known = self._real.get(directory)
        if known is None:
            known = self._real[directory] = self.env.contains(directory)
        return known

    def _freed_dir(self, directory: str) -> bool:
        """Return whether removing the planned distributions empties ``directory``.

        Every file under it must be freed (bytecode of a freed module counts), and no
        directory under it may be empty already: removal only takes away the directories
        it empties.
        """
        stack = [directory]
        while stack:
            current = stack.pop()
            bytecode = current.endswith(os.sep + "__pycache__")
            empty = True
            try:
                with os.scandir(current) as entries:
                    for entry in entries:
                        empty = False
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.path in self.freed:
                            continue
                        elif bytecode and entry.name.endswith(".pyc"):
                            module = entry.name.split(".", 1)[0] + ".py"
                            if os.path.join(os.path.dirname(current), module) not in self.freed:
                                return False
                        else:
                            return False
            except OSError:
                return False
            if empty:
                return False
        return True

    def kept(self, path: str) -> bool:
        """Return whether a distribution that stays records ``path`` (blocking)."""
        return self._owner_of(path) is not None

    def _owner_of(self, path: str) -> tuple[str, str] | None:
        if self._owners is None:
            owners: dict[str, tuple[str, str]] = {}
            for dist in self.site:
                if id(dist) in self.removing:
                    continue
                for rel, digest in dist.record_rows() or []:
                    owners[os.path.normpath(os.path.join(dist.site, rel))] = (str(dist), digest)
            self._owners = owners
        return self._owners.get(path)

    def check(self, layouts: list[WheelLayout]) -> None:
        claimed: dict[str, tuple[str, str]] = {}
        for lay in layouts:
            for dest, digest in lay.destinations():
                other = claimed.get(dest)
                if other is not None and other[1] != digest:
                    raise InstallConflict(dest, lay.display, other[0], self.env.describe())
                claimed[dest] = (lay.display, digest)
        self._check_nesting(claimed)
        for dest, (who, digest) in claimed.items():
            parent = dest.rpartition("/")[0]
            # The nearest directory that exists: one linked out of the environment takes
            # every file (and new directory) under it outside too. Nothing goes through it.
            existing = parent
            while existing and not self._dir_exists(existing):
                existing = existing.rpartition("/")[0]
            if existing and not self._inside(existing):
                raise InstallConflict(
                    dest,
                    who,
                    "",
                    self.env.describe(),
                    obstacle=f"it would be a file outside the environment: {existing} leads "
                    f"to {os.path.realpath(existing)}",
                    fix="Remove that symbolic link, or install into another environment",
                )
            if existing != parent:
                continue  # a new directory: nothing there yet to conflict with
            if not os.path.lexists(dest):
                continue
            if dest in self.freed:
                continue
            if os.path.isdir(dest) and not os.path.islink(dest):
                if self._freed_dir(dest):
                    continue  # a directory of a version being replaced becomes a file
                raise InstallConflict(
                    dest,
                    who,
                    "",
                    self.env.describe(),
                    obstacle="an existing directory is there, with files no planned removal "
                    "takes away",
                )
            owner = self._owner_of(dest)
            if owner is None:
                continue  # a file nobody owns (an interrupted install): overwritten
            if owner[1] and owner[1] == digest:
                self.warnings.append(f"{who} and {owner[0]} both install {dest} (identical)")
                continue
            raise InstallConflict(dest, who, owner[0], self.env.describe())
        for blocker in sorted(self.blockers - self.freed):
            who = next(w for d, (w, _) in claimed.items() if d.startswith(blocker + os.sep))
            owner = self._owner_of(blocker)
            if owner is not None:
                raise InstallConflict(blocker, who, owner[0], self.env.describe())
            raise InstallConflict(
                blocker,
                who,
                "",
                self.env.describe(),
                obstacle="a file no distribution installed is where it needs a directory",
            )


def _shown_url(direct: DirectUrl | None) -> str:
    """Return how a direct reference is written in requirements (``git+URL@commit``)."""
    if direct is None:
        return ""
    vcs = direct.vcs_info
    if vcs is None:
        return direct.url
    shown = f"{vcs.vcs}+{direct.url}@{vcs.commit_id}"
    return shown + (f"#subdirectory={direct.subdirectory}" if direct.subdirectory else "")


def _change(ready: Ready) -> PackageChange:
    located = ready.fetched.located
    return PackageChange(
        name=ready.name,
        version=located.version,
        previous=ready.previous[0].version if ready.previous else None,
        reason=ready.reason,
        url=_shown_url(ready.direct_url),
        cached=ready.fetched.cached,
        editable=ready.direct_url is not None and ready.direct_url.editable,
    )


def _os_error(exc: OSError) -> str:
    # For a link or a rename the second name is the one in the environment.
    path = exc.filename2 or exc.filename
    where = f" ({path})" if path else ""
    return f"{exc.strerror or exc}{where}"


def note_outside(outcome: Outcome, dist: InstalledDist, outside: list[str]) -> None:
    """Warn about recorded files that were left alone because they lie outside the env."""
    if outside:
        outcome.warnings.append(
            f"left {len(outside)} file(s) of {dist} outside the environment alone: "
            f"{', '.join(outside[:3])}"
        )


def removed_change(dist: InstalledDist, reason: str) -> PackageChange:
    """Return the change record of a removed distribution."""
    url = dist.direct_url.url if dist.direct_url is not None else ""
    return PackageChange(
        name=dist.name, version=dist.version, reason=reason, url=url, editable=dist.editable
    )


class Changer:
    """Apply one plan to one environment (held locked by the caller)."""

    def __init__(
        self,
        env: Environment,
        site: SitePackages,
        progress: ProgressSink,
        *,
        link_mode: LinkMode = "hardlink",
        compile_bytecode: bool = False,
        trash: Trash | None = None,
        journals: Registry | None = None,
    ) -> None:
        self.env = env
        self.site = site
        self.progress = progress
        self.link_mode = link_mode
        self.compile_bytecode = compile_bytecode
        self.trash = trash
        self.journals = journals

    async def run(self, plan: Plan, ready: list[Ready]) -> Outcome:
        """Check the whole plan, then change the environment; return what changed."""
        outcome = Outcome()
        started = time.monotonic()
        self.progress("checking", 0, len(ready), force=True)
        layouts = await settle(
            *(asyncio.to_thread(layout, r.fetched.archive, self.env) for r in ready)
        )
        for lay in layouts:
            if lay.missing:
                outcome.warnings.append(
                    f"{lay.filename}: its RECORD lists {len(lay.missing)} file(s) the wheel "
                    f"lacks ({', '.join(lay.missing[:3])}); installed without them"
                )
        removing = plan.removals()
        records = await settle(*(asyncio.to_thread(check_removable, d, self.env) for d in removing))
        conflicts = _Conflicts(self.env, self.site, removing)
        for dist, files in zip(removing, records, strict=True):
            conflicts.freed.update(os.path.normpath(os.path.join(dist.site, f)) for f in files)
        await asyncio.to_thread(conflicts.check, list(layouts))
        await asyncio.to_thread(self._check_writable, layouts, removing)
        outcome.warnings += conflicts.warnings
        outcome.timings["check"] = time.monotonic() - started

        # Nothing has changed so far; from here on the environment does, and a cancelled
        # request still finishes the change (worker threads cannot be stopped halfway, and
        # the environment lock must not be given up while they write). The journal lets
        # the next change finish it if this process dies halfway.
        journal = Writer(
            self.env,
            Journal(
                info=self.env.info,
                pid=os.getpid(),
                started=time.time(),
                removals=journal_removals(removing, records),
                installs=[
                    JournalInstall(
                        name=r.name,
                        version=lay.version,
                        archive=str(r.fetched.archive),
                        dist_info=lay.dist_info_dest,
                        link_mode=self.link_mode,
                        direct_url=r.direct_url,
                        requested=r.requested,
                        extra_metadata=r.extra_metadata,
                    )
                    for r, lay in zip(ready, layouts, strict=True)
                ],
            ),
            self.journals,
        )
        try:
            await finish_uncancelled(
                self._apply(
                    plan,
                    ready,
                    outcome,
                    layouts=layouts,
                    removing=removing,
                    records=records,
                    journal=journal,
                    kept=conflicts.kept,
                )
            )
        except (DaemonError, OSError) as exc:
            what = exc.message if isinstance(exc, DaemonError) else _os_error(exc)
            raise EnvironmentRefused(
                self.env.describe(),
                f"changing the environment stopped halfway: {what}",
                "it is partly changed now; fix the cause and run the same command again to "
                "finish the change",
            ) from exc
        return outcome

    def _check_writable(self, layouts: list[WheelLayout], removing: list[InstalledDist]) -> None:
        """Refuse a plan whose target directories this process may not write to."""
        needed = {d.site for d in removing}
        for lay in layouts:
            needed.add(Path(lay.root))
            if lay.scripts:
                needed.add(self.env.scripts)
        for directory in sorted(needed):
            probe = directory
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent  # a directory to be created: its first existing parent
            if not os.access(probe, os.W_OK):
                raise EnvironmentRefused(
                    self.env.describe(),
                    f"cannot write to {probe}",
                    "check its permissions, or use a virtual environment you own",
                )

    async def _apply(
        self,
        plan: Plan,
        ready: list[Ready],
        outcome: Outcome,
        *,
        layouts: list[WheelLayout],
        removing: list[InstalledDist],
        records: list[list[str]],
        journal: Writer,
        kept: Callable[[str], bool],
    ) -> None:
        """Remove, link and compile: the part of :meth:`run` that changes the environment."""
        started = time.monotonic()
        await asyncio.to_thread(journal.begin)
        reasons = {
            id(dist): step.reason
            for step in (*plan.remove, *plan.install)
            for dist in step.installed
        }
        if removing:
            self.progress("uninstalling", 0, len(removing), force=True)
            for done, (dist, files) in enumerate(zip(removing, records, strict=True), 1):
                removal = await asyncio.to_thread(
                    remove_dist, dist, self.env, files, self.trash, keep=kept
                )
                note_outside(outcome, dist, removal.outside)
                self.progress("uninstalling", done, len(removing))
                if id(dist) in reasons:
                    outcome.removed.append(removed_change(dist, reasons[id(dist)]))
            await asyncio.to_thread(journal.removed)
        outcome.timings["uninstall"] = time.monotonic() - started

        started = time.monotonic()
        env = self.env
        linker = Linker(
            self.link_mode,
            existing=[str(d) for d in (env.prefix, *env.site_dirs, env.scripts, env.data)],
        )
        limit = asyncio.Semaphore(_PARALLEL)
        total = len(ready)
        count = 0
        self.progress("installing", 0, total, force=True)

        async def one(r: Ready, lay: WheelLayout) -> None:
            nonlocal count
            async with limit:
                await asyncio.to_thread(
                    install_layout,
                    lay,
                    linker,
                    direct_url=r.direct_url,
                    requested=r.requested,
                    extra_metadata=r.extra_metadata,
                )
            count += 1
            self.progress("installing", count, total)

        # Largest first, so the threads finish together.
        pairs = sorted(zip(ready, layouts, strict=True), key=lambda p: -len(p[1].files))
        await settle(*(one(r, lay) for r, lay in pairs))
        await asyncio.to_thread(journal.end)  # whole: bytecode is a cache, not the change
        if linker.fell_back:
            outcome.warnings.append(
                "hard links into the environment failed (another file system?); copied the "
                "files instead. Pass --link-mode copy to say so"
            )
        outcome.installed = [_change(r) for r in ready]
        outcome.timings["install"] = time.monotonic() - started
        if self.compile_bytecode and layouts:
            started = time.monotonic()
            self.progress("compiling", force=True)
            sources = [p.dest for lay in layouts for p in lay.files if p.dest.endswith(".py")]
            await compile_files(self.env, sources)
            outcome.timings["compile"] = time.monotonic() - started


async def settle(*aws: Awaitable[T]) -> list[T]:
    """Wait for every one of ``aws``, then raise the first failure, if any.

    ``asyncio.gather`` raises as soon as one fails and leaves the others running: a request
    would then answer while its downloads or links still go on (and release the
    environment lock under them).
    """
    results: list[T | BaseException] = await asyncio.gather(*aws, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if not isinstance(r, BaseException)]


async def finish_uncancelled(work: Coroutine[object, object, T]) -> T:
    """Run ``work`` to its end even if the caller is cancelled; then pass the cancel on."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result


async def compile_files(env: Environment, paths: list[str]) -> int:
    """Compile ``paths`` to bytecode with the environment's own interpreter."""
    if not paths:
        return 0
    proc = await asyncio.create_subprocess_exec(
        env.python,
        "-I",
        "-c",
        _COMPILE,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            proc.communicate("\0".join(paths).encode(sys.getfilesystemencoding())),
            COMPILE_TIMEOUT,
        )
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise EnvironmentRefused(
            env.describe(), f"compiling bytecode took more than {COMPILE_TIMEOUT:g}s"
        ) from None
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise EnvironmentRefused(env.describe(), f"compiling bytecode failed: {tail[0]}")
    try:
        return int(out.strip() or 0)
    except ValueError:
        return 0


def check_consistency(env: Environment, target: Target) -> list[str]:
    """Return the unmet requirements of the installed distributions (``--strict``).

    Blocking. Each distribution's ``Requires-Dist`` lines whose markers hold for the
    target (without extras) must name an installed distribution of an allowed version.
    """
    site = scan(env.site_dirs)
    installed = {d.name: d for d in site}
    marker_env = target.marker_env()
    problems: list[str] = []
    for dist in sorted(site, key=lambda d: d.name):
        meta = dist.metadata()
        if meta is None:
            problems.append(f"{dist} has unreadable metadata ({dist.path})")
            continue
        if meta.requires_python and not target.allows_python(meta.requires_python):
            problems.append(
                f"{dist} requires Python {meta.requires_python}, but the environment has "
                f"{target.python_version}"
            )
        for line in meta.requires_dist:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                problems.append(f"{dist} has an unreadable requirement {line!r}")
                continue
            if req.marker is not None and not req.marker.evaluate(marker_env):
                continue
            have = installed.get(canonicalize_name(req.name))
            if have is None:
                problems.append(f"{dist} requires {req}, but {req.name} is not installed")
                continue
            if not _version_ok(req.specifier, have.version):
                problems.append(f"{dist} requires {req}, but {have} is installed")
    return problems


def _version_ok(spec: SpecifierSet, version: str) -> bool:
    try:
        return spec.contains(Version(version), prereleases=True)
    except (InvalidVersion, InvalidSpecifier):
        return False
