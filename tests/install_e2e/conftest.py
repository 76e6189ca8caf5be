"""Fixtures of the install end-to-end tests: those of ``tests/e2e`` (a private environment
with its socket, cache and log; daemons started by the test and always stopped), and a
``burrow`` runner for each."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import daemon, env, shared_env
from tests.e2e.helpers import BurrowEnv
from tests.install_e2e.support import Burrow

__all__ = ["burrow", "daemon", "env", "fresh", "shared_env"]


@pytest.fixture
def burrow(shared_env: BurrowEnv, tmp_path: Path) -> Burrow:
    """Return the CLI of the module's shared daemon, run from the test's ``tmp_path``."""
    work = tmp_path / "work"
    work.mkdir()
    return Burrow(shared_env, work)


@pytest.fixture
def fresh(env: BurrowEnv, tmp_path: Path) -> Burrow:
    """Return the CLI of a private environment with no daemon running yet."""
    work = tmp_path / "work"
    work.mkdir()
    return Burrow(env, work)
