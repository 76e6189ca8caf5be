"""What review of the builder found: unsafe git URLs, hash pins of sources, wheels per
interpreter, editable repositories, a local sdist changed in place."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from burrowd.daemon.builder.builder import _find_wheel
from burrowd.daemon.builder.git import parse_git_url
from burrowd.daemon.errors import HashMismatch, InvalidRequirement
from tests.daemon.builder.harness import Stack, installed
from tests.daemon.installer.harness import site_packages
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex
from tests.support.plugin import DistFactory


class TestGitUrls:
    @pytest.mark.parametrize(
        "url",
        [
            pytest.param("git+--upload-pack=touch${IFS}/tmp/pwned;", id="option-as-url"),
            pytest.param("git+ext::sh -c touch% /tmp/pwned", id="ext-transport"),
            pytest.param("git+fd::3", id="fd-transport"),
            pytest.param("git+https://host/repo@--orphan", id="option-as-ref"),
            pytest.param("git+https://host/repo@a..b", id="range-as-ref"),
            pytest.param("git+https:", id="no-host"),
        ],
    )
    def test_a_url_git_could_run_a_command_for_is_refused(self, url: str) -> None:
        with pytest.raises(InvalidRequirement):
            parse_git_url(url)

    @pytest.mark.parametrize(
        ("url", "fetch_url", "ref"),
        [
            pytest.param("git+https://h/o/r.git@v1.2", "https://h/o/r.git", "v1.2", id="tag"),
            pytest.param("git+ssh://git@h/o/r@main", "ssh://git@h/o/r", "main", id="ssh"),
            pytest.param("git+file:///srv/r", "file:///srv/r", None, id="file"),
            pytest.param("git+https://h/r@feature/x", "https://h/r", "feature/x", id="branch"),
        ],
    )
    def test_ordinary_urls_parse(self, url: str, fetch_url: str, ref: str | None) -> None:
        parsed = parse_git_url(url)
        assert (parsed.fetch_url, parsed.ref) == (fetch_url, ref)

    async def test_an_editable_repository_is_refused(self, stack: Stack) -> None:
        pins = stack.installer.write("e.txt", f"-e git+{Path('/nonexistent').as_uri()}@v1#egg=x\n")
        with pytest.raises(InvalidRequirement, match="clone the repository"):
            await stack.sync(files=[pins])


class TestFindWheel:
    def test_only_a_wheel_the_target_supports_is_taken(self, tmp_path: Path) -> None:
        rev = tmp_path / "rev"
        rev.mkdir()
        (rev / "pkg-1.0-cp311-cp311-linux_x86_64.whl").write_bytes(b"")
        priorities = {"cp312-cp312-linux_x86_64": 0, "py3-none-any": 5}
        assert _find_wheel(rev, priorities) is None
        (rev / "pkg-1.0-cp312-cp312-linux_x86_64.whl").write_bytes(b"")
        (rev / "pkg-1.0-py3-none-any.whl").write_bytes(b"")
        found = _find_wheel(rev, priorities)
        assert found is not None
        assert found.name == "pkg-1.0-cp312-cp312-linux_x86_64.whl"


class TestSourcePins:
    async def test_a_hash_pin_the_sdist_misses_refuses_before_any_build(
        self, stack: Stack, fake_index_async: FakeIndex
    ) -> None:
        (entry,) = fake_index_async.add(
            DistSpec("pinned", "1.0"), wheel=False, sdist=True, static_metadata=False
        )
        wrong = "0" * 64
        bad = stack.installer.write("bad.txt", f"pinned==1.0 --hash=sha256:{wrong}\n")
        with pytest.raises(HashMismatch) as caught:
            await stack.sync(files=[bad])
        assert caught.value.expected == [wrong]
        assert stack.builds == 0
        assert installed(stack.venv) == {}
        assert entry.sha256 is not None
        good = stack.installer.write("good.txt", f"pinned==1.0 --hash=sha256:{entry.sha256}\n")
        await stack.sync(files=[good])
        assert installed(stack.venv) == {"pinned": "1.0"}

    async def test_a_local_sdist_pin(self, stack: Stack, dist_factory: DistFactory) -> None:
        sdist = dist_factory.sdist(DistSpec("localsd", "1.0"), static_metadata=False)
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        bad = stack.installer.write("bad.txt", f"{sdist} --hash=sha256:{'1' * 64}\n")
        with pytest.raises(HashMismatch):
            await stack.sync(files=[bad])
        assert stack.builds == 0
        good = stack.installer.write("good.txt", f"{sdist} --hash=sha256:{digest}\n")
        await stack.sync(files=[good])
        assert installed(stack.venv) == {"localsd": "1.0"}


class TestLocalSdistChangedInPlace:
    async def test_it_is_reinstalled_and_recorded_by_digest(
        self, stack: Stack, dist_factory: DistFactory
    ) -> None:
        first = dist_factory.sdist(
            DistSpec("inplace", "1.0", files={"inplace/__init__.py": b"V = 1\n"}),
            static_metadata=False,
        )
        await stack.sync(str(first))
        site = site_packages(stack.venv)
        info = json.loads((site / "inplace-1.0.dist-info" / "direct_url.json").read_text())
        digest = hashlib.sha256(first.read_bytes()).hexdigest()
        assert info["archive_info"]["hashes"] == {"sha256": digest}
        again = await stack.sync(str(first))
        assert again.installed == []
        # Rebuilt at the same path with other content: a new digest, so a reinstall.
        second = dist_factory.sdist(
            DistSpec("inplace", "1.0", files={"inplace/__init__.py": b"V = 2\n"}),
            static_metadata=False,
        )
        assert second == first
        result = await stack.sync(str(first))
        assert [(c.name, c.reason) for c in result.installed] == [("inplace", "source")]
        assert (site / "inplace" / "__init__.py").read_bytes() == b"V = 2\n"
