"""Run the other reliability test files with pytest and count what passed.

They are written beside this harness (hostile archives, RPC fuzzing, security, faults); a
file that does not exist yet is reported as missing. The fuzz tests read
``BURROW_FUZZ_EXAMPLES`` for their number of examples.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = ["SUITES", "SuiteResult", "run_suites"]

SUITES: Final = [
    ("hostile archives", "tests/reliability/test_hostile_archives.py"),
    ("RPC fuzzing", "tests/reliability/test_rpc_fuzz.py"),
    ("security", "tests/reliability/test_security.py"),
    ("faults", "tests/reliability/test_faults.py"),
]


@dataclass
class SuiteResult:
    """What one test file did."""

    title: str
    path: str
    present: bool = True
    tests: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def passed(self) -> int:
        """Return the number of tests that passed."""
        return self.tests - self.failed - self.errors - self.skipped


def _read_junit(path: Path, result: SuiteResult) -> None:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    for suite in suites:
        result.tests += int(suite.get("tests", 0))
        result.failed += int(suite.get("failures", 0))
        result.errors += int(suite.get("errors", 0))
        result.skipped += int(suite.get("skipped", 0))
        for case in suite.iter("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                result.failures.append(f"{case.get('classname')}::{case.get('name')}")


def run_suites(
    repo: Path,
    out: Path,
    *,
    fuzz_examples: int,
    timeout: float,
    per_test: float = 900.0,
    log: Callable[[str], None],
) -> list[SuiteResult]:
    """Run each file of :data:`SUITES` in its own pytest; return their counts."""
    results = []
    env = dict(os.environ, BURROW_FUZZ_EXAMPLES=str(fuzz_examples))
    for title, rel in SUITES:
        result = SuiteResult(title, rel)
        results.append(result)
        if not (repo / rel).is_file():
            result.present = False
            result.note = "not written yet"
            continue
        junit = out / (Path(rel).stem + ".xml")
        started = time.monotonic()
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    rel,
                    "-q",
                    "-n",
                    "2",
                    # More examples take longer than the per-test default of make test.
                    f"--timeout={per_test:.0f}",
                    f"--junitxml={junit}",
                ],
                cwd=repo,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            result.note = f"stopped after {timeout:.0f} s"
            result.seconds = time.monotonic() - started
            continue
        result.seconds = time.monotonic() - started
        if junit.is_file():
            _read_junit(junit, result)
        if done.returncode not in (0, 1):
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            result.note = f"pytest exited with {done.returncode}: " + " / ".join(tail)
        log(f"{title}: {result.passed} passed, {result.failed + result.errors} failed")
    return results
