"""One change per environment at a time, in one daemon and across processes; environments
in parallel.

Downloads are slowed by the fake index (``bandwidth``) so that a sync holds its
environment's lock long enough to be seen doing so; what each request was doing when is read
from the daemon's ``status`` (``requests[].phase``), never from absolute durations.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from burrowd.protocol.errors import ErrorCode
from tests.e2e.helpers import BurrowEnv
from tests.install_e2e.support import (
    Burrow,
    StatusWatch,
    finish,
    make_venv,
    reaped,
    record_rows,
    requirements,
    site_packages,
    tree,
)
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex

#: Phases a sync reports only while it holds its environment's lock.
HELD = frozenset(
    {"reading the environment", "downloading", "checking", "uninstalling", "installing"}
)
#: Seconds each slow wheel takes to download.
SLOW_DOWNLOAD = 1.5


def _slow(name: str) -> DistSpec:
    """Return a package with incompressible payload, so its wheel is as big as its data."""
    blob = random.Random(name).randbytes(24_000)
    return DistSpec(name, "1.0", files={f"{name}/__init__.py": b"", f"{name}/blob.bin": blob})


@pytest.fixture
def index(fake_index: FakeIndex) -> FakeIndex:
    entries = fake_index.add_many([_slow("slow_a"), _slow("slow_b"), DistSpec("foo", "1.0")])
    fake_index.bandwidth = min(e.size for e in entries if e.project != "foo") / SLOW_DOWNLOAD
    return fake_index


@pytest.fixture
def watch(shared_env: BurrowEnv) -> Iterator[StatusWatch]:
    with shared_env.connect() as client:
        yield StatusWatch(client)


def _run_all(watch: StatusWatch, procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    """Watch the daemon until every process exits; return their results (``--json``)."""
    watch.until(lambda _: all(proc.poll() is not None for proc in procs), timeout=60)
    results = []
    for proc in procs:
        status, out, err = finish(proc)
        assert (status, err) == (0, ""), out
        results.append(json.loads(out))
    return results


def _consistent(venv: Path, names: set[str]) -> None:
    """Check that ``venv`` holds exactly ``names``, each with every file its RECORD lists."""
    tree(venv)  # waits for removed directories to be deleted
    site = site_packages(venv)
    rows = record_rows(site)
    assert {d.split("-", 1)[0] for d in rows} == names
    for dist_rows in rows.values():
        for path, _, _ in dist_rows:
            assert (site / path).exists(), path
    assert not [p.name for p in site.iterdir() if p.name.startswith(".burrow")]


def _holding(phases: list[str]) -> int:
    return sum(phase in HELD for phase in phases)


def test_two_syncs_of_one_venv_take_turns(
    burrow: Burrow, index: FakeIndex, watch: StatusWatch, tmp_path: Path
) -> None:
    venv = make_venv(tmp_path / "venv")
    first = requirements(tmp_path / "first.txt", "slow_a==1.0")
    second = requirements(tmp_path / "second.txt", "slow_a==1.0", "foo==1.0")
    sync = ("--json", "sync", "-p", venv, "-i", index.simple_url)
    waiting = f"waiting for the lock on {venv}"
    a = burrow.popen(*sync, first)
    with reaped(a):
        assert watch.until(lambda phases: phases == ["downloading"]), watch.history()
        b = burrow.popen(*sync, second)
        with reaped(b):
            # Seen in one answer: the first holds the environment, the second waits for it.
            assert watch.until(lambda phases: phases == ["downloading", waiting]), watch.history()
            # What `burrow daemon status --json` shows a person meanwhile.
            status = burrow.json("daemon", "status")
            shown = sorted(r["phase"] for r in status["requests"] if r["method"] == "sync")
            assert shown == ["downloading", waiting], status["requests"]
            a_result, b_result = _run_all(watch, [a, b])
    assert all(_holding(phases) <= 1 for _, phases in watch.samples), watch.history()
    assert [c["name"] for c in a_result["installed"]] == ["slow-a"]
    # The second read the environment after the first had changed it: slow_a was there.
    assert [c["name"] for c in b_result["installed"]] == ["foo"]
    assert (b_result["removed"], b_result["unchanged"]) == ([], 1)
    _consistent(venv, {"slow_a", "foo"})
    assert burrow.names(venv) == {"slow-a": "1.0", "foo": "1.0"}


def test_syncs_of_two_venvs_run_at_once(
    burrow: Burrow, index: FakeIndex, watch: StatusWatch, tmp_path: Path
) -> None:
    one = make_venv(tmp_path / "one")
    two = make_venv(tmp_path / "two")
    started = time.monotonic()
    procs = [
        burrow.popen(
            "--json",
            "sync",
            requirements(tmp_path / f"{venv.name}.txt", pin),
            "-p",
            venv,
            "-i",
            index.simple_url,
        )
        for venv, pin in ((one, "slow_a==1.0"), (two, "slow_b==1.0"))
    ]
    with reaped(*procs):
        assert watch.until(lambda phases: _holding(phases) == 2), watch.history()
        results = _run_all(watch, procs)
    span = time.monotonic() - started
    assert not [p for p in watch.phases() if p.startswith("waiting")], watch.history()
    # Each spent most of its time downloading; one after the other, the two together
    # would have taken at least the sum.
    downloads = [r["timings"]["prepare"] for r in results]
    assert span < sum(downloads), (span, downloads)
    _consistent(one, {"slow_a"})
    _consistent(two, {"slow_b"})


class _Flock:
    """An exclusive ``flock`` on ``<venv>/.lock``, held as another tool (uv) would hold it."""

    def __init__(self, venv: Path) -> None:
        self.fd: int | None = os.open(venv / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"pid {os.getpid()}".encode())

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> _Flock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def test_a_lock_held_by_another_process_is_waited_for(
    burrow: Burrow, index: FakeIndex, watch: StatusWatch, tmp_path: Path
) -> None:
    index.bandwidth = None
    venv = make_venv(tmp_path / "venv")
    reqs = requirements(tmp_path / "r.txt", "foo==1.0")
    waiting = f"waiting for the lock on {venv} (another process)"
    with _Flock(venv) as flock:
        proc = burrow.popen("--json", "sync", reqs, "-p", venv, "-i", index.simple_url)
        with reaped(proc):
            assert watch.until(lambda phases: phases == [waiting]), watch.history()
            watch.until(lambda _: False, timeout=0.3)  # a while later, still waiting
            assert watch.samples[-1][1] == [waiting]
            assert proc.poll() is None
            assert list(site_packages(venv).iterdir()) == []
            flock.release()
            (result,) = _run_all(watch, [proc])
    assert [c["name"] for c in result["installed"]] == ["foo"]
    _consistent(venv, {"foo"})


def test_a_lock_never_released_times_out(fresh: Burrow, index: FakeIndex, tmp_path: Path) -> None:
    index.bandwidth = None
    fresh.env.start_daemon(env={"BURROW_LOCK_TIMEOUT": "1"})
    venv = make_venv(tmp_path / "venv")
    reqs = requirements(tmp_path / "r.txt", "foo==1.0")
    lock = venv / ".lock"
    with _Flock(venv):
        before = tree(venv, skip=())
        stderr = fresh.fails("sync", reqs, "-p", venv, "-i", index.simple_url)
        assert f"timed out after 1s waiting for the lock on the environment {venv}" in stderr
        assert f"({lock})" in stderr
        assert f"held by pid {os.getpid()}" in stderr
        assert "BURROW_LOCK_TIMEOUT" in stderr
        # The same in-process, with the client's own timeout.
        done = fresh.run(
            "--json",
            "--no-daemon",
            "sync",
            reqs,
            "-p",
            venv,
            "-i",
            index.simple_url,
            env={"BURROW_LOCK_TIMEOUT": "1"},
        )
        assert done.returncode == 1, done.stdout
        error = json.loads(done.stderr)["error"]
        assert error["code"] == ErrorCode.LOCK_TIMEOUT
        assert error["data"]["path"] == str(lock)
        assert error["data"]["timeout"] == 1
        assert tree(venv, skip=()) == before
    # The daemon let go of the environment: once the lock is free, the sync goes through.
    fresh.ok("sync", reqs, "-p", venv, "-i", index.simple_url)
    _consistent(venv, {"foo"})
