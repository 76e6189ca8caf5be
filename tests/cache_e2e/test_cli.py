"""``burrow prefetch`` and ``burrow cache ...``: the real CLI, a real daemon, a fake index."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.cache.wheels import WheelKey, pointer_path, read_pointer
from tests.cache_e2e.support import snapshot
from tests.daemon.cache.harness import archive_problems, cache_files, tmp_debris
from tests.e2e.helpers import BurrowEnv, DaemonProcess
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex
from tests.support.plugin import DistFactory


def _key(index: FakeIndex, name: str, filename: str) -> WheelKey:
    return WheelKey.from_index(index.simple_url + "/", name, filename)


def _ok(env: BurrowEnv, *args: str) -> str:
    done = env.cli(*args)
    assert done.returncode == 0, (done.stdout, done.stderr, env.log_text()[-2000:])
    return done.stdout


def _failed(env: BurrowEnv, *args: str) -> str:
    done = env.cli(*args)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stderr


@pytest.fixture
def index(fake_index: FakeIndex) -> FakeIndex:
    fake_index.add_many([DistSpec("foo", "1.0"), DistSpec("bar", "2.0")])
    fake_index.add(DistSpec("foo", "1.1"), yanked="broken build")
    return fake_index


class TestPrefetch:
    """One daemon serves the module: every test has its own index, so its own cache keys."""

    def test_downloads_and_unpacks(self, shared_env: BurrowEnv, index: FakeIndex) -> None:
        out = _ok(shared_env, "prefetch", "foo==1.0", "bar==2.0", "-i", index.simple_url)
        assert "2 wheels for " in out
        assert "2 fetched" in out
        assert "0 already cached" in out
        cache = Cache(shared_env.cache)
        for name, filename in (
            ("foo", "foo-1.0-py3-none-any.whl"),
            ("bar", "bar-2.0-py3-none-any.whl"),
        ):
            pointer = read_pointer(cache, _key(index, name, filename))
            assert pointer is not None
            assert archive_problems(cache.path(Bucket.ARCHIVE, pointer.archive)) == []
        result = shared_env.cli_json("prefetch", "foo==1.0", "bar==2.0", "-i", index.simple_url)
        assert [w["cached"] for w in result["wheels"]] == [True, True]
        assert result["downloaded"] == 0
        assert result["target"].startswith(("CPython", "PyPy"))
        assert index.hits["/files/foo-1.0-py3-none-any.whl"] == 1
        assert tmp_debris(cache) == []

    def test_requirements_file_with_hashes(
        self, shared_env: BurrowEnv, index: FakeIndex, tmp_path: Path
    ) -> None:
        foo = index.files("foo")[0]
        bar = index.files("bar")[0]
        pins = tmp_path / "pins.txt"
        pins.write_text(
            f"--index-url {index.simple_url}\n"
            f"foo==1.0 \\\n    --hash=sha256:{'0' * 64} \\\n    --hash=sha256:{foo.sha256}\n"
            f"bar==2.0 --hash=sha256:{bar.sha256}  # pinned\n"
        )
        result = shared_env.cli_json("prefetch", "-r", str(pins))
        assert sorted(w["filename"] for w in result["wheels"]) == [
            "bar-2.0-py3-none-any.whl",
            "foo-1.0-py3-none-any.whl",
        ]
        pins.write_text(f"--index-url {index.simple_url}\nfoo==1.0 --hash=sha256:{'a' * 64}\n")
        stderr = _failed(shared_env, "prefetch", "-r", str(pins))
        assert "a" * 64 in stderr
        assert foo.sha256 in stderr

    def test_yanked_pin_is_prefetched_with_a_warning(
        self, shared_env: BurrowEnv, index: FakeIndex
    ) -> None:
        done = shared_env.cli("prefetch", "foo==1.1", "-i", index.simple_url)
        assert done.returncode == 0, done.stderr
        assert "warning: foo==1.1 is yanked (broken build); prefetched anyway" in done.stderr
        result = shared_env.cli_json("prefetch", "foo==1.1", "-i", index.simple_url)
        assert result["wheels"][0]["yanked"] == "broken build"

    def test_missing_version_names_the_versions_available(
        self, shared_env: BurrowEnv, index: FakeIndex
    ) -> None:
        stderr = _failed(shared_env, "prefetch", "foo==3.0", "-i", index.simple_url)
        assert "foo==3.0" in stderr
        assert "newest: 1.1, 1.0" in stderr
        assert index.simple_url in stderr

    def test_hash_mismatch_leaves_the_cache_unchanged(
        self, shared_env: BurrowEnv, index: FakeIndex
    ) -> None:
        _ok(shared_env, "prefetch", "bar==2.0", "-i", index.simple_url)
        cache = Cache(shared_env.cache)
        before = snapshot(cache, Bucket.ARCHIVE, Bucket.WHEELS)
        foo = index.files("foo")[0]
        bad = index.served_bytes(foo.filename) + b"\0"
        index.corrupt(foo.filename, bad)
        stderr = _failed(shared_env, "prefetch", "foo==1.0", "-i", index.simple_url)
        assert foo.sha256 in stderr
        assert hashlib.sha256(bad).hexdigest() in stderr
        assert snapshot(cache, Bucket.ARCHIVE, Bucket.WHEELS) == before
        assert tmp_debris(cache) == []
        done = shared_env.cli("--json", "prefetch", "foo==1.0", "-i", index.simple_url)
        error = json.loads(done.stderr)["error"]
        assert error["data"]["expected"] == [foo.sha256]
        assert error["data"]["actual"] == hashlib.sha256(bad).hexdigest()

    def test_target_options(self, shared_env: BurrowEnv, index: FakeIndex) -> None:
        index.add(DistSpec("native", "1.0", tag="cp37-cp37m-manylinux2014_x86_64"))
        index.add(DistSpec("native", "1.0", tag="cp312-cp312-win_amd64"))
        result = shared_env.cli_json(
            "prefetch",
            "native==1.0",
            "-i",
            index.simple_url,
            "--python-version",
            "3.7",
            "--python-platform",
            "linux",
        )
        assert result["target"].endswith("3.7.0 on linux x86_64 (glibc 2.17)")
        assert result["wheels"][0]["filename"] == "native-1.0-cp37-cp37m-manylinux2014_x86_64.whl"
        windows = ["--python-version", "3.12.1", "--python-platform", "x86_64-pc-windows-msvc"]
        result = shared_env.cli_json("prefetch", "native==1.0", "-i", index.simple_url, *windows)
        assert result["wheels"][0]["filename"] == "native-1.0-cp312-cp312-win_amd64.whl"
        stderr = _failed(shared_env, "prefetch", "native==1.0", "--python-version", "three")
        assert "--python-version three" in stderr
        stderr = _failed(shared_env, "prefetch", "native==1.0", "--python-platform", "pdp11")
        assert "unknown platform" in stderr

    def test_no_daemon_leaves_no_daemon_running(self, env: BurrowEnv, index: FakeIndex) -> None:
        out = _ok(env, "--no-daemon", "prefetch", "foo==1.0", "-i", index.simple_url)
        assert "1 fetched" in out
        assert env.pids() == []
        assert not env.socket.exists()
        pointer = read_pointer(Cache(env.cache), _key(index, "foo", "foo-1.0-py3-none-any.whl"))
        assert pointer is not None
        assert _ok(env, "--no-daemon", "cache", "dir").strip() == str(env.cache)
        assert env.pids() == []


class TestFreshness:
    def test_offline(self, env: BurrowEnv, daemon: DaemonProcess, index: FakeIndex) -> None:
        stderr = _failed(env, "prefetch", "foo==1.0", "-i", index.simple_url, "--offline")
        assert "--offline forbids the network" in stderr
        assert not index.hits
        _ok(env, "prefetch", "foo==1.0", "-i", index.simple_url)
        index.reset_hits()
        daemon.stop()  # the client starts a new one: nothing in memory, the page is on disk
        out = _ok(env, "prefetch", "foo==1.0", "-i", index.simple_url, "--offline")
        assert "1 already cached" in out
        stderr = _failed(env, "prefetch", "bar==2.0", "-i", index.simple_url, "--offline")
        assert "bar" in stderr
        stderr = _failed(env, "prefetch", "foo==1.1", "-i", index.simple_url, "--offline")
        assert "foo-1.1-py3-none-any.whl" in stderr
        assert not index.hits

    def test_refresh_revalidates(
        self, env: BurrowEnv, daemon: DaemonProcess, index: FakeIndex
    ) -> None:
        _ok(env, "prefetch", "foo==1.0", "bar==2.0", "-i", index.simple_url)
        _ok(env, "prefetch", "foo==1.0", "bar==2.0", "-i", index.simple_url)
        assert index.hits["/simple/foo/"] == 1
        _ok(env, "prefetch", "foo==1.0", "bar==2.0", "-i", index.simple_url, "--refresh")
        pages = [r for r in index.requests if r.path.startswith("/simple/")]
        assert sorted((r.path, r.status) for r in pages[2:]) == [
            ("/simple/bar/", 304),
            ("/simple/foo/", 304),
        ]
        assert all("If-None-Match" in r.headers for r in pages[2:])
        assert index.hits["/files/foo-1.0-py3-none-any.whl"] == 1


class TestCacheCommands:
    def test_dir_and_stats(self, env: BurrowEnv, daemon: DaemonProcess, index: FakeIndex) -> None:
        assert _ok(env, "cache", "dir").strip() == str(env.cache)
        assert env.cli_json("cache", "dir") == {"path": str(env.cache)}
        assert (env.cache / "CACHEDIR.TAG").is_file()
        _ok(env, "prefetch", "foo==1.0", "foo==1.1", "bar==2.0", "-i", index.simple_url)
        out = _ok(env, "cache", "stats")
        assert out.splitlines()[0] == str(env.cache)
        lines = {line.split()[0]: line.split() for line in out.splitlines()[1:] if line.strip()}
        assert lines["simple-v0"][1] == "2"
        assert lines["wheels-v0"][1] == "3"
        assert lines["archive-v0"][1] == "3"
        assert "total" in lines
        stats = env.cli_json("cache", "stats")
        buckets = {b["bucket"]: b for b in stats["buckets"]}
        assert buckets["archive-v0"]["entries"] == 3
        assert buckets["wheels-v0"]["entries"] == 3
        assert buckets["interpreter-v0"]["entries"] == 1
        assert stats["size"] == sum(b["size"] for b in stats["buckets"])
        assert stats["memory_pages"] == 2

    def test_clean_one_package(
        self, env: BurrowEnv, daemon: DaemonProcess, index: FakeIndex
    ) -> None:
        _ok(env, "prefetch", "foo==1.0", "foo==1.1", "bar==2.0", "-i", index.simple_url)
        cache = Cache(env.cache)
        bar = read_pointer(cache, _key(index, "bar", "bar-2.0-py3-none-any.whl"))
        assert bar is not None
        out = _ok(env, "cache", "clean", "Foo")
        assert "for Foo" in out
        assert [Path(p).name for p in cache_files(cache, Bucket.SIMPLE)] == ["bar.msgpack"]
        assert all("foo" not in p for p in cache_files(cache, Bucket.WHEELS, locks=True))
        assert os.listdir(cache.bucket(Bucket.ARCHIVE)) == [bar.archive]
        assert archive_problems(cache.path(Bucket.ARCHIVE, bar.archive)) == []
        assert read_pointer(cache, _key(index, "bar", "bar-2.0-py3-none-any.whl")) == bar
        # The daemon forgot its in-memory page too: foo is fetched again.
        result = env.cli_json("prefetch", "foo==1.0", "bar==2.0", "-i", index.simple_url)
        assert [w["cached"] for w in result["wheels"]] == [False, True]
        assert index.hits["/simple/foo/"] == 2

    def test_clean_everything(
        self,
        env: BurrowEnv,
        daemon: DaemonProcess,
        index: FakeIndex,
        dist_factory: DistFactory,
    ) -> None:
        local = dist_factory.wheel("local", "1.0")
        _ok(env, "prefetch", "foo==1.0", "-i", index.simple_url)
        _ok(env, "prefetch", "local==1.0", "--no-index", "-f", str(local.parent))
        result = env.cli_json("cache", "clean")
        assert result["entries"] > 0
        assert result["packages"] == []
        assert set(os.listdir(env.cache)) == {"CACHEDIR.TAG", ".gitignore", ".lock"}
        # The same daemon keeps working: local wheels unpack, index pages are fetched again.
        _ok(env, "prefetch", "local==1.0", "--no-index", "-f", str(local.parent))
        _ok(env, "prefetch", "foo==1.0", "-i", index.simple_url)
        assert index.hits["/simple/foo/"] == 2

    def test_prune(
        self,
        env: BurrowEnv,
        daemon: DaemonProcess,
        index: FakeIndex,
        dist_factory: DistFactory,
    ) -> None:
        _ok(env, "prefetch", "foo==1.0", "bar==2.0", "-i", index.simple_url)
        cache = Cache(env.cache)
        (cache.tmp / "unpack-x1" / "foo").mkdir(parents=True)
        (cache.tmp / "dl-x2.whl").write_bytes(b"partial")
        (cache.path(Bucket.ARCHIVE, "e" * 64)).mkdir()
        zipped = pointer_path(cache, _key(index, "baz", "baz-1.0-py3-none-any.whl"))
        zipped.parent.mkdir(parents=True)
        shutil.copyfile(dist_factory.wheel("baz", "1.0"), zipped)
        (env.cache / "wheels-v7").mkdir()
        out = _ok(env, "cache", "prune")
        assert out.startswith("removed ")
        assert "2 temporary" in out
        assert tmp_debris(cache) == []
        assert not zipped.exists()
        assert (env.cache / "wheels-v7").is_dir()  # a newer burrowd's bucket is kept
        assert len(os.listdir(cache.bucket(Bucket.ARCHIVE))) == 2
        result = env.cli_json("cache", "prune")
        assert result["removed"] == {}
        assert "nothing to prune" in _ok(env, "cache", "prune")
        again = env.cli_json("prefetch", "foo==1.0", "bar==2.0", "-i", index.simple_url)
        assert [w["cached"] for w in again["wheels"]] == [True, True]
