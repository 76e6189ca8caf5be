"""Fixtures: the cache and index services of burrowd, in this process, on a fresh cache."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.daemon.cache.harness import Stack, stack_on
from tests.support.dists import DistCache
from tests.support.index import FakeIndex, ThreadedServer


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Return the services on a fresh cache under ``tmp_path / "cache"``."""
    async with stack_on(tmp_path / "cache") as services:
        yield services


@pytest.fixture
def other_index(
    tmp_path_factory: pytest.TempPathFactory, dist_cache: DistCache
) -> Iterator[FakeIndex]:
    """Return a second running fake index (another port: another host for credentials)."""
    index = FakeIndex(tmp_path_factory.mktemp("other-index"), cache=dist_cache)
    with ThreadedServer(index):
        yield index
