"""Hostile wheels and sdists: refused with a clear error, nothing kept, nothing installed.

Each hostile archive is built in ``tmp_path`` and fed to the function that meets it in the
daemon: :func:`unpack_wheel` (a download going into ``archive-v0``), the installer's
:func:`layout` (what a wheel would write into an environment), :func:`unpack_sdist` (a
source archive unpacked for a build) and :func:`sdist_metadata`. Every refusal is an
:class:`InvalidDistribution` (wire code ``INVALID_DISTRIBUTION``) that names the file and the
member; afterwards the cache holds no archive, no pointer and no temporary directory, and
nothing was written outside the destination. One case of each kind also runs end to end:
``burrow sync`` against a served index, through a real daemon started with small limits.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

import pytest

from burrowd.daemon.cache import archive
from burrowd.daemon.cache.archive import unpack_sdist, unpack_wheel
from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.config import (
    DEFAULT_MAX_ARCHIVE_FILES,
    DEFAULT_MAX_UNPACKED_SIZE,
    Config,
    ConfigError,
    UnpackLimits,
)
from burrowd.daemon.errors import InvalidDistribution
from burrowd.daemon.index.sdist import sdist_metadata
from burrowd.daemon.installer.environment import Environment
from burrowd.daemon.installer.wheel import layout
from burrowd.daemon.interpreters import Interpreters
from burrowd.protocol.errors import ErrorCode
from tests.cache_e2e.support import snapshot as cache_snapshot
from tests.e2e.helpers import burrow_env
from tests.install_e2e.support import Burrow, make_venv, requirements, tree
from tests.support.backend.burrow_test_backend import (
    dist_info_dir,
    record_text,
    wheel_filename,
    wheel_members,
)
from tests.support.dists import Breakage, DistSpec
from tests.support.index import FakeIndex
from tests.support.plugin import DistFactory

#: Small limits for the bomb cases: a real wheel of these tests is a few hundred bytes.
SMALL: UnpackLimits = UnpackLimits(max_size=64 * 1024, max_files=20)

Members = list[tuple[str, bytes]]


# -- building hostile archives ------------------------------------------------------------------


def hostile_wheel(
    dest: Path,
    members: Members,
    *,
    name: str = "evil",
    version: str = "1.0",
    metadata: bytes | None = None,
    extra_rows: tuple[str, ...] = (),
    modes: dict[str, int] | None = None,
    compression: int = zipfile.ZIP_DEFLATED,
) -> Path:
    """Write a wheel of ``members`` whose RECORD lists each correctly, plus ``extra_rows``."""
    meta = metadata or f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    listed = wheel_members(
        name=name, version=version, tag="py3-none-any", metadata=meta, files=members
    )
    record_name = f"{dist_info_dir(name, version)}/RECORD"
    record = record_text(listed, record_name) + "".join(f"{r}\n" for r in extra_rows).encode()
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / wheel_filename(name, version, "py3-none-any")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile: "Duplicate name"
        with zipfile.ZipFile(path, "w") as zf:
            for arcname, data in [*listed, (record_name, record)]:
                info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = compression
                info.external_attr = (modes or {}).get(arcname, 0o100644) << 16
                zf.writestr(info, data)
    return path


def lie_about_size(archive: Path, member: str, size: int) -> None:
    """Make the local and central headers of ``member`` claim ``size`` unpacked bytes."""
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    encoded = member.encode()
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(encoded)] != encoded:
        central = data.index(b"PK\x01\x02", central + 4)
    data[info.header_offset + 22 : info.header_offset + 26] = size.to_bytes(4, "little")
    data[central + 24 : central + 28] = size.to_bytes(4, "little")
    archive.write_bytes(bytes(data))


def tar_sdist(dest: Path, members: Sequence[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    """Write ``evil-1.0.tar.gz``: plain ``(name, bytes)`` files and hand-made tar headers."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "evil-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tf.addfile(member)
                continue
            name, data = member
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def tar_entry(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def zip_sdist(dest: Path, members: Members, modes: dict[str, int] | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "evil-1.0.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = (modes or {}).get(name, 0o100644) << 16
                zf.writestr(info, data)
    return path


_PKG_INFO = b"Metadata-Version: 2.2\nName: evil\nVersion: 1.0\n"
_GOOD_SDIST: Members = [("evil-1.0/PKG-INFO", _PKG_INFO), ("evil-1.0/evil.py", b"x = 1\n")]


# -- looking at what is left --------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def assert_cache_untouched(cache: Cache, wheel: Path) -> None:
    """No archive for ``wheel``, no pointer, nothing left in the cache's temporary dir."""
    assert not cache.path(Bucket.ARCHIVE, sha256_of(wheel)).exists()
    archives = cache.bucket(Bucket.ARCHIVE)
    assert not archives.exists() or files_under(archives) == []
    wheels = cache.bucket(Bucket.WHEELS)
    assert not wheels.exists() or files_under(wheels) == []
    assert not cache.tmp.exists() or os.listdir(cache.tmp) == []


def refused(
    cache: Cache, wheel: Path, match: str, limits: UnpackLimits | None = None
) -> InvalidDistribution:
    """Unpack ``wheel``, require a refusal matching ``match``; return the error."""
    with pytest.raises(InvalidDistribution, match=match) as info:
        unpack_wheel(cache, wheel, filename=wheel.name, sha256=sha256_of(wheel), limits=limits)
    error = info.value
    assert error.code == ErrorCode.INVALID_DISTRIBUTION
    assert error.source == wheel.name
    assert wheel.name in error.message
    assert_cache_untouched(cache, wheel)
    return error


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    return Cache(tmp_path / "cache")


# -- wheels, at unpack --------------------------------------------------------------------------


class TestHostileWheels:
    @pytest.mark.parametrize(
        ("member", "reason"),
        [
            pytest.param("../evil.py", "escapes the archive", id="zip-slip"),
            pytest.param("evil/../../../evil.py", "escapes the archive", id="nested-zip-slip"),
            pytest.param("/tmp/burrow-hostile-absolute.py", "absolute path", id="absolute"),
            pytest.param("C:/evil.py", "drive letter", id="drive"),
            pytest.param("evil\\..\\..\\evil.py", "backslash", id="backslash"),
        ],
    )
    def test_member_outside_the_archive(
        self, tmp_path: Path, cache: Cache, member: str, reason: str
    ) -> None:
        wheel = hostile_wheel(tmp_path / "w", [("evil/__init__.py", b""), (member, b"boom")])
        error = refused(cache, wheel, reason)
        assert repr(member) in error.message
        assert not (tmp_path / "evil.py").exists()
        assert not (tmp_path / "cache" / "evil.py").exists()
        assert not os.path.lexists("/tmp/burrow-hostile-absolute.py")

    def test_symlink_member(self, tmp_path: Path, cache: Cache) -> None:
        wheel = hostile_wheel(
            tmp_path / "w",
            [("evil/__init__.py", b""), ("evil/passwd", b"/etc/passwd")],
            modes={"evil/passwd": stat.S_IFLNK | 0o777},
        )
        error = refused(cache, wheel, "is a symbolic link")
        assert "'evil/passwd'" in error.message

    def test_duplicate_member(self, tmp_path: Path, cache: Cache) -> None:
        wheel = hostile_wheel(
            tmp_path / "w", [("evil/__init__.py", b"good"), ("evil/__init__.py", b"evil")]
        )
        error = refused(cache, wheel, "appears twice")
        assert "'evil/__init__.py'" in error.message

    @pytest.mark.parametrize(
        "row",
        [
            pytest.param("../../../../outside.py,sha256=x,1", id="dotdot"),
            pytest.param("/tmp/burrow-hostile-outside.py,sha256=x,1", id="absolute"),
            pytest.param("evil-1.0.data/data/../../../../outside.py,,", id="data-dotdot"),
        ],
    )
    def test_record_row_outside_the_environment(
        self, tmp_path: Path, cache: Cache, row: str
    ) -> None:
        # The row names no member: only the installer would have met it, after the archive
        # was kept. It is refused at unpack now, so the cache never holds it.
        wheel = hostile_wheel(tmp_path / "w", [("evil/__init__.py", b"")], extra_rows=(row,))
        error = refused(cache, wheel, "its RECORD lists")
        assert repr(row.split(",", maxsplit=1)[0]) in error.message

    @pytest.mark.parametrize(
        ("metadata", "reason"),
        [
            pytest.param(
                b"Metadata-Version: 2.1\nName: impostor\nVersion: 1.0\n",
                "its METADATA says Name: impostor, but the file is for evil",
                id="name",
            ),
            pytest.param(
                b"Metadata-Version: 2.1\nName: evil\nVersion: 9.9\n",
                "its METADATA says Version: 9.9, but the file is for 1.0",
                id="version",
            ),
            pytest.param(b"Metadata-Version: 2.1\n", "no Name or no Version", id="none"),
        ],
    )
    def test_metadata_that_lies(
        self, tmp_path: Path, cache: Cache, metadata: bytes, reason: str
    ) -> None:
        wheel = hostile_wheel(tmp_path / "w", [("evil/__init__.py", b"")], metadata=metadata)
        refused(cache, wheel, reason)

    def test_metadata_mismatch_of_the_test_factory(
        self, cache: Cache, dist_factory: DistFactory
    ) -> None:
        wheel = dist_factory.wheel("foo", "1.0", broken=Breakage.METADATA_MISMATCH)
        refused(cache, wheel, "its METADATA says Name: impostor")


class TestWheelBombs:
    def test_declared_size_over_the_limit(self, tmp_path: Path, cache: Cache) -> None:
        # 256 KiB of zeros deflate to a few hundred bytes.
        wheel = hostile_wheel(tmp_path / "w", [("evil/zeros.bin", b"\0" * 256 * 1024)])
        assert wheel.stat().st_size < 4096
        error = refused(cache, wheel, "BURROW_MAX_UNPACKED_SIZE", SMALL)
        assert "'evil/zeros.bin'" in error.message
        assert "zip bomb" in error.message
        assert "Raise BURROW_MAX_UNPACKED_SIZE if you trust it" in error.message

    def test_too_many_members(self, tmp_path: Path, cache: Cache) -> None:
        members = [(f"evil/m{i}.py", b"") for i in range(SMALL.max_files + 1)]
        error = refused(cache, tmp_path_wheel(tmp_path, members), "BURROW_MAX_ARCHIVE_FILES", SMALL)
        assert f"more than {SMALL.max_files:,} members" in error.message
        assert "Raise BURROW_MAX_ARCHIVE_FILES if you trust it" in error.message

    @pytest.mark.parametrize(
        "compression",
        [
            pytest.param(zipfile.ZIP_DEFLATED, id="deflated"),
            # bzip2 members take the streamed path through zipfile.
            pytest.param(zipfile.ZIP_BZIP2, id="bzip2-streamed"),
        ],
    )
    def test_headers_that_lie_about_the_size(
        self, tmp_path: Path, cache: Cache, compression: int
    ) -> None:
        # The headers say 100 bytes, within any limit; the data inflates to a megabyte.
        wheel = hostile_wheel(
            tmp_path / "w", [("evil/zeros.bin", b"\0" * 2**20)], compression=compression
        )
        lie_about_size(wheel, "evil/zeros.bin", 100)
        error = refused(cache, wheel, "evil/zeros.bin", SMALL)
        assert "corrupt" in error.message or "RECORD hash" in error.message

    def test_limits_zero_means_no_limit(self, tmp_path: Path, cache: Cache) -> None:
        wheel = hostile_wheel(tmp_path / "w", [("evil/zeros.bin", b"\0" * 256 * 1024)])
        target = unpack_wheel(
            cache,
            wheel,
            filename=wheel.name,
            sha256=sha256_of(wheel),
            limits=UnpackLimits(max_size=0, max_files=0),
        )
        assert (target / "evil" / "zeros.bin").stat().st_size == 256 * 1024

    def test_a_wheel_within_the_limits_unpacks(self, tmp_path: Path, cache: Cache) -> None:
        members = [(f"evil/m{i}.py", b"x" * 100) for i in range(10)]
        wheel = tmp_path_wheel(tmp_path, members)
        # 10 files + METADATA, WHEEL, RECORD: within 20 members and 64 KiB.
        target = unpack_wheel(
            cache, wheel, filename=wheel.name, sha256=sha256_of(wheel), limits=SMALL
        )
        assert (target / "evil" / "m9.py").read_bytes() == b"x" * 100


def tmp_path_wheel(tmp_path: Path, members: Members) -> Path:
    return hostile_wheel(tmp_path / "w", members)


class TestLimitsConfig:
    def test_defaults(self) -> None:
        limits = UnpackLimits.from_env({})
        assert limits == UnpackLimits(
            max_size=DEFAULT_MAX_UNPACKED_SIZE, max_files=DEFAULT_MAX_ARCHIVE_FILES
        )
        assert DEFAULT_MAX_UNPACKED_SIZE == 8 * 1024**3  # room for torch's 2.5 GiB
        assert DEFAULT_MAX_ARCHIVE_FILES == 200_000

    @pytest.mark.parametrize(
        ("raw", "size"),
        [
            ("1048576", 2**20),
            ("512K", 512 * 1024),
            ("3M", 3 * 2**20),
            ("8G", 8 * 2**30),
            ("2GiB", 2 * 2**30),
            ("1t", 2**40),
            ("0", 0),
        ],
    )
    def test_sizes(self, raw: str, size: int) -> None:
        limits = UnpackLimits.from_env({"BURROW_MAX_UNPACKED_SIZE": raw})
        assert limits.max_size == size

    @pytest.mark.parametrize(
        "env",
        [
            {"BURROW_MAX_UNPACKED_SIZE": "-1"},
            {"BURROW_MAX_UNPACKED_SIZE": "lots"},
            {"BURROW_MAX_UNPACKED_SIZE": "1.5G"},
            {"BURROW_MAX_ARCHIVE_FILES": "many"},
            {"BURROW_MAX_ARCHIVE_FILES": "-3"},
        ],
    )
    def test_bad_values_stop_the_daemon_at_start(self, env: dict[str, str]) -> None:
        (name,) = env
        with pytest.raises(ConfigError, match=name):
            UnpackLimits.from_env(env)

    def test_config_reads_them(self, tmp_path: Path) -> None:
        config = Config.from_env(
            {
                "BURROW_CACHE_DIR": str(tmp_path),
                "BURROW_MAX_UNPACKED_SIZE": "1M",
                "BURROW_MAX_ARCHIVE_FILES": "100_000",
            }
        )
        assert config.unpack_limits == UnpackLimits(max_size=2**20, max_files=100_000)

    def test_unpack_reads_the_environment_by_default(
        self, tmp_path: Path, cache: Cache, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("BURROW_MAX_ARCHIVE_FILES", "3")
        wheel = hostile_wheel(tmp_path / "w", [("evil/a.py", b""), ("evil/b.py", b"")])
        refused(cache, wheel, "more than 3 members")


# -- wheels, at install -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return one venv for the layout tests: a layout never changes its environment."""
    return make_venv(tmp_path_factory.mktemp("hostile") / "venv")


@pytest.fixture
async def environment(venv: Path, tmp_path: Path) -> Environment:
    info = await Interpreters(Cache(tmp_path / "interpreters")).query(venv / "bin" / "python")
    return Environment.from_info(info)


class TestHostileInstalls:
    @pytest.mark.parametrize(
        ("members", "entry_points", "reason"),
        [
            pytest.param(
                [],
                "[console_scripts]\npython = evil:main\n",
                "entry point 'python' would replace the environment's interpreter",
                id="console-python",
            ),
            pytest.param(
                [],
                "[gui_scripts]\npython3 = evil:main\n",
                "entry point 'python3' would replace the environment's interpreter",
                id="gui-python3",
            ),
            pytest.param(
                [],
                "[console_scripts]\n../../python = evil:main\n",
                "is not a plain file name",
                id="console-path",
            ),
            pytest.param(
                [("evil-1.0.data/scripts/python3.11", b"#!/bin/sh\n")],
                "",
                "would replace the environment's interpreter",
                id="data-script",
            ),
            pytest.param(
                [("evil-1.0.data/data/bin/python", b"#!/bin/sh\n")],
                "",
                "would replace the environment's interpreter",
                id="data-bin",
            ),
            pytest.param(
                [("evil-1.0.data/data/pyvenv.cfg", b"home = /tmp\n")],
                "",
                "would replace the environment's own",
                id="pyvenv-cfg",
            ),
        ],
    )
    async def test_refused_before_the_environment_changes(
        self,
        tmp_path: Path,
        environment: Environment,
        members: Members,
        entry_points: str,
        reason: str,
    ) -> None:
        cache = Cache(tmp_path / "cache")
        venv = environment.prefix
        files: Members = [("evil/__init__.py", b"def main(): pass\n"), *members]
        if entry_points:
            files.append(("evil-1.0.dist-info/entry_points.txt", entry_points.encode()))
        wheel = hostile_wheel(tmp_path / "w", files)
        archive = unpack_wheel(cache, wheel, filename=wheel.name, sha256=sha256_of(wheel))
        before = tree(venv)
        with pytest.raises(InvalidDistribution, match=reason) as info:
            layout(archive, environment)
        assert info.value.source == wheel.name
        assert tree(venv) == before
        assert (venv / "bin" / "python").resolve().name.startswith("python")


# -- sdists -------------------------------------------------------------------------------------


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    path = tmp_path / "unpacked"
    path.mkdir()
    return path


def sdist_refused(
    sdist: Path, dest: Path, match: str, limits: UnpackLimits | None = None
) -> InvalidDistribution:
    with pytest.raises(InvalidDistribution, match=match) as info:
        unpack_sdist(sdist, sdist.name, dest, limits=limits)
    error = info.value
    assert error.code == ErrorCode.INVALID_DISTRIBUTION
    assert error.source == sdist.name
    # Nothing landed beside the destination (the caller removes the destination itself).
    assert sorted(p.name for p in dest.parent.iterdir()) == sorted(["unpacked", "s"])
    return error


class TestHostileTarSdists:
    @pytest.mark.parametrize(
        ("member", "reason"),
        [
            pytest.param(("../evil.py", b"boom"), "escapes the archive", id="zip-slip"),
            pytest.param(("evil-1.0/../../evil.py", b"x"), "escapes the archive", id="nested"),
            pytest.param(("/tmp/burrow-hostile-abs.py", b"x"), "absolute path", id="absolute"),
            pytest.param(
                tar_entry("evil-1.0/passwd", tarfile.SYMTYPE, "/etc/passwd"),
                "symbolic link to '/etc/passwd', outside the source tree",
                id="absolute-symlink",
            ),
            pytest.param(
                tar_entry("evil-1.0/up", tarfile.SYMTYPE, "../../outside"),
                "symbolic link to '../../outside', outside the source tree",
                id="relative-symlink",
            ),
            pytest.param(
                tar_entry("evil-1.0/hard", tarfile.LNKTYPE, "../outside"),
                "hard link to '../outside', outside the source tree",
                id="hardlink",
            ),
            pytest.param(
                tar_entry("evil-1.0/hard", tarfile.LNKTYPE, "/etc/passwd"),
                "hard link to '/etc/passwd'",
                id="absolute-hardlink",
            ),
            pytest.param(
                tar_entry("evil-1.0/tty", tarfile.CHRTYPE), "special file", id="char-device"
            ),
            pytest.param(
                tar_entry("evil-1.0/disk", tarfile.BLKTYPE), "special file", id="block-device"
            ),
            pytest.param(tar_entry("evil-1.0/pipe", tarfile.FIFOTYPE), "special file", id="fifo"),
            pytest.param(("evil-1.0/evil.py", b"again"), "appears twice", id="duplicate"),
            pytest.param(("./evil-1.0/evil.py", b"again"), "appears twice", id="duplicate-dot"),
            pytest.param(
                tar_entry("evil-1.0/evil.py", tarfile.DIRTYPE), "appears twice", id="file-then-dir"
            ),
        ],
    )
    def test_refused_and_nothing_written(
        self, tmp_path: Path, dest: Path, member: tarfile.TarInfo | tuple[str, bytes], reason: str
    ) -> None:
        sdist = tar_sdist(tmp_path / "s", [*_GOOD_SDIST, member])
        error = sdist_refused(sdist, dest, reason)
        name = member.name if isinstance(member, tarfile.TarInfo) else member[0]
        assert repr(name) in error.message
        # Checked before extraction: a hostile archive writes nothing at all.
        assert files_under(dest) == []
        assert not os.path.lexists("/tmp/burrow-hostile-abs.py")

    def test_declared_size_over_the_limit(self, tmp_path: Path, dest: Path) -> None:
        sdist = tar_sdist(tmp_path / "s", [*_GOOD_SDIST, ("evil-1.0/zeros", b"\0" * 2**17)])
        assert sdist.stat().st_size < 4096
        error = sdist_refused(sdist, dest, "BURROW_MAX_UNPACKED_SIZE", SMALL)
        assert "'evil-1.0/zeros'" in error.message
        assert files_under(dest) == []

    def test_too_many_members(self, tmp_path: Path, dest: Path) -> None:
        many = [(f"evil-1.0/m{i}", b"") for i in range(SMALL.max_files)]
        sdist = tar_sdist(tmp_path / "s", [*_GOOD_SDIST, *many])
        sdist_refused(sdist, dest, "more than 20 members .*BURROW_MAX_ARCHIVE_FILES", SMALL)
        assert files_under(dest) == []

    def test_links_inside_the_tree_are_kept(self, tmp_path: Path, dest: Path) -> None:
        sdist = tar_sdist(
            tmp_path / "s",
            [
                tar_entry("evil-1.0", tarfile.DIRTYPE),
                *_GOOD_SDIST,
                tar_entry("evil-1.0/", tarfile.DIRTYPE),  # a directory twice is harmless
                tar_entry("evil-1.0/docs/evil.py", tarfile.SYMTYPE, "../evil.py"),
                tar_entry("evil-1.0/copy.py", tarfile.LNKTYPE, "evil-1.0/evil.py"),
            ],
        )
        tree_root = unpack_sdist(sdist, sdist.name, dest)
        assert tree_root == dest / "evil-1.0"
        assert (tree_root / "docs" / "evil.py").read_bytes() == b"x = 1\n"
        assert (tree_root / "copy.py").read_bytes() == b"x = 1\n"

    def test_a_good_sdist_unpacks(self, tmp_path: Path, dest: Path) -> None:
        sdist = tar_sdist(tmp_path / "s", _GOOD_SDIST)
        tree_root = unpack_sdist(sdist, sdist.name, dest, limits=SMALL)
        assert files_under(tree_root) == ["PKG-INFO", "evil.py"]

    def test_metadata_read_refuses_too_many_members(self, tmp_path: Path) -> None:
        many = [(f"evil-1.0/m{i}", b"") for i in range(SMALL.max_files)]
        sdist = tar_sdist(tmp_path / "s", [*_GOOD_SDIST, *many])
        with pytest.raises(InvalidDistribution, match="BURROW_MAX_ARCHIVE_FILES"):
            sdist_metadata(sdist, sdist.name, "evil", "1.0", limits=SMALL)
        assert sdist_metadata(sdist, sdist.name, "evil", "1.0").name == "evil"


def _tar_bytes(
    members: Members, headers: Sequence[tarfile.TarInfo] = (), fill: bytes = b""
) -> bytes:
    """Return a tar: each of ``headers`` with ``fill`` as its data (cut or padded to its
    size and a whole block), then the files ``members``."""
    out = io.BytesIO()
    for header in headers:
        out.write(header.tobuf(format=tarfile.GNU_FORMAT))
        out.write(fill[: header.size].ljust(-(-header.size // 512) * 512, b"\0"))
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return out.getvalue()


#: The compressions of the tar sdists burrowd reads.
COMPRESS: Final[dict[str, Callable[[bytes], bytes]]] = {
    ".tar.gz": gzip.compress,
    ".tar.bz2": bz2.compress,
    ".tar.xz": lzma.compress,
}


def _compressed_sdist(dest: Path, suffix: str, tar: bytes) -> Path:
    """Write ``tar`` compressed as ``evil-1.0<suffix>`` into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"evil-1.0{suffix}"
    path.write_bytes(COMPRESS[suffix](tar))
    return path


def _long_name(size: int) -> tarfile.TarInfo:
    """Return a GNU long-name header whose name is ``size`` bytes long."""
    info = tarfile.TarInfo("././@LongLink")
    info.size = size
    info.type = tarfile.GNUTYPE_LONGNAME
    return info


class TestCompressedTarBombs:
    """What tarfile holds or skips outside any member (long names, PAX records, the data a
    metadata read passes over) is bounded too: bz2 packs a GiB of one byte in a KiB."""

    @pytest.fixture(autouse=True)
    def _small_reads(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # The real bound is 64 MiB a read; 1 MiB keeps the bombs quick to build.
        monkeypatch.setattr(archive, "_MAX_TAR_READ", 2**20)

    @pytest.mark.parametrize("suffix", list(COMPRESS))
    def test_a_long_name_larger_than_any_real_one(
        self, tmp_path: Path, dest: Path, suffix: str
    ) -> None:
        tar = _tar_bytes(_GOOD_SDIST, [_long_name(2 * 2**20)], b"a" * 2**21)
        sdist = _compressed_sdist(tmp_path / "s", suffix, tar)
        sdist_refused(sdist, dest, "asks to read 2,097,152 bytes at once")
        with pytest.raises(InvalidDistribution, match="archive bomb"):
            sdist_metadata(sdist, sdist.name, "evil", "1.0")

    def test_long_names_that_add_up_past_the_limit(self, tmp_path: Path, dest: Path) -> None:
        # Each is within a read; together they pass what SMALL allows with its headers.
        size = 2**20 - 1024
        tar = _tar_bytes(_GOOD_SDIST, [_long_name(size)] * 4, b"a" * size)
        sdist = _compressed_sdist(tmp_path / "s", ".tar.bz2", tar)
        assert sdist.stat().st_size < 4096
        sdist_refused(sdist, dest, "decompresses to more than", SMALL)
        with pytest.raises(InvalidDistribution, match="decompresses to more than"):
            sdist_metadata(sdist, sdist.name, "evil", "1.0", limits=SMALL)

    def test_a_metadata_read_refuses_a_declared_bomb_at_its_header(self, tmp_path: Path) -> None:
        # As an unpack does: what it declares is not inflated only to be skipped.
        tar = _tar_bytes([*_GOOD_SDIST, ("evil-1.0/zeros", b"\0" * 2**18)])
        sdist = _compressed_sdist(tmp_path / "s", ".tar.bz2", tar)
        with pytest.raises(InvalidDistribution, match="declare more than"):
            sdist_metadata(sdist, sdist.name, "evil", "1.0", limits=SMALL)

    @pytest.mark.parametrize("suffix", list(COMPRESS))
    def test_a_damaged_stream_is_an_invalid_distribution(
        self, tmp_path: Path, dest: Path, suffix: str
    ) -> None:
        tar = _tar_bytes([*_GOOD_SDIST, ("evil-1.0/noise", os.urandom(200_000))])
        data = bytearray(COMPRESS[suffix](tar))
        middle = len(data) // 2
        data[middle : middle + 100] = bytes(b ^ 0xFF for b in data[middle : middle + 100])
        sdist = tmp_path / "s" / f"evil-1.0{suffix}"
        sdist.parent.mkdir()
        sdist.write_bytes(bytes(data))
        sdist_refused(sdist, dest, "not a readable source archive")
        with pytest.raises(InvalidDistribution, match="not a readable source archive"):
            sdist_metadata(sdist, sdist.name, "evil", "1.0")

    @pytest.mark.parametrize("trailer", [b"\n", b"\0" * 512], ids=["newline", "zeros"])
    def test_bytes_after_a_whole_gzip_stream_are_ignored(
        self, tmp_path: Path, dest: Path, trailer: bytes
    ) -> None:
        # gzip -d, pip and tarfile take such a file; a failed CRC is still refused (above).
        sdist = _compressed_sdist(tmp_path / "s", ".tar.gz", _tar_bytes(_GOOD_SDIST))
        sdist.write_bytes(sdist.read_bytes() + trailer)
        tree_root = unpack_sdist(sdist, sdist.name, dest, limits=SMALL)
        assert files_under(tree_root) == ["PKG-INFO", "evil.py"]
        assert sdist_metadata(sdist, sdist.name, "evil", "1.0", limits=SMALL).name == "evil"

    @pytest.mark.parametrize("suffix", list(COMPRESS))
    def test_a_good_one_unpacks(self, tmp_path: Path, dest: Path, suffix: str) -> None:
        sdist = _compressed_sdist(tmp_path / "s", suffix, _tar_bytes(_GOOD_SDIST))
        tree_root = unpack_sdist(sdist, sdist.name, dest, limits=SMALL)
        assert files_under(tree_root) == ["PKG-INFO", "evil.py"]
        assert sdist_metadata(sdist, sdist.name, "evil", "1.0", limits=SMALL).name == "evil"


class TestHostileZipSdists:
    @pytest.mark.parametrize(
        ("extra", "reason"),
        [
            pytest.param(("../evil.py", b"boom"), "escapes the archive", id="zip-slip"),
            pytest.param(("/tmp/burrow-hostile-abs.py", b"x"), "absolute path", id="absolute"),
            pytest.param(("evil-1.0/evil.py", b"again"), "appears twice", id="duplicate"),
        ],
    )
    def test_refused_and_nothing_written(
        self, tmp_path: Path, dest: Path, extra: tuple[str, bytes], reason: str
    ) -> None:
        sdist = zip_sdist(tmp_path / "s", [*_GOOD_SDIST, extra])
        error = sdist_refused(sdist, dest, reason)
        assert repr(extra[0]) in error.message
        assert files_under(dest) == []

    def test_an_executable_member_stays_executable(self, tmp_path: Path, dest: Path) -> None:
        # ./configure and friends: pip's unzip and uv keep the bits.
        sdist = zip_sdist(
            tmp_path / "s",
            [*_GOOD_SDIST, ("evil-1.0/configure", b"#!/bin/sh\n")],
            modes={"evil-1.0/configure": stat.S_IFREG | 0o755},
        )
        tree = unpack_sdist(sdist, sdist.name, dest)
        assert (tree / "configure").stat().st_mode & 0o111
        assert not (tree / "evil.py").stat().st_mode & 0o111

    def test_symlink(self, tmp_path: Path, dest: Path) -> None:
        sdist = zip_sdist(
            tmp_path / "s",
            [*_GOOD_SDIST, ("evil-1.0/passwd", b"/etc/passwd")],
            modes={"evil-1.0/passwd": stat.S_IFLNK | 0o777},
        )
        sdist_refused(sdist, dest, "'evil-1.0/passwd' is a symbolic link")
        assert files_under(dest) == []

    def test_declared_size_over_the_limit(self, tmp_path: Path, dest: Path) -> None:
        sdist = zip_sdist(tmp_path / "s", [*_GOOD_SDIST, ("evil-1.0/zeros", b"\0" * 2**17)])
        sdist_refused(sdist, dest, "BURROW_MAX_UNPACKED_SIZE", SMALL)
        assert files_under(dest) == []

    def test_too_many_members(self, tmp_path: Path, dest: Path) -> None:
        many = [(f"evil-1.0/m{i}", b"") for i in range(SMALL.max_files)]
        sdist = zip_sdist(tmp_path / "s", [*_GOOD_SDIST, *many])
        sdist_refused(sdist, dest, "BURROW_MAX_ARCHIVE_FILES", SMALL)
        assert files_under(dest) == []
        with pytest.raises(InvalidDistribution, match="BURROW_MAX_ARCHIVE_FILES"):
            sdist_metadata(sdist, sdist.name, "evil", "1.0", limits=SMALL)

    def test_a_header_that_lies_about_the_size(self, tmp_path: Path, dest: Path) -> None:
        sdist = zip_sdist(tmp_path / "s", [*_GOOD_SDIST, ("evil-1.0/zeros", b"\0" * 2**20)])
        lie_about_size(sdist, "evil-1.0/zeros", 100)
        sdist_refused(sdist, dest, "'evil-1.0/zeros'", SMALL)
        zeros = dest / "evil-1.0" / "zeros"
        assert not zeros.exists() or zeros.stat().st_size <= 100

    def test_a_good_zip_sdist_unpacks(self, tmp_path: Path, dest: Path) -> None:
        sdist = zip_sdist(tmp_path / "s", [("evil-1.0/", b""), *_GOOD_SDIST])
        tree_root = unpack_sdist(sdist, sdist.name, dest, limits=SMALL)
        assert files_under(tree_root) == ["PKG-INFO", "evil.py"]


# -- end to end ---------------------------------------------------------------------------------


@pytest.fixture
def small_limits(tmp_path: Path) -> Iterator[Burrow]:
    """Return the CLI of a private daemon (started by the first command) with small limits."""
    with burrow_env() as env:
        env.env.update(BURROW_MAX_UNPACKED_SIZE="64K", BURROW_MAX_ARCHIVE_FILES="20")
        work = tmp_path / "work"
        work.mkdir()
        yield Burrow(env, work)


class TestEndToEnd:
    def test_sync_refuses_hostile_wheels_and_changes_nothing(
        self, small_limits: Burrow, fake_index: FakeIndex, tmp_path: Path
    ) -> None:
        burrow = small_limits
        fake_index.add(DistSpec("good", "1.0"))
        fake_index.add(DistSpec("slip", "1.0"), broken=Breakage.ZIP_SLIP)
        bomb = hostile_wheel(
            tmp_path / "bomb", [("bomb/zeros.bin", b"\0" * 2**18)], name="bomb", version="1.0"
        )
        fake_index.add(bomb)
        venv = make_venv(tmp_path / "venv")
        burrow.ok(
            "sync",
            requirements(burrow.cwd / "good.txt", "good==1.0"),
            "-p",
            venv,
            "-i",
            fake_index.simple_url,
        )
        cache = Cache(burrow.env.cache)
        venv_before = tree(venv)
        cache_before = cache_snapshot(cache, Bucket.ARCHIVE, Bucket.WHEELS)
        for pin, filename, words in [
            ("slip==1.0", "slip-1.0-py3-none-any.whl", ["'../evil.py'", "escapes the archive"]),
            (
                "bomb==1.0",
                bomb.name,
                ["'bomb/zeros.bin'", "zip bomb", "Raise BURROW_MAX_UNPACKED_SIZE if you trust it"],
            ),
        ]:
            reqs = requirements(burrow.cwd / "r.txt", "good==1.0", pin)
            args = ("sync", reqs, "-p", venv, "-i", fake_index.simple_url)
            stderr = burrow.fails(*args)
            assert filename in stderr
            for word in words:
                assert word in stderr, stderr
            error = burrow.json_error(*args)
            assert error["code"] == ErrorCode.INVALID_DISTRIBUTION
            assert error["data"]["source"] == filename
            assert tree(venv) == venv_before
            assert cache_snapshot(cache, Bucket.ARCHIVE, Bucket.WHEELS) == cache_before
            assert os.listdir(cache.tmp) == []
        assert [str(p) for p in burrow.env.root.rglob("evil.py")] == []
        assert [str(p) for p in venv.rglob("evil.py")] == []

    def test_a_hostile_sdist_from_the_index_is_not_kept(
        self, small_limits: Burrow, fake_index: FakeIndex, tmp_path: Path
    ) -> None:
        burrow = small_limits
        sdist = tar_sdist(tmp_path / "s", [*_GOOD_SDIST, ("evil-1.0/../../evil.py", b"x")])
        fake_index.add(sdist)
        venv = make_venv(tmp_path / "venv")
        venv_before = tree(venv)
        reqs = requirements(burrow.cwd / "r.txt", "evil==1.0")
        stderr = burrow.fails("sync", reqs, "-p", venv, "-i", fake_index.simple_url)
        assert "evil-1.0.tar.gz" in stderr
        assert "'evil-1.0/../../evil.py'" in stderr, stderr
        assert tree(venv) == venv_before
        cache = Cache(burrow.env.cache)
        # Downloaded, hash-checked, refused at unpack: the download is not kept either.
        assert [str(p) for p in cache.root.rglob("evil-1.0.tar.gz") if p.is_file()] == []
        kept = cache.root / "built-wheels-v0"
        assert [p.name for p in kept.rglob("*") if p.is_file() and p.suffix != ".lock"] == []
        assert os.listdir(cache.tmp) == []
        assert [str(p) for p in burrow.env.root.rglob("evil.py")] == []
