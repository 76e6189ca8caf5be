"""Fixtures of the end-to-end tests: a private environment, the real CLI and real daemons.

Every daemon a test starts, itself or through the client, is stopped at teardown (SIGKILL if
SIGTERM is not enough), and the teardown fails if one is still alive afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.helpers import BurrowEnv, DaemonProcess, burrow_env


@pytest.fixture
def env() -> Iterator[BurrowEnv]:
    """Return a private environment with no daemon running."""
    with burrow_env() as e:
        yield e


@pytest.fixture
def daemon(env: BurrowEnv) -> DaemonProcess:
    """Return a daemon of ``env``, started by the test and serving."""
    return env.start_daemon()


@pytest.fixture(scope="module")
def shared_env() -> Iterator[BurrowEnv]:
    """Return an environment whose one daemon serves every test of a module.

    Only for tests that leave the daemon as they found it (malformed input, concurrency).
    """
    with burrow_env() as e:
        e.start_daemon()
        yield e
