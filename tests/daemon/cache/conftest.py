"""Fixtures: the cache and index services of burrowd, in this process, on a fresh cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.daemon.cache.harness import Stack, stack_on


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Return the services on a fresh cache under ``tmp_path / "cache"``."""
    async with stack_on(tmp_path / "cache") as services:
        yield services
