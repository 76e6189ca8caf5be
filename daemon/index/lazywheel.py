"""Read a remote wheel's ``METADATA`` with HTTP range requests.

When an index offers no PEP 658 metadata file, resolution would otherwise download every
candidate wheel whole. A wheel is a zip whose central directory sits at its end and whose
``.dist-info`` files are usually written last, so one suffix range request for the last
64 KiB mostly holds the end-of-central-directory record, the central directory and the
``METADATA`` member itself; otherwise one or two more ranges fetch exactly what is missing.
A server that ignores ``Range`` answers 200 with the whole file, which the caller keeps as a
download. Written by hand: no maintained async library does this over aiohttp.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from msgspec import Struct

from burrowd.daemon.cache.archive import find_dist_info
from burrowd.daemon.errors import InvalidDistribution

__all__ = ["TAIL_SIZE", "FullBody", "RangeNotSupported", "fetch_metadata"]

TAIL_SIZE: Final = 64 * 1024

_EOCD: Final = b"PK\x05\x06"
_EOCD64_LOCATOR: Final = b"PK\x06\x07"
_EOCD64: Final = b"PK\x06\x06"
_CDH: Final = b"PK\x01\x02"
_LFH: Final = b"PK\x03\x04"

#: ``fetch(range_header)`` -> (HTTP status, headers, body)
RangeFetch = Callable[[str], Awaitable[tuple[int, Mapping[str, str], bytes]]]


class RangeNotSupported(Exception):
    """The server cannot serve ranges of this file (and did not send it whole)."""


class FullBody(Struct, frozen=True):
    """The server sent the whole wheel instead of a range."""

    data: bytes


class _Entry(Struct, frozen=True):
    name: str
    method: int
    crc: int
    compressed: int
    uncompressed: int
    offset: int


class _Remote:
    """The parts of a remote file fetched so far."""

    def __init__(self, fetch: RangeFetch, filename: str) -> None:
        self.fetch = fetch
        self.filename = filename
        self.size = 0
        self.start = 0
        self.data = b""

    async def tail(self, length: int) -> FullBody | None:
        status, headers, body = await self.fetch(f"bytes=-{length}")
        if status == 200:
            return FullBody(body)
        if status != 206:
            raise RangeNotSupported(f"HTTP {status} for a range request")
        total = _total_size(headers.get("Content-Range", ""))
        if total is None:
            raise RangeNotSupported("no usable Content-Range in the reply")
        self.size = total
        self.start = total - len(body)
        self.data = body
        return None

    async def read(self, start: int, end: int) -> bytes:
        """Return bytes ``[start, end)``, fetching what is not here yet."""
        if start >= self.start:
            return self.data[start - self.start : end - self.start]
        missing_end = min(end, self.start)
        status, _headers, body = await self.fetch(f"bytes={start}-{missing_end - 1}")
        if status != 206 or len(body) != missing_end - start:
            raise RangeNotSupported(f"HTTP {status} with {len(body)} bytes for a range request")
        if missing_end == self.start:
            self.data = body + self.data
            self.start = start
            return self.data[: end - start]
        return body


def _total_size(content_range: str) -> int | None:
    # "bytes 100-199/2000"
    _, _, total = content_range.rpartition("/")
    try:
        return int(total)
    except ValueError:
        return None


def _bad(filename: str, why: str) -> InvalidDistribution:
    return InvalidDistribution(filename, f"its zip structure is broken: {why}")


async def _central_directory(remote: _Remote) -> tuple[int, bytes]:
    tail = remote.data
    pos = tail.rfind(_EOCD)
    if pos < 0 or len(tail) - pos < 22:
        raise _bad(remote.filename, "no end-of-central-directory record in the last 64 KiB")
    (_, _, _, _, count, cd_size, cd_offset, _) = struct.unpack_from("<4sHHHHIIH", tail, pos)
    if 0xFFFFFFFF in (cd_size, cd_offset) or count == 0xFFFF:
        loc = pos - 20
        if loc < 0 or tail[loc : loc + 4] != _EOCD64_LOCATOR:
            raise _bad(remote.filename, "zip64 locator missing")
        (_, _, eocd64_offset, _) = struct.unpack_from("<4sIQI", tail, loc)
        record = await remote.read(eocd64_offset, eocd64_offset + 56)
        if record[:4] != _EOCD64:
            raise _bad(remote.filename, "zip64 end record missing")
        (_, _, _, _, _, _, _, count, cd_size, cd_offset) = struct.unpack_from(
            "<4sQHHIIQQQQ", record, 0
        )
    if cd_offset + cd_size > remote.size:
        raise _bad(remote.filename, "central directory beyond the end of the file")
    return cd_offset, await remote.read(cd_offset, cd_offset + cd_size)


_CDH_HEADER: Final = struct.Struct("<4sHHHHHHIIIHHHHHII")
_CDH_LENGTHS: Final = struct.Struct("<HHH")  # name, extra and comment lengths, at 28
_CDH_OFFSET: Final = struct.Struct("<I")  # the local header's offset, at 42
_DIST_INFO: Final = b".dist-info/"


def _entries(cd: bytes, filename: str) -> tuple[list[_Entry], list[int]]:
    """Return the central directory's ``.dist-info`` members, and every member's offset.

    Only the members of metadata directories are decoded whole: a large wheel lists
    thousands of files, and this runs on the event loop for every candidate wheel.
    """
    found: list[_Entry] = []
    offsets: list[int] = []
    lengths = _CDH_LENGTHS.unpack_from
    local = _CDH_OFFSET.unpack_from
    pos = 0
    end = len(cd)
    while pos + 46 <= end:
        if not cd.startswith(_CDH, pos):
            raise _bad(filename, "bad central directory header")
        nlen, xlen, clen = lengths(cd, pos + 28)
        name_at = pos + 46
        (offset,) = local(cd, pos + 42)
        metadata = cd.find(_DIST_INFO, name_at, name_at + nlen) != -1
        if metadata or offset == 0xFFFFFFFF:
            entry = _entry(cd, pos, nlen, xlen)
            offset = entry.offset
            if metadata:
                found.append(entry)
        offsets.append(offset)
        pos = name_at + nlen + xlen + clen
    return found, offsets


def _entry(cd: bytes, pos: int, nlen: int, xlen: int) -> _Entry:
    """Decode the central directory header at ``pos`` whole."""
    fields = _CDH_HEADER.unpack_from(cd, pos)
    method, crc, csize, usize, offset = fields[4], fields[7], fields[8], fields[9], fields[16]
    name = cd[pos + 46 : pos + 46 + nlen].decode("utf-8", "replace")
    if 0xFFFFFFFF in (csize, usize, offset):
        extra = cd[pos + 46 + nlen : pos + 46 + nlen + xlen]
        usize, csize, offset = _zip64_extra(extra, usize, csize, offset)
    return _Entry(name, method, crc, csize, usize, offset)


def _zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            field = extra[pos + 4 : pos + 4 + size]
            i = 0
            values = []
            while i + 8 <= len(field):
                values.append(struct.unpack_from("<Q", field, i)[0])
                i += 8
            it = iter(values)
            if usize == 0xFFFFFFFF:
                usize = next(it, usize)
            if csize == 0xFFFFFFFF:
                csize = next(it, csize)
            if offset == 0xFFFFFFFF:
                offset = next(it, offset)
            break
        pos += 4 + size
    return usize, csize, offset


async def fetch_metadata(fetch: RangeFetch, filename: str) -> bytes | FullBody:
    """Return the ``METADATA`` bytes of the remote wheel ``filename``.

    Return :class:`FullBody` when the server sent the whole file instead; raise
    :class:`RangeNotSupported` when ranges do not work, :class:`InvalidDistribution` when
    the zip is broken.
    """
    remote = _Remote(fetch, filename)
    full = await remote.tail(TAIL_SIZE)
    if full is not None:
        return full
    cd_offset, cd = await _central_directory(remote)
    entries, offsets = _entries(cd, filename)
    dist_info = find_dist_info([e.name for e in entries], filename)
    wanted = f"{dist_info}/METADATA"
    entry = next((e for e in entries if e.name == wanted), None)
    if entry is None:
        raise InvalidDistribution(filename, f"{wanted} is missing")
    # The member's bytes end where the next member (or the central directory) begins.
    later = [o for o in offsets if o > entry.offset]
    end = min(later) if later else cd_offset
    end = max(end, entry.offset + 30 + len(wanted) + entry.compressed)
    block = await remote.read(entry.offset, min(end, remote.size))
    if block[:4] != _LFH:
        raise _bad(filename, f"no local header for {wanted}")
    (_, _, _, _, _, _, _, _, _, nlen, xlen) = struct.unpack_from("<4sHHHHHIIIHH", block, 0)
    start = 30 + nlen + xlen
    if len(block) < start + entry.compressed:
        block = await remote.read(entry.offset, entry.offset + start + entry.compressed)
    raw = block[start : start + entry.compressed]
    if entry.method == 0:
        data = raw
    elif entry.method == 8:
        try:
            data = zlib.decompressobj(-15).decompress(raw)
        except zlib.error as exc:
            raise _bad(filename, f"{wanted} does not inflate ({exc})") from exc
    else:
        raise RangeNotSupported(f"compression method {entry.method} for {wanted}")
    if zlib.crc32(data) != entry.crc:
        raise _bad(filename, f"{wanted} fails its CRC check")
    return data
