"""Core metadata: PEP 658 files, HTTP range requests, and the whole wheel as a last resort."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import msgspec
import pytest

from burrowd.daemon.cache.wheels import read_pointer
from burrowd.daemon.errors import HashMismatch, InvalidDistribution
from burrowd.daemon.index.client import Freshness, IndexClient
from burrowd.daemon.index.lazywheel import TAIL_SIZE
from burrowd.daemon.index.models import IndexFile
from burrowd.daemon.metadata import CoreMetadata
from tests.daemon.cache.harness import Stack, archive_problems, random_members, write_wheel
from tests.support.dists import Breakage, DistSpec
from tests.support.index import FakeIndex, parse_range

WHEEL = "foo-1.0-py3-none-any.whl"


async def _file(stack: Stack, index: FakeIndex, filename: str) -> tuple[IndexFile, str]:
    name = filename.split("-", maxsplit=1)[0]
    files = await stack.index.project_files(stack.settings(index.simple_url), name, Freshness())
    return next((f, loc) for f, loc in files.files if f.filename == filename)


async def _metadata(stack: Stack, index: FakeIndex, filename: str) -> CoreMetadata:
    file, location = await _file(stack, index, filename)
    name, version = filename.split("-")[:2]
    return await stack.index.metadata(file, location, name, version)


def _wheel_requests(index: FakeIndex, filename: str) -> list[str | None]:
    """Return the Range header of every request for the wheel (None: a whole GET)."""
    return [r.headers.get("Range") for r in index.requests if r.path == f"/files/{filename}"]


def _bytes_sent(index: FakeIndex, filename: str) -> int:
    size = index.files(filename.split("-", maxsplit=1)[0])[0].size
    total = 0
    for rng in _wheel_requests(index, filename):
        span = parse_range(rng, size) if rng is not None else None
        assert isinstance(span, tuple), rng
        total += span[1] - span[0] + 1
    return total


class TestPep658:
    async def test_only_the_metadata_file_is_downloaded(
        self, stack: Stack, fake_index: FakeIndex
    ) -> None:
        fake_index.add(DistSpec("foo", "1.0", requires_dist=["bar>=1", "baz; extra == 'x'"]))
        meta = await _metadata(stack, fake_index, WHEEL)
        assert meta.name == "foo"
        assert meta.version == "1.0"
        assert meta.requires_dist == ["bar>=1", "baz; extra == 'x'"]
        assert meta.provides_extra == ["x"]
        assert fake_index.hits[f"/files/{WHEEL}.metadata"] == 1
        assert _wheel_requests(fake_index, WHEEL) == []

    async def test_memory_then_disk(self, stack: Stack, fake_index: FakeIndex) -> None:
        fake_index.add(DistSpec("foo", "1.0"))
        first = await _metadata(stack, fake_index, WHEEL)
        assert await _metadata(stack, fake_index, WHEEL) == first
        assert stack.index.memory_stats()["metadata"] == 1
        # A daemon that stops drains its background cache writes first.
        await stack.index.drain()
        restarted = IndexClient(stack.cache, stack.http, stack.limits, ttl=600)
        file, location = await _file(stack, fake_index, WHEEL)
        assert await restarted.metadata(file, location, "foo", "1.0") == first
        assert fake_index.hits[f"/files/{WHEEL}.metadata"] == 1

    async def test_bad_metadata_hash(self, stack: Stack, fake_index: FakeIndex) -> None:
        (entry,) = fake_index.add(DistSpec("foo", "1.0"))
        file, location = await _file(stack, fake_index, WHEEL)
        lying = msgspec.structs.replace(file, core_metadata={"sha256": "0" * 64})
        with pytest.raises(HashMismatch) as info:
            await stack.index.metadata(lying, location, "foo", "1.0")
        assert info.value.expected == ["0" * 64]
        assert info.value.actual == entry.metadata_sha256
        assert f"{WHEEL}.metadata" in str(info.value)

    async def test_missing_metadata_file_falls_back_to_ranges(
        self, stack: Stack, fake_index: FakeIndex
    ) -> None:
        fake_index.add(DistSpec("foo", "1.0"))
        fake_index.fail(f"/files/{WHEEL}.metadata", 404, times=5)
        meta = await _metadata(stack, fake_index, WHEEL)
        assert meta.version == "1.0"
        assert all(rng is not None for rng in _wheel_requests(fake_index, WHEEL))

    @pytest.mark.parametrize(
        "metadata_file",
        [pytest.param(True, id="pep658"), pytest.param(False, id="ranges")],
    )
    async def test_metadata_that_lies_about_the_file(
        self, stack: Stack, fake_index: FakeIndex, metadata_file: bool
    ) -> None:
        fake_index.add(
            DistSpec("foo", "1.0"), broken=Breakage.METADATA_MISMATCH, metadata_file=metadata_file
        )
        with pytest.raises(InvalidDistribution) as info:
            await _metadata(stack, fake_index, WHEEL)
        assert "Name: impostor" in str(info.value)
        assert WHEEL in str(info.value)

    async def test_metadata_that_lies_about_the_version(
        self, stack: Stack, fake_index: FakeIndex, tmp_path: Path
    ) -> None:
        wheel = write_wheel(tmp_path, "foo", "1.0", [("foo/__init__.py", b"")])
        with zipfile.ZipFile(wheel) as zf:
            members = [(i, zf.read(i)) for i in zf.infolist()]
        rewritten = tmp_path / "out" / wheel.name
        rewritten.parent.mkdir()
        with zipfile.ZipFile(rewritten, "w") as zf:
            for info, data in members:
                lie = info.filename.endswith("METADATA")
                zf.writestr(info, data.replace(b"Version: 1.0", b"Version: 2.0") if lie else data)
        fake_index.add(rewritten)
        with pytest.raises(
            InvalidDistribution, match=r"says Version: 2\.0, but the file is for 1\.0"
        ):
            await _metadata(stack, fake_index, WHEEL)


class TestRanges:
    async def test_small_wheel_needs_one_range_request(
        self, stack: Stack, fake_index: FakeIndex
    ) -> None:
        fake_index.add(DistSpec("foo", "1.0"), metadata_file=False)
        meta = await _metadata(stack, fake_index, WHEEL)
        assert meta.name == "foo"
        assert _wheel_requests(fake_index, WHEEL) == [f"bytes=-{TAIL_SIZE}"]
        key = stack.index.wheel_key(*(await _file(stack, fake_index, WHEEL)), "foo")
        assert read_pointer(stack.cache, key) is None  # nothing downloaded to keep

    async def test_large_wheel_is_not_downloaded(
        self, stack: Stack, fake_index: FakeIndex, tmp_path: Path
    ) -> None:
        members = random_members(4, 1024 * 1024, seed=1)
        wheel = write_wheel(tmp_path, "foo", "1.0", [*members, ("foo/__init__.py", b"")])
        (entry,) = fake_index.add(wheel, metadata_file=False)
        assert entry.size > 4 * 1024 * 1024
        meta = await _metadata(stack, fake_index, WHEEL)
        assert meta.version == "1.0"
        requests = _wheel_requests(fake_index, WHEEL)
        assert None not in requests
        assert _bytes_sent(fake_index, WHEEL) <= 2 * TAIL_SIZE

    async def test_central_directory_beyond_the_tail(
        self, stack: Stack, fake_index: FakeIndex, tmp_path: Path
    ) -> None:
        name_pad = "n" * 80
        members = [
            (f"foo/{name_pad}_{i:04d}.py", hashlib.sha256(str(i).encode()).digest())
            for i in range(900)
        ]
        big = random_members(2, 2 * 1024 * 1024, seed=2, package="foo")
        wheel = write_wheel(tmp_path, "foo", "1.0", [*big, *members])
        with zipfile.ZipFile(wheel) as zf:
            cd_size = sum(46 + len(i.filename) + len(i.extra) for i in zf.infolist())
        assert cd_size > TAIL_SIZE
        (entry,) = fake_index.add(wheel, metadata_file=False)
        meta = await _metadata(stack, fake_index, WHEEL)
        assert meta.name == "foo"
        requests = _wheel_requests(fake_index, WHEEL)
        assert None not in requests
        assert len(requests) >= 2
        assert _bytes_sent(fake_index, WHEEL) < entry.size // 10

    async def test_without_range_support_the_download_is_kept(
        self, stack: Stack, fake_index: FakeIndex
    ) -> None:
        fake_index.range_requests = False
        fake_index.add(DistSpec("foo", "1.0"), metadata_file=False)
        meta = await _metadata(stack, fake_index, WHEEL)
        assert meta.name == "foo"
        assert fake_index.hits[f"/files/{WHEEL}"] == 1
        file, location = await _file(stack, fake_index, WHEEL)
        pointer = read_pointer(stack.cache, stack.index.wheel_key(file, location, "foo"))
        assert pointer is not None
        archive = stack.cache.root / "archive-v0" / pointer.archive
        assert archive_problems(archive) == []
        wheels = await stack.prefetch(["foo==1.0"], stack.settings(fake_index.simple_url))
        assert [w.cached for w in wheels] == [True]
        assert fake_index.hits[f"/files/{WHEEL}"] == 1

    async def test_unusable_ranges_fall_back_to_a_download(
        self, stack: Stack, fake_index: FakeIndex
    ) -> None:
        fake_index.add(DistSpec("foo", "1.0"), metadata_file=False)
        fake_index.fail(f"/files/{WHEEL}", 416, times=1)
        meta = await _metadata(stack, fake_index, WHEEL)
        assert meta.name == "foo"
        assert _wheel_requests(fake_index, WHEEL) == [f"bytes=-{TAIL_SIZE}", None]

    async def test_after_a_prefetch_the_archive_answers(
        self, stack: Stack, fake_index: FakeIndex
    ) -> None:
        fake_index.add(DistSpec("foo", "1.0", requires_python=">=3.8"), metadata_file=False)
        await stack.prefetch(["foo==1.0"], stack.settings(fake_index.simple_url))
        fake_index.reset_hits()
        meta = await _metadata(stack, fake_index, WHEEL)
        assert meta.requires_python == ">=3.8"
        assert fake_index.hits[f"/files/{WHEEL}"] == 0

    async def test_local_wheels_are_read_in_place(self, stack: Stack, tmp_path: Path) -> None:
        write_wheel(tmp_path / "links", "foo", "1.0", [("foo/__init__.py", b"")])
        settings = stack.settings(find_links=[str(tmp_path / "links")], no_index=True)
        files = await stack.index.project_files(settings, "foo", Freshness())
        file, location = files.files[0]
        meta = await stack.index.metadata(file, location, "foo", "1.0")
        assert (meta.name, meta.version) == ("foo", "1.0")
