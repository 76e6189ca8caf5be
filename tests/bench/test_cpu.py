"""The benchmark's CPU accounting: what a timed run and a daemon's process tree used.

Each process here spins until its own CPU clock shows :data:`SPIN` seconds, so the figures
asserted are lower bounds the processes guarantee, whatever the machine's load.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from bench.daemon import tree_cpu
from bench.timing import run_timed
from tests.e2e.helpers import wait_until

SPIN = 0.2
#: One clock tick of /proc and rusage figures, and then some.
SLACK = 0.02
SPINNER = f"import time\nwhile time.process_time() < {SPIN}: pass\n"


def test_a_run_counts_the_processes_it_waited_for(tmp_path: Path) -> None:
    code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {SPINNER!r}])"
    outcome = run_timed([sys.executable, "-c", code], env={}, cwd=tmp_path)
    assert outcome.ok, outcome.describe()
    assert outcome.cpu is not None
    assert outcome.cpu >= SPIN - SLACK


def test_a_tree_counts_its_live_descendants_and_a_gone_process_nothing() -> None:
    # The parent sleeps; its child spins, says so, and stays alive like an unpack worker.
    child = SPINNER + "print('spun', flush=True)\ntime.sleep(60)\n"
    parent = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {child!r}])\n"
        "time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True, start_new_session=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "spun\n"
            assert tree_cpu(proc.pid) >= SPIN - SLACK
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
    assert wait_until(lambda: tree_cpu(proc.pid) == 0.0, 5.0)
