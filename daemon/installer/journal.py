"""A journal of one change to an environment, so that a crash never leaves it half changed.

Before the first file of an environment changes, the change is written down in
``<prefix>/.burrow-journal`` (a temporary file, then a rename): each distribution to remove
(its metadata directory and recorded files) and each wheel to install (its unpacked archive
in the cache, its final ``.dist-info`` and what its metadata directory gets besides the
wheel's own files). When the removals are done the journal is written again without them,
and when the installs are done it is deleted.

A process killed in between leaves the journal behind. The next change of the environment
(under its lock) replays it first, and so does the daemon when it starts, from the list of
journals it keeps in its state directory. Replaying goes forward, never back: removals are
finished, and every install whose ``.dist-info`` is not in place is linked again from its
archive (linking replaces what a killed run left half written; the ``.dist-info`` is renamed
in last, so its presence means the install is whole). Forward, because what was removed may
already be deleted, while the archives to install stay in the cache. So after a replay every
distribution of the change is the new one.

The journal protects against a process that dies (kill -9, a crash, an out-of-memory kill),
not against a power loss: like the environment's own files it is not fsynced.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Final

import msgspec
from msgspec import Struct, field
from packaging.utils import canonicalize_name

from burrowd.daemon.cache.archive import read_manifest
from burrowd.daemon.errors import DaemonError, EnvironmentRefused
from burrowd.daemon.installer.environment import (
    Environment,
    EnvironmentLocks,
    remove_environment_tree,
)
from burrowd.daemon.installer.installed import DirectUrl, InstalledDist, scan
from burrowd.daemon.installer.uninstall import recorded_by, remove_recorded
from burrowd.daemon.installer.wheel import Linker, LinkMode, install_layout, layout, replace_file
from burrowd.daemon.interpreters import InterpreterInfo

__all__ = [
    "JOURNAL_FILE",
    "Journal",
    "JournalInstall",
    "JournalRemoval",
    "Registry",
    "Replayed",
    "Writer",
    "journal_removals",
    "replay",
    "replay_interrupted",
]

log = logging.getLogger(__name__)

#: The journal of the change under way, in the environment's prefix.
JOURNAL_FILE: Final = ".burrow-journal"


class JournalRemoval(msgspec.Struct, frozen=True, kw_only=True):
    """A distribution to remove."""

    name: str
    version: str
    #: Its metadata directory (or ``.egg-info`` file).
    meta: str
    #: The site directory its recorded paths are relative to.
    site: str
    #: Its recorded paths, as its RECORD (or ``installed-files.txt``) lists them.
    files: list[str]


class JournalInstall(msgspec.Struct, frozen=True, kw_only=True):
    """A wheel to install."""

    name: str
    version: str
    #: The unpacked wheel in the cache (``archive-v0/<sha256>``).
    archive: str
    #: The ``.dist-info`` directory, in place once the install is whole.
    dist_info: str
    link_mode: LinkMode = "hardlink"
    direct_url: DirectUrl | None = None
    requested: bool = True
    extra_metadata: dict[str, bytes] = {}


def journal_removals(dists: list[InstalledDist], records: list[list[str]]) -> list[JournalRemoval]:
    """Return the journal's entries for removing ``dists`` (``records``: their paths)."""
    return [
        JournalRemoval(
            name=d.name, version=d.version, meta=str(d.path), site=str(d.site), files=files
        )
        for d, files in zip(dists, records, strict=True)
    ]


class Journal(msgspec.Struct, kw_only=True):
    """One change of one environment."""

    #: What the environment's interpreter reported: enough to find its scheme paths again.
    info: InterpreterInfo
    pid: int
    started: float
    #: Empty once the removals are done.
    removals: list[JournalRemoval] = []
    installs: list[JournalInstall] = []


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(Journal)


def journal_path(env: Environment, registry: Registry | None = None) -> Path:
    """Return where the journal of ``env`` is kept: in its prefix, or in the state directory
    when the prefix is not writable (a system interpreter whose site directory is)."""
    if registry is None or os.access(env.prefix, os.W_OK):
        return env.prefix / JOURNAL_FILE
    return registry.aside(env.prefix)


def write(path: Path, journal: Journal) -> None:
    """Write ``journal`` to ``path`` atomically (blocking)."""
    replace_file(str(path), _encoder.encode(journal), 0o600)


def read(path: Path) -> Journal | None:
    """Return the journal at ``path``; ``None`` if there is none.

    A journal that does not decode cannot be a whole one (it is renamed into place) unless
    the file was changed by hand or written by another version: it is set aside, with a
    warning, and ``None`` returned.
    """
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        log.warning("the journal %s does not read (%s); moved to %s", path, exc, aside)
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        return None


class Replayed(Struct):
    """What replaying a journal did."""

    pid: int
    removed: list[str] = field(default_factory=list)
    installed: list[str] = field(default_factory=list)
    #: Installs left out, and why (another tool changed the project meanwhile, ...).
    skipped: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """Say what was finished, for the warnings of the request that did it."""
        done = [f"removed {', '.join(self.removed)}"] if self.removed else []
        done += [f"installed {', '.join(self.installed)}"] if self.installed else []
        done += self.skipped
        return (
            f"finished a change that an interrupted process (pid {self.pid}) left half "
            f"done: {'; '.join(done) or 'nothing was left to do'}"
        )


def pending(env: Environment, registry: Registry | None = None) -> Journal | None:
    """Return the journal of an unfinished change of ``env``, if there is one (blocking)."""
    return read(journal_path(env, registry))


def replay(env: Environment, registry: Registry | None = None) -> Replayed | None:
    """Finish the change a killed process left in ``env``'s journal; ``None`` if none.

    The caller holds the environment's lock. Blocking: the daemon runs it in a worker
    thread. Another tool (uv, pip) may have changed the environment since: a path that a
    distribution present now records is never removed, and an install is left out when
    another version of its project is there now. An install whose unpacked wheel left the
    cache is left out too (its files stay, owned by nobody, until a sync installs it
    again). Raise :class:`EnvironmentRefused` when the change cannot be finished (the
    journal stays, so the next attempt tries again).
    """
    path = journal_path(env, registry)
    try:
        journal = read(path)
        if journal is None:
            if registry is not None:
                registry.remove(env.prefix)
            return None
        log.warning(
            "finishing a change of %s that process %d started at %s and did not finish",
            env.prefix,
            journal.pid,
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(journal.started)),
        )
        done = _replay(env, path, journal)
        os.unlink(path)
        if registry is not None:
            registry.remove(env.prefix)
    except (DaemonError, OSError) as exc:
        what = exc.message if isinstance(exc, DaemonError) else str(exc)
        raise EnvironmentRefused(
            env.describe(),
            f"a change that an interrupted process started cannot be finished: {what}",
            f"fix the cause and run the command again ({path} describes the change)",
        ) from exc
    log.warning("%s: %s", env.prefix, done.describe())
    return done


def _ours(env: Environment, removal: JournalRemoval) -> bool:
    """Return whether ``removal`` names a metadata directory in one of ``env``'s site
    directories: a journal is a file in the environment, which a wheel's ``.data`` files, a
    copy of the venv or a hand could have put there, and must not lead a removal elsewhere."""
    sites = {os.path.normpath(str(s)) for s in env.site_dirs}
    site, meta = os.path.normpath(removal.site), os.path.normpath(removal.meta)
    return (
        site in sites
        and os.path.dirname(meta) == site
        and meta.endswith((".dist-info", ".egg-info"))
    )


def _replay(env: Environment, path: Path, journal: Journal) -> Replayed:
    done = Replayed(journal.pid)
    if journal.removals:
        strays = [r for r in journal.removals if not _ours(env, r)]
        for removal in strays:
            log.warning(
                "%s: the journal of the interrupted change names %s, which is no distribution "
                "of this environment; it is left alone",
                env.prefix,
                removal.meta,
            )
        journal.removals = [r for r in journal.removals if r not in strays]
        removing = {os.path.normpath(r.meta) for r in journal.removals}
        staying = [d for d in scan(env.site_dirs) if os.path.normpath(d.path) not in removing]
        keep = recorded_by(staying)
        for removal in journal.removals:
            remove_recorded(
                Path(removal.meta), Path(removal.site), removal.files, env, keep=keep.__contains__
            )
            done.removed.append(f"{removal.name} {removal.version}")
        journal.removals = []
        write(path, journal)
    site = scan(env.site_dirs)
    for install in journal.installs:
        what = f"{install.name} {install.version}"
        if _whole(Path(install.dist_info)):
            continue
        others = [
            d
            for d in site.get(canonicalize_name(install.name))
            if os.path.normpath(d.path) != os.path.normpath(install.dist_info)
        ]
        if others:
            found = ", ".join(f"{d.name} {d.version}" for d in others)
            done.skipped.append(f"left out {what}: {found} was installed meanwhile")
            continue
        if read_manifest(Path(install.archive)) is None:
            done.skipped.append(
                f"left out {what}: its unpacked wheel is no longer in the cache (a sync "
                "that wants it installs it again)"
            )
            continue
        _reinstall(install, env)
        done.installed.append(what)
    return done


def _whole(dist_info: Path) -> bool:
    return (dist_info / "RECORD").is_file()


def _reinstall(install: JournalInstall, env: Environment) -> None:
    lay = layout(Path(install.archive), env)
    # What a killed run staged for the metadata directory.
    root = Path(lay.root)
    with contextlib.suppress(OSError):
        for name in os.listdir(root):
            if name.startswith(f".burrow-{lay.dist_info}-"):
                remove_environment_tree(root / name)
    linker = Linker(
        install.link_mode,
        existing=[str(d) for d in (env.prefix, *env.site_dirs, env.scripts, env.data)],
    )
    install_layout(
        lay,
        linker,
        direct_url=install.direct_url,
        requested=install.requested,
        extra_metadata=install.extra_metadata,
    )


class Registry:
    """The journals under way in this user's environments, kept in the state directory.

    One small file per environment names its prefix, written before the journal and removed
    after it, so that a daemon starting after a crash knows which environments to replay.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _key(self, prefix: Path) -> str:
        return hashlib.sha256(os.fsencode(os.path.realpath(prefix))).hexdigest()[:24]

    def _entry(self, prefix: Path) -> Path:
        return self.root / self._key(prefix)

    def aside(self, prefix: Path) -> Path:
        """Return where the journal of ``prefix`` goes when the prefix is not writable."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self.root / f".{self._key(prefix)}.journal"

    def add(self, prefix: Path) -> None:
        """Note that ``prefix`` has a journal (blocking)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        replace_file(str(self._entry(prefix)), os.fsencode(prefix), 0o600)

    def remove(self, prefix: Path) -> None:
        """Forget the journal of ``prefix`` (blocking)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._entry(prefix))

    def pending(self) -> list[tuple[Path, Path]]:
        """Return each entry with the prefix whose journal may still be there (blocking)."""
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            if name.startswith("."):
                continue
            try:
                found.append((self.root / name, Path(os.fsdecode((self.root / name).read_bytes()))))
            except OSError:
                continue
        return found

    def read_journal(self, entry: Path, prefix: Path) -> Journal | None:
        """Return the journal left for ``prefix``; forget ``entry`` if there is none."""
        for path in (prefix / JOURNAL_FILE, self.aside(prefix)):
            journal = read(path)
            if journal is not None:
                return journal
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry)
        return None


async def replay_interrupted(
    registry: Registry, locks: EnvironmentLocks
) -> list[tuple[Path, DaemonError]]:
    """Replay every journal the registry knows of, each under its environment's lock.

    Return the environments whose change could not be finished, with why (logged too).
    """
    failed: list[tuple[Path, DaemonError]] = []
    try:
        prefixes = await asyncio.to_thread(registry.pending)
    except OSError as exc:
        log.error("cannot read the journals under way in %s: %s", registry.root, exc)
        return failed
    for entry, prefix in prefixes:
        try:
            journal = await asyncio.to_thread(registry.read_journal, entry, prefix)
            if journal is None:
                continue
            env = Environment.from_info(journal.info)
            # Never wait here (a start must be quick): whoever holds the lock now, or the
            # next change of the environment, finishes the change under it.
            async with locks.try_hold(env) as held:
                if held:
                    await asyncio.to_thread(replay, env, registry)
        except (DaemonError, OSError) as exc:
            error = (
                exc
                if isinstance(exc, DaemonError)
                else EnvironmentRefused(str(prefix), f"cannot finish its interrupted change: {exc}")
            )
            log.error("cannot finish the change of %s: %s", prefix, error.message)
            failed.append((prefix, error))
    return failed


class Writer:
    """Keep one change's journal: written before it starts, cut down, deleted when done."""

    def __init__(self, env: Environment, journal: Journal, registry: Registry | None) -> None:
        self.path = journal_path(env, registry)
        self.prefix = env.prefix
        self.journal = journal
        self.registry = registry
        #: Nothing to change, nothing to write.
        self.empty = not journal.removals and not journal.installs

    def begin(self) -> None:
        """Write the whole journal (blocking)."""
        if self.empty:
            return
        if self.registry is not None:
            self.registry.add(self.prefix)
        write(self.path, self.journal)

    def removed(self) -> None:
        """Note that the removals are done (blocking)."""
        if self.journal.removals and self.journal.installs:
            self.journal.removals = []
            write(self.path, self.journal)

    def end(self) -> None:
        """The change is whole: delete the journal (blocking)."""
        if self.empty:
            return
        with contextlib.suppress(FileNotFoundError):  # the environment was deleted meanwhile
            os.unlink(self.path)
        if self.registry is not None:
            self.registry.remove(self.prefix)
