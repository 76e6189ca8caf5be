"""Remove an installed distribution, driven by its ``RECORD``.

Only paths the distribution records are removed (``installed-files.txt`` for a legacy
``.egg-info``), never one whose real location lies outside the environment's scheme
directories. The metadata directory goes first, so an interrupted removal leaves unowned
files rather than a distribution that claims missing ones. The bytecode of removed modules
(``__pycache__/<module>.*.pyc``) goes with them, then every directory left empty, up to
(never including) the scheme directories.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import re
from dataclasses import dataclass, field
from typing import Final

from burrowd.daemon.cache.store import remove_tree
from burrowd.daemon.errors import EnvironmentRefused
from burrowd.daemon.installer.environment import Environment
from burrowd.daemon.installer.installed import InstalledDist

__all__ = ["Removal", "check_removable", "remove_dist"]


@dataclass(slots=True)
class Removal:
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
            f"cannot uninstall {dist.name} {dist.version}: {dist.path} has no {what}, so "
            "which files are its own is unknown",
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


def remove_dist(dist: InstalledDist, env: Environment, files: list[str] | None = None) -> Removal:
    """Remove ``dist`` from ``env``; ``files`` are its recorded paths if already read.

    Blocking: the daemon runs it in a worker thread.
    """
    recorded = files if files is not None else check_removable(dist, env)
    site = str(dist.site)
    meta = os.path.normpath(str(dist.path))
    removal = Removal()
    dirs = _Dirs(env)
    targets: list[str] = []
    for rel in recorded:
        path = os.path.normpath(os.path.join(site, rel))
        if path == meta or path.startswith(meta + os.sep):
            continue  # goes with the metadata directory
        if not dirs.inside(os.path.dirname(path)):
            removal.outside.append(path)
            continue
        targets.append(path)
        if path.endswith(".py"):
            targets += _bytecode(path, dirs)
    if dist.path.is_dir() and not dist.path.is_symlink():
        remove_tree(dist.path)
    else:
        _unlink(meta)
    parents: set[str] = set()
    for path in targets:
        if _unlink(path):
            removal.files += 1
        parents.add(os.path.dirname(path))
    _remove_empty(parents, env)
    return removal


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
