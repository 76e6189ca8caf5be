"""Fixtures: the services on a fresh cache with a venv, using the fake index in the loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.daemon.builder.harness import Stack, open_stack
from tests.support.index import FakeIndex


@pytest.fixture
async def stack(tmp_path: Path, fake_index_async: FakeIndex) -> AsyncIterator[Stack]:
    """Return a compiler and an installer sharing one set of services and the fake index."""
    async with open_stack(tmp_path, fake_index_async) as s:
        yield s
