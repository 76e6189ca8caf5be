"""Which file of a project version a target would install: tag ranking, yanks, Requires-Python."""

from __future__ import annotations

import json

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from burrowd.daemon.candidates import CandidateCache, ProjectCandidates
from burrowd.daemon.index.client import ProjectFiles
from burrowd.daemon.index.models import IndexFile
from burrowd.daemon.index.parse import PageFiles, parse_json_page
from burrowd.daemon.interpreters import InterpreterInfo, Target
from tests.daemon.cache.harness import host_interpreter

INDEX = "https://index/simple/"
LINUX_311 = {"python_version": "3.11", "python_platform": "x86_64-manylinux_2_28"}


@pytest.fixture
async def host() -> InterpreterInfo:
    info = await host_interpreter()
    if info.implementation != "cpython":
        pytest.skip("the tag tables here are CPython's")
    return info


def _file(
    filename: str, *, yanked: str | None = None, requires_python: str | None = None
) -> IndexFile:
    return IndexFile(
        filename=filename,
        url=f"https://files/{filename}",
        hashes={"sha256": "0" * 64},
        requires_python=requires_python,
        yanked=yanked,
    )


def _project(*files: IndexFile, name: str = "foo") -> ProjectFiles:
    return ProjectFiles(canonicalize_name(name), [(PageFiles.of(list(files)), INDEX)], [INDEX])


def _best(host: InterpreterInfo, filenames: list[str], target: dict[str, str]) -> str | None:
    built_for = Target.build(host, **target)
    built = ProjectCandidates.build(_project(*(_file(n) for n in filenames)), built_for)
    choice = built.versions[Version("1.0")].best(built_for, allow_yanked=False)
    return None if choice is None else choice[0].filename


class TestTagRanking:
    @pytest.mark.parametrize(
        ("filenames", "target", "best"),
        [
            pytest.param(
                [
                    "foo-1.0-py3-none-any.whl",
                    "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                    "foo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
                ],
                LINUX_311,
                "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                id="binary-beats-pure",
            ),
            pytest.param(
                [
                    "foo-1.0-py3-none-any.whl",
                    "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                    "foo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
                ],
                {"python_version": "3.12", "python_platform": "x86_64-manylinux_2_28"},
                "foo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
                id="python-3.12",
            ),
            pytest.param(
                [
                    "foo-1.0-py3-none-any.whl",
                    "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                ],
                {"python_version": "3.11", "python_platform": "aarch64-apple-darwin"},
                "foo-1.0-py3-none-any.whl",
                id="other-platform-gets-pure",
            ),
            pytest.param(
                [
                    "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                    "foo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
                    "foo-1.0-cp311-abi3-manylinux_2_28_x86_64.whl",
                ],
                LINUX_311,
                "foo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl",
                id="newest-glibc",
            ),
            pytest.param(
                ["foo-1.0-cp311-cp311-manylinux_2_34_x86_64.whl", "foo-1.0-py3-none-any.whl"],
                LINUX_311,
                "foo-1.0-py3-none-any.whl",
                id="glibc-too-new",
            ),
            pytest.param(
                ["foo-1.0-cp39-abi3-manylinux_2_17_x86_64.whl", "foo-1.0-py3-none-any.whl"],
                LINUX_311,
                "foo-1.0-cp39-abi3-manylinux_2_17_x86_64.whl",
                id="abi3",
            ),
            pytest.param(
                [
                    "foo-1.0-cp311-cp311-linux_x86_64.whl",
                    "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                ],
                LINUX_311,
                "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                id="manylinux-beats-plain-linux",
            ),
            pytest.param(
                [
                    "foo-1.0-cp37-cp37m-manylinux2014_x86_64.whl",
                    "foo-1.0-cp311-cp311-manylinux2014_x86_64.whl",
                ],
                {"python_version": "3.7", "python_platform": "linux"},
                "foo-1.0-cp37-cp37m-manylinux2014_x86_64.whl",
                id="python-3.7-abi",
            ),
            pytest.param(
                [
                    "foo-1.0-cp311-cp311-win_amd64.whl",
                    "foo-1.0-cp311-cp311-macosx_11_0_arm64.whl",
                    "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
                ],
                {"python_version": "3.11", "python_platform": "x86_64-pc-windows-msvc"},
                "foo-1.0-cp311-cp311-win_amd64.whl",
                id="windows",
            ),
            pytest.param(
                ["foo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"],
                LINUX_311,
                None,
                id="nothing-compatible",
            ),
        ],
    )
    async def test_best_wheel(
        self, host: InterpreterInfo, filenames: list[str], target: dict[str, str], best: str | None
    ) -> None:
        assert _best(host, filenames, target) == best

    async def test_grouping(self, host: InterpreterInfo) -> None:
        target = Target.build(host, **LINUX_311)
        files = _project(
            _file("foo-1.0-py3-none-any.whl"),
            _file("foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
            _file("foo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"),
            _file("foo-1.0.tar.gz"),
            _file("foo-2.0rc1.tar.gz"),
            _file("foo-0.9.zip"),
            _file("foobar-1.0-py3-none-any.whl"),  # another project on the page
            _file("foo-bad-version-py3-none-any.whl"),
        )
        built = ProjectCandidates.build(files, target)
        assert built.ordered == [Version("2.0rc1"), Version("1.0"), Version("0.9")]
        one = built.versions[Version("1.0")]
        assert [f.filename for _, f, _ in one.wheels] == [
            "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
            "foo-1.0-py3-none-any.whl",
        ]
        assert [f.filename for f in one.other_wheels] == [
            "foo-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"
        ]
        assert [f.filename for f, _ in one.sdists] == ["foo-1.0.tar.gz"]
        assert [f.filename for f, _ in one.usable(allow_yanked=False)] == [
            "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
            "foo-1.0-py3-none-any.whl",
            "foo-1.0.tar.gz",
        ]
        assert one.wheels[0][0] < one.wheels[1][0]


class TestBuiltOnDemand:
    async def test_only_the_files_of_the_version_looked_at_are_built(
        self, host: InterpreterInfo
    ) -> None:
        target = Target.build(host, **LINUX_311)
        names = [
            f"foo-{v}-{tags}.whl"
            for v in ("1.0", "2.0")
            for tags in (
                "py3-none-any",
                "cp311-cp311-manylinux_2_17_x86_64",
                "cp312-cp312-manylinux_2_17_x86_64",
            )
        ]
        names += ["foo-1.0.tar.gz", "foo-2.0.tar.gz", "foo-2.0-py3-none.whl"]  # last: no ABI
        body = json.dumps(
            {"name": "foo", "files": [{"filename": n, "url": f"https://f/{n}"} for n in names]}
        ).encode()
        listing = parse_json_page(body, INDEX + "foo/", INDEX).listing
        files = ProjectFiles(canonicalize_name("foo"), [(listing, INDEX)], [INDEX])
        built = ProjectCandidates.build(files, target)
        assert built.ordered == [Version("2.0"), Version("1.0")]
        assert listing.built() == 0
        two = built.versions[Version("2.0")]
        best = two.best(target, allow_yanked=False)
        assert best is not None
        assert best[0].filename == "foo-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"
        assert listing.built() == 3  # the two wheels this target can install, the sdist
        assert [f.filename for f in two.other_wheels] == [
            "foo-2.0-cp312-cp312-manylinux_2_17_x86_64.whl"
        ]
        assert listing.built() == 4
        assert [f.filename for f in two.all_files()] == [*names[3:6], "foo-2.0.tar.gz"]
        assert listing.built() == 4  # nothing of 1.0, and not the malformed name


class TestYankedAndRequiresPython:
    async def test_yanked_files_only_when_allowed(self, host: InterpreterInfo) -> None:
        target = Target.build(host, **LINUX_311)
        files = _project(
            _file("foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", yanked="broken build"),
            _file("foo-1.0-py3-none-any.whl"),
        )
        version = ProjectCandidates.build(files, target).versions[Version("1.0")]
        choice = version.best(target, allow_yanked=False)
        assert choice is not None
        assert choice[0].filename == "foo-1.0-py3-none-any.whl"
        yanked = version.best(target, allow_yanked=True)
        assert yanked is not None
        assert yanked[0].yanked == "broken build"
        assert not version.yanked
        assert version.yank_reason == "broken build"

    async def test_every_file_yanked(self, host: InterpreterInfo) -> None:
        target = Target.build(host, **LINUX_311)
        files = _project(
            _file("foo-1.0-py3-none-any.whl", yanked=""), _file("foo-1.0.tar.gz", yanked="")
        )
        version = ProjectCandidates.build(files, target).versions[Version("1.0")]
        assert version.yanked
        assert version.yank_reason == ""
        assert version.best(target, allow_yanked=False) is None

    async def test_requires_python_filters_files(self, host: InterpreterInfo) -> None:
        target = Target.build(host, **LINUX_311)
        files = _project(
            _file("foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", requires_python=">=3.12"),
            _file("foo-1.0-py3-none-any.whl", requires_python=">=3.8,<4"),
            _file("foo-1.0.tar.gz", requires_python="this is not a specifier"),
        )
        version = ProjectCandidates.build(files, target).versions[Version("1.0")]
        choice = version.best(target, allow_yanked=False)
        assert choice is not None
        assert choice[0].filename == "foo-1.0-py3-none-any.whl"
        old = Target.build(host, python_version="3.7", python_platform="linux")
        only_sdist = ProjectCandidates.build(files, old).versions[Version("1.0")]
        choice = only_sdist.best(old, allow_yanked=False)
        assert choice is not None
        assert choice[0].filename == "foo-1.0.tar.gz"  # a malformed Requires-Python is ignored


class TestCandidateCache:
    async def test_built_once_per_page_and_target(self, host: InterpreterInfo) -> None:
        memo = CandidateCache()
        target = Target.build(host, **LINUX_311)
        other = Target.build(host, python_version="3.12", python_platform="linux")
        files = _project(_file("foo-1.0-py3-none-any.whl"))
        first = memo.get(files, target)
        assert memo.get(files, target) is first
        assert memo.get(files, other) is not first
        changed = _project(_file("foo-1.0-py3-none-any.whl"), _file("foo-2.0.tar.gz"))
        assert memo.get(changed, target).ordered == [Version("2.0"), Version("1.0")]
        memo.clear()
        assert memo.get(files, target) is not first

    async def test_bounded(self, host: InterpreterInfo) -> None:
        memo = CandidateCache(size=2)
        target = Target.build(host, **LINUX_311)
        pages = [_project(_file(f"foo-{i}.0.tar.gz")) for i in range(5)]
        for page in pages:
            memo.get(page, target)
        assert len(memo._memo) == 2
