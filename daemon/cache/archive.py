"""Unpack wheels into ``archive-v0``, and sdists for builds: validated, whole or not at all.

A wheel is extracted into a temporary directory, every member checked on the way (no
absolute or ``..`` paths, no symlinks, no duplicates, listed in RECORD, its CRC-32 right),
then a manifest is written and the directory is renamed to ``archive-v0/<sha256>``. A RECORD
row that points outside the wheel, a METADATA that names another project or version, and an
archive larger than :class:`~burrowd.daemon.config.UnpackLimits` allows (a zip bomb) are
refused the same way.

A member's content is not compared with its RECORD hash, as pip and uv do not compare it
either: the wheel's own bytes were checked against the index's sha256 (or a ``--hash``)
already, and the CRC-32 of every member catches an archive damaged since. The RECORD hash
would only say whether the wheel's builder wrote its RECORD right: published wheels exist
whose RECORD is wrong (some torch releases; astral-sh/uv#11723), which pip and uv install.
Checking it was also the largest cost of unpacking after inflating (sha256 of 800 MB: 0.6 s
of CPU in a fill of the large benchmark set, where the CRC costs 0.03 s with ISA-L).

:func:`unpack_sdist` applies the same rules to source archives (with tarfile's ``data``
filter for tars). These functions block; the daemon runs them in worker threads.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import errno
import functools
import gzip
import hashlib
import io
import logging
import lzma
import mmap
import os
import stat
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final

import msgspec
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.store import Cache, remove_tree
from burrowd.daemon.config import UnpackLimits
from burrowd.daemon.errors import DaemonError, InvalidDistribution
from burrowd.daemon.metadata import check_identity, parse_metadata

__all__ = [
    "MANIFEST",
    "TAR_ERRORS",
    "ArchiveManifest",
    "check_declared_size",
    "check_member_count",
    "find_dist_info",
    "open_tar_sdist",
    "read_manifest",
    "unpack_sdist",
    "unpack_wheel",
    "unsafe_member",
    "wheel_metadata_bytes",
]

log = logging.getLogger(__name__)


@functools.cache
def _zlib() -> Any:
    """Return ISA-L's zlib module, or zlib where isal is not installed (loaded on first
    use, not at the daemon's start).

    ISA-L inflates wheel members about twice as fast as zlib: inflating is the largest
    cost of unpacking in user space (800 MB for the large benchmark set: 2.4 s with zlib,
    1.2 s with ISA-L). Its CRC-32 is about seven times as fast as zlib's.
    """
    try:
        from isal import isal_zlib  # noqa: PLC0415
    except ImportError:  # pragma: no cover - isal has wheels where the daemon runs here
        return zlib
    return isal_zlib


MANIFEST: Final = ".burrow-archive"
_CHUNK: Final = 1024 * 1024
_SIGNATURES: Final = ("RECORD.jws", "RECORD.p7s")


class ArchiveManifest(msgspec.Struct, frozen=True, kw_only=True):
    """What an unpacked archive holds; written last, inside the directory, before the rename."""

    filename: str
    sha256: str
    dist_info: str
    files: int
    size: int
    created: float


_manifest_decoder: Final = msgspec.msgpack.Decoder(ArchiveManifest)
_encoder: Final = msgspec.msgpack.Encoder()


def read_manifest(archive: Path) -> ArchiveManifest | None:
    """Return the manifest of an unpacked archive, or ``None`` if it is not a whole one."""
    try:
        data = (archive / MANIFEST).read_bytes()
        manifest = _manifest_decoder.decode(data)
    except (OSError, msgspec.DecodeError):
        return None
    if not (archive / manifest.dist_info / "RECORD").is_file():
        return None
    if not (archive / manifest.dist_info / "METADATA").is_file():
        return None
    return manifest


def unsafe_member(name: str) -> str | None:
    """Return why a wheel member name (or a RECORD path) is unsafe, or ``None``."""
    if not name or "\\" in name or "\0" in name:
        return "has a backslash or NUL in its name"
    # Plain string checks: this runs for every member of every wheel.
    if name.startswith("/"):
        return "is an absolute path"
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        return "escapes the archive with '..'"
    if "." in parts or "" in parts:
        return "has an empty or '.' path component"
    if len(name) > 1 and name[1] == ":":
        return "has a drive letter"
    return None


def find_dist_info(names: list[str], filename: str) -> str:
    """Return the ``.dist-info`` directory of the wheel ``filename`` among ``names``."""
    try:
        name, version, _build, _tags = parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise InvalidDistribution(filename, f"not a valid wheel filename: {exc}") from exc
    candidates = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
    matching = []
    for cand in candidates:
        stem = cand[: -len(".dist-info")]
        dist, _, ver = stem.rpartition("-")
        if canonicalize_name(dist) == name and _same_version(ver, str(version)):
            matching.append(cand)
    if len(matching) != 1:
        found = ", ".join(sorted(candidates)) or "none"
        raise InvalidDistribution(
            filename,
            f"expected one {name}-{version}.dist-info directory, found {found}",
        )
    return matching[0]


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def wheel_metadata_bytes(zf: zipfile.ZipFile, filename: str) -> bytes:
    """Return the ``METADATA`` file of an open wheel."""
    dist_info = find_dist_info(zf.namelist(), filename)
    try:
        return zf.read(f"{dist_info}/METADATA")
    except KeyError:
        raise InvalidDistribution(filename, f"{dist_info}/METADATA is missing") from None


def _read_record(zf: zipfile.ZipFile, dist_info: str, filename: str) -> dict[str, tuple[str, str]]:
    try:
        data = zf.read(f"{dist_info}/RECORD")
    except KeyError:
        raise InvalidDistribution(filename, f"{dist_info}/RECORD is missing") from None
    except _MEMBER_FAILURES as exc:
        failure = _member_failure(filename, f"{dist_info}/RECORD", exc)
        if failure is exc:
            raise
        raise failure from exc
    entries: dict[str, tuple[str, str]] = {}
    try:
        for row in csv.reader(io.StringIO(data.decode("utf-8", "replace"))):
            if not row:
                continue
            path = row[0]
            digest = row[1] if len(row) > 1 else ""
            size = row[2] if len(row) > 2 else ""
            entries[path] = (digest, size)
    except csv.Error as exc:
        raise InvalidDistribution(
            filename, f"{dist_info}/RECORD is not valid CSV ({exc})"
        ) from None
    return entries


def _check_listed(
    record: dict[str, tuple[str, str]], name: str, dist_info: str, filename: str
) -> None:
    """Refuse ``name`` unless RECORD lists it with a usable hash (the installed RECORD
    repeats it; the content is not compared with it: see the module's docstring)."""
    entry = record.get(name)
    if entry is None:
        if name == f"{dist_info}/RECORD" or name in {f"{dist_info}/{s}" for s in _SIGNATURES}:
            return
        raise InvalidDistribution(filename, f"{name} is in the wheel but not listed in RECORD")
    digest, _size = entry
    if not digest:
        if name == f"{dist_info}/RECORD" or name.endswith(".pyc"):
            return
        raise InvalidDistribution(filename, f"RECORD has no hash for {name}")
    algorithm, sep, _value = digest.partition("=")
    if not sep or algorithm not in hashlib.algorithms_guaranteed or algorithm in ("md5", "sha1"):
        raise InvalidDistribution(filename, f"RECORD has an unusable hash {digest!r} for {name}")


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def check_member_count(filename: str, count: int, limits: UnpackLimits) -> None:
    """Refuse an archive of more than ``limits.max_files`` members (``count`` so far)."""
    if limits.max_files and count > limits.max_files:
        raise InvalidDistribution(
            filename,
            f"it has more than {limits.max_files:,} members (BURROW_MAX_ARCHIVE_FILES), "
            "which looks like an archive bomb; nothing was unpacked. Raise "
            "BURROW_MAX_ARCHIVE_FILES if you trust it",
        )


def _check_size(
    filename: str, total: int, limits: UnpackLimits, member: str, *, declared: bool
) -> None:
    """Refuse ``total`` bytes (declared by the archive, or written so far) over the limit."""
    if limits.max_size and total > limits.max_size:
        how = "its members declare" if declared else "its members (the headers lie) inflate to"
        raise InvalidDistribution(
            filename,
            f"{how} more than {_human(limits.max_size)} ({total:,} bytes, the limit "
            f"BURROW_MAX_UNPACKED_SIZE is {limits.max_size:,}; reached at member {member!r}), "
            "which looks like a zip bomb; nothing was kept. Raise BURROW_MAX_UNPACKED_SIZE "
            "if you trust it",
        )


def check_declared_size(filename: str, total: int, limits: UnpackLimits, member: str) -> None:
    """Refuse an archive whose members declared so far (``total`` bytes, up to ``member``)
    exceed ``limits``."""
    _check_size(filename, total, limits, member, declared=True)


def _check_declared(filename: str, sizes: list[tuple[str, int]], limits: UnpackLimits) -> None:
    """Refuse an archive whose stated member count or sizes exceed ``limits``."""
    check_member_count(filename, len(sizes), limits)
    if not limits.max_size:
        return
    total = 0
    for name, size in sizes:
        total += size
        if total > limits.max_size:
            _check_size(filename, total, limits, name, declared=True)


def unpack_wheel(
    cache: Cache,
    wheel: Path,
    *,
    filename: str,
    sha256: str,
    limits: UnpackLimits | None = None,
) -> Path:
    """Unpack ``wheel`` into ``archive-v0/<sha256>`` unless a whole archive is already there.

    Raise :class:`InvalidDistribution` for a broken or unsafe wheel; nothing is left behind.
    ``limits`` defaults to the ``BURROW_MAX_*`` variables of this process.
    """
    if limits is None:
        limits = UnpackLimits.from_env()
    target = cache.path(Bucket.ARCHIVE, sha256)
    if read_manifest(target) is not None:
        return target
    if target.exists():
        log.warning("replacing incomplete archive %s", target)
        remove_tree(target)
    tmp = cache.temp_dir(prefix="unpack-")
    try:
        manifest = _extract(wheel, tmp, filename=filename, sha256=sha256, limits=limits)
        (tmp / MANIFEST).write_bytes(_encoder.encode(manifest))
        cache.persist_dir(tmp, target)
    except BaseException:
        remove_tree(tmp)
        raise
    return target


_LOCAL_HEADER: Final = struct.Struct("<4s2B4HL2L2H")
#: Members up to this size are inflated in one call; larger ones are streamed.
_IN_MEMORY_MAX: Final = 64 * 1024 * 1024
_STORED: Final = 0
_DEFLATED: Final = 8


def _write_member(
    zf: zipfile.ZipFile, view: memoryview | None, info: zipfile.ZipInfo, out: str
) -> None:
    """Write one member to ``out``, its size and CRC-32 checked.

    Stored and deflated members (every wheel's) are read straight from a memory map of
    the wheel and inflated in one call: ``ZipFile.open`` costs a Python-level reader per
    member, which dominated unpacking wheels of thousands of small files. A deflated
    member is inflated from the map itself, not from a copy of its bytes (250 MB of
    copies, in fresh memory, in a fill of the large benchmark set). Very large, encrypted
    or otherwise compressed members are streamed through ``zipfile``.

    No view of the map outlives the call, also when it raises: the map could not be
    closed while one is alive.
    """
    if (
        view is None
        or info.compress_type not in (_STORED, _DEFLATED)
        or info.flag_bits & 0x1
        or info.file_size > _IN_MEMORY_MAX
    ):
        _stream_member(zf, info, out)
        return
    start = info.header_offset
    fields = None
    if 0 <= start <= len(view) - _LOCAL_HEADER.size:
        fields = _LOCAL_HEADER.unpack_from(view, start)
    if fields is None or fields[0] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
    # fields[10] and [11]: the lengths of the name and extra field that precede the data.
    begin = start + _LOCAL_HEADER.size + fields[10] + fields[11]
    with view[begin : begin + info.compress_size] as raw:
        if len(raw) != info.compress_size:
            raise EOFError(f"{info.filename} is truncated")
        data = bytes(raw) if info.compress_type == _STORED else _inflate(raw, info)
    if len(data) != info.file_size:
        raise zipfile.BadZipFile(f"bad size for {info.filename}")
    if _zlib().crc32(data) != info.CRC:
        raise zipfile.BadZipFile(f"bad CRC for {info.filename}")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        rest = memoryview(data)
        while rest:
            rest = rest[os.write(fd, rest) :]
    finally:
        os.close(fd)


def _inflate(raw: memoryview, info: zipfile.ZipInfo) -> bytes:
    """Return the inflated ``raw`` of ``info``, never more than one byte past its size."""
    # Never inflate past the size the member claims: a few hundred kilobytes of deflated
    # zeros would otherwise take gigabytes before the size check.
    inflating = _zlib()
    inflater = inflating.decompressobj(-15)
    try:
        data: bytes = inflater.decompress(raw, info.file_size + 1)
    except inflating.error as exc:
        raise zipfile.BadZipFile(f"{info.filename} cannot be inflated ({exc})") from exc
    if not inflater.eof:
        raise zipfile.BadZipFile(f"{info.filename} inflates past its stated size")
    return data


def _make_dirs(dest: Path, parent: str, made: set[str]) -> None:
    """Create ``parent`` and its missing ancestors under the fresh ``dest``, once each.

    ``dest`` starts empty, so ``made`` knows exactly which directories exist: each is
    created with one ``mkdir`` (file system calls are the cost of unpacking small files).
    """
    missing: list[str] = []
    while parent and parent not in made:
        missing.append(parent)
        parent = os.path.dirname(parent)
    for directory in reversed(missing):
        os.mkdir(os.path.join(dest, directory))
        made.add(directory)


def _stream_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, out: str) -> None:
    """Write one member through ``zipfile`` in chunks (large or unusual members).

    Never more than the size the member claims is written: a lying header is corrupt.
    ``zipfile`` checks the CRC-32 as the last chunk is read.
    """
    written = 0
    with zf.open(info) as src, open(out, "wb") as dst:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > info.file_size:
                raise zipfile.BadZipFile(f"{info.filename} inflates past its stated size")
            dst.write(chunk)
    if written != info.file_size:
        raise zipfile.BadZipFile(f"bad size for {info.filename}")


def _extract(
    wheel: Path, dest: Path, *, filename: str, sha256: str, limits: UnpackLimits
) -> ArchiveManifest:
    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidDistribution(filename, f"not a readable zip archive ({exc})") from exc
    with zf, open(wheel, "rb") as raw, contextlib.ExitStack() as stack:
        # The mapping is closed on every exit, also when a member turns out broken.
        view: memoryview | None
        try:
            mapped = stack.enter_context(mmap.mmap(raw.fileno(), 0, access=mmap.ACCESS_READ))
            # Released before the map is closed (the stack unwinds in reverse).
            view = stack.enter_context(memoryview(mapped))
        except (OSError, ValueError):
            view = None
        infos = zf.infolist()
        _check_declared(filename, [(i.filename, i.file_size) for i in infos], limits)
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            # Found before anything is written: a later copy would replace the checked one.
            once: set[str] = set()
            for twice in names:
                if twice in once:
                    raise InvalidDistribution(filename, f"member {twice!r} appears twice")
                once.add(twice)
        dist_info = find_dist_info(names, filename)
        record = _read_record(zf, dist_info, filename)
        # Every name is known to be there once (checked above).
        seen = set(names)
        made: set[str] = set()
        # Plain string operations per member (not os.path): the names are checked relative
        # paths, and this loop runs for every file of every wheel.
        root = os.fspath(dest) + os.sep
        total = 0
        count = 0
        for info in infos:
            name = info.filename
            why = unsafe_member(name)
            if why is not None:
                raise InvalidDistribution(filename, f"member {name!r} {why}")
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise InvalidDistribution(filename, f"member {name!r} is a symbolic link")
            if name.endswith("/"):
                continue
            listed = record.get(name)
            if listed is None or not listed[0].startswith("sha256="):
                # Anything but the usual sha256 row is looked at closely.
                _check_listed(record, name, dist_info, filename)
            out = root + name
            parent = name.rpartition("/")[0]
            try:
                if parent and parent not in made:
                    _make_dirs(dest, parent, made)
                _write_member(zf, view, info, out)
            except _MEMBER_FAILURES as exc:
                failure = _member_failure(filename, name, exc)
                if failure is exc:
                    raise
                raise failure from exc
            if mode & 0o111:
                os.chmod(out, 0o755)
            total += info.file_size
            count += 1
            if limits.max_size and total > limits.max_size:
                # Each member wrote exactly its stated size, whose sum was checked above;
                # this stays in case one day a member is allowed to differ.
                _check_size(filename, total, limits, name, declared=False)
        if f"{dist_info}/METADATA" not in seen:
            raise InvalidDistribution(filename, f"{dist_info}/METADATA is missing")
        # Members were checked one by one; RECORD rows that name no member would only be
        # caught at install time (leaving a hostile archive in the cache), so check them now.
        for path in record.keys() - seen:
            if path and (why := unsafe_member(path)) is not None:
                raise InvalidDistribution(
                    filename, f"its RECORD lists {path!r}, which {why}; it was not unpacked"
                )
        meta = parse_metadata((dest / dist_info / "METADATA").read_bytes(), filename)
        name, version, _build, _tags = parse_wheel_filename(filename)
        check_identity(meta, name, str(version), filename)
    return ArchiveManifest(
        filename=filename,
        sha256=sha256,
        dist_info=dist_info,
        files=count,
        size=total,
        created=time.time(),
    )


# -- source distributions -------------------------------------------------------------------


def unpack_sdist(
    path: Path, filename: str, dest: Path, *, limits: UnpackLimits | None = None
) -> Path:
    """Unpack the sdist at ``path`` into the empty directory ``dest``; return its source tree.

    The tree is the archive's one top-level directory, or ``dest`` itself. Raise
    :class:`InvalidDistribution` for an unreadable or hostile archive: a member with an
    absolute or ``..`` path, one named twice, a link leaving the tree (or any link in a
    zip), a device or FIFO, or more members or bytes than ``limits`` allow. ``dest`` may
    then hold part of the archive: the caller removes it (it is a temporary directory).
    """
    if limits is None:
        limits = UnpackLimits.from_env()
    try:
        if filename.endswith(".zip"):
            _unpack_zip_sdist(path, filename, dest, limits)
        else:
            _unpack_tar_sdist(path, filename, dest, limits)
    except DaemonError:
        raise
    except (zipfile.BadZipFile, *TAR_ERRORS) as exc:
        raise InvalidDistribution(filename, f"not a readable source archive ({exc})") from exc
    tops = list(dest.iterdir())
    if len(tops) == 1 and tops[0].is_dir() and not tops[0].is_symlink():
        return tops[0]
    return dest


def _sdist_member(filename: str, name: str, seen: dict[str, bool], *, is_dir: bool) -> None:
    """Refuse a source archive member's name: unsafe, or a second copy of a file.

    ``seen`` maps the names met so far to whether each is a directory: a directory listed
    twice is harmless (some tar tools do it), anything else named twice is refused.
    """
    clean = name.removeprefix("./").rstrip("/")
    if clean in ("", "."):
        return
    why = unsafe_member(clean)
    if why is not None:
        raise InvalidDistribution(
            filename, f"member {name!r} {why}; refusing to unpack the source archive"
        )
    if clean in seen and not (is_dir and seen[clean]):
        raise InvalidDistribution(
            filename,
            f"member {name!r} appears twice (a later copy would silently replace the first)",
        )
    seen[clean] = is_dir


#: No header of a real tar (a long name, a PAX record) comes near this; tarfile reads one
#: whole into memory, so a larger one is a bomb (bz2 packs a GiB of one byte in a KiB).
_MAX_TAR_READ: Final = 64 * 1024 * 1024
#: What a tar adds around each member's data at most, besides long names: its header, a
#: PAX record as Python and GNU tar write them (about 2 KiB), and the padding to a block.
_TAR_MEMBER_OVERHEAD: Final = 4096


class _Bounded:
    """A decompressed tar stream that refuses to go past what ``limits`` allow.

    The members' declared sizes are checked as the headers come; this bounds the rest,
    which no member size counts: long-name and PAX headers, and whatever a reader skips
    over. Raise :class:`InvalidDistribution` past ``limits.max_size`` (plus each allowed
    member's header and padding), and for a single read larger than any header.
    """

    def __init__(
        self, stream: BinaryIO | io.BufferedIOBase, filename: str, limits: UnpackLimits
    ) -> None:
        self._stream = stream
        self._filename = filename
        self._cap = (
            limits.max_size + limits.max_files * _TAR_MEMBER_OVERHEAD + _MAX_TAR_READ
            if limits.max_size
            else None
        )

    def _check(self, position: int) -> int:
        if self._cap is not None and position > self._cap:
            raise InvalidDistribution(
                self._filename,
                f"it decompresses to more than {_human(self._cap)} (BURROW_MAX_UNPACKED_SIZE "
                "and the tar headers around it), which looks like an archive bomb; nothing "
                "was kept. Raise BURROW_MAX_UNPACKED_SIZE if you trust it",
            )
        return position

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > _MAX_TAR_READ:
            raise InvalidDistribution(
                self._filename,
                f"a tar header in it asks to read {size:,} bytes at once, more than any real "
                f"one ({_human(_MAX_TAR_READ)}); it looks like an archive bomb",
            )
        data = self._stream.read(size)
        self._check(self._stream.tell())
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self._check(offset)
        return self._check(self._stream.seek(offset, whence))

    def tell(self) -> int:
        return self._stream.tell()


def _decompressing(raw: BinaryIO) -> io.BufferedIOBase | None:
    """Return the reader of ``raw``'s compression (gzip, bzip2 or xz, told by its first
    bytes, as tarfile's ``r:*`` does), or ``None`` for a plain tar."""
    head = raw.read(6)
    raw.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if head.startswith(b"BZh"):
        return bz2.BZ2File(raw)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw)
    return None


@contextlib.contextmanager
def open_tar_sdist(path: Path, filename: str, limits: UnpackLimits) -> Iterator[tarfile.TarFile]:
    """Open a tar sdist (plain, gzip, bzip2 or xz) whose decompressed stream ``limits``
    bound (see :class:`_Bounded`).

    When the block is done, the rest of the stream is read: tarfile stops at the tar's end
    marker, before the gzip trailer whose CRC-32 would tell that a member's data was
    damaged (xz and bzip2 check theirs as they go, xz's last one there too). Bytes after a
    whole gzip stream that start no other one (a newline a transfer appended) end it, as
    for ``gzip -d``, pip and tarfile: only a failed check refuses the archive.
    """
    with open(path, "rb") as raw, contextlib.ExitStack() as stack:
        reader = _decompressing(raw)
        stream = raw if reader is None else stack.enter_context(reader)
        bounded = _Bounded(stream, filename, limits)
        yield stack.enter_context(tarfile.open(fileobj=bounded, mode="r:"))  # type: ignore[call-overload]
        try:
            while bounded.read(_CHUNK):
                pass
        except gzip.BadGzipFile as exc:
            # The one error gzip raises for what follows a whole stream, not for damage
            # (that is "CRC check failed" or "Incorrect length").
            if not str(exc).startswith("Not a gzipped file"):
                raise


#: The errors a broken tar sdist raises while read (lzma's is no OSError).
TAR_ERRORS: Final = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)


#: tarfile's extraction filters came with Python 3.11.4.
_HAS_DATA_FILTER: Final = hasattr(tarfile, "data_filter")


def _unpack_tar_sdist(path: Path, filename: str, dest: Path, limits: UnpackLimits) -> None:
    """Check every member of a tar sdist, then extract it with the ``data`` filter.

    Checking first means a hostile archive writes nothing; the filter at extraction time
    checks links again against what is on disk by then.
    """
    seen: dict[str, bool] = {}
    total = 0
    with open_tar_sdist(path, filename, limits) as tf:
        # Iterating reads headers one at a time: a bomb of members stops at the limit.
        for count, member in enumerate(tf, start=1):
            check_member_count(filename, count, limits)
            name = member.name
            _sdist_member(filename, name, seen, is_dir=member.isdir())
            if member.isfile():
                total += member.size
                check_declared_size(filename, total, limits, name)
            elif member.issym() or member.islnk():
                _check_link(filename, name, member.linkname, hard=member.islnk())
            elif not member.isdir():
                raise InvalidDistribution(
                    filename,
                    f"member {name!r} is a device, FIFO or other special file; a source "
                    "archive holds only files, directories and links inside itself",
                )
            if _HAS_DATA_FILTER:
                try:
                    tarfile.data_filter(member, os.fspath(dest))
                except tarfile.FilterError as exc:
                    raise InvalidDistribution(
                        filename, f"member {name!r} is unsafe to unpack ({exc})"
                    ) from None
        if not _HAS_DATA_FILTER:  # pragma: no cover - Python 3.11 before 3.11.4
            tf.extractall(dest)  # the checks above refused whatever the filter would
        else:
            try:
                tf.extractall(dest, filter="data")
            except tarfile.FilterError as exc:
                raise InvalidDistribution(
                    filename, f"a member is unsafe to unpack ({exc})"
                ) from None
    _check_written(filename, dest, limits)


def _check_link(filename: str, name: str, target: str, *, hard: bool) -> None:
    """Refuse a link whose target is absolute or climbs out of the archive's tree."""
    kind = "hard link" if hard else "symbolic link"
    # A hard link's target is a member name; a symbolic link's is relative to its directory.
    base = [] if hard else name.removeprefix("./").rstrip("/").split("/")[:-1]
    if not target or target.startswith("/") or "\\" in target or "\0" in target:
        raise InvalidDistribution(
            filename, f"member {name!r} is a {kind} to {target!r}, outside the source tree"
        )
    depth = len(base)
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                raise InvalidDistribution(
                    filename,
                    f"member {name!r} is a {kind} to {target!r}, outside the source tree",
                )
        elif part not in ("", "."):
            depth += 1


def _check_written(filename: str, dest: Path, limits: UnpackLimits) -> None:
    """Count what extraction actually wrote (a lying or sparse header) against the limits."""
    if not limits.max_size:
        return
    total = 0
    for root, _dirs, files in os.walk(dest):
        for file in files:
            full = os.path.join(root, file)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
                if total > limits.max_size:
                    _check_size(
                        filename, total, limits, os.path.relpath(full, dest), declared=False
                    )


#: What writing one archive member can raise (``RuntimeError``: an encrypted member).
_MEMBER_FAILURES: Final = (
    zipfile.BadZipFile,
    EOFError,
    zlib.error,
    ValueError,
    NotImplementedError,
    RuntimeError,
    OSError,
)


def _member_failure(filename: str, name: str, exc: Exception) -> Exception:
    """Return the error to raise for a member that could not be written: a clear
    :class:`InvalidDistribution` for a broken archive, else ``exc`` itself (a full disk)."""
    if not isinstance(exc, OSError):
        return InvalidDistribution(filename, f"member {name!r} is corrupt ({exc})")
    if exc.errno in (errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
        # A member named like a directory of another member (or the reverse).
        return InvalidDistribution(filename, f"member {name!r} clashes with another member's path")
    return exc


def _unpack_zip_sdist(path: Path, filename: str, dest: Path, limits: UnpackLimits) -> None:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        _check_declared(filename, [(i.filename, i.file_size) for i in infos], limits)
        seen: dict[str, bool] = {}
        for info in infos:
            _sdist_member(filename, info.filename, seen, is_dir=info.is_dir())
            if stat.S_ISLNK(info.external_attr >> 16):
                # zipfile would write the link as a file holding its target; a build
                # expecting a link would misbehave, a hostile one would escape. Refuse both.
                raise InvalidDistribution(
                    filename,
                    f"member {info.filename!r} is a symbolic link, which a zip source "
                    "archive cannot hold safely; use a .tar.gz sdist",
                )
        made: set[str] = set()
        total = 0
        for info in infos:
            name = info.filename.removeprefix("./").rstrip("/")
            if name in ("", "."):
                continue
            if info.is_dir():
                if name not in made:
                    _make_dirs(dest, name, made)
                continue
            parent = os.path.dirname(name)
            try:
                if parent and parent not in made:
                    _make_dirs(dest, parent, made)
                out = os.path.join(dest, name)
                _stream_member(zf, info, out)
                if (info.external_attr >> 16) & 0o111:
                    os.chmod(out, 0o755)  # ./configure and friends run (pip and uv keep it)
            except _MEMBER_FAILURES as exc:
                failure = _member_failure(filename, info.filename, exc)
                if failure is exc:
                    raise
                raise failure from exc
            total += info.file_size
            _check_size(filename, total, limits, info.filename, declared=False)
