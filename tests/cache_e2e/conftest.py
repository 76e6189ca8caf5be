"""Fixtures of the cache end-to-end tests: those of ``tests/e2e`` (a private environment with
its socket, cache and log; daemons started by the test and always stopped)."""

from __future__ import annotations

from tests.e2e.conftest import daemon, env, shared_env

__all__ = ["daemon", "env", "shared_env"]
