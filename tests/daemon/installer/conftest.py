"""Fixtures: a cache, a fresh virtual environment and its :class:`Environment`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from burrowd.daemon.cache.store import Cache
from burrowd.daemon.installer.environment import Environment
from tests.daemon.installer.harness import Installer, environment, make_venv, open_installer


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    """Return a fresh cache under ``tmp_path / "cache"``."""
    return Cache(tmp_path / "cache", lock_timeout=10.0)


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """Return a fresh ``python -m venv --without-pip`` environment."""
    return make_venv(tmp_path / "venv")


@pytest.fixture
async def env(cache: Cache, venv: Path) -> Environment:
    """Return the environment of ``venv``, as its interpreter reports it."""
    return await environment(cache, venv)


@pytest.fixture
async def installer(tmp_path: Path) -> AsyncIterator[Installer]:
    """Return the services with no index (``--no-index``) and a fresh venv."""
    async with open_installer(tmp_path) as inst:
        yield inst
