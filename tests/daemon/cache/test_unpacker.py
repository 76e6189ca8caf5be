"""Worker processes that unpack large wheels: the same archive and errors as in a thread,
workers reused, replaced when they die, and gone when their daemon is."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import hashlib
import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from burrowd.daemon.cache import unpacker
from burrowd.daemon.cache.archive import read_manifest, unpack_wheel
from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.cache.unpacker import UnpackPool
from burrowd.daemon.config import Config, ConfigError, UnpackLimits
from burrowd.daemon.errors import CacheError, DiskFull, InvalidDistribution
from burrowd.daemon.index.client import PROCESS_UNPACK_MIN
from burrowd.daemon.rpc import RpcServer
from burrowd.daemon.services import Services
from tests.daemon.cache.harness import (
    Stack,
    archive_problems,
    random_members,
    tmp_debris,
    write_wheel,
)
from tests.e2e.helpers import process_gone, wait_until
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex


@pytest.fixture
def pool() -> Iterator[UnpackPool]:
    made = UnpackPool(2)
    yield made
    made.close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".burrow-archive"
    }


def _invalid_in_both(pool: UnpackPool, cache: Cache, wheel: Path) -> str:
    """Return the message ``wheel`` is refused with, the same in a worker and in a thread."""
    with pytest.raises(InvalidDistribution) as in_worker:
        pool.unpack(cache, wheel, filename=wheel.name, sha256=_sha256(wheel))
    with pytest.raises(InvalidDistribution) as in_thread:
        unpack_wheel(cache, wheel, filename=wheel.name, sha256=_sha256(wheel))
    assert in_worker.value.message == in_thread.value.message
    return in_worker.value.message


def _gone(pid: int) -> bool:
    """Wait up to 10 s for ``pid`` to end; return whether it did."""
    return wait_until(lambda: process_gone(pid), 10.0)


class TestJobs:
    def test_the_same_archive_as_in_a_thread(self, tmp_path: Path, pool: UnpackPool) -> None:
        wheel = write_wheel(tmp_path / "w", "big", "1.0", random_members(40, 5000))
        sha = _sha256(wheel)
        in_worker, in_thread = Cache(tmp_path / "a"), Cache(tmp_path / "b")
        archive = pool.unpack(in_worker, wheel, filename=wheel.name, sha256=sha)
        expected = unpack_wheel(in_thread, wheel, filename=wheel.name, sha256=sha)
        assert archive == in_worker.path(Bucket.ARCHIVE, sha)
        assert archive_problems(archive) == []
        assert _tree(archive) == _tree(expected)
        worker_manifest, thread_manifest = read_manifest(archive), read_manifest(expected)
        assert worker_manifest is not None
        assert thread_manifest is not None
        assert (worker_manifest.files, worker_manifest.size) == (
            thread_manifest.files,
            thread_manifest.size,
        )
        (pid,) = pool.pids()
        assert pid != os.getpid()
        assert tmp_debris(in_worker) == []

    def test_workers_are_reused(self, tmp_path: Path, pool: UnpackPool) -> None:
        cache = Cache(tmp_path / "cache")
        for version in ("1.0", "2.0", "3.0"):
            wheel = write_wheel(tmp_path / "w", "re", version, [("re/x.py", b"x = 1\n")])
            pool.unpack(cache, wheel, filename=wheel.name, sha256=_sha256(wheel))
        assert len(pool.pids()) == 1  # one job at a time: one worker was enough

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
    @pytest.mark.parametrize("users", [None, "1048576"], ids=["default", "the-users-own"])
    def test_workers_keep_freed_memory_for_the_next_member(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, users: str | None
    ) -> None:
        # The allocator settings go to the worker only, on top of the daemon's environment;
        # a value the user set is theirs.
        monkeypatch.setenv("BURROW_TEST_MARK", "kept")
        if users is None:
            monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
        else:
            monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", users)
        pool = UnpackPool(1)
        try:
            cache = Cache(tmp_path / "cache")
            wheel = write_wheel(tmp_path / "w", "env", "1.0", [("env/x.py", b"x = 1\n")])
            pool.unpack(cache, wheel, filename=wheel.name, sha256=_sha256(wheel))
            (pid,) = pool.pids()
            raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        finally:
            pool.close()
        environ = dict(item.split(b"=", 1) for item in raw if b"=" in item)
        assert environ[b"MALLOC_MMAP_THRESHOLD_"] == (users or str(32 << 20)).encode()
        assert environ[b"MALLOC_TRIM_THRESHOLD_"] == str(64 << 20).encode()
        assert environ[b"BURROW_TEST_MARK"] == b"kept"
        assert os.environ.get("MALLOC_MMAP_THRESHOLD_") == users

    def test_prestart_starts_what_is_wanted_up_to_the_size(
        self, tmp_path: Path, pool: UnpackPool
    ) -> None:
        pool.prestart(1)
        assert pool.started == 1
        pool.prestart(1)  # as many as wanted run already
        assert pool.started == 1
        pool.prestart(5)
        assert pool.started == pool.size == 2
        started = pool.pids()
        cache = Cache(tmp_path / "cache")
        wheel = write_wheel(tmp_path / "w", "pre", "1.0", [("pre/x.py", b"x = 1\n")])
        pool.unpack(cache, wheel, filename=wheel.name, sha256=_sha256(wheel))
        assert pool.pids() == started  # the job went to a started worker

    def test_prestart_after_close_starts_nothing(self) -> None:
        pool = UnpackPool(2)
        pool.close()
        pool.prestart(2)
        assert pool.started == 0

    def test_more_jobs_than_workers_wait_their_turn(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path / "cache")
        wheels = [
            write_wheel(tmp_path / "w", "turn", f"{i}.0", random_members(20, 2000, seed=i))
            for i in range(4)
        ]
        one = UnpackPool(1)
        try:
            with concurrent.futures.ThreadPoolExecutor(4) as threads:
                archives = list(
                    threads.map(
                        lambda w: one.unpack(cache, w, filename=w.name, sha256=_sha256(w)), wheels
                    )
                )
            assert [archive_problems(a) for a in archives] == [[]] * 4
            assert len(one.pids()) == 1
        finally:
            one.close()
        with pytest.raises(CacheError, match="the daemon is stopping"):
            one.unpack(cache, wheels[0], filename=wheels[0].name, sha256=_sha256(wheels[0]))

    def test_a_broken_wheel_fails_as_in_a_thread(self, tmp_path: Path, pool: UnpackPool) -> None:
        wheel = write_wheel(tmp_path / "w", "evil", "1.0", [("../escape.py", b"")])
        cache = Cache(tmp_path / "cache")
        assert "escapes the archive" in _invalid_in_both(pool, cache, wheel)
        assert tmp_debris(cache) == []
        first = pool.pids()
        good = write_wheel(tmp_path / "w", "good", "1.0", [("good/x.py", b"")])
        pool.unpack(cache, good, filename=good.name, sha256=_sha256(good))
        assert pool.pids() == first  # the worker survives a broken wheel

    def test_a_missing_wheel_is_unreadable(self, tmp_path: Path, pool: UnpackPool) -> None:
        with pytest.raises(InvalidDistribution, match="not a readable zip archive"):
            pool.unpack(
                Cache(tmp_path / "cache"),
                tmp_path / "gone-1.0-py3-none-any.whl",
                filename="gone-1.0-py3-none-any.whl",
                sha256="0" * 64,
            )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG")
class TestWorkersDying:
    def test_an_idle_worker_that_died_is_replaced(self, tmp_path: Path, pool: UnpackPool) -> None:
        cache = Cache(tmp_path / "cache")
        wheel = write_wheel(tmp_path / "w", "a", "1.0", [("a/x.py", b"")])
        pool.unpack(cache, wheel, filename=wheel.name, sha256=_sha256(wheel))
        (dead,) = pool.pids()
        os.kill(dead, signal.SIGKILL)
        assert _gone(dead)
        again = write_wheel(tmp_path / "w", "a", "2.0", [("a/x.py", b"")])
        assert pool.unpack(cache, again, filename=again.name, sha256=_sha256(again)).is_dir()
        assert dead not in pool.pids()

    def test_a_worker_that_dies_on_the_job_is_a_cache_error(
        self, tmp_path: Path, pool: UnpackPool, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cache = Cache(tmp_path / "cache")
        # A worker that takes the job's first bytes, leaves a temporary directory named as
        # the cache names its own, and dies.
        script = textwrap.dedent(
            f"""
            import os, sys
            size = int.from_bytes(sys.stdin.buffer.read(4), "big")
            sys.stdin.buffer.read(size)
            os.makedirs({str(cache.tmp)!r} + f"/unpack-{{os.getpid()}}~x/pkg")
            sys.exit(3)
            """
        )

        class Dying(unpacker._Worker):
            def __init__(self) -> None:
                self.process = subprocess.Popen(
                    [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE
                )

        monkeypatch.setattr(unpacker, "_Worker", Dying)
        wheel = write_wheel(tmp_path / "w", "d", "1.0", [("d/x.py", b"")])
        with pytest.raises(CacheError) as caught:
            pool.unpack(cache, wheel, filename=wheel.name, sha256=_sha256(wheel))
        assert caught.value.path == cache.path(Bucket.ARCHIVE, _sha256(wheel))
        assert f"the process unpacking {wheel.name} stopped" in caught.value.message
        assert "exited with status 3" in caught.value.message
        assert tmp_debris(cache) == []  # what it left is removed
        assert pool.pids() == []

    def test_workers_die_with_the_daemon(self, tmp_path: Path) -> None:
        wheel = write_wheel(tmp_path / "w", "k", "1.0", [("k/x.py", b"")])
        owner = textwrap.dedent(
            f"""
            import os, signal
            from pathlib import Path
            from burrowd.daemon.cache.store import Cache
            from burrowd.daemon.cache.unpacker import UnpackPool
            pool = UnpackPool(1)
            wheel = Path({str(wheel)!r})
            pool.unpack(Cache(Path({str(tmp_path / "cache")!r})), wheel, filename=wheel.name,
                        sha256={_sha256(wheel)!r})
            print(*pool.pids(), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", owner], check=False, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == -signal.SIGKILL, done.stderr
        (worker,) = map(int, done.stdout.split())
        assert _gone(worker)


class TestRobustness:
    def test_a_polite_stop_is_for_the_daemon_not_its_workers(
        self, tmp_path: Path, pool: UnpackPool
    ) -> None:
        # systemctl stop signals the whole unit, Ctrl-C the whole process group: the daemon
        # stops its workers itself (their stdin ends), so none dies in the middle of a job.
        cache = Cache(tmp_path / "cache")
        first = write_wheel(tmp_path / "w", "calm", "1.0", [("calm/x.py", b"")])
        pool.unpack(cache, first, filename=first.name, sha256=_sha256(first))
        (pid,) = pool.pids()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            os.kill(pid, sig)
        second = write_wheel(tmp_path / "w", "calm", "2.0", [("calm/x.py", b"")])
        archive = pool.unpack(cache, second, filename=second.name, sha256=_sha256(second))
        assert archive_problems(archive) == []
        assert pool.pids() == [pid]

    def test_a_worker_of_another_build_says_so(
        self, tmp_path: Path, pool: UnpackPool, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The code on disk changed since the daemon started (an upgrade, an edited checkout).
        monkeypatch.setattr(unpacker, "build_id", lambda: "0123456789abcdef")
        cache = Cache(tmp_path / "cache")
        wheel = write_wheel(tmp_path / "w", "new", "1.0", [("new/x.py", b"")])
        with pytest.raises(CacheError, match="burrowd changed on disk since the daemon started"):
            pool.unpack(cache, wheel, filename=wheel.name, sha256=_sha256(wheel))
        assert not cache.path(Bucket.ARCHIVE, _sha256(wheel)).exists()

    def test_workers_import_burrowd_as_the_daemon_does(self, tmp_path: Path) -> None:
        # A ``burrowd`` folder where the daemon was started (a clone in $HOME, under systemd)
        # must not stand in for the installed package in its workers.
        fake = tmp_path / "cwd" / "burrowd" / "daemon" / "cache"
        fake.mkdir(parents=True)
        for init in (fake.parent / "__init__.py", fake / "__init__.py"):
            init.write_text("")
        (fake / "unpacker.py").write_text("import sys\nsys.exit(7)\n")
        wheel = write_wheel(tmp_path / "w", "home", "1.0", [("home/x.py", b"")])
        owner = textwrap.dedent(
            f"""
            from pathlib import Path
            from burrowd.daemon.cache.store import Cache
            from burrowd.daemon.cache.unpacker import UnpackPool
            pool = UnpackPool(1)
            wheel = Path({str(wheel)!r})
            print(pool.unpack(Cache(Path({str(tmp_path / "cache")!r})), wheel,
                              filename=wheel.name, sha256={_sha256(wheel)!r}))
            pool.close()
            """
        )
        done = subprocess.run(
            [sys.executable, "-P", "-c", owner],
            cwd=tmp_path / "cwd",
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert archive_problems(Path(done.stdout.strip())) == []

    def test_a_job_that_cannot_be_sent_costs_no_worker(
        self, tmp_path: Path, pool: UnpackPool
    ) -> None:
        cache = Cache(tmp_path / "cache", unpack_limits=UnpackLimits(max_size=2**70))
        wheel = write_wheel(tmp_path / "w", "huge", "1.0", [("huge/x.py", b"")])
        with pytest.raises(CacheError, match=re.escape(f"cannot hand {wheel.name}")):
            pool.unpack(cache, wheel, filename=wheel.name, sha256=_sha256(wheel))
        assert pool.pids() == []

    def test_a_worker_left_by_an_unexpected_failure_is_not_reused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Its output may hold half a reply: it is stopped, and the pool (of one) goes on.
        one = UnpackPool(1)
        try:
            cache = Cache(tmp_path / "cache")
            real = unpacker._Worker.call

            def broken(self: unpacker._Worker, job: bytes) -> list[object]:
                raise RuntimeError("interrupted")

            monkeypatch.setattr(unpacker._Worker, "call", broken)
            wheel = write_wheel(tmp_path / "w", "again", "1.0", [("again/x.py", b"")])
            with pytest.raises(RuntimeError, match="interrupted"):
                one.unpack(cache, wheel, filename=wheel.name, sha256=_sha256(wheel))
            assert one.pids() == []
            monkeypatch.setattr(unpacker._Worker, "call", real)
            archive = one.unpack(cache, wheel, filename=wheel.name, sha256=_sha256(wheel))
            assert archive_problems(archive) == []
        finally:
            one.close()

    def test_a_cache_path_need_not_be_utf8(self, tmp_path: Path, pool: UnpackPool) -> None:
        cache = Cache(tmp_path / os.fsdecode(b"caf\xe9"))
        wheel = write_wheel(tmp_path / "w", "latin", "1.0", [("latin/x.py", b"")])
        archive = pool.unpack(cache, wheel, filename=wheel.name, sha256=_sha256(wheel))
        assert archive == cache.path(Bucket.ARCHIVE, _sha256(wheel))
        assert archive_problems(archive) == []

    def test_a_corrupt_record_is_an_invalid_wheel_in_both(
        self, tmp_path: Path, pool: UnpackPool
    ) -> None:
        wheel = write_wheel(
            tmp_path / "w",
            "crc",
            "1.0",
            [("crc/x.py", b"")],
            compression=zipfile.ZIP_STORED,
        )
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo("crc-1.0.dist-info/RECORD")
        data = bytearray(wheel.read_bytes())
        name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
        at = info.header_offset + 30 + name_len + extra_len
        data[at] ^= 0xFF  # its first byte: the CRC no longer matches
        wheel.write_bytes(bytes(data))
        message = _invalid_in_both(pool, Cache(tmp_path / "cache"), wheel)
        assert "crc-1.0.dist-info/RECORD" in message
        assert "corrupt" in message


class TestReplies:
    @pytest.mark.parametrize(
        "error",
        [
            pytest.param(InvalidDistribution("x.whl", "bad member"), id="invalid"),
            pytest.param(DiskFull(Path("/cache/archive-v0/ab"), errno.EDQUOT), id="full"),
            pytest.param(DiskFull(None), id="full-no-path"),
            pytest.param(CacheError(Path("/cache/tmp"), "cannot move"), id="cache"),
            pytest.param(OSError(errno.EACCES, "Permission denied", "/cache/x"), id="os"),
        ],
    )
    def test_errors_come_back_as_they_were(self, error: Exception) -> None:
        reply = unpacker._reply_for(error, b"/cache")
        with pytest.raises(type(error)) as back:
            unpacker._result(reply)
        assert str(back.value) == str(error)
        assert getattr(back.value, "errno", None) == getattr(error, "errno", None)

    def test_anything_else_is_a_cache_error(self) -> None:
        reply = unpacker._reply_for(RuntimeError("boom"), b"/cache")
        with pytest.raises(CacheError, match="unpacking failed: RuntimeError: boom"):
            unpacker._result(reply)


async def test_the_index_client_unpacks_large_wheels_in_workers(
    stack: Stack, fake_index: FakeIndex, tmp_path: Path
) -> None:
    from burrowd.daemon.index.client import Freshness  # noqa: PLC0415

    fake_index.add(
        DistSpec("large", "1.0", files={"large/blob.bin": os.urandom(PROCESS_UNPACK_MIN)})
    )
    fake_index.add(DistSpec("small", "1.0"))
    pool = UnpackPool(1)
    stack.index.unpacker = pool
    try:
        for name in ("small", "large"):
            files = await stack.index.project_files(
                stack.settings(fake_index.simple_url), name, Freshness()
            )
            ((file, location),) = files.files
            key = stack.index.wheel_key(file, location, name)
            pointer = await stack.index.fetch_wheel(file, key)
            assert archive_problems(stack.cache.path(Bucket.ARCHIVE, pointer.archive)) == []
            # Only the large wheel needed a worker.
            assert len(pool.pids()) == (name == "large")
    finally:
        pool.close()


async def test_a_large_wheels_worker_starts_while_it_downloads(
    stack: Stack, fake_index: FakeIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    from burrowd.daemon.index.client import Freshness  # noqa: PLC0415

    fake_index.add(
        DistSpec("large", "1.0", files={"large/blob.bin": os.urandom(PROCESS_UNPACK_MIN)})
    )
    pool = UnpackPool(2)
    stack.index.unpacker = pool
    files = await stack.index.project_files(
        stack.settings(fake_index.simple_url), "large", Freshness()
    )
    ((file, location),) = files.files
    assert file.size is not None
    assert file.size >= PROCESS_UNPACK_MIN
    key = stack.index.wheel_key(file, location, "large")
    # The download waits until the test lets it go: the worker must start before.
    gate = asyncio.Event()
    stream = stack.index._stream_to

    async def held(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        return await stream(*args, **kwargs)

    monkeypatch.setattr(stack.index, "_stream_to", held)
    fetch = asyncio.create_task(stack.index.fetch_wheel(file, key))
    try:
        for _ in range(1000):
            if pool.pids() or fetch.done():
                break
            await asyncio.sleep(0.01)
        assert not fetch.done()
        started = pool.pids()
        assert len(started) == 1  # one wheel under way: one worker, not the pool's two
        gate.set()
        pointer = await fetch
        assert archive_problems(stack.cache.path(Bucket.ARCHIVE, pointer.archive)) == []
        assert pool.pids() == started  # the unpack went to the worker started for it
    finally:
        gate.set()
        await asyncio.gather(fetch, return_exceptions=True)
        pool.close()


class TestSetting:
    def test_one_worker_per_cpu_by_default(self, tmp_path: Path) -> None:
        config = Config.from_env({"BURROW_CACHE_DIR": str(tmp_path)})
        assert config.unpack_processes == (os.cpu_count() or 1)

    def test_zero_unpacks_in_threads(self, tmp_path: Path) -> None:
        env = {"BURROW_CACHE_DIR": str(tmp_path), "BURROW_UNPACK_PROCESSES": "0"}
        services = Services(
            config=Config.from_env(env), rpc=RpcServer({}), socket_path=tmp_path / "s.sock"
        )
        assert services.unpacker is None
        assert services.index.unpacker is None

    def test_a_bad_value_is_refused(self, tmp_path: Path) -> None:
        env = {"BURROW_CACHE_DIR": str(tmp_path), "BURROW_UNPACK_PROCESSES": "two"}
        with pytest.raises(ConfigError, match=r"BURROW_UNPACK_PROCESSES='two'.*0 = unpack in"):
            Config.from_env(env)
