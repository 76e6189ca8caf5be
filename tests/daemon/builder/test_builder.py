"""The builder, end to end through ``resolve``, ``sync`` and ``install`` in this process.

Sources are fixture sdists on the fake index and project trees under ``tmp_path``; the
in-tree test backend builds them offline, and a fake ``setuptools`` served on the fake
index stands in for the legacy backend. ``stack.builds`` counts the backend runs.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import msgspec
import msgspec.structs
import pytest
from pytest_aiohttp import AiohttpServer

from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.errors import BuildFailed, BuildRequired, DaemonError, InvalidDistribution
from burrowd.protocol import messages as m
from burrowd.protocol.errors import ErrorCode
from tests.daemon.builder.fakes import (
    FAILING_BACKEND,
    RECORDING_BACKEND,
    RECORDING_FILE,
    fake_generator,
    fake_setuptools,
)
from tests.daemon.builder.harness import (
    Origin,
    Stack,
    installed,
    project_tree,
    retarget,
    venv_tree,
    wheel_generator,
)
from tests.daemon.installer.harness import record_mismatches, site_packages
from tests.resolve_e2e.harness import pins, release
from tests.support.dists import Backend, DistSpec
from tests.support.index import FROM_SPEC, FakeIndex, IndexedFile
from tests.support.plugin import DistFactory

PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def file_hits(index: FakeIndex) -> dict[str, int]:
    """Return how often each file (not page) of the index was requested."""
    return {path: n for path, n in index.hits.items() if path.startswith("/files/")}


def dynamic_sdist(
    index: FakeIndex, spec: DistSpec, *, backend: Backend = "in-tree", page_python: bool = True
) -> IndexedFile:
    """Publish ``spec`` as an sdist only, whose dependencies only a build tells.

    ``page_python=False``: the page gives no ``Requires-Python`` (the metadata still does).
    """
    (entry,) = index.add(
        spec,
        wheel=False,
        sdist=True,
        static_metadata=False,
        backend=backend,
        requires_python=FROM_SPEC if page_python else None,
    )
    return entry


MODULE = b"VALUE = 'built from the sdist'\n"


class TestInTreeBackend:
    @pytest.fixture(autouse=True)
    def _published(self, fake_index_async: FakeIndex) -> None:
        release(fake_index_async, "lib==1.0")
        release(fake_index_async, "lib==2.0")

    async def test_compile_builds_the_metadata_of_a_dynamic_sdist_once(
        self, stack: Stack, fake_index_async: FakeIndex
    ) -> None:
        sdist = dynamic_sdist(fake_index_async, DistSpec("dyn", "1.0", requires_dist=["lib<2"]))
        assert await stack.compiler.pins("dyn") == {"dyn": "1.0", "lib": "1.0"}
        assert stack.builds == 1
        # prepare_metadata_for_build_wheel only: metadata kept, no wheel yet.
        (meta,) = stack.built("metadata.msgpack")
        assert meta.parent.name == sdist.sha256[:32]
        assert meta.parent.parent.name == sdist.filename
        assert stack.built() == []
        assert await stack.compiler.pins("dyn") == {"dyn": "1.0", "lib": "1.0"}
        assert stack.builds == 1

    async def test_a_second_compile_downloads_nothing(
        self, stack: Stack, fake_index_async: FakeIndex
    ) -> None:
        dynamic_sdist(fake_index_async, DistSpec("dyn", "1.0", requires_dist=["lib<2"]))
        await stack.compiler.compile("dyn")
        fake_index_async.reset_hits()
        # Pages are fresh and the metadata of this sdist revision is in built-wheels-v0:
        # a fully cached resolve needs neither a build nor a download (DESIGN.md, Cache).
        assert await stack.compiler.pins("dyn") == {"dyn": "1.0", "lib": "1.0"}
        assert stack.builds == 1
        assert file_hits(fake_index_async) == {}

    async def test_compile_of_a_directory_builds_its_metadata_once_per_revision(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        tree = project_tree(DistSpec("treepkg", "2.5", requires_dist=["lib<2"]), tmp_path)
        result = await stack.compiler.compile(f"treepkg @ {tree.as_uri()}")
        assert pins(result) == {"treepkg": "2.5", "lib": "1.0"}
        assert f"treepkg @ {tree.as_uri()}" in result.output.splitlines()
        assert stack.builds == 1
        (meta,) = stack.built("metadata.msgpack")
        assert meta.relative_to(stack.bucket(Bucket.BUILT_WHEELS)).parts[0] == "path"
        assert await stack.compiler.pins(f"treepkg @ {tree.as_uri()}") == pins(result)
        assert stack.builds == 1
        # An edit of pyproject.toml is a new revision: built again, with what it now says.
        retarget(tree, DistSpec("treepkg", "2.6", requires_dist=["lib>=2"]))
        assert await stack.compiler.pins(f"treepkg @ {tree.as_uri()}") == {
            "treepkg": "2.6",
            "lib": "2.0",
        }
        assert stack.builds == 2
        assert len(stack.built("metadata.msgpack")) == 2

    async def test_sync_installs_a_wheel_built_from_the_sdist(
        self, stack: Stack, fake_index_async: FakeIndex
    ) -> None:
        spec = DistSpec("dyn", "1.0", requires_dist=["lib<2"], files={"dyn/__init__.py": MODULE})
        sdist = dynamic_sdist(fake_index_async, spec)
        result = await stack.sync("dyn==1.0", "lib==1.0")
        assert sorted((c.name, c.version, c.reason) for c in result.installed) == [
            ("dyn", "1.0", "missing"),
            ("lib", "1.0", "missing"),
        ]
        assert stack.builds == 1
        # The wheel lives under the sdist's revision (its sha256) in built-wheels-v0.
        (wheel,) = stack.built()
        assert wheel.name == "dyn-1.0-py3-none-any.whl"
        assert wheel.parent.name == sdist.sha256[:32]
        assert wheel.parent.parent.name == sdist.filename
        assert (wheel.parent / "metadata.msgpack").is_file()
        info = site_packages(stack.venv) / "dyn-1.0.dist-info"
        assert record_mismatches(info) == []
        assert (info / "INSTALLER").read_text() == "burrowd\n"
        assert not (info / "direct_url.json").exists()  # it came from the index
        assert (site_packages(stack.venv) / "dyn" / "__init__.py").read_bytes() == MODULE
        again = await stack.sync("dyn==1.0", "lib==1.0")
        assert (again.installed, again.unchanged) == ([], 2)
        assert stack.builds == 1

    async def test_install_resolves_with_the_built_metadata_and_installs_the_built_wheel(
        self, stack: Stack, fake_index_async: FakeIndex
    ) -> None:
        dynamic_sdist(fake_index_async, DistSpec("dyn", "1.0", requires_dist=["lib<2"]))
        result = await stack.installer.install("dyn")
        assert sorted((c.name, c.version) for c in result.installed) == [
            ("dyn", "1.0"),
            ("lib", "1.0"),
        ]
        assert stack.builds == 2  # the metadata for the resolver, then the wheel
        assert installed(stack.venv) == {"dyn": "1.0", "lib": "1.0"}
        assert record_mismatches(site_packages(stack.venv) / "dyn-1.0.dist-info") == []
        again = await stack.installer.install("dyn")
        assert (again.installed, again.unchanged) == ([], 2)
        assert stack.builds == 2


class TestLegacyBackend:
    """``[build-system]`` without ``build-backend``, or no ``pyproject.toml``: setuptools.

    The fake setuptools defines ``build_meta.__legacy__`` and no module-level hooks, so a
    build that succeeds went through ``setuptools.build_meta:__legacy__``.
    """

    @pytest.mark.parametrize(
        "backend",
        [
            pytest.param("setuptools-legacy", id="build-system-without-backend"),
            pytest.param("setup.py", id="setup-py-only"),
        ],
    )
    async def test_an_sdist_is_built_by_the_legacy_backend(
        self, stack: Stack, fake_index_async: FakeIndex, backend: Backend
    ) -> None:
        index = fake_index_async
        index.add(fake_setuptools("99.0"))
        release(index, "lib==1.0")
        spec = DistSpec("leg", "1.0", requires_dist=["lib"], files={"leg/__init__.py": MODULE})
        dynamic_sdist(index, spec, backend=backend)
        assert await stack.compiler.pins("leg") == {"leg": "1.0", "lib": "1.0"}
        result = await stack.sync("leg==1.0", "lib==1.0")
        assert sorted(c.name for c in result.installed) == ["leg", "lib"]
        (wheel,) = stack.built()
        assert wheel_generator(wheel) == fake_generator("99.0")
        info = site_packages(stack.venv) / "leg-1.0.dist-info"
        assert "Generator: fake-setuptools 99.0" in (info / "WHEEL").read_text()
        assert record_mismatches(info) == []
        assert (site_packages(stack.venv) / "leg" / "__init__.py").read_bytes() == MODULE
        ready = sorted(stack.bucket(Bucket.BUILD_ENVIRONMENTS).glob("*/.burrow-ready"))
        assert ready
        assert {p.read_text() for p in ready} == {
            "setuptools==99.0 setuptools-99.0-py3-none-any.whl\n"
        }

    async def test_the_requires_of_the_build_system_table_are_installed(
        self, stack: Stack, fake_index_async: FakeIndex, tmp_path: Path
    ) -> None:
        fake_index_async.add(fake_setuptools("45.0"))
        fake_index_async.add(fake_setuptools("99.0"))
        tree = project_tree(DistSpec("leg", "1.0"), tmp_path, backend="setuptools-legacy")
        (tree / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools<50"]\n')
        result = await stack.sync(f"leg @ {tree.as_uri()}")
        assert [(c.name, c.version) for c in result.installed] == [("leg", "1.0")]
        (wheel,) = stack.built()
        assert wheel_generator(wheel) == fake_generator("45.0")

    async def test_a_project_without_pyproject_needs_setuptools_40_8_or_later(
        self, stack: Stack, fake_index_async: FakeIndex, tmp_path: Path
    ) -> None:
        fake_index_async.add(fake_setuptools("40.0"))
        tree = project_tree(DistSpec("leg", "1.0"), tmp_path, backend="setup.py")
        assert not (tree / "pyproject.toml").exists()
        before = venv_tree(stack.venv)
        with pytest.raises(BuildFailed) as caught:
            await stack.sync(f"leg @ {tree.as_uri()}")
        assert caught.value.code == ErrorCode.BUILD_FAILED
        assert "setuptools>=40.8.0" in caught.value.message
        assert venv_tree(stack.venv) == before


class TestFailedBuild:
    @pytest.fixture
    def tree(self, tmp_path: Path) -> Path:
        spec = DistSpec("broken", "1.0")
        return project_tree(spec, tmp_path, module=("failing_backend", FAILING_BACKEND))

    @pytest.mark.parametrize(
        ("command", "hook"),
        [
            pytest.param("sync", "build_wheel", id="sync"),
            pytest.param("compile", "prepare_metadata_for_build_wheel", id="compile"),
        ],
    )
    async def test_the_error_carries_the_log_and_the_backend_and_nothing_is_kept(
        self, stack: Stack, tree: Path, command: str, hook: str
    ) -> None:
        before = venv_tree(stack.venv)
        requirement = f"broken @ {tree.as_uri()}"
        error: DaemonError
        if command == "sync":
            with pytest.raises(BuildFailed) as caught:
                await stack.sync(requirement)
            error = caught.value
        else:
            error = await stack.compiler.fail(requirement)
        assert isinstance(error, BuildFailed)
        assert error.to_error().code == -32013
        assert error.message.startswith(f"building {tree} failed")
        data = error.data
        assert isinstance(data, dict)
        assert data["backend"] == "failing_backend"
        assert data["hook"] == hook
        assert "about to fail" in data["log_tail"]
        assert "RuntimeError: boom" in data["log_tail"]
        assert stack.built() == []
        assert stack.built("metadata.msgpack") == []
        assert venv_tree(stack.venv) == before


class TestBuildOptions:
    async def test_no_build_refuses_a_sync_that_needs_one(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        tree = project_tree(DistSpec("treepkg", "1.0"), tmp_path)
        before = venv_tree(stack.venv)
        with pytest.raises(BuildRequired) as caught:
            await stack.sync(f"treepkg @ {tree.as_uri()}", build=m.BuildOptions(no_build=True))
        assert caught.value.to_error().code == -32013
        assert "--no-build" in caught.value.message
        assert str(tree) in caught.value.message
        assert stack.builds == 0
        assert venv_tree(stack.venv) == before

    async def test_no_build_refuses_a_compile_that_needs_one(
        self, stack: Stack, fake_index_async: FakeIndex
    ) -> None:
        dynamic_sdist(fake_index_async, DistSpec("dyn", "1.0"))
        error = await stack.compiler.fail("dyn", build=m.BuildOptions(no_build=True))
        assert error.code == ErrorCode.RESOLUTION_IMPOSSIBLE
        assert "dyn (1 version has no wheel, and --no-build forbids building one)" in (
            error.message
        )
        assert stack.builds == 0

    @pytest.mark.parametrize("isolation", [True, False], ids=["isolated", "no-build-isolation"])
    async def test_the_backend_runs_in_a_build_environment_or_the_target(
        self, stack: Stack, tmp_path: Path, isolation: bool
    ) -> None:
        spec = DistSpec("rec", "1.0")
        tree = project_tree(spec, tmp_path, module=("recording_backend", RECORDING_BACKEND))
        result = await stack.sync(
            f"rec @ {tree.as_uri()}", build=m.BuildOptions(no_build_isolation=not isolation)
        )
        assert [(c.name, c.version) for c in result.installed] == [("rec", "1.0")]
        prefix = Path((tree / RECORDING_FILE).read_text()).resolve()
        environments = stack.bucket(Bucket.BUILD_ENVIRONMENTS)
        if isolation:
            assert prefix.parent == environments.resolve()
        else:
            assert prefix == stack.venv.resolve()
            assert not environments.exists() or not any(environments.iterdir())


class TestRequiresPython:
    """An sdist must suit both the ``--python-version`` target and the real interpreter."""

    @pytest.mark.parametrize(
        ("requires_python", "python_version", "reason"),
        [
            pytest.param(
                "<3", None, "it requires Python <3, and the target is CPython", id="target"
            ),
            pytest.param(
                f"<{PY_VERSION}",
                "3.8",
                f"it requires Python <{PY_VERSION}, and the interpreter that builds it is "
                f"{PY_VERSION}.{sys.version_info.micro}",
                id="real-interpreter",
            ),
        ],
    )
    async def test_a_registry_sdist_is_unavailable_for_that_reason(
        self,
        stack: Stack,
        fake_index_async: FakeIndex,
        requires_python: str,
        python_version: str | None,
        reason: str,
    ) -> None:
        # The page says nothing, so only the built metadata can tell.
        spec = DistSpec("old", "1.0", requires_python=requires_python)
        dynamic_sdist(fake_index_async, spec, page_python=False)
        error = await stack.compiler.fail("old", python_version=python_version)
        assert error.code == ErrorCode.RESOLUTION_IMPOSSIBLE
        assert f"old==1.0 is unavailable: {reason}" in error.message
        # The metadata is kept (it is true); the refusal is the target's, and is repeated
        # without building again.
        builds = stack.builds
        again = await stack.compiler.fail("old", python_version=python_version)
        assert f"old==1.0 is unavailable: {reason}" in again.message
        assert stack.builds == builds

    async def test_a_directory_the_interpreter_cannot_run_is_refused(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        tree = project_tree(DistSpec("old", "1.0", requires_python="<3"), tmp_path)
        before = venv_tree(stack.venv)
        with pytest.raises(InvalidDistribution) as caught:
            await stack.sync(f"old @ {tree.as_uri()}")
        assert caught.value.message.startswith(
            f"invalid distribution {tree}: it requires Python <3, and the target is CPython"
        )
        assert venv_tree(stack.venv) == before
        # What was built is kept, but never installed where it cannot run.
        builds = stack.builds
        with pytest.raises(InvalidDistribution, match="it requires Python <3"):
            await stack.sync(f"old @ {tree.as_uri()}")
        assert stack.builds == builds
        assert venv_tree(stack.venv) == before


class TestUrlSources:
    """A URL sdist without a hash: one revision per content, revalidated after the TTL."""

    async def test_a_second_compile_within_the_lifetime_asks_nothing(
        self, stack: Stack, fake_index_async: FakeIndex
    ) -> None:
        entry = dynamic_sdist(fake_index_async, DistSpec("urlpkg", "1.0"))
        requirement = f"urlpkg @ {fake_index_async.url_for(entry)}"
        assert await stack.compiler.pins(requirement) == {"urlpkg": "1.0"}
        assert file_hits(fake_index_async).get(entry.url_path, 0) >= 1
        assert stack.builds == 1
        fake_index_async.reset_hits()
        assert await stack.compiler.pins(requirement) == {"urlpkg": "1.0"}
        assert stack.builds == 1
        assert file_hits(fake_index_async) == {}

    async def test_after_the_lifetime_a_304_keeps_the_revision_and_new_content_is_built(
        self, stack: Stack, aiohttp_server: AiohttpServer, dist_factory: DistFactory
    ) -> None:
        first = dist_factory.sdist(
            DistSpec("urlpkg", "1.0", files={"urlpkg/__init__.py": b"V = 1\n"}),
            static_metadata=False,
        )
        origin = Origin(first.name, first.read_bytes())
        server = await aiohttp_server(origin.app())
        requirement = f"urlpkg @ {server.make_url('/' + first.name)}"
        module = site_packages(stack.venv) / "urlpkg" / "__init__.py"

        async def sync_again() -> None:
            # Not --reinstall, which implies --refresh: the sync must fetch (and so build).
            await stack.installer.uninstall("urlpkg")
            await stack.sync(requirement)

        await stack.sync(requirement)
        assert origin.requests == [(None, 200)]
        assert stack.builds == 1
        info = site_packages(stack.venv) / "urlpkg-1.0.dist-info"
        recorded = msgspec.json.decode((info / "direct_url.json").read_bytes())
        digest = hashlib.sha256(first.read_bytes()).hexdigest()
        assert recorded["archive_info"]["hashes"] == {"sha256": digest}

        # Within the freshness lifetime: nothing is asked, nothing is built.
        await sync_again()
        assert origin.requests == [(None, 200)]
        assert stack.builds == 1

        # After it: a conditional request, a 304, the same revision, no build.
        stack.services.config = msgspec.structs.replace(stack.services.config, index_ttl=0.0)
        etag = origin.etag
        await sync_again()
        assert origin.requests[1:] == [(etag, 304)]
        assert stack.builds == 1
        assert module.read_bytes() == b"V = 1\n"

        # New content behind the same URL: a new revision, built; the old one is kept.
        second = dist_factory.sdist(
            DistSpec("urlpkg", "1.0", files={"urlpkg/__init__.py": b"V = 2\n"}),
            static_metadata=False,
        )
        origin.body = second.read_bytes()
        await sync_again()
        assert origin.requests[2:] == [(etag, 200)]
        assert stack.builds == 2
        assert module.read_bytes() == b"V = 2\n"
        assert {w.parent.name for w in stack.built()} == {
            digest[:32],
            hashlib.sha256(second.read_bytes()).hexdigest()[:32],
        }

    async def test_reinstall_revalidates_within_the_lifetime(
        self, stack: Stack, aiohttp_server: AiohttpServer, dist_factory: DistFactory
    ) -> None:
        sdist = dist_factory.sdist(DistSpec("urlpkg", "1.0"), static_metadata=False)
        origin = Origin(sdist.name, sdist.read_bytes())
        server = await aiohttp_server(origin.app())
        requirement = f"urlpkg @ {server.make_url('/' + sdist.name)}"
        await stack.sync(requirement)
        result = await stack.sync(requirement, reinstall=True)
        assert [(c.name, c.reason) for c in result.installed] == [("urlpkg", "reinstall")]
        assert origin.requests == [(None, 200), (origin.etag, 304)]
        assert stack.builds == 1

    async def test_without_validators_the_same_content_is_the_same_revision(
        self, stack: Stack, fake_index_async: FakeIndex
    ) -> None:
        # The fake index serves files without ETag or Last-Modified: after the lifetime the
        # sdist is downloaded again, unconditionally, and its digest says it is unchanged.
        entry = dynamic_sdist(fake_index_async, DistSpec("urlpkg", "1.0"))
        requirement = f"urlpkg @ {fake_index_async.url_for(entry)}"
        await stack.sync(requirement)
        assert stack.builds == 1
        stack.services.config = msgspec.structs.replace(stack.services.config, index_ttl=0.0)
        fake_index_async.reset_hits()
        await stack.installer.uninstall("urlpkg")
        await stack.sync(requirement)
        (request,) = (r for r in fake_index_async.requests if r.path == entry.url_path)
        assert request.status == 200
        assert "If-None-Match" not in request.headers
        assert "If-Modified-Since" not in request.headers
        assert stack.builds == 1
        assert len(stack.built()) == 1
