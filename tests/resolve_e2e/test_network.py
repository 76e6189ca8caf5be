"""``burrow compile`` against the public index, checked against a pip-compile result."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.helpers import BurrowEnv, DaemonProcess
from tests.resolve_e2e.harness import pins_of_text

SETS = Path("/work/shared/bench/sets")


@pytest.mark.network
@pytest.mark.skipif(not SETS.is_dir(), reason=f"the benchmark sets are not at {SETS}")
def test_trio_matches_the_reference_pins(
    env: BurrowEnv, daemon: DaemonProcess, project: Path
) -> None:
    done = env.cli(
        "compile",
        str(SETS / "a-trio.in"),
        "-o",
        "requirements.txt",
        "--exclude-newer",
        "2026-11-25T00:00:00Z",
        "--python-version",
        "3.11",
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    assert pins_of_text(project / "requirements.txt") == pins_of_text(SETS / "a-trio.txt")
