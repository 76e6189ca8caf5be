"""Fixtures of the end-to-end resolution tests: the real CLI and daemon, in a project dir.

``env`` and ``daemon`` are the end-to-end fixtures of ``tests/e2e`` (a private socket,
cache and log; every daemon stopped at teardown). ``project`` makes a fresh directory the
working directory, so ``burrow compile requirements.in`` reads and writes files there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import daemon, env

__all__ = ["daemon", "env", "project"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return a fresh project directory, made the working directory of the CLI."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    return root
