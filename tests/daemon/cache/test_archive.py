"""Unpacking wheels into ``archive-v0``: whole and verified, or nothing at all."""

from __future__ import annotations

import hashlib
import os
import stat
import warnings
import zipfile
from pathlib import Path

import pytest

from burrowd.daemon.cache.archive import (
    MANIFEST,
    find_dist_info,
    read_manifest,
    unpack_wheel,
    wheel_metadata_bytes,
)
from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.errors import InvalidDistribution
from tests.daemon.cache.harness import archive_problems, tmp_debris, write_wheel
from tests.support.dists import Breakage
from tests.support.plugin import DistFactory


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _unpack(cache: Cache, wheel: Path) -> Path:
    return unpack_wheel(cache, wheel, filename=wheel.name, sha256=_sha256(wheel))


class TestGoodWheels:
    def test_unpacks_to_its_sha256_with_a_manifest(
        self, tmp_path: Path, dist_factory: DistFactory
    ) -> None:
        cache = Cache(tmp_path / "cache")
        wheel = dist_factory.wheel(
            "Foo.Bar", "1.0", files={"foo_bar/__init__.py": b"x = 1\n", "foo_bar/d.txt": b"d"}
        )
        target = _unpack(cache, wheel)
        assert target == cache.path(Bucket.ARCHIVE, _sha256(wheel))
        manifest = read_manifest(target)
        assert manifest is not None
        assert manifest.filename == "foo_bar-1.0-py3-none-any.whl"
        assert manifest.sha256 == _sha256(wheel)
        assert manifest.dist_info == "foo_bar-1.0.dist-info"
        assert manifest.files == 5  # two files, METADATA, WHEEL, RECORD
        assert manifest.size == sum(i.file_size for i in zipfile.ZipFile(wheel).infolist())
        assert (target / "foo_bar" / "__init__.py").read_bytes() == b"x = 1\n"
        assert (target / MANIFEST).is_file()
        assert archive_problems(target) == []
        assert tmp_debris(cache) == []

    def test_a_whole_archive_is_not_unpacked_again(
        self, tmp_path: Path, dist_factory: DistFactory
    ) -> None:
        cache = Cache(tmp_path / "cache")
        wheel = dist_factory.wheel("foo", "1.0")
        target = _unpack(cache, wheel)
        before = (target / MANIFEST).stat().st_mtime_ns
        wheel.unlink()  # not read again: the archive is already whole
        assert unpack_wheel(cache, wheel, filename=wheel.name, sha256=target.name) == target
        assert (target / MANIFEST).stat().st_mtime_ns == before

    def test_an_incomplete_archive_is_replaced(
        self, tmp_path: Path, dist_factory: DistFactory
    ) -> None:
        cache = Cache(tmp_path / "cache")
        wheel = dist_factory.wheel("foo", "1.0")
        half = cache.path(Bucket.ARCHIVE, _sha256(wheel))
        (half / "foo").mkdir(parents=True)
        (half / "foo" / "__init__.py").write_text("half written")
        target = _unpack(cache, wheel)
        assert target == half
        assert archive_problems(target) == []
        assert (target / "foo" / "__init__.py").read_text() == "__version__ = '1.0'\n"

    def test_executable_bits_survive(self, tmp_path: Path, dist_factory: DistFactory) -> None:
        cache = Cache(tmp_path / "cache")
        wheel = dist_factory.wheel("tool", "2.0", data={"scripts/tool": b"#!python\nprint(1)\n"})
        target = _unpack(cache, wheel)
        script = target / "tool-2.0.data" / "scripts" / "tool"
        assert script.stat().st_mode & 0o111 == 0o111
        assert (target / "tool" / "__init__.py").stat().st_mode & 0o111 == 0

    def test_executable_member_of_the_package_keeps_its_bits(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path / "cache")
        wheel = write_wheel(
            tmp_path / "w",
            "runner",
            "1.0",
            [("runner/run.sh", b"#!/bin/sh\necho hi\n"), ("runner/__init__.py", b"")],
            modes={"runner/run.sh": 0o100755},
        )
        target = _unpack(cache, wheel)
        assert os.access(target / "runner" / "run.sh", os.X_OK)
        assert not os.access(target / "runner" / "__init__.py", os.X_OK)

    def test_namespace_packages_unpack(self, tmp_path: Path, dist_factory: DistFactory) -> None:
        cache = Cache(tmp_path / "cache")
        wheel = dist_factory.wheel(
            "ns-a",
            "1.0",
            files={"ns/a/__init__.py": b"A = 1\n", "ns/a/deep/mod.py": b"", "ns/data.txt": b"d"},
        )
        target = _unpack(cache, wheel)
        assert (target / "ns" / "a" / "__init__.py").read_text() == "A = 1\n"
        assert (target / "ns" / "a" / "deep" / "mod.py").is_file()
        assert not (target / "ns" / "__init__.py").exists()
        assert archive_problems(target) == []

    def test_stored_wheel_with_many_members(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path / "cache")
        files = [(f"many/m{i:04d}.py", f"N = {i}\n".encode()) for i in range(300)]
        wheel = write_wheel(tmp_path / "w", "many", "1.0", files, compression=zipfile.ZIP_STORED)
        target = _unpack(cache, wheel)
        manifest = read_manifest(target)
        assert manifest is not None
        assert manifest.files == 303
        assert archive_problems(target) == []


_BROKEN = [
    pytest.param(Breakage.BAD_CRC, "foo/__init__.py' is corrupt", id="bad-crc"),
    pytest.param(Breakage.RECORD_MISSING_ENTRY, "not listed in RECORD", id="record-entry"),
    pytest.param(Breakage.RECORD_MISSING, "RECORD is missing", id="record-missing"),
    pytest.param(Breakage.TRUNCATED, "not a readable zip archive", id="truncated"),
    pytest.param(Breakage.ZIP_SLIP, "escapes the archive", id="zip-slip"),
    pytest.param(Breakage.ABSOLUTE_PATH, "is an absolute path", id="absolute-path"),
    pytest.param(Breakage.METADATA_MISSING, "METADATA is missing", id="metadata-missing"),
    pytest.param(Breakage.DIST_INFO_MISMATCH, "expected one foo-1.0.dist-info", id="dist-info"),
]


class TestBrokenWheels:
    @pytest.mark.parametrize(("breakage", "reason"), _BROKEN)
    def test_rejected_with_nothing_left_behind(
        self, tmp_path: Path, dist_factory: DistFactory, breakage: Breakage, reason: str
    ) -> None:
        cache = Cache(tmp_path / "cache")
        wheel = dist_factory.wheel("foo", "1.0", broken=breakage)
        with pytest.raises(InvalidDistribution, match=reason) as info:
            _unpack(cache, wheel)
        assert info.value.source == "foo-1.0-py3-none-any.whl"
        assert "foo-1.0-py3-none-any.whl" in str(info.value)
        assert not cache.path(Bucket.ARCHIVE, _sha256(wheel)).exists()
        assert tmp_debris(cache) == []
        assert not (tmp_path / "evil.py").exists()
        assert not (tmp_path / "cache" / "evil.py").exists()

    def test_a_wrong_record_hash_is_unpacked_as_pip_and_uv_do(
        self, tmp_path: Path, dist_factory: DistFactory
    ) -> None:
        # The wheel's bytes are what the index's hash says; only its RECORD row is wrong,
        # as in some published wheels (torch): pip and uv install them, so burrowd does.
        cache = Cache(tmp_path / "cache")
        wheel = dist_factory.wheel("foo", "1.0", broken=Breakage.RECORD_WRONG_HASH)
        target = _unpack(cache, wheel)
        with zipfile.ZipFile(wheel) as zf:
            assert (target / "foo" / "__init__.py").read_bytes() == zf.read("foo/__init__.py")
        assert read_manifest(target) is not None
        assert tmp_debris(cache) == []

    @pytest.mark.parametrize(
        "fraction",
        [pytest.param(0.1, id="early"), pytest.param(0.9, id="late"), pytest.param(0.99, id="end")],
    )
    def test_truncated_anywhere(
        self, tmp_path: Path, dist_factory: DistFactory, fraction: float
    ) -> None:
        cache = Cache(tmp_path / "cache")
        wheel = dist_factory.wheel("foo", "1.0", broken=Breakage.TRUNCATED, truncate_at=fraction)
        with pytest.raises(InvalidDistribution, match=r"foo-1\.0-py3-none-any\.whl"):
            _unpack(cache, wheel)
        assert not cache.bucket(Bucket.ARCHIVE).exists() or not any(
            cache.bucket(Bucket.ARCHIVE).iterdir()
        )
        assert tmp_debris(cache) == []

    def test_a_failure_keeps_the_previous_incomplete_archive_out(
        self, tmp_path: Path, dist_factory: DistFactory
    ) -> None:
        cache = Cache(tmp_path / "cache")
        wheel = dist_factory.wheel("foo", "1.0", broken=Breakage.BAD_CRC)
        half = cache.path(Bucket.ARCHIVE, _sha256(wheel))
        half.mkdir(parents=True)
        with pytest.raises(InvalidDistribution):
            _unpack(cache, wheel)
        assert not half.exists()
        assert tmp_debris(cache) == []

    def test_a_symlink_member_is_rejected(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path / "cache")
        wheel = write_wheel(
            tmp_path / "w",
            "links",
            "1.0",
            [("links/__init__.py", b""), ("links/passwd", b"/etc/passwd")],
            modes={"links/passwd": stat.S_IFLNK | 0o777},
        )
        with pytest.raises(InvalidDistribution, match="is a symbolic link"):
            _unpack(cache, wheel)
        assert tmp_debris(cache) == []

    def test_a_duplicate_member_is_rejected(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path / "cache")
        good = write_wheel(tmp_path / "w", "dup", "1.0", [("dup/__init__.py", b"")])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
            with zipfile.ZipFile(good, "a") as zf:
                zf.writestr("dup/__init__.py", b"")
        with pytest.raises(InvalidDistribution, match="appears twice"):
            _unpack(cache, good)
        assert tmp_debris(cache) == []

    @pytest.mark.parametrize(
        ("member", "reason"),
        [
            pytest.param("dup\\evil.py", "backslash", id="backslash"),
            pytest.param("C:/evil.py", "drive letter", id="drive"),
            pytest.param("dup/../../evil.py", "escapes the archive", id="nested-dotdot"),
        ],
    )
    def test_unsafe_names_are_rejected(self, tmp_path: Path, member: str, reason: str) -> None:
        cache = Cache(tmp_path / "cache")
        wheel = write_wheel(tmp_path / "w", "dup", "1.0", [(member, b"x"), ("dup/a.py", b"")])
        with pytest.raises(InvalidDistribution, match=reason):
            _unpack(cache, wheel)
        assert tmp_debris(cache) == []

    def test_a_record_with_a_weak_hash_is_rejected(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path / "cache")
        wheel = tmp_path / "weak-1.0-py3-none-any.whl"
        md5 = hashlib.md5(b"x = 1\n").hexdigest()
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr("weak/__init__.py", b"x = 1\n")
            zf.writestr("weak-1.0.dist-info/METADATA", b"Name: weak\nVersion: 1.0\n")
            zf.writestr(
                "weak-1.0.dist-info/RECORD",
                f"weak/__init__.py,md5={md5},6\n"
                "weak-1.0.dist-info/METADATA,,\nweak-1.0.dist-info/RECORD,,\n",
            )
        with pytest.raises(InvalidDistribution, match="unusable hash"):
            _unpack(cache, wheel)


def _damage_member(wheel: Path, member: str, *, header: bool) -> None:
    """Overwrite ``member``'s local header signature (``header``) or its first data bytes,
    leaving the central directory (what ``zipfile`` opens by) as it was."""
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo(member)
    with open(wheel, "r+b") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        assert local[:4] == b"PK\x03\x04"
        if header:
            f.seek(info.header_offset)
            f.write(b"XX")
        else:
            name_len = int.from_bytes(local[26:28], "little")
            extra_len = int.from_bytes(local[28:30], "little")
            f.seek(info.header_offset + 30 + name_len + extra_len)
            f.write(b"\xff" * min(8, info.compress_size))


class TestMembersBrokenInsideTheMap:
    """Members read from the memory map fail with their own error, never with the map's
    (a view still alive would make closing it raise instead), and leave nothing behind."""

    @pytest.mark.parametrize(
        ("compression", "header", "reason"),
        [
            pytest.param(zipfile.ZIP_DEFLATED, True, "bad local header", id="header"),
            pytest.param(zipfile.ZIP_DEFLATED, False, "cannot be inflated", id="deflate-data"),
            pytest.param(zipfile.ZIP_STORED, False, "bad CRC", id="stored-data"),
        ],
    )
    def test_rejected_with_nothing_left_behind(
        self, tmp_path: Path, compression: int, header: bool, reason: str
    ) -> None:
        cache = Cache(tmp_path / "cache")
        body = b"VALUE = 1\n" * 200
        files = [("bad/__init__.py", body), ("bad/other.py", b"X = 2\n")]
        wheel = write_wheel(tmp_path / "w", "bad", "1.0", files, compression=compression)
        _damage_member(wheel, "bad/__init__.py", header=header)
        with pytest.raises(InvalidDistribution, match=f"bad/__init__.py' is corrupt.*{reason}"):
            _unpack(cache, wheel)
        assert not cache.path(Bucket.ARCHIVE, _sha256(wheel)).exists()
        assert tmp_debris(cache) == []

    def test_members_after_a_large_one_read_from_the_same_map(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path / "cache")
        big = os.urandom(3 * 1024 * 1024)
        files = [("big/blob.bin", big), ("big/after.py", b"A = 1\n"), ("big/stored.txt", b"s")]
        wheel = write_wheel(tmp_path / "w", "big", "1.0", files)
        target = _unpack(cache, wheel)
        assert (target / "big" / "blob.bin").read_bytes() == big
        assert (target / "big" / "after.py").read_bytes() == b"A = 1\n"
        assert archive_problems(target) == []


class TestDistInfo:
    @pytest.mark.parametrize(
        ("names", "expected"),
        [
            pytest.param(["foo-1.0.dist-info/METADATA"], "foo-1.0.dist-info", id="plain"),
            pytest.param(["Foo-1.0.dist-info/METADATA"], "Foo-1.0.dist-info", id="case"),
            pytest.param(["foo-1.0.0.dist-info/RECORD"], "foo-1.0.0.dist-info", id="version-eq"),
            pytest.param(
                ["foo-1.0.dist-info/METADATA", "foo-1.0.data/scripts/x"],
                "foo-1.0.dist-info",
                id="with-data",
            ),
        ],
    )
    def test_found(self, names: list[str], expected: str) -> None:
        assert find_dist_info(names, "foo-1.0-py3-none-any.whl") == expected

    @pytest.mark.parametrize(
        ("names", "filename", "match"),
        [
            pytest.param([], "foo-1.0-py3-none-any.whl", "found none", id="none"),
            pytest.param(
                ["foo-1.0.dist-info/A", "foo-1.0.0.dist-info/B"],
                "foo-1.0-py3-none-any.whl",
                "found foo-1.0.0.dist-info, foo-1.0.dist-info",
                id="two",
            ),
            pytest.param(
                ["bar-1.0.dist-info/METADATA"], "foo-1.0-py3-none-any.whl", "bar-1.0", id="other"
            ),
            pytest.param([], "not-a-wheel.zip", "not a valid wheel filename", id="filename"),
        ],
    )
    def test_rejected(self, names: list[str], filename: str, match: str) -> None:
        with pytest.raises(InvalidDistribution, match=match):
            find_dist_info(names, filename)

    def test_metadata_bytes(self, dist_factory: DistFactory) -> None:
        wheel = dist_factory.wheel("foo", "1.0", requires_dist=["bar>=2"])
        with zipfile.ZipFile(wheel) as zf:
            data = wheel_metadata_bytes(zf, wheel.name)
        assert b"Name: foo\n" in data
        assert b"Requires-Dist: bar>=2\n" in data

    def test_read_manifest_of_a_non_archive(self, tmp_path: Path) -> None:
        assert read_manifest(tmp_path) is None
        (tmp_path / MANIFEST).write_bytes(b"\xc1 not msgpack")
        assert read_manifest(tmp_path) is None


class TestHostileMembers:
    @pytest.mark.parametrize(
        ("members", "reason"),
        [
            pytest.param(
                [("c/a", b"1"), ("c/a/b", b"2")], "clashes with another member", id="file-then-dir"
            ),
            pytest.param([("c/x//y", b"1")], "empty or '.' path component", id="empty-part"),
            pytest.param([("c/x/./y", b"1")], "empty or '.' path component", id="dot-part"),
        ],
    )
    def test_member_paths_that_cannot_unpack(
        self, tmp_path: Path, members: list[tuple[str, bytes]], reason: str
    ) -> None:
        cache = Cache(tmp_path / "cache")
        wheel = write_wheel(tmp_path / "w", "c", "1.0", members)
        with pytest.raises(InvalidDistribution, match=reason):
            _unpack(cache, wheel)
        assert tmp_debris(cache) == []
        assert not cache.path(Bucket.ARCHIVE, _sha256(wheel)).exists()

    def test_a_member_whose_deflate_stream_is_broken(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path / "cache")
        wheel = write_wheel(tmp_path / "w", "bad", "1.0", [("bad/data.txt", b"text " * 4000)])
        data = bytearray(wheel.read_bytes())
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo("bad/data.txt")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        data[start] = 0xFF  # block type 3: no deflate stream has it
        wheel.write_bytes(bytes(data))
        with pytest.raises(InvalidDistribution, match=r"'bad/data\.txt' is corrupt"):
            _unpack(cache, wheel)
        assert tmp_debris(cache) == []
        assert not cache.path(Bucket.ARCHIVE, _sha256(wheel)).exists()

    def test_a_member_that_inflates_past_its_stated_size(self, tmp_path: Path) -> None:
        # A megabyte of zeros that the zip's headers call 100 bytes: inflating it whole
        # would take the memory first and check the size after.
        cache = Cache(tmp_path / "cache")
        wheel = write_wheel(tmp_path / "w", "bomb", "1.0", [("bomb/data.bin", b"\0" * 2**20)])
        data = bytearray(wheel.read_bytes())
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo("bomb/data.bin")
        local = info.header_offset
        central = data.index(b"PK\x01\x02")
        while data[central + 46 : central + 46 + len(info.filename)] != b"bomb/data.bin":
            central = data.index(b"PK\x01\x02", central + 4)
        data[local + 22 : local + 26] = (100).to_bytes(4, "little")
        data[central + 24 : central + 28] = (100).to_bytes(4, "little")
        wheel.write_bytes(bytes(data))
        with pytest.raises(InvalidDistribution, match="inflates past its stated size"):
            _unpack(cache, wheel)
        assert tmp_debris(cache) == []
