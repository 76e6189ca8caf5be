"""The environment a request reads or changes: its scheme paths, its lock, and consent.

An :class:`Environment` is built from what the target interpreter reported about itself
(``sysconfig`` paths, prefix, whether it is a virtual environment): the installer never asks
the daemon's own interpreter where things go. Changing an environment takes its lock
(:class:`EnvironmentLocks`): an asyncio lock for the requests of this daemon, then an
exclusive ``flock`` on ``<prefix>/.lock``, the file uv locks too, so burrowd and uv never
change one environment at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Final

from msgspec import Struct

from burrowd.daemon.errors import EnvironmentRefused, InterpreterNotFound
from burrowd.daemon.interpreters import InterpreterInfo, Interpreters, PythonRequest
from burrowd.daemon.locks import FileLock
from burrowd.protocol.messages import ClientEnv, EnvironmentOptions, PythonOptions

__all__ = [
    "SEED_PACKAGES",
    "VENV_MARKER",
    "Environment",
    "EnvironmentLocks",
    "find_environment",
    "is_interpreter_name",
    "remove_environment_tree",
]

log = logging.getLogger(__name__)

#: Packages ``python -m venv`` and virtualenv put into a new environment.
SEED_PACKAGES: Final = frozenset({"pip", "setuptools", "wheel"})
#: The key burrowd writes into the ``pyvenv.cfg`` of environments it creates.
VENV_MARKER: Final = "burrowd"
LOCK_FILE: Final = ".lock"

_INTERPRETER_NAME: Final = re.compile(r"python(\d+(\.\d+)?t?)?w?(\.exe)?", re.IGNORECASE)


def remove_environment_tree(path: Path) -> None:
    """Remove a directory tree of an environment, never changing a mode on the way.

    The cache's ``remove_tree`` makes unwritable entries writable; here a file may be a
    hard link into the cache, whose shared copy would change mode too. What cannot be
    removed is logged and left.
    """

    def failed(p: str, exc: BaseException) -> None:
        if not isinstance(exc, FileNotFoundError):
            log.warning("could not remove %s: %s", p, exc)

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=lambda _f, p, e: failed(p, e))
    else:
        shutil.rmtree(path, onerror=lambda _f, p, e: failed(p, e[1]))


def is_interpreter_name(name: str) -> bool:
    """Return whether a script called ``name`` would shadow the environment's interpreter."""
    return _INTERPRETER_NAME.fullmatch(name) is not None


def _read_pyvenv_cfg(prefix: Path) -> dict[str, str]:
    try:
        text = (prefix / "pyvenv.cfg").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


class Environment(Struct, frozen=True):
    """Where a target interpreter installs things, and how it may be changed."""

    info: InterpreterInfo
    prefix: Path
    #: The interpreter written into script shebangs.
    python: str
    purelib: Path
    platlib: Path
    scripts: Path
    data: Path
    #: The root of per-distribution header directories (``headers`` scheme).
    include: Path
    is_venv: bool
    #: A virtual environment burrowd created (``burrowd = VERSION`` in ``pyvenv.cfg``).
    created_by_burrowd: bool

    @classmethod
    def from_info(cls, info: InterpreterInfo) -> Environment:
        """Return the environment of the interpreter that reported ``info``."""
        paths = info.paths
        prefix = Path(info.prefix)
        scripts = Path(paths.get("scripts") or prefix / "bin")
        major_minor = ".".join(info.version.split(".")[:2])
        if info.is_venv:
            # pip's and uv's layout: headers of a distribution go to
            # <venv>/include/site/pythonX.Y/<name>, never into the base interpreter's include.
            include = prefix / "include" / "site" / f"python{major_minor}"
            cfg = _read_pyvenv_cfg(prefix)
            created = VENV_MARKER in cfg
            # ``<venv>/bin/python`` as uv writes it: the path survives a base upgrade.
            candidate = scripts / "python"
            python = str(candidate) if candidate.exists() else info.executable
        else:
            include = Path(paths.get("include") or prefix / "include" / f"python{major_minor}")
            created = False
            python = info.executable
        purelib = Path(paths["purelib"])
        platlib = Path(paths.get("platlib") or purelib)
        if platlib != purelib and os.path.realpath(platlib) == os.path.realpath(purelib):
            # lib64 -> lib (Fedora, openSUSE): one directory, which must be read once.
            platlib = purelib
        return cls(
            info=info,
            prefix=prefix,
            python=python,
            purelib=purelib,
            platlib=platlib,
            scripts=scripts,
            data=Path(paths.get("data") or prefix),
            include=include,
            is_venv=info.is_venv,
            created_by_burrowd=created,
        )

    @property
    def site_dirs(self) -> list[Path]:
        """Return the directories distributions are installed in (purelib, then platlib)."""
        return [self.purelib] if self.platlib == self.purelib else [self.purelib, self.platlib]

    @property
    def roots(self) -> tuple[str, ...]:
        """Return the real paths of every scheme directory: nothing outside them is touched."""
        dirs = {self.purelib, self.platlib, self.scripts, self.data, self.include}
        return tuple(sorted({os.path.realpath(d) for d in dirs}))

    def contains(self, path: str) -> bool:
        """Return whether ``path`` (its real location) lies inside a scheme directory."""
        real = os.path.realpath(path)
        return any(real == root or real.startswith(root + os.sep) for root in self.roots)

    def scheme_path(self, key: str, project: str) -> Path | None:
        """Return the directory of a wheel's ``.data/<key>/`` scheme, or ``None`` if unknown."""
        if key == "purelib":
            return self.purelib
        if key == "platlib":
            return self.platlib
        if key == "scripts":
            return self.scripts
        if key == "data":
            return self.data
        if key == "headers":
            return self.include / project
        return None

    @property
    def lock_path(self) -> Path:
        """Return the environment's lock file.

        ``<venv>/.lock`` for a virtual environment, the file uv locks too; for a system
        interpreter (whose prefix is ``/usr``) a file in the temporary directory named by
        the prefix's digest, as uv does, rather than a new file in ``/usr``.
        """
        if self.is_venv:
            return self.prefix / LOCK_FILE
        key = hashlib.blake2b(str(self.prefix).encode(), digest_size=8).hexdigest()
        return Path(tempfile.gettempdir()) / f"burrowd-env-{key}.lock"

    def describe(self) -> str:
        """Return e.g. ``/home/me/proj/.venv`` or ``/usr (system)``."""
        return str(self.prefix) if self.is_venv else f"{self.prefix} (system)"


async def find_environment(
    interpreters: Interpreters,
    env: ClientEnv,
    python: PythonOptions,
    options: EnvironmentOptions,
    *,
    write: bool,
) -> Environment:
    """Return the environment a request means, refusing one it may not ``write`` to.

    The order is uv's: ``--python``, ``VIRTUAL_ENV``, a ``.venv`` in the working directory
    or a parent, then (only with ``--system``) the first ``python3`` on ``PATH``.
    """
    request = PythonRequest(
        python=python.python,
        cwd=env.cwd,
        virtual_env=env.virtual_env,
        path=env.path,
        system=options.system,
    )
    try:
        info = await interpreters.find(request)
    except InterpreterNotFound:
        if python.python or options.system:
            raise
        raise EnvironmentRefused(
            env.cwd,
            "no virtual environment found (no VIRTUAL_ENV, no .venv here or in a parent)",
            "create one with `burrow venv`, or pass --system to use the first python3 on PATH",
        ) from None
    environment = await asyncio.to_thread(Environment.from_info, info)
    if not write:
        return environment
    if not environment.is_venv and not options.system:
        if python.python is None and env.virtual_env is None:
            reason = "no virtual environment found; the interpreter found is not one"
        else:
            reason = "the interpreter is not in a virtual environment"
        raise EnvironmentRefused(
            environment.describe(),
            reason,
            "create one with `burrow venv` and activate it, or pass --system to change "
            "this interpreter's packages",
        )
    if info.externally_managed and not environment.is_venv and not options.break_system_packages:
        raise EnvironmentRefused(
            environment.describe(),
            "the environment is externally managed (PEP 668): its packages belong to the "
            "system's package manager",
            "use a virtual environment (`burrow venv`), or pass --break-system-packages if "
            "you really mean to change it",
        )
    return environment


Progress = Callable[[str], None]


class EnvironmentLocks:
    """One change per environment at a time, in this daemon and across processes.

    :param timeout: seconds to wait for another process's ``flock`` before ``LockTimeout``.
    """

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._locks: dict[str, asyncio.Lock] = {}

    def busy(self) -> list[str]:
        """Return the environments being changed now."""
        return [key for key, lock in self._locks.items() if lock.locked()]

    def hold(
        self, environment: Environment, waiting: Progress
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the environment for the block; ``waiting`` is told when it must wait."""
        return self.hold_path(environment.prefix, environment.lock_path, waiting)

    @contextlib.asynccontextmanager
    async def try_hold(self, environment: Environment) -> AsyncIterator[bool]:
        """Hold the environment for the block if nobody holds it now; yield whether held."""
        async with self._held(environment.prefix, environment.lock_path, None) as held:
            yield held

    @contextlib.asynccontextmanager
    async def hold_path(
        self, prefix: Path, lock_path: Path, waiting: Progress
    ) -> AsyncIterator[None]:
        """Hold the environment at ``prefix`` (locked through ``lock_path``) for the block."""
        async with self._held(prefix, lock_path, waiting):
            yield

    @contextlib.asynccontextmanager
    async def _held(
        self, prefix: Path, lock_path: Path, waiting: Progress | None
    ) -> AsyncIterator[bool]:
        """Take this daemon's lock, then the ``flock``, waiting (and telling ``waiting``) for
        each; without ``waiting``, yield ``False`` at once when either is taken."""
        key = os.path.realpath(prefix)
        lock = self._locks.setdefault(key, asyncio.Lock())
        if lock.locked():
            if waiting is None:
                yield False
                return
            waiting(f"waiting for the lock on {prefix}")
        async with lock:
            flock = FileLock(
                lock_path,
                f"the environment {prefix}",
                timeout=self.timeout,
                holder=f"pid {os.getpid()}",
            )
            try:
                taken = flock.try_acquire()
            except OSError as exc:
                raise EnvironmentRefused(
                    str(prefix),
                    f"cannot lock it: {exc.strerror or exc}",
                    "check that you may write to it",
                ) from exc
            if not taken:
                if waiting is None:
                    yield False
                    return
                waiting(f"waiting for the lock on {prefix} (another process)")
                await flock.acquire()
            try:
                yield True
            finally:
                flock.release()
