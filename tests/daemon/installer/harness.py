"""Target environments, odd wheels and the installer services, for the installer's tests.

Target environments are real: :func:`make_venv` runs ``python -m venv --without-pip`` with
the interpreter running the tests, and :func:`environment` asks it (through the daemon's
:class:`Interpreters`) where things go. :func:`snapshot` records a tree so a test can prove
that a refused change changed nothing. :func:`raw_wheel` writes wheels the distribution
factory refuses to make (unknown ``.data`` schemes, RECORD rows for files the wheel lacks
or outside it). :func:`open_installer` composes the daemon's :class:`Services` in this
process, as ``tests/resolve_e2e/harness.py`` does, and :class:`Installer` sends ``sync``,
``install``, ``uninstall``, ``list`` and ``venv`` requests the way the client would.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from burrowd.daemon.cache.archive import unpack_wheel
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.config import Config
from burrowd.daemon.installer import service
from burrowd.daemon.installer.environment import Environment
from burrowd.daemon.installer.installed import DirectUrl
from burrowd.daemon.installer.wheel import Linker, LinkMode, WheelLayout, install_layout, layout
from burrowd.daemon.interpreters import Interpreters
from burrowd.daemon.rpc import RpcServer
from burrowd.daemon.services import Services, open_services
from burrowd.protocol import messages as m
from tests.support.backend.burrow_test_backend import (
    dist_info_dir,
    record_hash,
    record_text,
    wheel_filename,
    wheel_members,
    write_zip,
)
from tests.support.index import FakeIndex

__all__ = [
    "PY_MAJOR_MINOR",
    "Installer",
    "Progress",
    "environment",
    "install_wheel",
    "installed_record",
    "make_venv",
    "open_installer",
    "raw_wheel",
    "record_mismatches",
    "run",
    "sha256_of",
    "site_packages",
    "snapshot",
    "unpack",
]

T = TypeVar("T")

PY_MAJOR_MINOR = f"{sys.version_info.major}.{sys.version_info.minor}"


# -- target environments ------------------------------------------------------------------


def make_venv(path: Path) -> Path:
    """Create a virtual environment without pip at ``path`` and return ``path``."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


def site_packages(venv: Path) -> Path:
    """Return the site-packages directory of a venv made by :func:`make_venv`."""
    return venv / "lib" / f"python{PY_MAJOR_MINOR}" / "site-packages"


async def environment(cache: Cache, venv: Path) -> Environment:
    """Return the environment of ``venv`` as its own interpreter reports it."""
    info = await Interpreters(cache).query(venv / "bin" / "python")
    return Environment.from_info(info)


def snapshot(root: Path) -> dict[str, str]:
    """Return every path under ``root`` with its kind, mode and content digest.

    Files are ``file <mode> <sha256>``, directories ``dir``, symbolic links ``link
    <target>``; two snapshots are equal only if nothing under ``root`` changed.
    """
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = f"link {os.readlink(path)}"
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            else:
                with open(path, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                out[rel] = f"file {stat.S_IMODE(st.st_mode):o} {digest}"
    return out


def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a program (an installed script, the environment's python) and capture its output."""
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=60, check=False
    )


def sha256_of(path: Path) -> str:
    """Return the hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- wheels -------------------------------------------------------------------------------


def raw_wheel(
    dest: Path,
    name: str,
    version: str,
    files: Sequence[tuple[str, bytes]],
    *,
    tag: str = "py3-none-any",
    entry_points: str = "",
    extra_rows: Iterable[str] = (),
) -> Path:
    """Write a wheel of ``files`` (paths inside the wheel, ``.data/`` ones included).

    RECORD lists every member correctly, plus ``extra_rows`` (raw CSV lines), which may
    name files the wheel lacks or paths outside it: the unpack checks members, not rows.
    """
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    members = wheel_members(
        name=name,
        version=version,
        tag=tag,
        metadata=metadata,
        files=list(files),
        entry_points=entry_points.encode(),
    )
    record_name = f"{dist_info_dir(name, version)}/RECORD"
    record = record_text(members, record_name)
    record += "".join(f"{row}\n" for row in extra_rows).encode()
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / wheel_filename(name, version, tag)
    write_zip(path, [*members, (record_name, record)])
    return path


def unpack(cache: Cache, wheel: Path) -> Path:
    """Unpack ``wheel`` into the cache's ``archive-v0``, as a fetch does; return the tree."""
    return unpack_wheel(cache, wheel, filename=wheel.name, sha256=sha256_of(wheel))


def install_wheel(
    cache: Cache,
    env: Environment,
    wheel: Path,
    *,
    mode: LinkMode = "hardlink",
    direct_url: DirectUrl | None = None,
    requested: bool = True,
) -> WheelLayout:
    """Unpack, lay out and install one wheel into ``env``, as :class:`Changer` does."""
    lay = layout(unpack(cache, wheel), env)
    existing = [str(d) for d in (env.prefix, *env.site_dirs, env.scripts, env.data)]
    install_layout(lay, Linker(mode, existing), direct_url=direct_url, requested=requested)
    return lay


def installed_record(dist_info: Path) -> list[tuple[str, str, str]]:
    """Return the rows of an installed distribution's RECORD as ``(path, hash, size)``."""
    text = (dist_info / "RECORD").read_text(encoding="utf-8")
    out: list[tuple[str, str, str]] = []
    for row in csv.reader(io.StringIO(text)):
        if row:
            padded = [*row, "", ""][:3]
            out.append((padded[0], padded[1], padded[2]))
    return out


def record_mismatches(dist_info: Path) -> list[str]:
    """Return the RECORD rows of an installed distribution that the files on disk belie."""
    site = dist_info.parent
    problems: list[str] = []
    for path, digest, size in installed_record(dist_info):
        target = site / path
        if not target.is_file():
            problems.append(f"{path}: missing")
            continue
        if path.endswith("/RECORD"):
            continue
        data = target.read_bytes()
        if digest != record_hash(data) or size != str(len(data)):
            problems.append(f"{path}: {digest},{size} != {record_hash(data)},{len(data)}")
    return problems


# -- the services -------------------------------------------------------------------------


@dataclass
class Progress:
    """A :class:`ProgressSink` that remembers the phases reported."""

    calls: list[tuple[str, int, int | None]] = field(default_factory=list)

    def __call__(
        self,
        phase: str,
        current: int = 0,
        total: int | None = None,
        nbytes: int = 0,
        message: str = "",
        *,
        force: bool = False,
    ) -> None:
        self.calls.append((phase, current, total))

    @property
    def phases(self) -> list[str]:
        """Return the phases in the order first reported."""
        return list(dict.fromkeys(phase for phase, _, _ in self.calls))


@dataclass(eq=False)
class Installer:
    """Send installer requests to the in-process services, for the venv ``venv``."""

    services: Services
    root: Path
    cwd: Path
    venv: Path
    index: FakeIndex | None = None
    progress: Progress = field(default_factory=Progress)

    def client_env(self, venv: Path | None = None) -> m.ClientEnv:
        """Return the client environment of a shell with ``venv`` activated."""
        return m.ClientEnv(
            cwd=str(self.cwd),
            virtual_env=str(venv or self.venv),
            path=os.environ.get("PATH", ""),
        )

    def index_options(self, **fields: Any) -> m.IndexOptions:
        """Return the fake index's options, or ``--no-index`` when there is none."""
        if self.index is None:
            return m.IndexOptions(no_index=True, **fields)
        return m.IndexOptions(index_url=self.index.simple_url, **fields)

    def write(self, name: str, text: str) -> Path:
        """Write a file under ``cwd`` and return its path."""
        path = self.cwd / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    async def settled(self, request: Awaitable[T]) -> T:
        """Await a request, then the deletion of what it moved aside (done after the reply)."""
        try:
            return await request
        finally:
            await self.services.janitor.drain()

    async def sync(
        self,
        *requirements: str | Path,
        files: Iterable[str | Path] = (),
        venv: Path | None = None,
        allow_empty: bool = False,
        **options: Any,
    ) -> m.SyncResult:
        """Run ``sync``; ``options`` are :class:`InstallOptions` fields."""
        params = m.SyncParams(
            env=self.client_env(venv),
            requirements=[str(r) for r in requirements],
            requirement_files=[str(f) for f in files],
            index=self.index_options(),
            options=m.InstallOptions(**options),
            allow_empty=allow_empty,
        )
        return await self.settled(service.sync(self.services, params, self.progress))

    async def install(
        self,
        *requirements: str | Path,
        venv: Path | None = None,
        upgrade: bool = False,
        build: m.BuildOptions | None = None,
        **options: Any,
    ) -> m.InstallResult:
        """Run ``install``; ``options`` are :class:`InstallOptions` fields."""
        params = m.InstallParams(
            env=self.client_env(venv),
            requirements=[str(r) for r in requirements],
            index=self.index_options(),
            upgrade=upgrade,
            options=m.InstallOptions(**options),
            build=build or m.BuildOptions(),
        )
        return await self.settled(service.install(self.services, params, self.progress))

    async def uninstall(
        self, *packages: str, venv: Path | None = None, dry_run: bool = False
    ) -> m.UninstallResult:
        """Run ``uninstall``."""
        params = m.UninstallParams(
            env=self.client_env(venv), packages=list(packages), dry_run=dry_run
        )
        return await self.settled(service.uninstall(self.services, params, self.progress))

    async def list(self, venv: Path | None = None) -> m.ListResult:
        """Run ``list``."""
        return await service.list_packages(self.services, m.ListParams(env=self.client_env(venv)))

    async def create_venv(self, path: str, **fields: Any) -> m.VenvResult:
        """Run ``venv`` (``path`` relative to ``cwd``), with this interpreter as the base."""
        params = m.VenvParams(
            env=self.client_env(),
            path=path,
            python=m.PythonOptions(python=sys.executable),
            index=self.index_options(),
            **fields,
        )
        return await service.create_venv(self.services, params, self.progress)


@contextlib.asynccontextmanager
async def open_installer(
    root: Path,
    index: FakeIndex | None = None,
    *,
    state: Path | None = None,
    replay_at_start: bool = True,
) -> AsyncIterator[Installer]:
    """Open the services on ``root / "cache"`` with a fresh venv at ``root / "venv"``.

    ``state`` is the state directory (journals of changes under way): ``root / "state"``.
    """
    config = Config.from_env(
        {
            "BURROW_CACHE_DIR": str(root / "cache"),
            # The journals of changes under way (and the watch list): never the user's.
            "XDG_STATE_HOME": str(state or root / "state"),
            # Never bound: the services run without a socket.
            "BURROW_SOCKET": "/tmp/burrow-tests-unused.sock",
            "BURROW_LOG_FILE": str(root / "burrowd.log"),
            "BURROW_LOCK_TIMEOUT": "10",
        }
    )
    services = Services(
        config=config,
        rpc=RpcServer({}),
        socket_path=config.socket_path,
        replay_at_start=replay_at_start,
    )
    cwd = root / "project"
    cwd.mkdir(parents=True, exist_ok=True)
    venv = make_venv(root / "venv")
    async with open_services(services):
        yield Installer(services, root, cwd, venv, index)
