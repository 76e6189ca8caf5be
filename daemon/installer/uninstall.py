"""Remove an installed distribution, driven by its ``RECORD``.

Only paths the distribution records are removed (``installed-files.txt`` for a legacy
``.egg-info``), never one whose real location lies outside the environment's scheme
directories. The metadata directory goes first, so an interrupted removal leaves unowned
files rather than a distribution that claims missing ones. The bytecode of removed modules
(``__pycache__/<module>.*.pyc``) goes with them, then every directory left empty, up to
(never including) the scheme directories.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import os
import re
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from msgspec import Struct, field

from burrowd.daemon.errors import EnvironmentRefused
from burrowd.daemon.installer.environment import Environment, remove_environment_tree
from burrowd.daemon.installer.installed import InstalledDist

__all__ = [
    "Janitor",
    "Removal",
    "Trash",
    "check_removable",
    "recorded_by",
    "remove_dist",
    "remove_recorded",
]

#: Where removed directories wait for deletion, inside the environment's prefix.
TRASH_DIR: Final = ".burrow-trash"


class Removal(Struct):
    """What removing one distribution did."""

    files: int = 0
    #: Recorded paths that were left alone because they lie outside the environment.
    outside: list[str] = field(default_factory=list)


def check_removable(dist: InstalledDist, env: Environment) -> list[str]:
    """Return the recorded files of ``dist``; refuse one that records none.

    Called for every distribution a plan removes before anything is removed.
    """
    files = dist.files()
    if files is None:
        what = "RECORD" if dist.kind == "dist-info" else "installed-files.txt"
        raise EnvironmentRefused(
            env.describe(),
            f"cannot uninstall {dist.name} {dist.version}: {dist.path} has no {what} (or "
            "none that reads), so which files are its own is unknown",
            f"remove {dist.path} and the files of {dist.name} by hand",
        )
    return files


class _Dirs:
    """Real paths of directories, each resolved once (a realpath walks every component)."""

    def __init__(self, env: Environment) -> None:
        self.roots = env.roots
        self._inside: dict[str, bool] = {}
        self._listing: dict[str, list[str]] = {}

    def inside(self, directory: str) -> bool:
        known = self._inside.get(directory)
        if known is None:
            real = os.path.realpath(directory)
            known = any(real == r or real.startswith(r + os.sep) for r in self.roots)
            self._inside[directory] = known
        return known

    def listing(self, directory: str) -> list[str]:
        names = self._listing.get(directory)
        if names is None:
            try:
                names = os.listdir(directory)
            except OSError:
                names = []
            self._listing[directory] = names
        return names


#: What follows ``<module>.`` in a compiled file's name: ``cpython-311[.opt-1].pyc``.
_PYC_TAIL: Final = re.compile(r"[^.]+(\.opt-\d+)?\.pyc")


def _bytecode(path: str, dirs: _Dirs) -> list[str]:
    """Return the compiled files of the module at ``path`` in its ``__pycache__``."""
    directory, base = os.path.split(path)
    prefix = base[:-2]  # "module."
    cache = os.path.join(directory, "__pycache__")
    return [
        os.path.join(cache, n)
        for n in dirs.listing(cache)
        if n.startswith(prefix) and _PYC_TAIL.fullmatch(n, len(prefix))
    ]


def remove_dist(
    dist: InstalledDist,
    env: Environment,
    files: list[str] | None = None,
    trash: Trash | None = None,
    *,
    keep: Callable[[str], bool] | None = None,
) -> Removal:
    """Remove ``dist`` from ``env``; ``files`` are its recorded paths if already read.

    With ``trash``, the metadata directory and every directory the distribution owns whole
    (each file in it recorded, or bytecode in a ``__pycache__``) are renamed into the trash,
    one ``rename`` each instead of an ``unlink`` per file, and deleted after the request.
    Blocking: the daemon runs it in a worker thread.
    """
    recorded = files if files is not None else check_removable(dist, env)
    return remove_recorded(dist.path, dist.site, recorded, env, trash, keep=keep)


def recorded_by(dists: Iterable[InstalledDist]) -> set[str]:
    """Return the normalized absolute paths that ``dists`` record (blocking)."""
    paths: set[str] = set()
    for dist in dists:
        for rel, _digest in dist.record_rows() or []:
            paths.add(os.path.normpath(os.path.join(dist.site, rel)))
    return paths


def remove_recorded(
    meta_path: Path,
    site_dir: Path,
    recorded: list[str],
    env: Environment,
    trash: Trash | None = None,
    *,
    keep: Callable[[str], bool] | None = None,
) -> Removal:
    """Remove the metadata directory ``meta_path`` and the ``recorded`` paths (relative to
    ``site_dir``) from ``env``; what is already gone is passed over.

    :func:`remove_dist` for a distribution read from the environment, and the replay of an
    interrupted change, which knows the paths from its journal. A path for which ``keep``
    (given a normalized absolute path) is true stays: a distribution that stays records it
    too.
    """
    site = str(site_dir)
    site_prefix = site + os.sep
    meta = os.path.normpath(str(meta_path))
    meta_prefix = meta + os.sep
    removal = Removal()
    owned: set[str] = set()
    for rel in recorded:
        # A plain relative path needs no normalizing (most of them: a call per file saved).
        plain = ".." not in rel and "./" not in rel and "//" not in rel and rel[:1] != "/"
        path = site_prefix + rel if plain else os.path.normpath(os.path.join(site, rel))
        if path == meta or path.startswith(meta_prefix):
            continue  # goes with the metadata directory
        if keep is not None and keep(path):
            continue
        owned.add(path)
    if trash is None or not trash.take(meta):
        if meta_path.is_dir() and not meta_path.is_symlink():
            remove_environment_tree(meta_path)
        else:
            _unlink(meta)
    if trash is not None:
        owned = _take_whole_dirs(owned, site, trash, removal)
    # What is left goes file by file, each checked against the environment's directories
    # (a recorded path may lead outside it, through ``..`` or a symbolic link).
    dirs = _Dirs(env)
    parents: set[str] = set()
    for path in sorted(owned):
        parent = os.path.dirname(path)
        if not dirs.inside(parent):
            removal.outside.append(path)
            continue
        targets = [path, *_bytecode(path, dirs)] if path.endswith(".py") else [path]
        for target in targets:
            if _unlink(target):
                removal.files += 1
        parents.add(parent)
    _remove_empty(parents, env)
    return removal


def _take_whole_dirs(owned: set[str], site: str, trash: Trash, removal: Removal) -> set[str]:
    """Move the top-level directories ``owned`` covers whole into ``trash``; return the rest."""
    prefix = site + os.sep
    groups: dict[str, set[str]] = {}
    rest: set[str] = set()
    for path in owned:
        if path.startswith(prefix):
            top, sep, _ = path[len(prefix) :].partition(os.sep)
            if sep:
                groups.setdefault(prefix + top, set()).add(path)
                continue
        rest.add(path)
    for directory, paths in groups.items():
        rest |= _take_dir(directory, paths, trash, removal)
    return rest


def _covered(directory: str, paths: set[str]) -> int | None:
    """Return how many ``paths`` ``directory`` holds if they are all it holds, else ``None``.

    Bytecode in a ``__pycache__`` counts as owned; anything else unrecorded (another
    distribution's file, a symbolic link to a directory) does not. ``scandir`` gives each
    entry's type without a ``stat``.
    """
    count = 0
    stack = [directory]
    while stack:
        current = stack.pop()
        bytecode = current.endswith(os.sep + "__pycache__")
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.path in paths:
                        count += 1
                    elif not (bytecode and entry.name.endswith(".pyc")):
                        return None
        except OSError:
            return None
    return count


def _take_dir(directory: str, paths: set[str], trash: Trash, removal: Removal) -> set[str]:
    """Trash ``directory`` if ``paths`` cover it; else try its subdirectories (namespaces)."""
    if os.path.islink(directory):
        return paths
    count = _covered(directory, paths)
    if count is not None:
        if trash.take(directory):
            removal.files += count
            return set()
        return paths
    # Another distribution's files are here (a namespace package): go one level down.
    prefix = directory + os.sep
    below: dict[str, set[str]] = {}
    rest: set[str] = set()
    for path in paths:
        head, sep, _ = path[len(prefix) :].partition(os.sep)
        if sep:
            below.setdefault(prefix + head, set()).add(path)
        else:
            rest.add(path)
    for sub, sub_paths in below.items():
        rest |= _take_dir(sub, sub_paths, trash, removal)
    return rest


class Trash:
    """Directories moved out of an environment, deleted after the request that moved them.

    They go to ``<prefix>/.burrow-trash/`` (the same file system, so a ``rename``); an
    interrupted deletion leaves them there, and the next change of the environment deletes
    them (:meth:`leftovers`).
    """

    def __init__(self, env: Environment) -> None:
        self.root = env.prefix / TRASH_DIR
        self.items: list[Path] = []

    def take(self, path: str) -> bool:
        """Move ``path`` into the trash; return ``False`` if it cannot be (then delete it)."""
        dest = self.root / uuid.uuid4().hex
        for _ in range(2):
            try:
                self.root.mkdir(exist_ok=True)
                os.rename(path, dest)
            except FileNotFoundError:
                # The trash itself was just deleted, empty, by the janitor: make it again.
                if not os.path.lexists(path):
                    return False
                continue
            except OSError:
                return False
            self.items.append(dest)
            return True
        return False

    def leftovers(self) -> list[Path]:
        """Return what earlier requests left in the trash."""
        try:
            return [self.root / name for name in os.listdir(self.root)]
        except OSError:
            return []


class Janitor:
    """Delete trashed directories in the background; wait for them at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        #: What is being deleted now: a sweep must not hand it out a second time.
        self._deleting: set[Path] = set()

    def discard(self, paths: list[Path], remove: Callable[[Path], None] | None = None) -> None:
        """Start deleting ``paths`` (trash items) in a worker thread.

        ``remove`` deletes one directory tree: by default as in an environment (modes left
        alone, since files may be hard links into the cache).
        """
        fresh = [p for p in paths if p not in self._deleting]
        if not fresh:
            return
        self._deleting.update(fresh)
        # A thread per CPU: deleting is system calls; two threads took 0.76 s where one took
        # 0.85 s for d-large's site-packages (more only contend on the file system).
        workers = max(1, min(len(fresh), os.cpu_count() or 1))
        for share in (fresh[i::workers] for i in range(workers)):
            task = asyncio.ensure_future(
                asyncio.to_thread(_delete, share, remove or remove_environment_tree)
            )
            self._tasks.add(task)

            def done(t: asyncio.Task[None], share: list[Path] = share) -> None:
                self._tasks.discard(t)
                self._deleting.difference_update(share)

            task.add_done_callback(done)

    async def drain(self) -> None:
        """Wait until every deletion started has finished."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _delete(paths: list[Path], remove: Callable[[Path], None]) -> None:
    trashes: set[Path] = set()
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            remove(path)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if path.parent.name == TRASH_DIR:
            trashes.add(path.parent)
    for trash in trashes:
        with contextlib.suppress(OSError):
            trash.rmdir()  # only once empty


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        return False
    return True


def _remove_empty(parents: set[str], env: Environment) -> None:
    """Remove the directories in ``parents`` (and their parents) that are now empty."""
    stop = {str(p) for p in (env.purelib, env.platlib, env.scripts, env.data, env.include)}
    stop.add(str(env.prefix))
    # Deepest first, so a directory is tried only after its children.
    heap = [(-len(d), d) for d in parents]
    heapq.heapify(heap)
    seen: set[str] = set()
    while heap:
        _, directory = heapq.heappop(heap)
        if directory in seen or directory in stop or len(directory) <= 1:
            continue
        seen.add(directory)
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(directory, "__pycache__"))  # only if empty
        try:
            os.rmdir(directory)
        except OSError:
            continue  # not empty (or gone): its parents stay too
        parent = os.path.dirname(directory)
        if parent not in seen:
            heapq.heappush(heap, (-len(parent), parent))
