"""Git sources (``git+file://``): a tag resolved to its commit, fetched once, built once.

The repository holds a project (in-tree backend) in ``sub/``: ``v1`` tags version 1.0, and a
later commit on ``main`` makes it 2.0.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import pytest

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.errors import InvalidRequirement
from burrowd.protocol.errors import ErrorCode
from tests.daemon.builder.harness import (
    Stack,
    commit,
    git,
    installed,
    project_tree,
    retarget,
)
from tests.daemon.installer.harness import record_mismatches, site_packages
from tests.resolve_e2e.harness import pins
from tests.support.dists import DistSpec


class Repository:
    """A local repository with ``gitpkg`` in ``sub/``, tagged ``v1`` at 1.0, 2.0 on main."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        tree = project_tree(DistSpec("gitpkg", "1.0"), root)
        tree.rename(root / "sub")
        self.v1 = commit(root, "gitpkg 1.0")
        git(root, "tag", "v1")
        retarget(root / "sub", DistSpec("gitpkg", "2.0"))
        self.head = commit(root, "gitpkg 2.0")

    @property
    def url(self) -> str:
        """Return the repository's ``git+file://`` URL (no ref, no fragment)."""
        return f"git+{self.root.as_uri()}"

    def requirement(self, ref: str = "v1") -> str:
        """Return ``gitpkg @ git+file://...@ref#subdirectory=sub``."""
        return f"gitpkg @ {self.url}@{ref}#subdirectory=sub"


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository(tmp_path / "repo")


class TestGitSources:
    async def test_compile_pins_the_commit_of_the_tag_and_fetches_once(
        self, stack: Stack, repo: Repository
    ) -> None:
        result = await stack.compiler.compile(repo.requirement())
        assert pins(result) == {"gitpkg": "1.0"}
        pinned = f"gitpkg @ {repo.url}@{repo.v1}#subdirectory=sub"
        assert pinned in result.output.splitlines()
        assert (stack.fetches, stack.builds) == (1, 1)
        checkouts = stack.bucket(Bucket.GIT) / "checkouts"
        assert [p.name for p in checkouts.glob("*/*") if p.is_dir()] == [repo.v1]
        # Again, and from the pinned output: no fetch, no build.
        assert await stack.compiler.pins(repo.requirement()) == {"gitpkg": "1.0"}
        assert await stack.compiler.pins(pinned) == {"gitpkg": "1.0"}
        assert (stack.fetches, stack.builds) == (1, 1)

    async def test_sync_installs_it_with_its_vcs_info(self, stack: Stack, repo: Repository) -> None:
        result = await stack.sync(repo.requirement())
        (change,) = result.installed
        assert (change.name, change.version, change.reason) == ("gitpkg", "1.0", "missing")
        assert change.url == f"{repo.url}@{repo.v1}#subdirectory=sub"
        info = site_packages(stack.venv) / "gitpkg-1.0.dist-info"
        assert msgspec.json.decode((info / "direct_url.json").read_bytes()) == {
            "url": repo.root.as_uri(),
            "vcs_info": {"vcs": "git", "commit_id": repo.v1, "requested_revision": "v1"},
            "subdirectory": "sub",
        }
        assert record_mismatches(info) == []
        assert (stack.fetches, stack.builds) == (1, 1)
        again = await stack.sync(repo.requirement())
        assert (again.installed, again.removed, again.unchanged) == ([], [], 1)
        assert (stack.fetches, stack.builds) == (1, 1)

    async def test_another_commit_is_built_and_replaces_the_install(
        self, stack: Stack, repo: Repository
    ) -> None:
        await stack.sync(repo.requirement())
        result = await stack.sync(repo.requirement("main"))
        assert [(c.name, c.version) for c in result.installed] == [("gitpkg", "2.0")]
        assert installed(stack.venv) == {"gitpkg": "2.0"}
        # A ref not resolved before is fetched; each commit is a build of its own.
        assert (stack.fetches, stack.builds) == (2, 2)

    async def test_two_concurrent_compiles_fetch_and_build_once(
        self, stack: Stack, repo: Repository
    ) -> None:
        one, two = await asyncio.gather(
            stack.compiler.compile(repo.requirement()),
            stack.compiler.compile(repo.requirement()),
        )
        assert pins(one) == pins(two) == {"gitpkg": "1.0"}
        assert (stack.fetches, stack.builds) == (1, 1)

    async def test_a_resolve_starting_as_another_fetch_ends_reads_that_fetch(
        self, stack: Stack, repo: Repository, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # The second compile starts after the first's fetch ended but before the first
        # recorded the commit (a slow rev-parse holds that window open): it must wait for
        # the record, not fetch the repository again (seen as a flaky double fetch in CI).
        repos = stack.services.builder.git
        rev_parse = repos._rev_parse
        fetched = asyncio.Event()
        loop = asyncio.get_running_loop()

        def slow_rev_parse(db: Path, wanted: str) -> str | None:
            if repos.fetches:
                loop.call_soon_threadsafe(fetched.set)
                time.sleep(0.3)
            return rev_parse(db, wanted)

        monkeypatch.setattr(repos, "_rev_parse", slow_rev_parse)
        first = asyncio.ensure_future(stack.compiler.compile(repo.requirement()))
        await fetched.wait()
        second = await stack.compiler.compile(repo.requirement())
        assert pins(await first) == pins(second) == {"gitpkg": "1.0"}
        assert (stack.fetches, stack.builds) == (1, 1)

    async def test_an_unknown_ref_is_a_clear_error(self, stack: Stack, repo: Repository) -> None:
        error = await stack.compiler.fail(repo.requirement("nope"))
        assert isinstance(error, InvalidRequirement)
        assert error.code == ErrorCode.INVALID_REQUIREMENT
        assert f"{repo.url} has no branch, tag or commit 'nope'" in error.message
        assert stack.builds == 0
