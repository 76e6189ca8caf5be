"""Reading METADATA out of a remote wheel with range requests, against in-memory servers."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burrowd.daemon.errors import InvalidDistribution
from burrowd.daemon.index.lazywheel import TAIL_SIZE, FullBody, RangeNotSupported, fetch_metadata
from tests.support.index import parse_range

METADATA = b"Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n"


def _wheel(
    members: list[tuple[str, bytes]],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
    metadata: bytes | None = METADATA,
    dist_info: str = "foo-1.0.dist-info",
) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
        if metadata is not None:
            zf.writestr(f"{dist_info}/METADATA", metadata)
        zf.writestr(f"{dist_info}/RECORD", b"")
    return buf.getvalue()


@dataclass
class RangeServer:
    """Serves one file's byte ranges the way an HTTP server does (an in-memory RangeFetch)."""

    blob: bytes
    ranges: bool = True
    content_range: bool = True
    asked: list[str] = field(default_factory=list)

    async def __call__(self, rng: str) -> tuple[int, Mapping[str, str], bytes]:
        self.asked.append(rng)
        if not self.ranges:
            return 200, {}, self.blob
        span = parse_range(rng, len(self.blob))
        if span == "unsatisfiable":
            return 416, {"Content-Range": f"bytes */{len(self.blob)}"}, b""
        assert isinstance(span, tuple), rng
        start, end = span
        headers = {"Content-Range": f"bytes {start}-{end}/{len(self.blob)}"}
        if not self.content_range:
            headers = {}
        return 206, headers, self.blob[start : end + 1]

    @property
    def sent(self) -> int:
        total = 0
        for rng in self.asked:
            span = parse_range(rng, len(self.blob))
            assert isinstance(span, tuple)
            total += span[1] - span[0] + 1
        return total


def _run(server: RangeServer) -> bytes | FullBody:
    return asyncio.run(fetch_metadata(server, "foo-1.0-py3-none-any.whl"))


class TestFetchMetadata:
    @pytest.mark.parametrize(
        "compression",
        [
            pytest.param(zipfile.ZIP_DEFLATED, id="deflated"),
            pytest.param(zipfile.ZIP_STORED, id="stored"),
        ],
    )
    def test_small_wheel_in_one_request(self, compression: int) -> None:
        server = RangeServer(_wheel([("foo/__init__.py", b"x")], compression=compression))
        assert _run(server) == METADATA
        assert server.asked == [f"bytes=-{TAIL_SIZE}"]

    def test_metadata_far_from_the_end(self) -> None:
        # METADATA first, then a megabyte of other members: it is outside the tail.
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("foo-1.0.dist-info/METADATA", METADATA)
            for i in range(16):
                zf.writestr(f"foo/part{i}.bin", bytes([i]) * 65536)
        server = RangeServer(buf.getvalue())
        assert _run(server) == METADATA
        assert len(server.asked) == 2
        assert server.sent < TAIL_SIZE + 1024

    def test_central_directory_larger_than_the_tail(self) -> None:
        members = [(f"foo/{'x' * 100}{i:05d}.py", b"") for i in range(800)]
        server = RangeServer(_wheel(members))
        assert _run(server) == METADATA
        assert len(server.asked) >= 2

    def test_server_without_ranges_sends_everything(self) -> None:
        blob = _wheel([("foo/__init__.py", b"")])
        assert _run(RangeServer(blob, ranges=False)) == FullBody(blob)

    def test_reply_without_content_range(self) -> None:
        server = RangeServer(_wheel([("foo/__init__.py", b"")]), content_range=False)
        with pytest.raises(RangeNotSupported, match="Content-Range"):
            _run(server)

    @pytest.mark.parametrize(
        ("blob", "error", "match"),
        [
            pytest.param(b"", RangeNotSupported, "HTTP 416", id="empty-file"),
            pytest.param(
                b"not a zip at all" * 10, InvalidDistribution, "end-of-central", id="junk"
            ),
            pytest.param(
                _wheel([("foo/__init__.py", b"")], metadata=None),
                InvalidDistribution,
                "METADATA is missing",
                id="no-metadata",
            ),
            pytest.param(
                _wheel([], dist_info="bar-1.0.dist-info"),
                InvalidDistribution,
                "expected one foo-1.0.dist-info",
                id="wrong-dist-info",
            ),
        ],
    )
    def test_broken(self, blob: bytes, error: type[Exception], match: str) -> None:
        with pytest.raises(error, match=match):
            _run(RangeServer(blob))

    def test_corrupt_metadata_fails_its_crc(self) -> None:
        blob = bytearray(_wheel([("foo/__init__.py", b"")], compression=zipfile.ZIP_STORED))
        at = blob.find(b"Name: foo")
        blob[at : at + 4] = b"Nope"
        with pytest.raises(InvalidDistribution, match="CRC"):
            _run(RangeServer(bytes(blob)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=40_000), max_size=12),
    metadata_first=st.booleans(),
    stored=st.booleans(),
    extra=st.binary(max_size=300),
)
def test_any_layout_yields_the_exact_metadata(
    sizes: list[int], metadata_first: bool, stored: bool, extra: bytes
) -> None:
    metadata = METADATA + b"Summary: " + extra.hex().encode() + b"\n"
    members = [(f"foo/m{i}.bin", bytes([i % 256]) * size) for i, size in enumerate(sizes)]
    buf = io.BytesIO()
    compression = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        if metadata_first:
            zf.writestr("foo-1.0.dist-info/METADATA", metadata)
        for name, data in members:
            zf.writestr(name, data)
        if not metadata_first:
            zf.writestr("foo-1.0.dist-info/METADATA", metadata)
    server = RangeServer(buf.getvalue())
    assert _run(server) == metadata
    assert server.sent <= len(server.blob)
