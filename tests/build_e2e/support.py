"""Helpers of the build end-to-end tests: git repositories, source trees, counters, dist-info.

Git runs here with no user or system configuration (``GIT_CONFIG_GLOBAL=/dev/null``,
``GIT_CONFIG_NOSYSTEM``) and a fixed identity, so a developer's hooks, signing or default
branch never change what a test repository holds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tests.install_e2e.support import Burrow, execute, site_packages

__all__ = [
    "Counters",
    "counters",
    "direct_url",
    "dist_info",
    "git",
    "project_dir",
    "python_says",
]

_GIT_ENV: Final = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "burrow tests",
    "GIT_AUTHOR_EMAIL": "tests@burrow.invalid",
    "GIT_COMMITTER_NAME": "burrow tests",
    "GIT_COMMITTER_EMAIL": "tests@burrow.invalid",
    "GIT_TERMINAL_PROMPT": "0",
}


def git(repo: Path, *args: str) -> str:
    """Run ``git ARGS`` in ``repo`` (hermetic configuration); require success, return stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(_GIT_ENV)
    done = subprocess.run(
        ["git", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def project_dir(tree: Path, dest: Path) -> Path:
    """Copy an unpacked source tree to ``dest`` as a project checkout has it (no PKG-INFO).

    Without PKG-INFO, and with ``[project] dynamic`` naming the dependencies, only a build
    tells the project's metadata.
    """
    shutil.copytree(tree, dest)
    (dest / "PKG-INFO").unlink()
    return dest


@dataclass(frozen=True)
class Counters:
    """What ``burrow --json daemon status`` counts of builds and git fetches."""

    builds: int
    git_fetches: int


def counters(burrow: Burrow) -> Counters:
    """Return the daemon's build and git fetch counters."""
    status = burrow.json("daemon", "status")
    return Counters(builds=status["builds"], git_fetches=status["git_fetches"])


def python_says(venv: Path, code: str) -> str:
    """Run ``code`` with the venv's python (from the venv's directory); return stdout."""
    done = execute(venv / "bin" / "python", "-c", code, cwd=venv)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def dist_info(venv: Path, name: str) -> Path:
    """Return the one ``.dist-info`` directory of project ``name`` (escaped) in the venv."""
    found = sorted(site_packages(venv).glob(f"{name}-*.dist-info"))
    assert len(found) == 1, found
    return found[0]


def direct_url(venv: Path, name: str) -> dict[str, Any] | None:
    """Return the parsed ``direct_url.json`` of a project, or None when it has none."""
    path = dist_info(venv, name) / "direct_url.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
