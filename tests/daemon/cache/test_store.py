"""The cache root: its layout, atomic file writes, persisted directories and the root lock."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from burrowd.daemon.cache.layout import (
    CACHEDIR_TAG,
    Bucket,
    bucket_version_of,
    digest,
    url_digest,
)
from burrowd.daemon.cache.store import BackgroundWrites, Cache
from burrowd.daemon.errors import CacheError, LockTimeout
from burrowd.daemon.locks import FileLock


class TestLayout:
    def test_ensure_creates_tag_gitignore_and_tmp(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path / "deep" / "cache")
        cache.ensure()
        assert (cache.root / "CACHEDIR.TAG").read_text() == CACHEDIR_TAG
        assert CACHEDIR_TAG.startswith("Signature: 8a477f597d28d172789f06886806bc55\n")
        assert (cache.root / ".gitignore").read_text() == "*\n"
        assert cache.tmp.is_dir()
        assert cache.tmp == cache.root / ".tmp"

    def test_ensure_keeps_existing_files(self, tmp_path: Path) -> None:
        (tmp_path / ".gitignore").write_text("mine\n")
        Cache(tmp_path).ensure()
        assert (tmp_path / ".gitignore").read_text() == "mine\n"

    def test_ensure_again_recreates_a_removed_root(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path / "c")
        cache.ensure()
        (cache.root / "CACHEDIR.TAG").unlink()
        (cache.root / ".gitignore").unlink()
        os.rmdir(cache.tmp)
        os.rmdir(cache.root)
        cache.ensure()
        assert (cache.root / "CACHEDIR.TAG").is_file()
        assert cache.tmp.is_dir()

    def test_ensure_on_a_file_is_a_cache_error(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("")
        with pytest.raises(CacheError, match="cannot create the cache directory") as info:
            Cache(tmp_path / "file").ensure()
        assert info.value.path == tmp_path / "file"

    @pytest.mark.parametrize(
        ("bucket", "value", "stem"),
        [
            pytest.param(Bucket.SIMPLE, "simple-v0", "simple", id="simple"),
            pytest.param(Bucket.WHEELS, "wheels-v0", "wheels", id="wheels"),
            pytest.param(Bucket.BUILT_WHEELS, "built-wheels-v0", "built-wheels", id="built"),
            pytest.param(Bucket.ARCHIVE, "archive-v0", "archive", id="archive"),
            pytest.param(Bucket.GIT, "git-v0", "git", id="git"),
            pytest.param(Bucket.INTERPRETER, "interpreter-v0", "interpreter", id="interpreter"),
        ],
    )
    def test_bucket_values(self, tmp_path: Path, bucket: Bucket, value: str, stem: str) -> None:
        cache = Cache(tmp_path)
        assert bucket.value == value
        assert bucket.stem == stem
        assert cache.bucket(bucket) == tmp_path / value
        assert cache.path(bucket, "a", "b") == tmp_path / value / "a" / "b"
        assert bucket_version_of(value) == (stem, 0)

    def test_every_bucket_is_listed(self) -> None:
        assert len(Bucket) == 7

    @pytest.mark.parametrize(
        ("name", "parsed"),
        [
            pytest.param("wheels-v1", ("wheels", 1), id="other-version"),
            pytest.param("built-wheels-v12", ("built-wheels", 12), id="two-digits"),
            pytest.param(".tmp", None, id="tmp"),
            pytest.param("CACHEDIR.TAG", None, id="tag"),
            pytest.param("wheels", None, id="no-version"),
            pytest.param("wheels-vx", None, id="bad-version"),
        ],
    )
    def test_bucket_version_of(self, name: str, parsed: tuple[str, int] | None) -> None:
        assert bucket_version_of(name) == parsed

    def test_digest_is_short_and_stable(self) -> None:
        assert digest("https://pypi.org/simple/") == digest("https://pypi.org/simple/")
        assert len(digest("x")) == 16
        assert int(digest("x"), 16) >= 0
        assert digest("a") != digest("b")

    def test_url_digest_ignores_credentials_and_fragment(self) -> None:
        plain = url_digest("https://host:8443/simple/foo.whl")
        assert url_digest("https://user:secret@host:8443/simple/foo.whl#sha256=ab") == plain
        assert url_digest("https://host:8444/simple/foo.whl") != plain


class TestWriteFile:
    def test_writes_and_replaces(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        target = tmp_path / "a" / "b" / "entry"
        cache.write_file(target, b"one")
        cache.write_file(target, b"two", fsync=False)
        assert target.read_bytes() == b"two"
        assert os.listdir(cache.tmp) == []

    def test_a_concurrent_reader_never_sees_a_partial_file(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        target = tmp_path / "simple-v0" / "x" / "page.msgpack"
        versions = [bytes([n]) * (256 * 1024 + n) for n in range(1, 5)]
        cache.write_file(target, versions[0], fsync=False)
        stop = threading.Event()
        writes = 0

        def writer() -> None:
            nonlocal writes
            while not stop.is_set():
                cache.write_file(target, versions[writes % len(versions)], fsync=False)
                writes += 1

        seen: set[int] = set()
        reads = 0
        thread = threading.Thread(target=writer)
        thread.start()
        deadline = time.monotonic() + 20
        try:
            while (writes < 50 or reads < 300 or len(seen) < 2) and time.monotonic() < deadline:
                data = target.read_bytes()
                assert data in versions, f"partial read: {len(data)} bytes"
                seen.add(len(data))
                reads += 1
        finally:
            stop.set()
            thread.join()
        assert writes >= 50
        assert len(seen) > 1, "the reader never saw a new version"
        assert os.listdir(cache.tmp) == []

    def test_a_failed_write_leaves_no_temp_file(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        cache.ensure()
        (tmp_path / "blocker").mkdir()
        (tmp_path / "blocker" / "child").write_text("x")
        with pytest.raises(OSError):
            cache.write_file(tmp_path / "blocker", b"data")
        assert os.listdir(cache.tmp) == []

    def test_directories_removed_meanwhile_are_made_again(self, tmp_path: Path) -> None:
        # write_file creates directories only when a write fails for want of them.
        cache = Cache(tmp_path / "cache")
        target = cache.root / "simple-v0" / "x" / "page"
        cache.write_file(target, b"one", fsync=False)
        shutil.rmtree(cache.root)
        cache.write_file(target, b"two", fsync=False)
        assert target.read_bytes() == b"two"
        assert os.listdir(cache.tmp) == []

    @pytest.mark.parametrize(
        "content",
        [pytest.param(b"", id="empty"), pytest.param(b"\0" * 70000, id="large")],
    )
    def test_read_file(self, tmp_path: Path, content: bytes) -> None:
        cache = Cache(tmp_path)
        cache.write_file(tmp_path / "f", content)
        assert Cache.read_file(tmp_path / "f") == content
        assert Cache.read_file(tmp_path / "missing") is None
        assert Cache.read_file(tmp_path) is None  # a directory is unreadable, not a crash


class TestPersistDir:
    def test_moves_a_new_entry_into_place(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        tmp = cache.temp_dir(prefix="unpack-")
        assert tmp.parent == cache.tmp
        assert tmp.name.startswith("unpack-")
        (tmp / "file").write_text("new")
        target = cache.path(Bucket.ARCHIVE, "abc")
        assert cache.persist_dir(tmp, target) is True
        assert (target / "file").read_text() == "new"
        assert not tmp.exists()

    def test_existing_target_wins_and_the_temp_dir_goes(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        target = cache.path(Bucket.ARCHIVE, "abc")
        target.mkdir(parents=True)
        (target / "file").write_text("first")
        tmp = cache.temp_dir()
        (tmp / "file").write_text("second")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "more").write_text("x")
        assert cache.persist_dir(tmp, target) is False
        assert (target / "file").read_text() == "first"
        assert not (target / "sub").exists()
        assert not tmp.exists()
        assert os.listdir(cache.tmp) == []

    def test_unmovable_entry_is_a_cache_error(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        tmp = cache.temp_dir()
        target = tmp_path / "file-in-the-way" / "entry"
        target.parent.parent.mkdir(exist_ok=True)
        target.parent.write_text("")
        with pytest.raises(OSError):
            cache.persist_dir(tmp, target)

    def test_temp_file_is_inside_the_cache(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path / "c")
        fd, path = cache.temp_file(prefix="dl-", suffix=".whl")
        os.close(fd)
        assert path.parent == cache.tmp
        assert path.name.startswith("dl-")
        assert path.name.endswith(".whl")


class TestRootLock:
    async def test_operations_share_the_root_lock(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path, lock_timeout=0.3)
        async with cache.operation(), cache.operation():
            assert (tmp_path / ".lock").exists()

    async def test_clean_waits_for_operations_and_names_the_cache(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path, lock_timeout=0.2)
        async with cache.operation():
            with pytest.raises(LockTimeout) as info:
                async with cache.exclusive():
                    pass
        assert f"the lock on the cache ({tmp_path / '.lock'})" in str(info.value)
        async with cache.exclusive():
            pass

    async def test_an_exclusive_holder_blocks_operations_of_other_processes(
        self, tmp_path: Path
    ) -> None:
        cache = Cache(tmp_path, lock_timeout=0.2)
        cache.ensure()
        other = FileLock(tmp_path / ".lock", "the cache", holder=f"pid {os.getpid()}")
        assert other.try_acquire()
        try:
            with pytest.raises(LockTimeout, match=f"held by pid {os.getpid()}"):
                async with cache.operation():
                    pass
        finally:
            other.release()

    def test_entry_lock_sits_beside_the_entry(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        entry = cache.path(Bucket.WHEELS, "index", "d", "foo", "foo-1.0-py3-none-any.whl")
        lock = cache.entry_lock(entry, "the wheel foo")
        assert lock.path == entry.with_name("foo-1.0-py3-none-any.whl.lock")
        assert lock.resource == "the wheel foo"
        assert not lock.shared


class TestStaleTemps:
    def test_entries_of_gone_processes_are_stale(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path / "cache")
        mine = cache.temp_dir(prefix="unpack-")
        fd, mine_file = cache.temp_file(prefix="dl-", suffix=".whl")
        os.close(fd)
        assert str(os.getpid()) in mine.name
        # A process that ran and ended: its pid is free now.
        done = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        gone = cache.tmp / f"unpack-{done.stdout.strip()}~abc"
        gone.mkdir()
        untagged_old = cache.tmp / "unpack-xyz"
        untagged_old.mkdir()
        os.utime(untagged_old, (0, 0))
        untagged_new = cache.tmp / "dl-fresh.whl"
        untagged_new.write_bytes(b"")
        assert sorted(cache.stale_temps()) == sorted([gone, untagged_old])
        assert mine.is_dir()
        assert mine_file.is_file()

    def test_a_killed_process_not_yet_reaped_is_gone(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path / "cache")
        cache.ensure()
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            entry = cache.tmp / f"dl-{child.pid}~x.whl"
            entry.write_bytes(b"")
            assert cache.stale_temps() == []  # running
            child.kill()
            # A zombie until waited for: still answers kill(pid, 0), but is gone.
            deadline = time.monotonic() + 5
            while cache.stale_temps() != [entry] and time.monotonic() < deadline:
                time.sleep(0.01)
            assert cache.stale_temps() == [entry]
        finally:
            child.kill()
            child.wait()

    def test_nothing_is_claimed_while_an_operation_runs(self, tmp_path: Path) -> None:
        # Another process's operation (perhaps in a pid namespace this one cannot see)
        # holds the root lock shared: its temp entries may be live whatever their pid says.
        cache = Cache(tmp_path / "cache")
        cache.ensure()
        gone = cache.tmp / "unpack-999999999~x"  # no such pid
        gone.mkdir()
        other = cache.root_lock(shared=True)
        assert other.try_acquire()
        try:
            assert cache.claim_stale_temps() == []
        finally:
            other.release()
        assert cache.claim_stale_temps() == [gone]


class TestBackgroundWrites:
    async def test_writes_run_in_batches_and_a_failure_is_a_warning(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        cache = Cache(tmp_path)
        writes = BackgroundWrites(cache)
        threads: list[str] = []

        def write(name: str) -> Callable[[], None]:
            def run() -> None:
                threads.append(threading.current_thread().name)
                cache.write_file(tmp_path / "out" / name, name.encode(), fsync=False)

            return run

        def broken() -> None:
            raise OSError(28, "No space left on device")

        writes.put("the first", write("one"))
        writes.put("the broken one", broken)
        writes.put("the second", write("two"))
        await writes.drain()
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["one", "two"]
        # One hop for the three: none ran on the event loop's thread, both in one thread.
        assert len(set(threads)) == 1
        assert threads[0] != threading.current_thread().name
        assert "could not store the broken one in the cache" in caplog.text
        writes.put("the third", write("three"))
        await writes.drain()
        assert (tmp_path / "out" / "three").read_bytes() == b"three"
