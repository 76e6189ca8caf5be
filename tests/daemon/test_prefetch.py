"""``prefetch`` in-process: pins, requirements files with hashes, local wheels and URLs."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.wheels import WheelKey, read_pointer
from burrowd.daemon.errors import (
    BuildRequired,
    HashMismatch,
    InvalidDistribution,
    InvalidRequirement,
    OfflineMiss,
    PackageNotFound,
)
from burrowd.daemon.index.client import Freshness, IndexSettings
from burrowd.daemon.inputs.model import Origin, RequirementEntry
from burrowd.daemon.inputs.requirements_txt import parse_requirements_file
from burrowd.daemon.prefetch import command_line_entries, pinned_version, pins_of
from burrowd.protocol.errors import ErrorCode
from tests.daemon.cache.harness import ProgressLog, Stack, archive_problems, stack_on, tmp_debris
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex, IndexedFile
from tests.support.plugin import DistFactory


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with stack_on(tmp_path / "cache") as services:
        yield services


class TestPins:
    @pytest.mark.parametrize(
        ("text", "version"),
        [
            pytest.param("foo==1.0", "1.0", id="exact"),
            pytest.param("foo===1.0", "1.0", id="arbitrary-equality"),
            pytest.param("foo[x]==2.0.post1; python_version > '3'", "2.0.post1", id="extras"),
            pytest.param("foo==1.*", None, id="wildcard"),
            pytest.param("foo>=1.0", None, id="range"),
            pytest.param("foo==1.0,!=1.1", None, id="two-specifiers"),
            pytest.param("foo", None, id="bare"),
        ],
    )
    def test_pinned_version(self, text: str, version: str | None) -> None:
        expected = None if version is None else Version(version)
        assert pinned_version(Requirement(text)) == expected

    def test_pins_of(self) -> None:
        entry = RequirementEntry(
            Requirement("foo==1.0"),
            Origin(None, None),
            hashes=("sha256:AA", "sha256:bb", "sha512:cc"),
        )
        assert pins_of(entry) == {"sha256": frozenset({"aa", "bb"}), "sha512": frozenset({"cc"})}
        assert pins_of(RequirementEntry(Requirement("foo==1.0"), Origin(None, None))) is None


class TestPrefetch:
    async def test_pinned_wheels(self, stack: Stack, fake_index: FakeIndex) -> None:
        fake_index.add_many([DistSpec("foo", "1.0"), DistSpec("Bar.Baz", "2.0")])
        progress = ProgressLog()
        settings = stack.settings(fake_index.simple_url)
        prefetcher = stack.prefetcher(settings, progress=progress)
        wheels = await prefetcher.run(command_line_entries(["foo==1.0", "bar-baz==2.0"], Path()))
        assert [(w.name, w.version, w.filename, w.cached) for w in wheels] == [
            ("foo", "1.0", "foo-1.0-py3-none-any.whl", False),
            ("bar-baz", "2.0", "bar_baz-2.0-py3-none-any.whl", False),
        ]
        for wheel in wheels:
            assert archive_problems(Path(wheel.archive)) == []
        assert prefetcher.downloaded_bytes == sum(e.size for e in fake_index.files())
        assert progress.calls[0] == ("downloading", 0, 2, 0)
        assert progress.calls[-1][:3] == ("downloading", 2, 2)
        again = await stack.prefetch(["foo==1.0", "bar-baz==2.0"], settings)
        assert [w.cached for w in again] == [True, True]

    async def test_markers_skip_entries(self, stack: Stack, fake_index: FakeIndex) -> None:
        fake_index.add(DistSpec("foo", "1.0"))
        wheels = await stack.prefetch(
            ["foo==1.0", "nothere==1.0; python_version < '3'"],
            stack.settings(fake_index.simple_url),
        )
        assert [w.name for w in wheels] == ["foo"]
        assert fake_index.hits["/simple/nothere/"] == 0

    async def test_missing_version_names_the_versions_there(
        self, stack: Stack, fake_index: FakeIndex
    ) -> None:
        fake_index.add_many([DistSpec("foo", v) for v in ("1.0", "1.1", "2.0")])
        with pytest.raises(PackageNotFound) as info:
            await stack.prefetch(["foo==3.0"], stack.settings(fake_index.simple_url))
        message = str(info.value)
        assert "foo==3.0" in message
        assert "newest: 2.0, 1.1, 1.0" in message
        assert fake_index.simple_url in message

    async def test_unpinned_requirement(self, stack: Stack, fake_index: FakeIndex) -> None:
        with pytest.raises(InvalidRequirement, match=r"exact pins like foo==1\.2\.3"):
            await stack.prefetch(["foo>=1.0"], stack.settings(fake_index.simple_url))

    async def test_no_wheel_for_the_target(self, stack: Stack, fake_index: FakeIndex) -> None:
        fake_index.add(DistSpec("foo", "1.0"), sdist=True, wheel=False)
        fake_index.add(DistSpec("foo", "1.0", tag="cp27-cp27mu-manylinux1_x86_64"))
        with pytest.raises(BuildRequired) as info:
            await stack.prefetch(["foo==1.0"], stack.settings(fake_index.simple_url))
        assert info.value.code == ErrorCode.BUILD_FAILED
        assert "foo==1.0 needs a build from" in str(info.value)
        assert "foo-1.0.tar.gz" in str(info.value)
        assert "no wheel of it supports" in str(info.value)
        assert "foo-1.0-cp27-cp27mu-manylinux1_x86_64.whl" in str(info.value)

    async def test_no_file_for_the_target(self, stack: Stack, fake_index: FakeIndex) -> None:
        fake_index.add(DistSpec("foo", "1.0", tag="cp27-cp27mu-manylinux1_x86_64"))
        with pytest.raises(PackageNotFound) as info:
            await stack.prefetch(["foo==1.0"], stack.settings(fake_index.simple_url))
        assert "no wheel of it supports" in str(info.value)

    async def test_requires_python_of_the_target(self, stack: Stack, fake_index: FakeIndex) -> None:
        better = f"py3{sys.version_info[1]}-none-any"  # ranks above py3-none-any
        fake_index.add(DistSpec("foo", "1.0", tag=better, requires_python=">=3.99"))
        fake_index.add(DistSpec("foo", "1.0", requires_python=">=3.6"))
        fake_index.add(DistSpec("bar", "1.0", requires_python=">=3.99"))
        settings = stack.settings(fake_index.simple_url)
        wheels = await stack.prefetch(["foo==1.0"], settings)
        assert wheels[0].filename == "foo-1.0-py3-none-any.whl"
        with pytest.raises(PackageNotFound) as info:
            await stack.prefetch(["bar==1.0"], settings)
        assert "requires Python >=3.99" in str(info.value)
        assert "/files/bar-1.0-py3-none-any.whl" not in fake_index.hits

    async def test_yanked_pin_is_fetched_with_a_warning(
        self, stack: Stack, fake_index: FakeIndex
    ) -> None:
        fake_index.add(DistSpec("foo", "1.0"), yanked="security hole")
        prefetcher = stack.prefetcher(stack.settings(fake_index.simple_url))
        wheels = await prefetcher.run(command_line_entries(["foo==1.0"], Path()))
        assert wheels[0].yanked == "security hole"
        assert prefetcher.warnings == [
            "foo==1.0 is yanked (security hole); prefetched anyway (pinned)"
        ]

    async def test_hashes_from_a_requirements_file(
        self, stack: Stack, fake_index: FakeIndex, tmp_path: Path
    ) -> None:
        (foo,) = fake_index.add(DistSpec("foo", "1.0"))
        (bar,) = fake_index.add(DistSpec("bar", "1.0"))
        pins = tmp_path / "pins.txt"
        pins.write_text(
            f"foo==1.0 --hash=sha256:{'0' * 64} \\\n    --hash=sha256:{foo.sha256}\n"
            f"bar==1.0 --hash=sha256:{'f' * 64}\n"
        )
        entries = parse_requirements_file(pins, cwd=tmp_path).requirements
        settings = stack.settings(fake_index.simple_url)
        wheels = await stack.prefetcher(settings).run(entries[:1])
        assert wheels[0].filename == "foo-1.0-py3-none-any.whl"
        with pytest.raises(HashMismatch) as info:
            await stack.prefetcher(settings).run(entries[1:])
        assert "f" * 64 in str(info.value)
        assert bar.sha256 in str(info.value)
        assert not stack.cache.path(Bucket.ARCHIVE, bar.sha256).exists()

    async def test_offline_never_downloads(self, stack: Stack, fake_index: FakeIndex) -> None:
        fake_index.add_many([DistSpec("foo", "1.0"), DistSpec("foo", "1.1")])
        settings = stack.settings(fake_index.simple_url)
        await stack.prefetch(["foo==1.0"], settings)
        cached = await stack.prefetch(["foo==1.0"], settings, fresh=Freshness(offline=True))
        assert [w.cached for w in cached] == [True]
        fake_index.reset_hits()
        with pytest.raises(OfflineMiss) as info:
            await stack.prefetch(["foo==1.1"], settings, fresh=Freshness(offline=True))
        assert "foo-1.1-py3-none-any.whl" in str(info.value)
        assert not fake_index.hits
        assert tmp_debris(stack.cache) == []

    async def test_offline_with_a_pin_the_cached_wheel_cannot_answer(
        self, stack: Stack, fake_index: FakeIndex, tmp_path: Path
    ) -> None:
        # Cached unpinned, the wheel's pointer knows only its sha256: a sha512 pin needs the
        # file again, which offline is a miss, not a download.
        foo, settings = await _cached_unpinned(stack, fake_index)
        sha512 = hashlib.sha512(foo.path.read_bytes()).hexdigest()
        entries = _pinned(tmp_path, f"sha512:{sha512}")
        fake_index.reset_hits()
        with pytest.raises(OfflineMiss) as info:
            await stack.prefetcher(settings, fresh=Freshness(offline=True)).run(entries)
        assert "foo-1.0-py3-none-any.whl" in str(info.value)
        assert not fake_index.hits
        assert tmp_debris(stack.cache) == []
        online = await stack.prefetcher(settings).run(entries)
        assert [w.cached for w in online] == [False]

    async def test_a_cached_wheel_is_still_checked_against_the_pins(
        self, stack: Stack, fake_index: FakeIndex, tmp_path: Path
    ) -> None:
        # Cached unpinned, the pointer is used as it is (no download, not read twice); the
        # pins are checked against it all the same.
        foo, settings = await _cached_unpinned(stack, fake_index)
        fake_index.reset_hits()
        with pytest.raises(HashMismatch) as info:
            await stack.prefetcher(settings).run(_pinned(tmp_path, f"sha256:{'e' * 64}"))
        assert "e" * 64 in str(info.value)
        assert foo.sha256 in str(info.value)
        wheels = await stack.prefetcher(settings).run(_pinned(tmp_path, f"sha256:{foo.sha256}"))
        assert [w.cached for w in wheels] == [True]
        assert f"/files/{foo.filename}" not in fake_index.hits


async def _cached_unpinned(
    stack: Stack, fake_index: FakeIndex
) -> tuple[IndexedFile, IndexSettings]:
    """Serve foo 1.0 and prefetch it without pins: its pointer knows its sha256 only."""
    (foo,) = fake_index.add_many([DistSpec("foo", "1.0")])
    settings = stack.settings(fake_index.simple_url)
    await stack.prefetch(["foo==1.0"], settings)
    return foo, settings


def _pinned(tmp_path: Path, pin: str) -> list[RequirementEntry]:
    """Return the entries of a requirements file holding ``foo==1.0 --hash=<pin>``."""
    pins = tmp_path / "pins.txt"
    pins.write_text(f"foo==1.0 --hash={pin}\n")
    return parse_requirements_file(pins, cwd=tmp_path).requirements


class TestDirect:
    async def test_local_wheel(
        self, stack: Stack, dist_factory: DistFactory, tmp_path: Path
    ) -> None:
        wheel = dist_factory.wheel("foo", "1.0")
        entries = command_line_entries([os.path.relpath(wheel, tmp_path)], tmp_path)
        wheels = await stack.prefetcher(stack.settings()).run(entries)
        assert (wheels[0].name, wheels[0].version, wheels[0].cached) == ("foo", "1.0", False)
        assert archive_problems(Path(wheels[0].archive)) == []
        pointer = read_pointer(stack.cache, WheelKey.from_path(wheel))
        assert pointer is not None
        assert pointer.source_size == wheel.stat().st_size
        assert wheel.is_file()

        again = await stack.prefetcher(stack.settings()).run(entries)
        assert again[0].cached

    async def test_a_changed_local_wheel_is_unpacked_again(
        self, stack: Stack, dist_factory: DistFactory, tmp_path: Path
    ) -> None:
        wheel = dist_factory.wheel("foo", "1.0")
        entries = command_line_entries([str(wheel)], tmp_path)
        first = await stack.prefetcher(stack.settings()).run(entries)
        assert dist_factory.wheel("foo", "1.0", files={"foo/new.py": b"new\n"}) == wheel
        second = await stack.prefetcher(stack.settings()).run(entries)
        assert second[0].archive != first[0].archive
        assert (Path(second[0].archive) / "foo" / "new.py").read_text() == "new\n"
        assert Path(second[0].archive).name == hashlib.sha256(wheel.read_bytes()).hexdigest()

    async def test_wheel_url_with_hash(
        self, stack: Stack, fake_index: FakeIndex, tmp_path: Path
    ) -> None:
        (foo,) = fake_index.add(DistSpec("foo", "1.0"))
        url = fake_index.url_for(foo)
        wheels = await stack.prefetch([f"foo @ {url}#sha256={foo.sha256}"], stack.settings())
        assert wheels[0].filename == foo.filename
        assert read_pointer(stack.cache, WheelKey.from_url(url, foo.filename)) is not None
        fake_index.corrupt(foo.filename, b"PK not the same")
        other = stack.cache.root.with_name("other")
        async with stack_on(other) as fresh_stack:
            with pytest.raises(HashMismatch):
                await fresh_stack.prefetch([f"foo @ {url}#sha256={foo.sha256}"], stack.settings())

    @pytest.mark.parametrize(
        ("text", "error", "match"),
        [
            pytest.param(
                "bar @ {url}", InvalidDistribution, "is a wheel of foo, not of bar", id="other-name"
            ),
            pytest.param(
                "foo @ https://host/foo-1.0.tar.gz", InvalidRequirement, "needs a build", id="sdist"
            ),
            pytest.param(
                "./missing-1.0-py3-none-any.whl",
                InvalidRequirement,
                "does not exist",
                id="missing-file",
            ),
        ],
    )
    async def test_rejected(
        self,
        stack: Stack,
        fake_index: FakeIndex,
        tmp_path: Path,
        *,
        text: str,
        error: type[Exception],
        match: str,
    ) -> None:
        (foo,) = fake_index.add(DistSpec("foo", "1.0"))
        requirement = text.format(url=fake_index.url_for(foo))

        async def prefetch() -> None:
            entries = command_line_entries([requirement], tmp_path)
            await stack.prefetcher(stack.settings()).run(entries)

        with pytest.raises(error, match=match):
            await prefetch()
