"""What review of the builder found: unsafe git URLs, hash pins of sources, wheels per
interpreter, editable repositories, a local sdist changed in place."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import msgspec.structs
import pytest

from burrowd.daemon.builder.builder import _find_wheel
from burrowd.daemon.builder.git import parse_git_url
from burrowd.daemon.errors import BuildFailed, HashMismatch, InvalidRequirement
from burrowd.daemon.installer import service
from burrowd.protocol import messages as m
from tests.daemon.builder.fakes import fake_generator, fake_setuptools
from tests.daemon.builder.harness import Stack, installed, project_tree, wheel_generator
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


class TestBuiltForTheTarget:
    """From a second review: a built wheel must suit the target, a changed sdist rebuild."""

    async def test_a_built_wheel_the_target_cannot_install_is_refused(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        # The build interpreter made a wheel for another platform: pip and uv would not
        # install it, and it was installed (and rebuilt by every sync, never found again).
        tree = project_tree(DistSpec("tagged", "1.0", tag="cp27-cp27mu-manylinux1_i686"), tmp_path)
        with pytest.raises(BuildFailed, match="built for cp27-cp27mu-manylinux1_i686"):
            await stack.sync(f"tagged @ {tree.as_uri()}")
        assert installed(stack.venv) == {}

    async def test_an_sdist_replaced_under_the_same_mtime_and_size_is_built_again(
        self, stack: Stack, dist_factory: DistFactory
    ) -> None:
        # cp -p, rsync -t, curl -R: the content is what tells one sdist from another.
        first = dist_factory.sdist(
            DistSpec("inplace", "1.0", files={"inplace/__init__.py": b"V = 1\n"}),
            static_metadata=False,
        )
        st = first.stat()
        await stack.sync(str(first))
        site = site_packages(stack.venv)
        second = dist_factory.sdist(
            DistSpec("inplace", "1.0", files={"inplace/__init__.py": b"V = 2\n"}),
            static_metadata=False,
        )
        assert second == first
        assert second.stat().st_size == st.st_size
        os.utime(second, ns=(st.st_atime_ns, st.st_mtime_ns))
        await stack.sync(str(second))
        assert (site / "inplace" / "__init__.py").read_bytes() == b"V = 2\n"

    async def test_a_backend_without_the_metadata_hook_builds_once(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        # PEP 517 makes prepare_metadata_for_build_wheel optional (meson-python lacks it):
        # the wheel built for the metadata is the one kept, not built again at sync.
        backend = (
            "import burrow_test_backend as _base\n"
            "from burrow_test_backend import get_requires_for_build_wheel  # noqa: F401\n"
            "from burrow_test_backend import build_sdist  # noqa: F401\n"
            "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
            "    with open('build_wheel_calls.txt', 'a') as fh:\n"
            "        fh.write('x')\n"
            "    return _base.build_wheel(wheel_directory, config_settings, metadata_directory)\n"
        )
        tree = project_tree(DistSpec("noprep", "1.0"), tmp_path, module=("noprep_backend", backend))
        requirement = f"noprep @ {tree.as_uri()}"
        await stack.compiler.compile(requirement)
        await stack.sync(requirement)
        assert (tree / "build_wheel_calls.txt").read_text() == "x"


class TestBuildEnvironment:
    async def test_a_build_runs_with_the_requesting_clients_variables(
        self, stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # CC, CFLAGS, PATH (cargo, cmake), proxies: pip and uv build with the caller's
        # environment, not the one of whoever started the daemon (or systemd's).
        monkeypatch.setenv("CFLAGS", "-O2 (the daemon's)")
        backend = (
            "import os\n"
            "import burrow_test_backend as _base\n"
            "from burrow_test_backend import *  # noqa: F403\n"
            "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n"
            "    with open('seen_cflags.txt', 'w') as fh:\n"
            "        fh.write(os.environ.get('CFLAGS', ''))\n"
            "    return _base.build_wheel(wheel_directory, config_settings, metadata_directory)\n"
        )
        tree = project_tree(DistSpec("envpkg", "1.0"), tmp_path, module=("env_backend", backend))
        installer = stack.installer
        env = msgspec.structs.replace(
            installer.client_env(), variables={"CFLAGS": "-O0 -g (the client's)"}
        )
        params = m.SyncParams(
            env=env,
            requirements=[f"envpkg @ {tree.as_uri()}"],
            index=installer.index_options(),
            options=m.InstallOptions(),
            build=m.BuildOptions(),
        )
        await installer.settled(service.sync(stack.services, params, installer.progress))
        assert (tree / "seen_cflags.txt").read_text() == "-O0 -g (the client's)"

    async def test_a_build_requirement_passes_over_a_version_with_only_an_sdist(
        self, stack: Stack, fake_index_async: FakeIndex, tmp_path: Path
    ) -> None:
        # Build requirements are never built from source: the newest version having only an
        # sdist must not fail the build when an older one has a wheel (pip and uv take it).
        fake_index_async.add(fake_setuptools("99.0"))
        fake_index_async.add(fake_setuptools("100.0"), wheel=False, sdist=True)
        tree = project_tree(DistSpec("leg", "1.0"), tmp_path, backend="setuptools-legacy")
        result = await stack.sync(f"leg @ {tree.as_uri()}")
        assert [(c.name, c.version) for c in result.installed] == [("leg", "1.0")]
        (wheel,) = stack.built()
        assert wheel_generator(wheel) == fake_generator("99.0")
