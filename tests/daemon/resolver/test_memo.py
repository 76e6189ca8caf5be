"""A warm compile of unchanged inputs reuses the last resolution while its pages are unchanged.

In process, against the fake index: the memo's counters say whether the resolver ran, and
the index's hit counter what was asked of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from burrowd.daemon.handlers import Handlers
from burrowd.daemon.resolver import service
from burrowd.daemon.resolver.provider import Provider
from burrowd.daemon.resolver.resolve import Resolution, run_resolver
from burrowd.protocol import messages as m
from tests.resolve_e2e.harness import Compiler, open_compiler, pins, release
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex
from tests.support.plugin import DistFactory


@pytest.fixture
async def compiler(tmp_path: Path, fake_index: FakeIndex) -> AsyncIterator[Compiler]:
    release(fake_index, "app==1.0", "lib>=1")
    release(fake_index, "lib==1.0")
    release(fake_index, "lib==1.1")
    async with open_compiler(tmp_path, fake_index) as c:
        yield c


def resolved(compiler: Compiler) -> tuple[int, int]:
    memo = compiler.services.resolutions
    return memo.hits, memo.stale


class TestReuse:
    async def test_the_same_inputs_reuse_the_resolution(self, compiler: Compiler) -> None:
        compiler.write("requirements.in", "app\n")
        first = await compiler.compile(files=["requirements.in"])
        assert pins(first) == {"app": "1.0", "lib": "1.1"}
        second = await compiler.compile(files=["requirements.in"])
        assert resolved(compiler) == (1, 0)
        assert second.output == first.output
        assert pins(second) == pins(first)

    async def test_an_edited_input_resolves_again(self, compiler: Compiler) -> None:
        compiler.write("requirements.in", "app\n")
        await compiler.compile(files=["requirements.in"])
        compiler.write("requirements.in", "app\nlib<1.1\n")
        again = await compiler.compile(files=["requirements.in"])
        assert pins(again) == {"app": "1.0", "lib": "1.0"}
        assert resolved(compiler) == (0, 0)

    async def test_other_options_resolve_again(self, compiler: Compiler) -> None:
        await compiler.compile("app")
        lowest = await compiler.compile("app", resolution="lowest")
        assert pins(lowest) == {"app": "1.0", "lib": "1.0"}
        assert resolved(compiler) == (0, 0)

    async def test_a_changed_page_resolves_again(
        self, compiler: Compiler, fake_index: FakeIndex
    ) -> None:
        await compiler.compile("app")
        fake_index.add(DistSpec("lib", "1.2"))
        # --refresh never reuses; a page revalidated by it is what the next compile sees.
        refreshed = await compiler.compile("app", refresh=True)
        assert pins(refreshed)["lib"] == "1.2"
        assert resolved(compiler) == (0, 0)
        fake_index.add(DistSpec("lib", "1.3"))
        await compiler.compile("app", refresh=True)
        # The memo of the first compile saw lib without 1.2: its page differs now.
        again = await compiler.compile("app")
        assert pins(again)["lib"] == "1.3"
        assert resolved(compiler)[1] == 1

    async def test_an_edited_output_file_resolves_again(self, compiler: Compiler) -> None:
        # The pins already in the output file are preferences: they decide the resolution.
        compiler.write("requirements.in", "app\n")
        compiler.write("requirements.txt", "app==1.0\nlib==1.0\n")
        kept = await compiler.compile(files=["requirements.in"], output_file="requirements.txt")
        assert pins(kept)["lib"] == "1.0"
        compiler.write("requirements.txt", "app==1.0\n")
        newer = await compiler.compile(files=["requirements.in"], output_file="requirements.txt")
        assert pins(newer)["lib"] == "1.1"
        assert resolved(compiler) == (0, 0)

    async def test_direct_references_are_not_kept(
        self, compiler: Compiler, dist_factory: DistFactory
    ) -> None:
        wheel = dist_factory.wheel("loc", "1.0", requires_dist=["lib"])
        first = await compiler.compile(str(wheel))
        assert pins(first)["lib"] == "1.1"
        await compiler.compile(str(wheel))
        assert resolved(compiler) == (0, 0)
        assert len(compiler.services.resolutions) == 0


class TestNotKept:
    """Resolutions a later compile must not reuse (found in review)."""

    async def test_a_page_replaced_during_the_resolution(
        self, compiler: Compiler, fake_index: FakeIndex, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The watcher's refresh (or a --refresh in another terminal) replaces lib's page in
        # memory after the resolver read it: the result answers to the page it saw, and a
        # later compile must not take the newer page as vouching for it.
        original = run_resolver

        async def then_refresh(provider: Provider) -> Resolution:
            result = await original(provider)
            fake_index.add(DistSpec("lib", "2.0"))
            assert await compiler.services.index.revalidate(fake_index.simple_url + "/", "lib")
            return result

        monkeypatch.setattr(service, "run_resolver", then_refresh)
        assert pins(await compiler.compile("app"))["lib"] == "1.1"
        monkeypatch.setattr(service, "run_resolver", original)
        assert pins(await compiler.compile("app"))["lib"] == "2.0"
        assert resolved(compiler) == (0, 1)  # kept with the page it saw, which is stale now

    async def test_a_version_ruled_out_by_a_broken_file(
        self, compiler: Compiler, fake_index: FakeIndex
    ) -> None:
        # A corrupt download (a proxy's hiccup) rules odd 1.1 out once; the next compile
        # must try it again rather than repeat the fallback.
        release(fake_index, "top==1.0", "odd>=1")
        release(fake_index, "odd==1.0")
        release(fake_index, "odd==1.1", metadata_file=False)  # metadata from the wheel itself
        (bad,) = [f for f in fake_index.files("odd") if f.version == "1.1"]
        fake_index.corrupt(bad.filename, b"PK\x03\x04" + b"\0" * 4000)
        assert pins(await compiler.compile("top"))["odd"] == "1.0"
        assert len(compiler.services.resolutions) == 0
        fake_index.corrupt(bad.filename, None)
        assert pins(await compiler.compile("top"))["odd"] == "1.1"

    async def test_cache_clean_forgets_every_resolution(self, compiler: Compiler) -> None:
        await compiler.compile("app")
        assert len(compiler.services.resolutions) == 1
        await Handlers(compiler.services).cache_clean(m.CacheCleanParams(), _Quiet())  # type: ignore[arg-type]
        assert len(compiler.services.resolutions) == 0

    async def test_a_local_index(self, compiler: Compiler, dist_factory: DistFactory) -> None:
        # A local index lists names and sizes: a wheel rebuilt under its name would compare
        # equal, while a resolution without the memo reads its new metadata.
        house = dist_factory.dest / "house"
        wheel = dist_factory.wheel("solo", "1.0")
        (house / "solo").mkdir(parents=True)
        wheel.rename(house / "solo" / wheel.name)
        assert pins(await compiler.compile("solo", index_url=str(house))) == {"solo": "1.0"}
        assert len(compiler.services.resolutions) == 0


class _Quiet:
    def progress(self, *args: object, **kwargs: object) -> None:
        pass
