"""Project pages: memory, disk, network; HTTP validators, ``--refresh`` and ``--offline``."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.errors import OfflineMiss, PackageNotFound
from burrowd.daemon.index import http_cache
from burrowd.daemon.index.client import Freshness, IndexClient
from burrowd.daemon.index.models import CachePolicy
from tests.daemon.cache.harness import Stack, cache_files
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex, write_file_index

PAGE = "/simple/foo/"


def _client(stack: Stack, *, ttl: float = 600.0) -> IndexClient:
    """Return a new index client on the stack's cache (a restarted daemon, say)."""
    return IndexClient(stack.cache, stack.http, stack.limits, ttl=ttl)


def _page_requests(index: FakeIndex, path: str = PAGE) -> list[tuple[int, str | None]]:
    return [(r.status, r.headers.get("If-None-Match")) for r in index.requests if r.path == path]


@pytest.fixture
def foo_index(fake_index: FakeIndex) -> FakeIndex:
    fake_index.add_many([DistSpec("foo", "1.0"), DistSpec("bar", "1.0")])
    return fake_index


class TestServedFromMemoryAndDisk:
    async def test_second_page_within_ttl_is_served_from_memory(
        self, stack: Stack, foo_index: FakeIndex
    ) -> None:
        location = foo_index.simple_url + "/"
        fresh = Freshness()
        first = await stack.index.page(location, "foo", fresh)
        assert fresh.served == {"memory": 0, "disk": 0, "network": 1}
        await stack.index.drain()  # the page is written to disk in the background
        for page in cache_files(stack.cache, Bucket.SIMPLE):
            os.unlink(stack.cache.bucket(Bucket.SIMPLE) / page)  # a disk read would now miss
        # A page is counted once per request, by where it first came from.
        assert await stack.index.page(location, "foo", fresh) == first
        assert fresh.served == {"memory": 0, "disk": 0, "network": 1}
        later = Freshness()
        again = await stack.index.page(location, "foo", later)
        assert again == first
        assert later.served == {"memory": 1, "disk": 0, "network": 0}
        assert foo_index.hits[PAGE] == 1

    async def test_a_new_client_reads_the_fresh_page_from_disk(
        self, stack: Stack, foo_index: FakeIndex
    ) -> None:
        location = foo_index.simple_url + "/"
        first = await stack.index.page(location, "foo", Freshness())
        await stack.index.drain()  # the page is written to disk in the background
        fresh = Freshness()
        restarted = _client(stack)
        assert await restarted.page(location, "foo", fresh) == first
        assert fresh.served == {"memory": 0, "disk": 1, "network": 0}
        assert foo_index.hits[PAGE] == 1
        later = Freshness()
        assert await restarted.page(location, "foo", later) == first
        assert later.served["memory"] == 1

    async def test_an_unreadable_page_on_disk_is_fetched_again(
        self, stack: Stack, foo_index: FakeIndex
    ) -> None:
        location = foo_index.simple_url + "/"
        await stack.index.page(location, "foo", Freshness())
        await stack.index.drain()  # the page is written to disk in the background
        (page,) = cache_files(stack.cache, Bucket.SIMPLE)
        (stack.cache.bucket(Bucket.SIMPLE) / page).write_bytes(b"\xc1 garbage")
        fresh = Freshness()
        assert await _client(stack).page(location, "foo", fresh) is not None
        assert fresh.served["network"] == 1
        assert _page_requests(foo_index) == [(200, None), (200, None)]

    async def test_a_missing_project_is_remembered(
        self, stack: Stack, foo_index: FakeIndex
    ) -> None:
        settings = stack.settings(foo_index.simple_url)
        for _ in range(3):
            with pytest.raises(PackageNotFound):
                await stack.index.project_files(settings, "nothere", Freshness())
        await stack.index.drain()  # pages (even a 404) are written to disk in the background
        with pytest.raises(PackageNotFound):
            await _client(stack).project_files(settings, "nothere", Freshness())
        assert foo_index.hits["/simple/nothere/"] == 1


class TestRevalidation:
    async def test_expired_page_is_revalidated_with_its_etag(
        self, stack: Stack, foo_index: FakeIndex
    ) -> None:
        client = _client(stack, ttl=0.5)
        location = foo_index.simple_url + "/"
        first = await client.page(location, "foo", Freshness())
        fresh = Freshness()
        assert await client.page(location, "foo", fresh) == first
        assert fresh.served["memory"] == 1
        await asyncio.sleep(0.6)
        fresh = Freshness()
        assert await client.page(location, "foo", fresh) == first
        assert fresh.served["network"] == 1
        (etag_200, etag_304) = [r for r in foo_index.requests if r.path == PAGE]
        assert etag_200.status == 200
        assert etag_304.status == 304
        assert etag_304.headers["If-None-Match"].startswith('"')
        # Revalidated: fresh again for another TTL.
        fresh = Freshness()
        assert await client.page(location, "foo", fresh) == first
        assert fresh.served["memory"] == 1
        assert foo_index.hits[PAGE] == 2

    async def test_expired_page_on_disk_is_revalidated(
        self, stack: Stack, foo_index: FakeIndex
    ) -> None:
        location = foo_index.simple_url + "/"
        first = await _client(stack, ttl=0.1).page(location, "foo", Freshness())
        await asyncio.sleep(0.15)
        fresh = Freshness()
        assert await _client(stack, ttl=0.1).page(location, "foo", fresh) == first
        assert fresh.served == {"memory": 0, "disk": 0, "network": 1}
        assert [s for s, _ in _page_requests(foo_index)] == [200, 304]

    async def test_a_changed_page_replaces_the_stored_one(
        self, stack: Stack, foo_index: FakeIndex
    ) -> None:
        client = _client(stack, ttl=0.1)
        location = foo_index.simple_url + "/"
        await client.page(location, "foo", Freshness())
        foo_index.add(DistSpec("foo", "2.0"))
        await asyncio.sleep(0.15)
        page = await client.page(location, "foo", Freshness())
        assert page is not None
        assert [f.filename for f in page.files][-1] == "foo-2.0-py3-none-any.whl"
        assert [s for s, _ in _page_requests(foo_index)] == [200, 200]
        restarted = await _client(stack).page(location, "foo", Freshness())
        assert restarted == page

    @pytest.mark.parametrize(
        "cache_control",
        [
            pytest.param("max-age=0", id="max-age-0"),
            pytest.param("no-cache", id="no-cache"),
            pytest.param("no-store", id="no-store"),
        ],
    )
    async def test_pages_that_must_be_revalidated_each_time(
        self, stack: Stack, foo_index: FakeIndex, cache_control: str
    ) -> None:
        foo_index.cache_control = cache_control
        location = foo_index.simple_url + "/"
        pages = [await stack.index.page(location, "foo", Freshness()) for _ in range(3)]
        assert pages[0] is not None
        assert pages[1:] == pages[:2]
        assert [s for s, _ in _page_requests(foo_index)] == [200, 304, 304]
        assert all(tag is not None for _, tag in _page_requests(foo_index)[1:])

    async def test_explicit_max_age_wins_over_the_heuristic(
        self, stack: Stack, foo_index: FakeIndex
    ) -> None:
        foo_index.cache_control = "max-age=600, public"
        client = _client(stack, ttl=0.0)
        location = foo_index.simple_url + "/"
        for _ in range(3):
            await client.page(location, "foo", Freshness())
        assert foo_index.hits[PAGE] == 1

    async def test_without_validators_the_page_is_fetched_again(
        self, stack: Stack, foo_index: FakeIndex
    ) -> None:
        foo_index.etag = False
        foo_index.last_modified = False
        client = _client(stack, ttl=0.0)
        location = foo_index.simple_url + "/"
        for _ in range(2):
            await client.page(location, "foo", Freshness())
        assert _page_requests(foo_index) == [(200, None), (200, None)]
        assert not any("If-Modified-Since" in r.headers for r in foo_index.requests)


class TestRefresh:
    async def test_refresh_revalidates_once_per_name_per_request(
        self, stack: Stack, foo_index: FakeIndex
    ) -> None:
        location = foo_index.simple_url + "/"
        await stack.index.page(location, "foo", Freshness())
        await stack.index.page(location, "bar", Freshness())
        fresh = Freshness(refresh_all=True)
        await asyncio.gather(*(stack.index.page(location, "foo", fresh) for _ in range(10)))
        for _ in range(5):
            await stack.index.page(location, "foo", fresh)
            await stack.index.page(location, "bar", fresh)
        assert [s for s, _ in _page_requests(foo_index)] == [200, 304]
        assert [s for s, _ in _page_requests(foo_index, "/simple/bar/")] == [200, 304]
        assert fresh.revalidated == {(location, "foo"), (location, "bar")}
        # The next request revalidates again.
        await stack.index.page(location, "foo", Freshness(refresh_all=True))
        assert foo_index.hits[PAGE] == 3

    async def test_refresh_package_revalidates_only_that_one(
        self, stack: Stack, foo_index: FakeIndex
    ) -> None:
        location = foo_index.simple_url + "/"
        settings = stack.settings(foo_index.simple_url)
        for name in ("foo", "bar"):
            await stack.index.project_files(settings, name, Freshness())
        fresh = Freshness(refresh_packages=frozenset({"bar"}))
        for name in ("foo", "bar", "foo", "bar"):
            await stack.index.page(location, name, fresh)
        assert foo_index.hits[PAGE] == 1
        assert [s for s, _ in _page_requests(foo_index, "/simple/bar/")] == [200, 304]


class TestOffline:
    async def test_offline_uses_a_stale_page_without_a_request(
        self, stack: Stack, foo_index: FakeIndex
    ) -> None:
        location = foo_index.simple_url + "/"
        first = await _client(stack, ttl=0.05).page(location, "foo", Freshness())
        await asyncio.sleep(0.1)
        foo_index.reset_hits()
        for client in (_client(stack, ttl=0.05), stack.index):
            fresh = Freshness(offline=True)
            assert await client.page(location, "foo", fresh) == first
        assert not foo_index.hits

    async def test_offline_with_nothing_cached(self, stack: Stack, foo_index: FakeIndex) -> None:
        settings = stack.settings(foo_index.simple_url)
        with pytest.raises(OfflineMiss) as info:
            await stack.index.project_files(settings, "foo", Freshness(offline=True))
        assert "foo" in str(info.value)
        assert foo_index.simple_url in str(info.value)
        assert "--offline" in str(info.value)
        assert not foo_index.hits

    async def test_offline_ignores_refresh(self, stack: Stack, foo_index: FakeIndex) -> None:
        location = foo_index.simple_url + "/"
        await stack.index.page(location, "foo", Freshness())
        await stack.index.drain()  # the page is written to disk in the background
        fresh = Freshness(offline=True, refresh_all=True)
        assert await _client(stack).page(location, "foo", fresh) is not None
        assert foo_index.hits[PAGE] == 1

    async def test_an_offline_request_does_not_fail_a_concurrent_online_one(
        self, stack: Stack, foo_index: FakeIndex
    ) -> None:
        location = foo_index.simple_url + "/"
        offline, online = await asyncio.gather(
            stack.index.page(location, "foo", Freshness(offline=True)),
            stack.index.page(location, "foo", Freshness()),
            return_exceptions=True,
        )
        assert isinstance(offline, OfflineMiss)
        assert not isinstance(online, BaseException)
        assert online is not None
        assert foo_index.hits[PAGE] == 1


class TestLocalPages:
    async def test_file_pages_are_fresh_while_their_mtime_is_unchanged(
        self, stack: Stack, foo_index: FakeIndex, tmp_path: Path
    ) -> None:
        simple = write_file_index(foo_index, tmp_path / "mirror")
        settings = stack.settings(simple)
        first = await stack.index.project_files(settings, "foo", Freshness())
        fresh = Freshness()
        await stack.index.project_files(settings, "foo", fresh)
        assert fresh.served["memory"] == 1

        foo_index.add(DistSpec("foo", "2.0"))
        write_file_index(foo_index, tmp_path / "mirror")
        index_html = tmp_path / "mirror" / "simple" / "foo" / "index.html"
        later = time.time() + 5
        os.utime(index_html, (later, later))
        second = await stack.index.project_files(settings, "foo", Freshness())
        assert len(second.files) == len(first.files) + 1


class TestPolicy:
    NOW = 1_000_000.0

    @pytest.mark.parametrize(
        ("headers", "source", "lifetime", "stored_at"),
        [
            pytest.param({}, "heuristic", 600.0, NOW, id="heuristic"),
            pytest.param({"Cache-Control": "max-age=60"}, "max-age", 60.0, NOW, id="max-age"),
            pytest.param(
                {"Cache-Control": "public, s-maxage=30, max-age=60"},
                "max-age",
                60.0,
                NOW,
                id="s-maxage-is-for-shared-caches",
            ),
            pytest.param(
                {"Cache-Control": "max-age=60", "Age": "20"}, "max-age", 60.0, NOW - 20, id="age"
            ),
            pytest.param({"Cache-Control": "no-cache"}, "no-cache", 0.0, NOW, id="no-cache"),
            pytest.param({"Cache-Control": "no-store"}, "no-cache", 0.0, NOW, id="no-store"),
            pytest.param(
                {
                    "Expires": "Thu, 01 Jan 2026 00:10:00 GMT",
                    "Date": "Thu, 01 Jan 2026 00:00:00 GMT",
                },
                "expires",
                600.0,
                NOW,
                id="expires",
            ),
            pytest.param({"Expires": "0"}, "expires", 0.0, NOW, id="expires-invalid"),
            pytest.param(
                {"Cache-Control": "max-age=soon"}, "heuristic", 600.0, NOW, id="bad-max-age"
            ),
        ],
    )
    def test_policy_from_headers(
        self, headers: dict[str, str], source: str, lifetime: float, stored_at: float
    ) -> None:
        policy = http_cache.policy_from_headers(headers, heuristic_ttl=600.0, now=self.NOW)
        assert (policy.source, policy.lifetime, policy.stored_at) == (source, lifetime, stored_at)

    def test_freshness_and_validators(self) -> None:
        headers = {"ETag": '"abc"', "Last-Modified": "Thu, 01 Jan 2026 00:00:00 GMT"}
        policy = http_cache.policy_from_headers(headers, heuristic_ttl=10.0, now=self.NOW)
        assert policy.is_fresh(self.NOW + 9.9)
        assert not policy.is_fresh(self.NOW + 10.0)
        assert http_cache.conditional_headers(policy) == {
            "If-None-Match": '"abc"',
            "If-Modified-Since": "Thu, 01 Jan 2026 00:00:00 GMT",
        }
        renewed = http_cache.revalidated(policy, {}, heuristic_ttl=10.0, now=self.NOW + 50)
        assert renewed.etag == '"abc"'
        assert renewed.last_modified == headers["Last-Modified"]
        assert renewed.is_fresh(self.NOW + 55)
        assert http_cache.conditional_headers(CachePolicy(0.0, 0.0, "heuristic")) == {}

    def test_no_cache_is_never_fresh(self) -> None:
        assert not CachePolicy(self.NOW, 1e9, "no-cache").is_fresh(self.NOW)
