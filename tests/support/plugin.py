"""Pytest fixtures for building distributions and serving them from a fake index.

- ``dist_cache`` (session): builds each distinct spec once per test process.
- ``dist_factory``: ``dist_factory.wheel("foo", "1.0", requires_dist=[...]) -> Path``.
- ``fake_index``: a :class:`FakeIndex` served from its own thread; for sync and async tests,
  and the one to use when another process (the daemon, pip) must reach the index while the
  test blocks on a subprocess.
- ``fake_index_async``: the same served in the test's loop by pytest-aiohttp; it answers only
  while the test awaits, so never hand it to a subprocess the test waits for synchronously.

Both indexes listen on 127.0.0.1 on a free port chosen by the kernel (parallel xdist
workers never collide) and know their URL as soon as the fixture returns. Everything on an
index (``add``, knobs, ``hits``) may be used from the test thread while the server runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpServer

from tests.support.dists import Backend, Breakage, DistCache, DistSpec, write_source_tree
from tests.support.index import FakeIndex, ThreadedServer

__all__ = ["DistFactory", "dist_cache", "dist_factory", "fake_index", "fake_index_async"]


class DistFactory:
    """Build wheels and sdists into one directory (a fresh one per test).

    Keyword arguments are :class:`DistSpec` fields. Builds come from the session cache and
    are copied, so the returned files are the test's own to change or delete. A second build
    of the same filename overwrites the first.
    """

    def __init__(self, dest: Path, cache: DistCache) -> None:
        self.dest = dest
        self.cache = cache

    @staticmethod
    def spec(name: str, version: str, **fields: Any) -> DistSpec:
        """Return a spec; ``fields`` are the other :class:`DistSpec` fields."""
        return DistSpec(name, version, **fields)

    def _spec(self, name: str | DistSpec, version: str | None, fields: dict[str, Any]) -> DistSpec:
        if isinstance(name, DistSpec):
            if version is not None or fields:
                raise TypeError("pass either a DistSpec or name, version and fields")
            return name
        if version is None:
            raise TypeError("a version is needed with a name")
        return DistSpec(name, version, **fields)

    def wheel(
        self,
        name: str | DistSpec,
        version: str | None = None,
        *,
        broken: Breakage | None = None,
        truncate_at: float = 0.5,
        **fields: Any,
    ) -> Path:
        """Build a wheel (of a spec, or of name, version and fields) and return its path."""
        spec = self._spec(name, version, fields)
        built = self.cache.wheel(spec, broken=broken, truncate_at=truncate_at)
        return self.cache.copy_to(built, self.dest)

    def sdist(
        self,
        name: str | DistSpec,
        version: str | None = None,
        *,
        backend: Backend = "in-tree",
        static_metadata: bool = True,
        **fields: Any,
    ) -> Path:
        """Build an sdist (``backend``: in-tree, setuptools-legacy, setup.py); return its path."""
        spec = self._spec(name, version, fields)
        built = self.cache.sdist(spec, backend=backend, static_metadata=static_metadata)
        return self.cache.copy_to(built, self.dest)

    def source_tree(
        self,
        name: str | DistSpec,
        version: str | None = None,
        *,
        backend: Backend = "in-tree",
        static_metadata: bool = True,
        **fields: Any,
    ) -> Path:
        """Write an unpacked source tree (what the sdist holds) and return its root."""
        spec = self._spec(name, version, fields)
        return write_source_tree(spec, self.dest, backend=backend, static_metadata=static_metadata)


@pytest.fixture(scope="session")
def dist_cache(tmp_path_factory: pytest.TempPathFactory) -> DistCache:
    """Return the per-process cache of built distributions."""
    return DistCache(tmp_path_factory.mktemp("dist-cache"))


@pytest.fixture
def dist_factory(tmp_path_factory: pytest.TempPathFactory, dist_cache: DistCache) -> DistFactory:
    """Return a factory building into a fresh directory (not the test's ``tmp_path``)."""
    return DistFactory(tmp_path_factory.mktemp("dists"), dist_cache)


@pytest.fixture
def fake_index(
    tmp_path_factory: pytest.TempPathFactory, dist_cache: DistCache
) -> Iterator[FakeIndex]:
    """Return a running fake index served from its own thread; stopped after the test."""
    index = FakeIndex(tmp_path_factory.mktemp("index"), cache=dist_cache)
    with ThreadedServer(index):
        yield index


@pytest.fixture
async def fake_index_async(
    aiohttp_server: AiohttpServer,
    tmp_path_factory: pytest.TempPathFactory,
    dist_cache: DistCache,
) -> FakeIndex:
    """Return a fake index served in the test's event loop (pytest-aiohttp)."""
    index = FakeIndex(tmp_path_factory.mktemp("index"), cache=dist_cache)
    server = await aiohttp_server(index.app())
    index.bind(str(server.make_url("")))
    return index
