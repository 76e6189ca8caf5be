"""The daemon's services in this process, for compile and sync of sources that need a build.

:func:`open_stack` composes one :class:`Services` on a cache under a temporary directory and
returns a :class:`Stack`: a :class:`Compiler` (``resolve``, as ``burrow compile``) and an
:class:`Installer` (``sync``/``install`` into a fresh venv) that share those services, so a
test can count what the builder did across requests (``stack.builds``, ``stack.fetches``).

Source trees are the fixture sdists' trees (the in-tree backend, ``backend-path``) without
``PKG-INFO``, as a project directory is; :func:`project_tree` may swap in another backend
module, :func:`retarget` edits a tree into another spec. :func:`git` and :func:`commit` make
local repositories.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import zipfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.config import Config
from burrowd.daemon.installer import service
from burrowd.daemon.rpc import RpcServer
from burrowd.daemon.services import Services, open_services
from burrowd.protocol import messages as m
from tests.daemon.installer.harness import Installer, make_venv, run, snapshot
from tests.resolve_e2e.harness import Compiler
from tests.support.dists import Backend, DistSpec, source_members, write_source_tree
from tests.support.index import FakeIndex

__all__ = [
    "BACKEND_DIR",
    "Origin",
    "Stack",
    "commit",
    "git",
    "installed",
    "open_stack",
    "project_tree",
    "retarget",
    "venv_tree",
    "wheel_generator",
]

#: The ``backend-path`` directory of the fixture trees (``tests.support.dists``).
BACKEND_DIR = "_burrow_backend"


@dataclass(eq=False)
class Stack:
    """A compiler and an installer on one set of services."""

    services: Services
    compiler: Compiler
    installer: Installer

    @property
    def builds(self) -> int:
        """Return how many backend runs (metadata or wheel) the builder made so far."""
        return self.services.builder.builds

    @property
    def fetches(self) -> int:
        """Return how many ``git fetch`` runs the builder made so far."""
        return self.services.builder.git.fetches

    @property
    def venv(self) -> Path:
        """Return the installer's target environment."""
        return self.installer.venv

    def bucket(self, bucket: Bucket) -> Path:
        """Return a bucket's directory in the cache."""
        return self.services.cache.path(bucket)

    def built(self, pattern: str = "*.whl") -> list[Path]:
        """Return the files of ``built-wheels-v0`` matching ``pattern``, sorted."""
        return sorted(self.bucket(Bucket.BUILT_WHEELS).rglob(pattern))

    async def sync(
        self,
        *requirements: str | Path,
        files: Iterable[str | Path] = (),
        build: m.BuildOptions | None = None,
        **options: Any,
    ) -> m.SyncResult:
        """Run ``sync`` into the installer's venv; ``options`` are ``InstallOptions`` fields."""
        inst = self.installer
        params = m.SyncParams(
            env=inst.client_env(),
            requirements=[str(r) for r in requirements],
            requirement_files=[str(f) for f in files],
            index=inst.index_options(),
            options=m.InstallOptions(**options),
            build=build or m.BuildOptions(),
        )
        return await inst.settled(service.sync(self.services, params, inst.progress))


@contextlib.asynccontextmanager
async def open_stack(root: Path, index: FakeIndex, *, ttl: float = 600.0) -> AsyncIterator[Stack]:
    """Open the services on ``root / "cache"`` (index freshness ``ttl``), a venv at ``root``."""
    config = Config.from_env(
        {
            "BURROW_CACHE_DIR": str(root / "cache"),
            # The journals of changes under way (and the watch list): never the user's.
            "XDG_STATE_HOME": str(root / "state"),
            # Never bound: the services run without a socket.
            "BURROW_SOCKET": "/tmp/burrow-tests-unused.sock",
            "BURROW_LOG_FILE": str(root / "burrowd.log"),
            "BURROW_LOCK_TIMEOUT": "10",
            "BURROW_INDEX_TTL": str(ttl),
        }
    )
    services = Services(config=config, rpc=RpcServer({}), socket_path=config.socket_path)
    cwd = root / "project"
    cwd.mkdir(parents=True, exist_ok=True)
    venv = make_venv(root / "venv")
    async with open_services(services):
        yield Stack(
            services,
            Compiler(services, index, cwd),
            Installer(services, root, cwd, venv, index),
        )


# -- source trees ---------------------------------------------------------------------------


def project_tree(
    spec: DistSpec,
    dest: Path,
    *,
    backend: Backend = "in-tree",
    module: tuple[str, str] | None = None,
) -> Path:
    """Write ``spec``'s source tree under ``dest`` (no ``PKG-INFO``) and return its root.

    ``module`` is ``(name, source)`` of a backend module put beside ``burrow_test_backend``
    and named as the tree's ``build-backend``.
    """
    root = write_source_tree(spec, dest, backend=backend)
    (root / "PKG-INFO").unlink()
    if module is not None:
        name, source = module
        (root / BACKEND_DIR / f"{name}.py").write_text(source, encoding="utf-8")
        pyproject = root / "pyproject.toml"
        text = pyproject.read_text(encoding="utf-8")
        pyproject.write_text(
            text.replace('build-backend = "burrow_test_backend"', f'build-backend = "{name}"'),
            encoding="utf-8",
        )
    return root


def retarget(root: Path, spec: DistSpec) -> None:
    """Rewrite the tree at ``root`` into ``spec``'s (in-tree backend), as an edit would.

    ``pyproject.toml`` gets a later mtime than it had, even on a coarse file clock.
    """
    pyproject = root / "pyproject.toml"
    before = pyproject.stat().st_mtime_ns
    for rel, blob in source_members(spec):
        if rel != "PKG-INFO" and not rel.startswith(BACKEND_DIR):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(blob)
    later = max(pyproject.stat().st_mtime_ns, before + 10**9)
    os.utime(pyproject, ns=(later, later))


# -- environments and wheels ----------------------------------------------------------------


def installed(venv: Path) -> dict[str, str]:
    """Return ``{name: version}`` of what the venv holds, read by the venv's own python."""
    code = (
        "import importlib.metadata as md\n"
        "for d in md.distributions(): print(d.metadata['Name'], d.version)\n"
    )
    done = run(venv / "bin" / "python", "-I", "-c", code)
    assert done.returncode == 0, done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


def venv_tree(venv: Path) -> dict[str, str]:
    """Return a snapshot of ``venv`` without its lock file (which a sync creates)."""
    return {k: v for k, v in snapshot(venv).items() if k != ".lock"}


def wheel_generator(wheel: Path) -> str:
    """Return the ``Generator`` of a wheel's ``WHEEL`` file."""
    with zipfile.ZipFile(wheel) as zf:
        (name,) = (n for n in zf.namelist() if n.endswith(".dist-info/WHEEL"))
        text = zf.read(name).decode()
    (line,) = (line for line in text.splitlines() if line.startswith("Generator: "))
    return line.removeprefix("Generator: ")


# -- an origin with validators -------------------------------------------------------------


@dataclass
class Origin:
    """One file served with an ``ETag`` and ``Last-Modified``, answering ``If-None-Match``.

    The fake index serves files without validators; this server is what a URL source on a
    web server that has them looks like. ``requests`` holds ``(If-None-Match, status)`` of
    every request.
    """

    filename: str
    body: bytes
    requests: list[tuple[str | None, int]] = field(default_factory=list)

    @property
    def etag(self) -> str:
        """Return the current ETag (a digest of the body)."""
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'

    def app(self) -> web.Application:
        """Return an application serving the file at ``/<filename>``."""
        app = web.Application()
        app.router.add_get("/" + self.filename, self._get)
        return app

    async def _get(self, request: web.Request) -> web.Response:
        asked = request.headers.get("If-None-Match")
        headers = {"ETag": self.etag, "Last-Modified": "Tue, 01 Dec 2026 00:00:00 GMT"}
        if asked is not None and self.etag in (t.strip() for t in asked.split(",")):
            self.requests.append((asked, 304))
            return web.Response(status=304, headers=headers)
        self.requests.append((asked, 200))
        return web.Response(
            body=self.body, headers={**headers, "Content-Type": "application/octet-stream"}
        )


# -- git ------------------------------------------------------------------------------------

_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "burrow tests",
    "GIT_AUTHOR_EMAIL": "tests@burrow.invalid",
    "GIT_COMMITTER_NAME": "burrow tests",
    "GIT_COMMITTER_EMAIL": "tests@burrow.invalid",
}


def git(repo: Path, *args: str) -> str:
    """Run ``git`` in ``repo`` and return its standard output, stripped."""
    done = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false", *args],
        cwd=repo,
        env={**os.environ, **_GIT_ENV},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def commit(repo: Path, message: str) -> str:
    """Commit everything in ``repo`` (made a repository first if it is none); return the id."""
    if not (repo / ".git").exists():
        git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")
