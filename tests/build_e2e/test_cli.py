"""``burrow compile/sync/install`` of sources that need a build: the real CLI and daemon.

One daemon serves the module; every test has its own fake index, its own project
directories and git repository under ``tmp_path`` (so its own cache keys) and its own
environments. Everything builds offline with the in-tree test backend
(``tests/support/backend``), which needs no build requirement from an index.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from burrowd.protocol.errors import ErrorCode
from tests.build_e2e.support import (
    Counters,
    counters,
    direct_url,
    dist_info,
    git,
    project_dir,
    python_says,
)
from tests.install_e2e.support import Burrow, finish, make_venv, reaped, requirements
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex
from tests.support.plugin import DistFactory

#: A registry project whose only file is an sdist with dynamic dependencies.
DYN: Final = DistSpec("dyn", "1.0", requires_dist=["dep>=1"])
DEP: Final = DistSpec("dep", "1.0")
#: The project of the local directory ``./pkg``.
LOCAL: Final = DistSpec(
    "localpkg", "2.0", files={"localpkg/__init__.py": b"__version__ = '2.0'\nWHAT = 'original'\n"}
)
#: The project in the git repository's ``sub`` directory, as the tag has it.
GIT_TAGGED: Final = DistSpec(
    "gitpkg",
    "3.0",
    requires_dist=["dep<2"],
    files={"gitpkg/__init__.py": b"__version__ = '3.0'\nWHERE = 'tagged'\n"},
)
TAG: Final = "v3.0"

#: A backend whose hooks print a line and raise.
BOOM_PYPROJECT: Final = """\
[build-system]
requires = []
build-backend = "boom_backend"
backend-path = ["."]

[project]
name = "bad"
version = "1.0"
dynamic = ["dependencies"]
"""
BOOM_BACKEND: Final = """\
def _boom(*args, **kwargs):
    print("the boom backend starts")
    raise RuntimeError("boom")


get_requires_for_build_wheel = lambda config_settings=None: []
prepare_metadata_for_build_wheel = _boom
build_wheel = _boom
"""


@dataclass
class Sources:
    """What one test compiles: an index, a project directory and a git repository."""

    index: FakeIndex
    pkg: Path
    repo: Path
    commit: str  # what TAG names (the branch head is a later commit)

    @property
    def git_url(self) -> str:
        return f"git+{self.repo.as_uri()}"

    def compiled(self) -> str:
        """Return the compile output expected of ``requirements.in`` (without the header)."""
        return (
            "dep==1.0\n"
            "    # via\n"
            "    #   dyn\n"
            "    #   gitpkg\n"
            "dyn==1.0\n"
            "    # via -r requirements.in (line 1)\n"
            f"gitpkg @ {self.git_url}@{self.commit}#subdirectory=sub\n"
            "    # via -r requirements.in (line 3)\n"
            f"localpkg @ {self.pkg.as_uri()}\n"
            "    # via -r requirements.in (line 2)\n"
        )


@pytest.fixture
def sources(
    burrow: Burrow, fake_index: FakeIndex, dist_factory: DistFactory, tmp_path: Path
) -> Sources:
    fake_index.add(DYN, sdist=True, wheel=False, static_metadata=False)
    fake_index.add(DEP)
    pkg = project_dir(dist_factory.source_tree(LOCAL, static_metadata=False), burrow.cwd / "pkg")
    repo = tmp_path / "repo"
    project_dir(dist_factory.source_tree(GIT_TAGGED, static_metadata=False), repo / "sub")
    (repo / "README").write_text("a repository with its project in sub/\n")
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--message", "gitpkg 3.0")
    git(repo, "tag", TAG)
    commit = git(repo, "rev-parse", "HEAD").strip()
    # A later commit: the tag, not the branch head, is what must be built.
    (repo / "sub" / "gitpkg" / "__init__.py").write_text("__version__ = '3.0'\nWHERE = 'head'\n")
    git(repo, "commit", "--quiet", "--all", "--message", "after the tag")
    assert git(repo, "rev-parse", "HEAD").strip() != commit
    requirements(
        burrow.cwd / "requirements.in",
        "dyn",
        "./pkg",
        f"gitpkg @ git+{repo.as_uri()}@{TAG}#subdirectory=sub",
    )
    return Sources(fake_index, pkg, repo, commit)


def _plain(out: str) -> str:
    """Return ``out`` with durations and sizes replaced, for exact transcripts."""
    out = re.sub(r" \(\d+(\.\d+)? (B|KiB|MiB) downloaded\)", "", out)
    return re.sub(r" in \d+(\.\d+)?(ms|s)\b", " in <t>", out)


def _compile(burrow: Burrow, src: Sources) -> str:
    """Compile ``requirements.in`` to ``requirements.txt``; return what was written."""
    url = src.index.simple_url
    burrow.ok("compile", "requirements.in", "-o", "requirements.txt", "--no-header", "-i", url)
    return (burrow.cwd / "requirements.txt").read_text()


def _sync(burrow: Burrow, src: Sources, venv: Path, reqs: str = "requirements.txt") -> str:
    return burrow.ok("sync", reqs, "-p", venv, "-i", src.index.simple_url)


_IMPORT_ALL: Final = (
    "import dep, dyn, gitpkg, localpkg; "
    "print(dep.__version__, dyn.__version__, gitpkg.__version__, gitpkg.WHERE, "
    "localpkg.__version__, localpkg.WHAT)"
)


class TestCompileAndSync:
    def test_compile_pins_every_source_and_sync_installs_them(
        self, burrow: Burrow, sources: Sources, tmp_path: Path
    ) -> None:
        before = counters(burrow)
        assert _compile(burrow, sources) == sources.compiled()
        after_compile = counters(burrow)
        # Each source needed its metadata built, once; the repository was fetched once.
        assert after_compile == Counters(before.builds + 3, before.git_fetches + 1)

        venv = make_venv(tmp_path / "venv")
        out = _sync(burrow, sources, venv)
        assert _plain(out) == (
            "Prepared 4 packages in <t>\n"
            "Installed 4 packages in <t>\n"
            " + dep==1.0\n"
            " + dyn==1.0\n"
            f" + gitpkg @ {sources.git_url}@{sources.commit}#subdirectory=sub\n"
            f" + localpkg @ {sources.pkg.as_uri()}\n"
        )
        assert python_says(venv, _IMPORT_ALL) == "1.0 1.0 3.0 tagged 2.0 original\n"
        # The sync built the three wheels (the compile only asked for metadata), no fetch.
        assert counters(burrow) == Counters(after_compile.builds + 3, after_compile.git_fetches)

        for name in ("dep", "dyn", "gitpkg", "localpkg"):
            assert (dist_info(venv, name) / "INSTALLER").read_text() == "burrowd\n"
        assert direct_url(venv, "dep") is None
        assert direct_url(venv, "dyn") is None  # built from the index: not a direct reference
        assert direct_url(venv, "localpkg") == {"url": sources.pkg.as_uri(), "dir_info": {}}
        # PEP 610: the repository URL without "git+", the commit the pin names.
        assert direct_url(venv, "gitpkg") == {
            "url": sources.repo.as_uri(),
            "vcs_info": {
                "vcs": "git",
                "commit_id": sources.commit,
                "requested_revision": sources.commit,
            },
            "subdirectory": "sub",
        }

    def test_second_compile_and_sync_build_and_fetch_nothing(
        self, burrow: Burrow, sources: Sources, tmp_path: Path
    ) -> None:
        venv = make_venv(tmp_path / "venv")
        first = _compile(burrow, sources)
        _sync(burrow, sources, venv)
        before = counters(burrow)

        assert _compile(burrow, sources) == first
        out = _sync(burrow, sources, venv)
        assert _plain(out) == "Audited 4 packages in <t>\n"
        assert counters(burrow) == before

        # Another environment takes the wheels built for the first one.
        other = make_venv(tmp_path / "other")
        out = _sync(burrow, sources, other)
        assert "Installed 4 packages in " in out, out
        assert python_says(other, _IMPORT_ALL) == "1.0 1.0 3.0 tagged 2.0 original\n"
        assert counters(burrow) == before

    def test_edited_directory_is_rebuilt_and_reinstalled(
        self, burrow: Burrow, sources: Sources, tmp_path: Path
    ) -> None:
        venv = make_venv(tmp_path / "venv")
        _compile(burrow, sources)
        _sync(burrow, sources, venv)
        before = counters(burrow)

        # A module edited alone is not a new revision of the project.
        init = sources.pkg / "localpkg" / "__init__.py"
        init.write_text("__version__ = '2.0'\nWHAT = 'edited'\n")
        assert _plain(_sync(burrow, sources, venv)) == "Audited 4 packages in <t>\n"
        assert counters(burrow) == before
        # An edited pyproject.toml is: the directory is built again and reinstalled.
        pyproject = sources.pkg / "pyproject.toml"
        pyproject.write_text(pyproject.read_text() + "\n# edited\n")
        out = _plain(_sync(burrow, sources, venv))
        assert out.splitlines()[-2:] == [
            f" - localpkg @ {sources.pkg.as_uri()}",
            f" + localpkg @ {sources.pkg.as_uri()}",
        ], out
        # One build: the new revision's wheel.
        assert counters(burrow) == Counters(before.builds + 1, before.git_fetches)
        assert python_says(venv, "import localpkg; print(localpkg.WHAT)") == "edited\n"

    def test_concurrent_compiles_fetch_the_repository_once(
        self, burrow: Burrow, sources: Sources
    ) -> None:
        before = counters(burrow)
        url = sources.index.simple_url
        procs = [
            burrow.popen("compile", "requirements.in", "--no-header", "-i", url) for _ in range(2)
        ]
        with reaped(*procs):
            results = [finish(proc) for proc in procs]
        for status, out, err in results:
            assert status == 0, (out, err)
            assert out == sources.compiled()
        # One fetch of the repository, one metadata build per source: single-flight.
        assert counters(burrow) == Counters(before.builds + 3, before.git_fetches + 1)


class TestEditable:
    def test_editable_directory_shows_edits_without_reinstall(
        self, burrow: Burrow, sources: Sources, tmp_path: Path
    ) -> None:
        venv = make_venv(tmp_path / "venv")
        reqs = requirements(burrow.cwd / "editable.txt", "-e ./pkg")
        out = _sync(burrow, sources, venv, reqs.name)
        assert _plain(out).splitlines()[-1] == f" + localpkg @ {sources.pkg.as_uri()}"
        assert direct_url(venv, "localpkg") == {
            "url": sources.pkg.as_uri(),
            "dir_info": {"editable": True},
        }
        probe = "import localpkg; print(localpkg.WHAT, localpkg.__file__)"
        in_tree = sources.pkg / "localpkg" / "__init__.py"
        assert python_says(venv, probe) == f"original {in_tree}\n"

        before = counters(burrow)
        in_tree.write_text("__version__ = '2.0'\nWHAT = 'edited in place'\n")
        assert python_says(venv, probe) == f"edited in place {in_tree}\n"
        assert _plain(_sync(burrow, sources, venv, reqs.name)) == "Audited 1 package in <t>\n"
        assert counters(burrow) == before


class TestRefusals:
    def test_failing_build_prints_the_backend_log(
        self, burrow: Burrow, fake_index: FakeIndex
    ) -> None:
        bad = burrow.cwd / "bad"
        bad.mkdir()
        (bad / "pyproject.toml").write_text(BOOM_PYPROJECT)
        (bad / "boom_backend.py").write_text(BOOM_BACKEND)
        requirements(burrow.cwd / "bad.in", "./bad")
        args = ("compile", "bad.in", "-i", fake_index.simple_url)

        done = burrow.run(*args)
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert done.stdout == ""
        head, marker, log = done.stderr.partition("--- build log ---\n")
        assert marker, done.stderr
        # One error line of burrow's own, then the backend's output, and nothing after it:
        # the traceback in the log is the backend's (the hook ran in a subprocess).
        assert head == (
            f"error: building {bad} failed (backend boom_backend, "
            "prepare_metadata_for_build_wheel): the backend's prepare_metadata_for_build_wheel "
            "exited with status 1\n"
        )
        lines = log.splitlines()
        assert "the boom backend starts" in lines
        assert lines[-1] == "RuntimeError: boom"
        assert "boom_backend.py" in log

        error = burrow.json_error(*args)
        assert error["code"] == -32013 == int(ErrorCode.BUILD_FAILED)
        assert error["data"]["backend"] == "boom_backend"
        assert error["data"]["hook"] == "prepare_metadata_for_build_wheel"
        assert error["data"]["source"] == str(bad)
        assert error["data"]["log_tail"].endswith("RuntimeError: boom")

    def test_no_build_refuses_every_source(
        self, burrow: Burrow, sources: Sources, tmp_path: Path
    ) -> None:
        before = counters(burrow)
        url = sources.index.simple_url
        stderr = burrow.fails("compile", "dyn", "--no-build", "-i", url)
        assert stderr == (
            "error: No solution found when resolving dependencies:\n"
            "Because there is no version of dyn (1 version has no wheel, and --no-build "
            "forbids building one) and you require dyn, we can conclude that your "
            "requirements are unsatisfiable.\n"
        )
        requirements(burrow.cwd / "pkg.in", "./pkg")
        stderr = burrow.fails("compile", "pkg.in", "--no-build", "-i", url)
        assert stderr == (
            f"error: localpkg needs a build from {sources.pkg}: --no-build forbids building "
            "it; give a wheel, or drop --no-build\n"
        )
        venv = make_venv(tmp_path / "venv")
        pins = requirements(burrow.cwd / "pins.txt", f"localpkg @ {sources.pkg.as_uri()}")
        stderr = burrow.fails("sync", pins, "-p", venv, "--no-build", "-i", url)
        assert "--no-build forbids building it" in stderr, stderr
        assert burrow.names(venv) == {}
        assert counters(burrow).builds == before.builds


def _repack(sdist: Path, dest: Path) -> Path:
    """Write the members of the ``.tar.gz`` ``sdist`` to ``dest``, compressed as its
    suffix says."""
    raw = io.BytesIO()
    with tarfile.open(sdist, "r:gz") as src, tarfile.open(fileobj=raw, mode="w") as out:
        for member in src.getmembers():
            out.addfile(member, src.extractfile(member) if member.isfile() else None)
    compress = _COMPRESS[next(x for x in _COMPRESS if dest.name.endswith(x))]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(compress(raw.getvalue()))
    return dest


#: How each older sdist format compresses its tar.
_COMPRESS: Final[dict[str, Callable[[bytes], bytes]]] = {
    ".tar.bz2": bz2.compress,
    ".tar.xz": lzma.compress,
    ".tgz": gzip.compress,
    ".tar": bytes,
}


@pytest.mark.parametrize(
    ("suffix", "static"),
    [
        pytest.param(".tar.bz2", False, id="tar.bz2-built-for-its-metadata"),
        pytest.param(".tar.xz", True, id="tar.xz-static-metadata"),
        pytest.param(".tgz", True, id="tgz"),
        pytest.param(".tar", False, id="uncompressed-tar"),
    ],
)
def test_an_sdist_in_a_format_older_than_pep_625_is_built_and_installed(
    burrow: Burrow, fake_index: FakeIndex, tmp_path: Path, suffix: str, static: bool
) -> None:
    # Releases uploaded before PEP 625 have sdists of other formats; pip and uv take them.
    (made,) = fake_index.add(DYN, sdist=True, wheel=False, static_metadata=static)
    fake_index.remove("dyn")
    legacy = _repack(made.path, tmp_path / "legacy" / f"dyn-1.0{suffix}")
    fake_index.add(legacy)
    fake_index.add(DEP)
    assert [f.filename for f in fake_index.files("dyn")] == [f"dyn-1.0{suffix}"]
    venv = make_venv(tmp_path / "venv")

    out = burrow.ok("install", "dyn", "-p", venv, "-i", fake_index.simple_url)
    assert _plain(out).splitlines()[-2:] == [" + dep==1.0", " + dyn==1.0"], out
    assert python_says(venv, "import dyn; print(dyn.__version__)") == "1.0\n"
    assert burrow.names(venv) == {"dep": "1.0", "dyn": "1.0"}

    # The same file named directly: compiled to its URL, and installed from it.
    url = fake_index.simple_url
    pinned = burrow.ok("compile", legacy, "--no-header", "--no-annotate", "-i", url)
    assert pinned == f"dep==1.0\ndyn @ {legacy.as_uri()}\n"
    direct = make_venv(tmp_path / "direct")
    out = burrow.ok("install", legacy, "-p", direct, "-i", url)
    assert _plain(out).splitlines()[-2:] == [" + dep==1.0", f" + dyn @ {legacy.as_uri()}"], out
    assert python_says(direct, "import dyn; print(dyn.__version__)") == "1.0\n"


def test_install_builds_a_package_that_only_has_an_sdist(
    burrow: Burrow, fake_index: FakeIndex, tmp_path: Path
) -> None:
    (sdist,) = fake_index.add(DYN, sdist=True, wheel=False, static_metadata=False)
    assert sdist.kind == "sdist"
    fake_index.add(DEP)
    venv = make_venv(tmp_path / "venv")
    before = counters(burrow)

    out = burrow.ok("install", "dyn", "-p", venv, "-i", fake_index.simple_url)
    assert _plain(out).splitlines()[-2:] == [" + dep==1.0", " + dyn==1.0"], out
    assert counters(burrow) == Counters(before.builds + 2, before.git_fetches)  # metadata, wheel
    assert python_says(venv, "import dyn; print(dyn.__version__)") == "1.0\n"
    assert (dist_info(venv, "dyn") / "INSTALLER").read_text() == "burrowd\n"
    assert direct_url(venv, "dyn") is None
    assert burrow.names(venv) == {"dep": "1.0", "dyn": "1.0"}
