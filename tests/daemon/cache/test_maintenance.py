"""``cache.stats``, ``cache.clean`` and ``cache.prune`` on a cache filled by real requests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.maintenance import bucket_stats, clean, prune
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.cache.wheels import WheelKey, pointer_path, read_pointer
from burrowd.daemon.index.client import Freshness
from tests.daemon.cache.harness import Stack, archive_problems, cache_files, tmp_debris
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex, write_file_index
from tests.support.plugin import DistFactory


async def _fill(stack: Stack, fake_index: FakeIndex) -> None:
    fake_index.add_many([DistSpec("foo", "1.0"), DistSpec("foo", "1.1"), DistSpec("bar", "2.0")])
    await stack.prefetch(
        ["foo==1.0", "foo==1.1", "bar==2.0"], stack.settings(fake_index.simple_url)
    )


def _key(fake_index: FakeIndex, name: str, filename: str) -> WheelKey:
    return WheelKey.from_index(fake_index.simple_url + "/", name, filename)


class TestStats:
    async def test_counts_entries_per_bucket(self, stack: Stack, fake_index: FakeIndex) -> None:
        await _fill(stack, fake_index)
        await stack.interpreters.query(Path(stack.info.executable))
        rows = {name: (entries, size) for name, entries, size in bucket_stats(stack.cache)}
        assert rows["simple-v0"][0] == 2
        assert rows["wheels-v0"][0] == 3
        assert rows["archive-v0"][0] == 3
        assert rows["interpreter-v0"][0] == 1
        assert rows["built-wheels-v0"] == (0, 0)
        assert rows[".tmp"] == (0, 0)
        assert all(rows[b][1] > 0 for b in ("simple-v0", "wheels-v0", "archive-v0"))
        assert list(rows) == [b.value for b in Bucket] + [".tmp"]

    def test_empty_cache(self, tmp_path: Path) -> None:
        rows = bucket_stats(Cache(tmp_path / "none"))
        assert all(entries == 0 and size == 0 for _, entries, size in rows)


class TestClean:
    async def test_one_package_only(self, stack: Stack, fake_index: FakeIndex) -> None:
        await _fill(stack, fake_index)
        bar = read_pointer(stack.cache, _key(fake_index, "bar", "bar-2.0-py3-none-any.whl"))
        assert bar is not None
        report = clean(stack.cache, ["FOO"])
        assert report.entries >= 5  # a page, two pointers, two archives
        assert report.size > 0
        assert [Path(p).name for p in cache_files(stack.cache, Bucket.SIMPLE)] == ["bar.msgpack"]
        assert all("foo" not in p for p in cache_files(stack.cache, Bucket.WHEELS, locks=True))
        assert sorted(os.listdir(stack.cache.bucket(Bucket.ARCHIVE))) == [bar.archive]
        assert read_pointer(stack.cache, _key(fake_index, "bar", "bar-2.0-py3-none-any.whl"))
        assert archive_problems(stack.cache.path(Bucket.ARCHIVE, bar.archive)) == []

    async def test_one_package_removes_its_metadata_too(
        self, stack: Stack, fake_index: FakeIndex
    ) -> None:
        fake_index.add(DistSpec("foo", "1.0"))
        settings = stack.settings(fake_index.simple_url)
        files = await stack.index.project_files(settings, "foo", Freshness())
        file, location = files.files[0]
        await stack.index.metadata(file, location, "foo", "1.0")  # no wheel download (PEP 658)
        await stack.index.drain()  # the parsed metadata is stored in the background
        assert any(p.endswith(".whl.meta") for p in cache_files(stack.cache, Bucket.WHEELS))
        clean(stack.cache, ["foo"])
        assert cache_files(stack.cache, Bucket.WHEELS) == []
        assert cache_files(stack.cache, Bucket.SIMPLE) == []

    async def test_everything_keeps_the_tag_and_the_cache_stays_usable(
        self, stack: Stack, fake_index: FakeIndex, tmp_path: Path
    ) -> None:
        await _fill(stack, fake_index)
        report = clean(stack.cache, [])
        assert report.entries > 0
        left = set(os.listdir(stack.cache.root)) - {".lock"}
        assert left == {".gitignore", "CACHEDIR.TAG"}
        # The same Cache object (as in a running daemon) unpacks again, from a file:// index
        # (no page is written to disk first, so nothing else recreates the temp directory).
        simple = write_file_index(fake_index, tmp_path / "mirror")
        stack.index.forget()
        wheels = await stack.prefetch(["foo==1.0"], stack.settings(simple))
        assert [w.cached for w in wheels] == [False]
        assert archive_problems(Path(wheels[0].archive)) == []

    def test_a_missing_cache_is_nothing_to_clean(self, tmp_path: Path) -> None:
        report = clean(Cache(tmp_path / "none"), ["foo"])
        assert (report.entries, report.size) == (0, 0)


class TestPrune:
    async def test_removes_debris_and_keeps_entries(
        self, stack: Stack, fake_index: FakeIndex, dist_factory: DistFactory
    ) -> None:
        await _fill(stack, fake_index)
        cache = stack.cache
        good = {
            name: read_pointer(cache, _key(fake_index, name.split("-")[0], name))
            for name in ("foo-1.0-py3-none-any.whl", "bar-2.0-py3-none-any.whl")
        }
        # Debris of crashes and of other tools and versions:
        (cache.tmp / "unpack-abc" / "foo").mkdir(parents=True)
        (cache.tmp / "unpack-abc" / "foo" / "x.py").write_text("half")
        (cache.tmp / "dl-xyz.whl").write_bytes(b"PK partial")
        # A newer burrowd sharing the cache owns archive-v1: prune leaves it alone.
        (cache.root / "archive-v1" / "newer").mkdir(parents=True)
        (cache.root / "notes").mkdir()  # not a bucket: left alone
        orphan = cache.path(Bucket.ARCHIVE, "f" * 64)
        orphan.mkdir()
        (orphan / "file").write_text("nobody points here")
        garbage = pointer_path(cache, _key(fake_index, "baz", "baz-1.0-py3-none-any.whl"))
        garbage.parent.mkdir(parents=True)
        garbage.write_bytes(b"\x00garbage")
        zipped = pointer_path(cache, _key(fake_index, "qux", "qux-1.0-py3-none-any.whl"))
        zipped.parent.mkdir(parents=True)
        shutil.copyfile(dist_factory.wheel("qux", "1.0"), zipped)
        stale_lock = zipped.with_name("gone-1.0-py3-none-any.whl.lock")
        stale_lock.write_text("")
        foo11 = read_pointer(cache, _key(fake_index, "foo", "foo-1.1-py3-none-any.whl"))
        assert foo11 is not None
        shutil.rmtree(cache.path(Bucket.ARCHIVE, foo11.archive))  # its pointer is now broken

        report = prune(cache)

        assert report.removed == {
            "temporary": 2,
            "unreferenced archives": 1,
            "broken pointers": 3,
        }
        assert report.size > 0
        assert tmp_debris(cache) == []
        assert (cache.root / "archive-v1" / "newer").is_dir()
        assert (cache.root / "notes").is_dir()
        assert not orphan.exists()
        assert not garbage.exists()
        assert not garbage.parent.exists()  # empty directories go too
        assert not zipped.exists()
        assert not stale_lock.exists()
        for name, pointer in good.items():
            assert pointer is not None
            assert read_pointer(cache, _key(fake_index, name.split("-")[0], name)) == pointer
            assert archive_problems(cache.path(Bucket.ARCHIVE, pointer.archive)) == []
        assert prune(cache).removed == {}

    async def test_keeps_parsed_metadata(self, stack: Stack, fake_index: FakeIndex) -> None:
        fake_index.add(DistSpec("foo", "1.0"))
        settings = stack.settings(fake_index.simple_url)
        files = await stack.index.project_files(settings, "foo", Freshness())
        file, location = files.files[0]
        await stack.index.metadata(file, location, "foo", "1.0")
        await stack.index.drain()  # the parsed metadata is stored in the background
        before = cache_files(stack.cache, Bucket.WHEELS)
        assert prune(stack.cache).removed == {}
        assert cache_files(stack.cache, Bucket.WHEELS) == before
