"""The ``resolve`` service of burrowd in this process, against a fake index.

:func:`open_compiler` builds the daemon's :class:`Services` (as ``bench/profile_resolve.py``
does) on a cache under a temporary directory and returns a :class:`Compiler`, which sends
``resolve`` requests the way ``burrow compile`` would: ``compile("a>=1", files=[...])``.
The target interpreter is this test run's own (``sys.prefix``), so nothing outside the
temporary directory and the fake index is consulted.

The resolver tests in ``tests/daemon/resolver`` and the end-to-end ones here share it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Unpack

import pytest
from packaging.requirements import Requirement

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.config import Config
from burrowd.daemon.errors import DaemonError
from burrowd.daemon.inputs.requirements_txt import parse_requirements_file
from burrowd.daemon.resolver.service import resolve
from burrowd.daemon.rpc import RpcServer
from burrowd.daemon.services import Services, open_services
from burrowd.protocol.messages import (
    ClientEnv,
    IndexOptions,
    PythonOptions,
    ResolveParams,
    ResolveResult,
)
from tests.support.dists import DistSpec
from tests.support.index import AddOptions, FakeIndex, IndexedFile

__all__ = ["Compiler", "ProgressCall", "open_compiler", "pins", "pins_of_text", "release"]

ProgressCall = tuple[str, int, int | None]


def release(
    index: FakeIndex,
    pin: str,
    *requires: str,
    python: str | None = None,
    tag: str = "py3-none-any",
    provides_extra: Iterable[str] = (),
    **options: Unpack[AddOptions],
) -> list[IndexedFile]:
    """Publish ``name==version`` on ``index`` with these ``Requires-Dist`` lines.

    ``python`` is the ``Requires-Python`` of the metadata, which the page repeats unless
    ``requires_python`` (an :class:`AddOptions` of the index) says otherwise.
    """
    name, sep, version = pin.partition("==")
    assert sep, f"give name==version, not {pin!r}"
    spec = DistSpec(
        name,
        version,
        requires_dist=list(requires),
        requires_python=python,
        tag=tag,
        provides_extra=list(provides_extra),
    )
    return index.add(spec, **options)


def pins(result: ResolveResult) -> dict[str, str]:
    """Return ``{name: version}`` of a resolution."""
    return {p.name: p.version for p in result.packages}


def pins_of_text(path: Path) -> dict[str, str]:
    """Return ``{name: version}`` of the ``name==version`` lines of a requirements file."""
    parsed = parse_requirements_file(path, cwd=path.parent)
    out: dict[str, str] = {}
    for entry in parsed.requirements:
        req: Requirement = entry.requirement
        (spec,) = req.specifier
        assert spec.operator == "==", req
        out[entry.name] = spec.version
    return out


@dataclass(eq=False)
class Compiler:
    """Send ``resolve`` requests to the in-process service, from ``cwd``."""

    services: Services
    index: FakeIndex
    cwd: Path
    progress: list[ProgressCall] = field(default_factory=list)

    def write(self, name: str, text: str) -> Path:
        """Write a file under ``cwd`` (parents created) and return its path."""
        path = self.cwd / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def params(
        self,
        *requirements: str,
        files: Iterable[str] = (),
        python_version: str | None = None,
        python_platform: str | None = None,
        index_url: str | None = "fake",
        refresh: bool = False,
        offline: bool = False,
        variables: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> ResolveParams:
        """Return the params ``burrow compile`` would send (``index_url`` "fake": ours)."""
        url = self.index.simple_url if index_url == "fake" else index_url
        return ResolveParams(
            env=ClientEnv(
                cwd=str(self.cwd),
                virtual_env=sys.prefix,
                path=os.environ.get("PATH", ""),
                variables=dict(variables or {}),
            ),
            requirements=list(requirements),
            requirement_files=list(files),
            index=IndexOptions(index_url=url, refresh=refresh, offline=offline),
            python=PythonOptions(python_version=python_version, python_platform=python_platform),
            **fields,
        )

    async def compile(self, *requirements: str, **options: Any) -> ResolveResult:
        """Resolve; fail the test with the daemon's message if it answers an error."""
        params = self.params(*requirements, **options)
        try:
            return await resolve(self.services, params, self._on_progress)
        except DaemonError as exc:
            pytest.fail(f"resolve failed: {exc.message}")

    async def fail(self, *requirements: str, **options: Any) -> DaemonError:
        """Resolve, expecting an error; return it."""
        params = self.params(*requirements, **options)
        with pytest.raises(DaemonError) as caught:
            await resolve(self.services, params, self._on_progress)
        return caught.value

    async def pins(self, *requirements: str, **options: Any) -> dict[str, str]:
        """Resolve and return ``{name: version}``."""
        return pins(await self.compile(*requirements, **options))

    def _on_progress(self, phase: str, current: int, total: int | None) -> None:
        self.progress.append((phase, current, total))


@contextlib.asynccontextmanager
async def open_compiler(
    root: Path, index: FakeIndex, env: Mapping[str, str] | None = None
) -> AsyncIterator[Compiler]:
    """Open the daemon's services on ``root / "cache"``, working in ``root / "project"``."""
    config = Config.from_env(
        {
            "BURROW_CACHE_DIR": str(root / "cache"),
            # The journals of changes under way (and the watch list): never the user's.
            "XDG_STATE_HOME": str(root / "state"),
            # Never bound: the services run without a socket (and tmp paths can be too long).
            "BURROW_SOCKET": "/tmp/burrow-tests-unused.sock",
            "BURROW_LOG_FILE": str(root / "burrowd.log"),
            **(env or {}),
        }
    )
    services = Services(config=config, rpc=RpcServer({}), socket_path=config.socket_path)
    cwd = root / "project"
    cwd.mkdir(parents=True, exist_ok=True)
    # What the target interpreter reports is the same for every test: carry the cache entry
    # of the first query over (the daemon still validates it by the executable's mtime).
    interpreters = services.cache.path(Bucket.INTERPRETER)
    if _INTERPRETER_ENTRIES.is_dir():
        shutil.copytree(_INTERPRETER_ENTRIES, interpreters, dirs_exist_ok=True)
    async with open_services(services):
        yield Compiler(services, index, cwd)
    if not _INTERPRETER_ENTRIES.is_dir() and interpreters.is_dir():
        shutil.copytree(interpreters, _INTERPRETER_ENTRIES, dirs_exist_ok=True)


#: Interpreter cache entries shared by the tests of this process (removed at exit).
_INTERPRETER_DIR = tempfile.mkdtemp(prefix="burrow-interpreters-")
_INTERPRETER_ENTRIES = Path(_INTERPRETER_DIR) / "entries"
atexit.register(shutil.rmtree, _INTERPRETER_DIR, ignore_errors=True)
