"""A warm compile of unchanged inputs reuses the last resolution while its pages are unchanged.

In process, against the fake index: the memo's counters say whether the resolver ran, and
the index's hit counter what was asked of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

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
