"""A build hook past its time limit is stopped with everything it started."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from burrowd.daemon.builder.hooks import Backend, BuildLog, call_hook
from burrowd.daemon.errors import BuildFailed
from tests.e2e.helpers import process_gone, wait_until

# A backend whose build_wheel starts a long-running helper (as a compiler or a tool would),
# says so, then hangs.
BACKEND = """
import os, subprocess, sys, time

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open(os.environ["HELPER_PID_FILE"], "w") as f:
        f.write(str(helper.pid))
    print("started helper", helper.pid, flush=True)
    time.sleep(120)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="process sessions and /proc: Linux")
def test_a_hook_past_its_time_is_killed_with_the_processes_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "hanging_backend.py").write_text(BACKEND)
    pid_file = tmp_path / "helper.pid"
    monkeypatch.setenv("HELPER_PID_FILE", str(pid_file))
    log = BuildLog()
    started = time.monotonic()
    with pytest.raises(BuildFailed) as caught:
        call_hook(
            python=sys.executable,
            bin_dir=None,
            tree=tree,
            backend=Backend(name="hanging_backend", path=(".",), requires=()),
            hook="build_wheel",
            log=log,
            source="demo 1.0",
            timeout=2.0,
            wheel_directory=str(tmp_path / "out"),
            config_settings=None,
            metadata_directory=None,
        )
    assert "timed out" in str(caught.value)
    assert time.monotonic() - started < 30
    assert "started helper" in log.tail()  # what it printed before the kill is kept
    helper = int(pid_file.read_text())
    assert wait_until(lambda: process_gone(helper), 5.0), f"helper {helper} still runs"
