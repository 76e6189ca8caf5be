"""Wheel downloads: hash-checked against the index and ``--hash`` pins, retried, single-flight."""

from __future__ import annotations

import asyncio
import hashlib

import aiohttp
import pytest
from aiohttp import web

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.wheels import WheelPointer, read_pointer
from burrowd.daemon.errors import HashMismatch, NetworkError
from burrowd.daemon.index.client import Freshness, Pins
from burrowd.daemon.index.models import IndexFile
from tests.daemon.cache.harness import Stack, archive_problems, cache_files, tmp_debris
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex, IndexedFile, ThreadedServer

WHEEL = "foo-1.0-py3-none-any.whl"
FILE_PATH = f"/files/{WHEEL}"


async def _file(stack: Stack, index: FakeIndex) -> tuple[IndexFile, str]:
    files = await stack.index.project_files(stack.settings(index.simple_url), "foo", Freshness())
    return next((f, loc) for f, loc in files.files if f.filename == WHEEL)


async def _fetch(stack: Stack, index: FakeIndex, pins: Pins | None = None) -> WheelPointer:
    file, location = await _file(stack, index)
    key = stack.index.wheel_key(file, location, "foo")
    return await stack.index.fetch_wheel(file, key, pins=pins)


def _nothing_stored(stack: Stack) -> None:
    assert cache_files(stack.cache, Bucket.ARCHIVE) == []
    assert cache_files(stack.cache, Bucket.WHEELS) == []  # lock files aside
    assert tmp_debris(stack.cache) == []


@pytest.fixture
def foo(fake_index: FakeIndex) -> IndexedFile:
    (entry,) = fake_index.add(DistSpec("foo", "1.0"))
    return entry


def _digest(algorithm: str, index: FakeIndex) -> str:
    return hashlib.new(algorithm, index.served_bytes(WHEEL)).hexdigest()


class TestHashes:
    async def test_download_is_unpacked_and_recorded(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile
    ) -> None:
        seen: list[int] = []
        file, location = await _file(stack, fake_index)
        key = stack.index.wheel_key(file, location, "foo")
        pointer = await stack.index.fetch_wheel(file, key, on_bytes=seen.append)
        assert pointer.hashes == {"sha256": foo.sha256}
        assert pointer.archive == foo.sha256
        assert pointer.size == foo.size
        assert pointer.url == fake_index.url_for(WHEEL)
        assert sum(seen) == foo.size
        assert read_pointer(stack.cache, key) == pointer
        assert archive_problems(stack.cache.path(Bucket.ARCHIVE, foo.sha256)) == []
        assert tmp_debris(stack.cache) == []
        assert stack.index.downloads == 1

    async def test_mismatch_with_the_index_hash_stores_nothing(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile
    ) -> None:
        fake_index.corrupt(WHEEL, fake_index.served_bytes(WHEEL) + b"tampered")
        actual = _digest("sha256", fake_index)
        with pytest.raises(HashMismatch) as info:
            await _fetch(stack, fake_index)
        message = str(info.value)
        assert foo.sha256 in message
        assert actual in message
        assert WHEEL in message
        assert (info.value.expected, info.value.actual) == ([foo.sha256], actual)
        assert info.value.algorithm == "sha256"
        _nothing_stored(stack)

    @pytest.mark.parametrize(
        "algorithm",
        [pytest.param("sha256", id="sha256"), pytest.param("sha512", id="sha512")],
    )
    async def test_matching_pin(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile, algorithm: str
    ) -> None:
        pins = {algorithm: frozenset({"0" * 64, _digest(algorithm, fake_index)})}
        pointer = await _fetch(stack, fake_index, pins)
        assert pointer.hashes[algorithm] == _digest(algorithm, fake_index)
        assert archive_problems(stack.cache.path(Bucket.ARCHIVE, pointer.archive)) == []

    async def test_pin_that_does_not_match_stores_nothing(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile
    ) -> None:
        pinned = "ab" * 32
        with pytest.raises(HashMismatch) as info:
            await _fetch(stack, fake_index, {"sha256": frozenset({pinned})})
        assert pinned in str(info.value)
        assert foo.sha256 in str(info.value)
        _nothing_stored(stack)

    async def test_pin_checked_against_a_cached_wheel(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile
    ) -> None:
        await _fetch(stack, fake_index)
        with pytest.raises(HashMismatch):
            await _fetch(stack, fake_index, {"sha256": frozenset({"ab" * 32})})
        pointer = await _fetch(stack, fake_index, {"sha256": frozenset({foo.sha256})})
        assert pointer.archive == foo.sha256
        assert fake_index.hits[FILE_PATH] == 1

    async def test_pin_of_another_algorithm_on_a_cached_wheel(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile
    ) -> None:
        await _fetch(stack, fake_index)  # cached without pins: only sha256 is known
        sha512 = _digest("sha512", fake_index)
        pointer = await _fetch(stack, fake_index, {"sha512": frozenset({sha512})})
        assert pointer.hashes["sha512"] == sha512
        with pytest.raises(HashMismatch, match="sha512"):
            await _fetch(stack, fake_index, {"sha512": frozenset({"cd" * 64})})

    async def test_a_wrong_pin_does_not_fail_a_concurrent_request(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile
    ) -> None:
        fake_index.bandwidth = 20_000  # the download takes a while
        wrong, right, unpinned = await asyncio.gather(
            _fetch(stack, fake_index, {"sha256": frozenset({"ab" * 32})}),
            _fetch(stack, fake_index, {"sha256": frozenset({foo.sha256})}),
            _fetch(stack, fake_index),
            return_exceptions=True,
        )
        assert isinstance(wrong, HashMismatch)
        assert isinstance(right, WheelPointer)
        assert isinstance(unpinned, WheelPointer)
        assert right.archive == foo.sha256


class TestRetries:
    async def test_two_503_then_success(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile
    ) -> None:
        fake_index.fail(FILE_PATH, 503, times=2)
        pointer = await _fetch(stack, fake_index)
        assert pointer.archive == foo.sha256
        assert [r.status for r in fake_index.requests if r.path == FILE_PATH] == [503, 503, 200]
        assert tmp_debris(stack.cache) == []

    async def test_persistent_500_is_a_network_error(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile
    ) -> None:
        fake_index.fail(FILE_PATH, 500, times=10)
        with pytest.raises(NetworkError) as info:
            await _fetch(stack, fake_index)
        assert info.value.status == 500
        assert fake_index.url_for(WHEEL) in str(info.value)
        assert fake_index.hits[FILE_PATH] == 3
        _nothing_stored(stack)

    async def test_missing_file_is_not_retried(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile
    ) -> None:
        fake_index.fail(FILE_PATH, 404, times=10)
        with pytest.raises(NetworkError, match="404") as info:
            await _fetch(stack, fake_index)
        assert info.value.status == 404
        assert fake_index.hits[FILE_PATH] == 1

    async def test_page_503_twice_then_success(self, stack: Stack, fake_index: FakeIndex) -> None:
        fake_index.add(DistSpec("foo", "1.0"))
        fake_index.fail("/simple/foo/", 503, times=2)
        files = await stack.index.project_files(
            stack.settings(fake_index.simple_url), "foo", Freshness()
        )
        assert [f.filename for f, _ in files.files] == [WHEEL]
        assert fake_index.hits["/simple/foo/"] == 3

    async def test_page_persistent_500(self, stack: Stack, fake_index: FakeIndex) -> None:
        fake_index.add(DistSpec("foo", "1.0"))
        fake_index.fail("/simple/foo/", 500, times=10)
        with pytest.raises(NetworkError, match="HTTP 500") as info:
            await stack.index.project_files(
                stack.settings(fake_index.simple_url), "foo", Freshness()
            )
        assert "after 3 attempts" in str(info.value)
        assert f"{fake_index.simple_url}/foo/" in str(info.value)
        assert fake_index.hits["/simple/foo/"] == 3


class TestSingleFlight:
    async def test_concurrent_fetches_download_once(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile
    ) -> None:
        fake_index.bandwidth = 10_000
        file, location = await _file(stack, fake_index)
        key = stack.index.wheel_key(file, location, "foo")
        pointers = await asyncio.gather(*(stack.index.fetch_wheel(file, key) for _ in range(10)))
        assert len({p.archive for p in pointers}) == 1
        assert fake_index.hits[FILE_PATH] == 1
        assert stack.index.downloads == 1

    async def test_a_cancelled_request_does_not_cancel_the_download(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile
    ) -> None:
        fake_index.bandwidth = foo.size / 0.5
        file, location = await _file(stack, fake_index)
        key = stack.index.wheel_key(file, location, "foo")
        first = asyncio.ensure_future(stack.index.fetch_wheel(file, key))
        second = asyncio.ensure_future(stack.index.fetch_wheel(file, key))
        await asyncio.sleep(0.05)
        assert not first.done()
        first.cancel()
        pointer = await second
        assert first.cancelled()
        assert archive_problems(stack.cache.path(Bucket.ARCHIVE, pointer.archive)) == []
        assert fake_index.hits[FILE_PATH] == 1


class TestClose:
    async def test_a_download_after_close_fails_and_opens_no_session(
        self, stack: Stack, fake_index: FakeIndex, foo: IndexedFile
    ) -> None:
        # A task outliving its request at shutdown must not open a session nobody
        # closes (aiohttp warns "Unclosed client session" when it is collected).
        file, location = await _file(stack, fake_index)
        await stack.http.close()
        with pytest.raises(RuntimeError, match="HTTP client is closed"):
            await stack.index.fetch_wheel(file, stack.index.wheel_key(file, location, "foo"))
        assert stack.http._session is None


class TestProxy:
    async def test_requests_go_through_the_proxy_the_environment_names(
        self,
        stack: Stack,
        fake_index: FakeIndex,
        foo: IndexedFile,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # The session does not read the environment (no trust_env): the daemon looks the
        # proxy up once per host, and gives each hop of a request its host's.
        seen: list[str] = []

        async def forward(request: web.Request) -> web.Response:
            seen.append(str(request.url))
            async with (
                aiohttp.ClientSession() as session,
                session.get(str(request.url), headers=request.headers) as resp,
            ):
                body = await resp.read()
                headers = {
                    k: v
                    for k, v in resp.headers.items()
                    if k.lower() in ("content-type", "etag", "cache-control")
                }
                return web.Response(status=resp.status, body=body, headers=headers)

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", forward)
        with ThreadedServer(app) as proxy:
            for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
                monkeypatch.delenv(name, raising=False)
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
            pointer = await _fetch(stack, fake_index)
        assert pointer.archive == foo.sha256
        assert seen == [f"{fake_index.simple_url}/foo/", fake_index.url_for(WHEEL)]
