"""Wheel pointers: written last, and anything odd at their path is a miss that gets rebuilt."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from burrowd.daemon.cache.archive import MANIFEST, ArchiveManifest
from burrowd.daemon.cache.layout import Bucket, digest, url_digest
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.cache.wheels import (
    WheelKey,
    WheelPointer,
    metadata_path,
    pointer_path,
    read_cached_metadata,
    read_pointer,
    write_cached_metadata,
    write_pointer,
)
from burrowd.daemon.metadata import CoreMetadata
from tests.daemon.cache.harness import Stack, archive_problems, tmp_debris
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex
from tests.support.plugin import DistFactory

FILENAME = "foo-1.0-py3-none-any.whl"


def _index_key(fake_index: FakeIndex) -> WheelKey:
    return WheelKey.from_index(fake_index.simple_url + "/", "foo", FILENAME)


async def _prefetched(stack: Stack, fake_index: FakeIndex) -> tuple[WheelKey, WheelPointer]:
    fake_index.add(DistSpec("foo", "1.0"))
    await stack.prefetch(["foo==1.0"], stack.settings(fake_index.simple_url))
    key = _index_key(fake_index)
    pointer = read_pointer(stack.cache, key)
    assert pointer is not None
    return key, pointer


def _garbage(cache: Cache, key: WheelKey, pointer: WheelPointer) -> None:
    pointer_path(cache, key).write_bytes(b"\x00\xffnot a pointer at all")


def _truncated_pointer(cache: Cache, key: WheelKey, pointer: WheelPointer) -> None:
    path = pointer_path(cache, key)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty_pointer(cache: Cache, key: WheelKey, pointer: WheelPointer) -> None:
    pointer_path(cache, key).write_bytes(b"")


def _wrong_shape(cache: Cache, key: WheelKey, pointer: WheelPointer) -> None:
    pointer_path(cache, key).write_bytes(msgspec.msgpack.encode({"filename": FILENAME}))


def _other_file(cache: Cache, key: WheelKey, pointer: WheelPointer) -> None:
    other = msgspec.structs.replace(pointer, filename="foo-1.0-py2-none-any.whl")
    pointer_path(cache, key).write_bytes(msgspec.msgpack.encode(other))


def _lost_manifest(cache: Cache, key: WheelKey, pointer: WheelPointer) -> None:
    (cache.path(Bucket.ARCHIVE, pointer.archive) / MANIFEST).unlink()


def _lost_record(cache: Cache, key: WheelKey, pointer: WheelPointer) -> None:
    (cache.path(Bucket.ARCHIVE, pointer.archive) / "foo-1.0.dist-info" / "RECORD").unlink()


def _lost_metadata(cache: Cache, key: WheelKey, pointer: WheelPointer) -> None:
    (cache.path(Bucket.ARCHIVE, pointer.archive) / "foo-1.0.dist-info" / "METADATA").unlink()


def _archive_gone(cache: Cache, key: WheelKey, pointer: WheelPointer) -> None:
    shutil.rmtree(cache.path(Bucket.ARCHIVE, pointer.archive))


Damage = Callable[[Cache, WheelKey, WheelPointer], None]

_DAMAGE = [
    pytest.param(_garbage, "unreadable wheel pointer", id="garbage-bytes"),
    pytest.param(_truncated_pointer, "unreadable wheel pointer", id="truncated-pointer"),
    pytest.param(_empty_pointer, "unreadable wheel pointer", id="empty-pointer"),
    pytest.param(_wrong_shape, "unreadable wheel pointer", id="wrong-shape"),
    pytest.param(_other_file, "for another file", id="other-filename"),
    pytest.param(_lost_manifest, "missing or incomplete archive", id="archive-no-manifest"),
    pytest.param(_lost_record, "missing or incomplete archive", id="archive-no-record"),
    pytest.param(_lost_metadata, "missing or incomplete archive", id="archive-no-metadata"),
    pytest.param(_archive_gone, "missing or incomplete archive", id="archive-deleted"),
]


class TestPointerMisses:
    @pytest.mark.parametrize(("damage", "logged"), _DAMAGE)
    async def test_damaged_entry_is_a_miss_and_prefetch_rebuilds_it(
        self,
        stack: Stack,
        fake_index: FakeIndex,
        caplog: pytest.LogCaptureFixture,
        damage: Damage,
        logged: str,
    ) -> None:
        key, pointer = await _prefetched(stack, fake_index)
        damage(stack.cache, key, pointer)
        with caplog.at_level(logging.WARNING, logger="burrowd.daemon.cache.wheels"):
            assert read_pointer(stack.cache, key) is None
        assert logged in caplog.text

        wheels = await stack.prefetch(["foo==1.0"], stack.settings(fake_index.simple_url))
        assert [w.cached for w in wheels] == [False]
        rebuilt = read_pointer(stack.cache, key)
        assert rebuilt is not None
        assert rebuilt.archive == pointer.archive
        assert rebuilt.hashes == pointer.hashes
        assert archive_problems(stack.cache.path(Bucket.ARCHIVE, rebuilt.archive)) == []
        assert fake_index.hits[f"/files/{FILENAME}"] == 2
        assert tmp_debris(stack.cache) == []

    async def test_zipped_wheel_at_the_pointer_path_is_ignored_and_replaced(
        self,
        stack: Stack,
        fake_index: FakeIndex,
        dist_factory: DistFactory,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        fake_index.add(DistSpec("foo", "1.0"))
        key = _index_key(fake_index)
        path = pointer_path(stack.cache, key)
        path.parent.mkdir(parents=True)
        shutil.copyfile(dist_factory.wheel("foo", "1.0"), path)  # what another tool would leave
        with caplog.at_level(logging.WARNING):
            assert read_pointer(stack.cache, key) is None
        assert "zipped wheel where an unpacked one belongs" in caplog.text

        wheels = await stack.prefetch(["foo==1.0"], stack.settings(fake_index.simple_url))
        assert [w.cached for w in wheels] == [False]
        pointer = read_pointer(stack.cache, key)
        assert pointer is not None
        assert not path.read_bytes().startswith(b"PK")
        assert archive_problems(stack.cache.path(Bucket.ARCHIVE, pointer.archive)) == []

    async def test_an_intact_entry_is_used_without_a_download(
        self, stack: Stack, fake_index: FakeIndex
    ) -> None:
        _key, pointer = await _prefetched(stack, fake_index)
        wheels = await stack.prefetch(["foo==1.0"], stack.settings(fake_index.simple_url))
        assert [w.cached for w in wheels] == [True]
        assert wheels[0].archive == str(stack.cache.path(Bucket.ARCHIVE, pointer.archive))
        assert fake_index.hits[f"/files/{FILENAME}"] == 1


class TestPointerFiles:
    @pytest.mark.parametrize(
        ("key", "parts"),
        [
            pytest.param(
                WheelKey.from_index("https://i/simple/", "foo", FILENAME),
                ("index", digest("https://i/simple/"), "foo", FILENAME),
                id="index",
            ),
            pytest.param(
                WheelKey.from_url("https://u:p@h/x/" + FILENAME, FILENAME),
                ("url", url_digest("https://h/x/" + FILENAME), FILENAME),
                id="url",
            ),
            pytest.param(
                WheelKey.from_path(Path("/w") / FILENAME),
                ("path", digest(f"/w/{FILENAME}"), FILENAME),
                id="path",
            ),
        ],
    )
    def test_layout(self, tmp_path: Path, key: WheelKey, parts: tuple[str, ...]) -> None:
        cache = Cache(tmp_path)
        assert pointer_path(cache, key) == cache.path(Bucket.WHEELS, *parts)
        assert metadata_path(cache, key).name == FILENAME + ".meta"

    def test_round_trip_needs_a_whole_archive(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        key = WheelKey.from_index("https://i/simple/", "foo", FILENAME)
        pointer = WheelPointer(
            filename=FILENAME,
            archive="ab" * 32,
            hashes={"sha256": "ab" * 32},
            url="u",
            size=1,
            created=0.0,
        )
        path = write_pointer(cache, key, pointer)
        assert path == pointer_path(cache, key)
        assert read_pointer(cache, key) is None  # no archive behind it
        archive = cache.path(Bucket.ARCHIVE, "ab" * 32)
        (archive / "foo-1.0.dist-info").mkdir(parents=True)
        (archive / "foo-1.0.dist-info" / "RECORD").write_text("")
        (archive / "foo-1.0.dist-info" / "METADATA").write_text("")
        manifest = ArchiveManifest(
            filename=FILENAME,
            sha256="ab" * 32,
            dist_info="foo-1.0.dist-info",
            files=2,
            size=0,
            created=0.0,
        )
        (archive / MANIFEST).write_bytes(msgspec.msgpack.encode(manifest))
        assert read_pointer(cache, key) == pointer

    @pytest.mark.parametrize(
        ("stored_sha", "asked_sha", "hit"),
        [
            pytest.param("aa", "aa", True, id="same-file"),
            pytest.param("aa", None, True, id="hash-unknown"),
            pytest.param("", "bb", True, id="stored-without-hash"),
            pytest.param("aa", "bb", False, id="file-changed"),
        ],
    )
    def test_cached_metadata_is_keyed_by_file_hash(
        self, tmp_path: Path, stored_sha: str, asked_sha: str | None, hit: bool
    ) -> None:
        cache = Cache(tmp_path)
        key = WheelKey.from_index("https://i/simple/", "foo", FILENAME)
        meta = CoreMetadata(name="foo", version="1.0", requires_dist=["bar"])
        write_cached_metadata(cache, key, stored_sha or None, meta)
        assert read_cached_metadata(cache, key, asked_sha) == (meta if hit else None)

    def test_unreadable_cached_metadata_is_a_miss(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path)
        key = WheelKey.from_index("https://i/simple/", "foo", FILENAME)
        assert read_cached_metadata(cache, key, None) is None
        path = metadata_path(cache, key)
        path.parent.mkdir(parents=True)
        path.write_bytes(b"\xc1garbage")
        assert read_cached_metadata(cache, key, None) is None
