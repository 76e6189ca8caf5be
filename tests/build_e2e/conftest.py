"""Fixtures of the build end-to-end tests: those of ``tests/e2e`` (a private environment
with its socket, cache and log; daemons started by the test and always stopped), and a
``burrow`` runner for each, as ``tests/install_e2e`` has them."""

from __future__ import annotations

from tests.e2e.conftest import daemon, env, shared_env
from tests.install_e2e.conftest import burrow, fresh

__all__ = ["burrow", "daemon", "env", "fresh", "shared_env"]
