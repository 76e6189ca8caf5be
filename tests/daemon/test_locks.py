"""``flock`` locks: shared and exclusive modes, timeouts that name the resource, two processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from burrowd.daemon.errors import LockTimeout
from burrowd.daemon.locks import FileLock, exclusive, exclusive_blocking, shared
from burrowd.protocol.errors import ErrorCode

#: Run in another process: take the lock named on the command line, say so, hold it until
#: stdin closes.
HOLDER = """\
import sys
from pathlib import Path
from burrowd.daemon.locks import FileLock
lock = FileLock(Path(sys.argv[1]), "held elsewhere", shared=sys.argv[2] == "shared",
                holder=sys.argv[3])
assert lock.try_acquire()
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "locks" / "cache.lock"


class OtherProcess:
    """A process that holds a lock on ``path`` until :meth:`release`."""

    def __init__(self, path: Path, mode: str, holder: str = "") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path), mode, holder],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "locked\n"

    def release(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(10) == 0
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def other_process(lock_path: Path) -> Iterator[type[OtherProcess]]:
    started: list[OtherProcess] = []

    class Tracked(OtherProcess):
        def __init__(self, path: Path, mode: str, holder: str = "") -> None:
            super().__init__(path, mode, holder)
            started.append(self)

    yield Tracked
    for other in started:
        if other.proc.poll() is None:
            other.proc.kill()
            other.proc.wait()
        for stream in (other.proc.stdin, other.proc.stdout):
            if stream is not None:
                stream.close()


class TestFileLockInOneProcess:
    def test_shared_with_shared(self, lock_path: Path) -> None:
        a = FileLock(lock_path, "the cache", shared=True)
        b = FileLock(lock_path, "the cache", shared=True)
        assert a.try_acquire()
        assert b.try_acquire()
        assert a.locked
        assert b.locked
        a.release()
        b.release()

    @pytest.mark.parametrize(
        ("first_shared", "second_shared"),
        [
            pytest.param(True, False, id="shared-then-exclusive"),
            pytest.param(False, True, id="exclusive-then-shared"),
            pytest.param(False, False, id="exclusive-then-exclusive"),
        ],
    )
    def test_exclusive_excludes(
        self, lock_path: Path, first_shared: bool, second_shared: bool
    ) -> None:
        first = FileLock(lock_path, "the cache", shared=first_shared)
        second = FileLock(lock_path, "the cache", shared=second_shared)
        assert first.try_acquire()
        assert not second.try_acquire()
        assert not second.locked
        first.release()
        assert second.try_acquire()
        second.release()

    async def test_timeout_names_resource_and_path(self, lock_path: Path) -> None:
        holder = FileLock(lock_path, "the cache", holder=f"pid {os.getpid()}")
        assert holder.try_acquire()
        waiter = FileLock(lock_path, "the cache root", shared=True, timeout=0.1)
        started = time.monotonic()
        with pytest.raises(LockTimeout) as caught:
            await waiter.acquire()
        assert time.monotonic() - started >= 0.1
        error = caught.value
        assert isinstance(error, TimeoutError)
        assert error.code == ErrorCode.LOCK_TIMEOUT
        assert (error.resource, error.path, error.timeout) == ("the cache root", lock_path, 0.1)
        assert "the cache root" in error.message
        assert str(lock_path) in error.message
        assert f"held by pid {os.getpid()}" in error.message
        assert error.data["holder"] == f"pid {os.getpid()}"
        assert not waiter.locked
        holder.release()

    def test_a_released_or_dead_holder_is_not_named(self, lock_path: Path) -> None:
        holder = FileLock(lock_path, "the cache", holder=f"pid {os.getpid()}")
        assert holder.try_acquire()
        holder.release()
        assert lock_path.read_text() == ""  # cleared before unlocking
        # A holder killed with the lock held leaves its pid behind: dead, so not named.
        child = subprocess.Popen(["true"])
        child.wait()
        lock_path.write_text(f"pid {child.pid}")
        assert FileLock(lock_path, "the cache").read_holder() == ""
        lock_path.write_text(f"pid {os.getpid()}")
        assert FileLock(lock_path, "the cache").read_holder() == f"pid {os.getpid()}"

    def test_blocking_timeout(self, lock_path: Path) -> None:
        holder = FileLock(lock_path, "the cache")
        assert holder.try_acquire()
        waiter = FileLock(lock_path, "the environment", timeout=0.05)
        with pytest.raises(LockTimeout, match="the environment"):
            waiter.acquire_blocking()
        holder.release()
        with waiter:
            assert waiter.locked
        assert not waiter.locked

    async def test_waiter_gets_the_lock_once_released(self, lock_path: Path) -> None:
        holder = FileLock(lock_path, "the cache")
        assert holder.try_acquire()
        asyncio.get_running_loop().call_later(0.05, holder.release)
        async with FileLock(lock_path, "the cache", timeout=5) as waiter:
            assert waiter.locked
            assert not holder.locked

    async def test_waiting_is_cancellable(self, lock_path: Path) -> None:
        holder = FileLock(lock_path, "the cache")
        assert holder.try_acquire()
        waiter = FileLock(lock_path, "the cache")
        task = asyncio.ensure_future(waiter.acquire())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not waiter.locked
        holder.release()

    def test_holder_is_written_for_exclusive_only(self, lock_path: Path) -> None:
        with FileLock(lock_path, "x", shared=True, holder="pid 1") as lock:
            assert lock.read_holder() == ""
        with FileLock(lock_path, "x", holder="pid 2") as lock:
            assert lock.read_holder() == "pid 2"
        assert lock_path.stat().st_mode & 0o777 == 0o600

    def test_acquiring_twice_and_releasing_twice(self, lock_path: Path) -> None:
        lock = FileLock(lock_path, "x")
        assert lock.try_acquire()
        with pytest.raises(RuntimeError, match="already held"):
            lock.try_acquire()
        lock.release()
        lock.release()
        assert not lock.locked

    async def test_context_helpers(self, lock_path: Path) -> None:
        async with (
            shared(lock_path, "the cache", timeout=1) as a,
            shared(lock_path, "the cache", timeout=1) as b,
        ):
            assert a.shared
            assert b.shared
            with pytest.raises(LockTimeout):
                async with exclusive(lock_path, "the cache", timeout=0.02):
                    pass
        async with exclusive(lock_path, "the cache", timeout=1) as c:
            assert not c.shared
            with (
                pytest.raises(LockTimeout),
                exclusive_blocking(lock_path, "the cache", timeout=0.02),
            ):
                pass


class TestFileLockBetweenProcesses:
    def test_shared_with_shared(self, lock_path: Path, other_process: type[OtherProcess]) -> None:
        lock_path.parent.mkdir()
        other = other_process(lock_path, "shared")
        with FileLock(lock_path, "the cache", shared=True, timeout=0.5) as lock:
            assert lock.locked
        other.release()

    async def test_shared_excludes_exclusive(
        self, lock_path: Path, other_process: type[OtherProcess]
    ) -> None:
        lock_path.parent.mkdir()
        other = other_process(lock_path, "shared")
        with pytest.raises(LockTimeout, match="the cache root"):
            await FileLock(lock_path, "the cache root", timeout=0.1).acquire()
        other.release()
        async with FileLock(lock_path, "the cache root", timeout=0.5) as lock:
            assert lock.locked

    async def test_exclusive_excludes_shared_and_names_holder(
        self, lock_path: Path, other_process: type[OtherProcess]
    ) -> None:
        lock_path.parent.mkdir()
        other = other_process(lock_path, "exclusive", "pid 777 (cache.clean)")
        with pytest.raises(LockTimeout) as caught:
            await FileLock(lock_path, "the cache", shared=True, timeout=0.1).acquire()
        assert caught.value.path == lock_path
        assert "held by pid 777 (cache.clean)" in caught.value.message
        other.release()
        lock = FileLock(lock_path, "the cache", shared=True)
        assert lock.try_acquire()
        lock.release()
