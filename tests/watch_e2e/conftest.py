"""Fixtures of the watch end-to-end tests.

``project`` works against the module's shared daemon (``shared_env``): for tests whose
watches and requests cannot disturb one another (each test has its own fake index, and
removes its watches afterwards). ``private`` starts a daemon of the test's own, with extra
settings, for tests that read global state (``status`` timings, priorities, restarts,
revalidation) or change it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.e2e.conftest import env, shared_env
from tests.e2e.helpers import BurrowEnv
from tests.install_e2e.support import Burrow
from tests.support.index import FakeIndex
from tests.watch_e2e.support import Project

__all__ = ["env", "private", "project", "shared_env"]


@pytest.fixture
def project(shared_env: BurrowEnv, fake_index: FakeIndex, tmp_path: Path) -> Iterator[Project]:
    """Return a project on the module's shared daemon; its watches are removed afterwards."""
    work = tmp_path / "work"
    work.mkdir()
    p = Project(Burrow(shared_env, work), fake_index)
    try:
        yield p
    finally:
        p.remove_all()
        p.close()


@pytest.fixture
def private(
    env: BurrowEnv, fake_index: FakeIndex, tmp_path: Path
) -> Iterator[Callable[[Mapping[str, str] | None], Project]]:
    """Return a function starting a daemon of the test's own (with extra variables)."""
    made: list[Project] = []

    def start(variables: Mapping[str, str] | None = None) -> Project:
        env.start_daemon(env=variables)
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        p = Project(Burrow(env, work), fake_index)
        made.append(p)
        return p

    try:
        yield start
    finally:
        for p in made:
            p.close()
