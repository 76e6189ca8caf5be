"""Which file of a project version a target would install: tag ranking, yanks, Requires-Python."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from burrowd.daemon.candidates import CandidateCache, ProjectCandidates, build_tag, uploaded_by
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


def _from_json(target: Target, *entries: dict[str, object], name: str = "foo") -> ProjectCandidates:
    body = json.dumps({"name": name, "files": list(entries)}).encode()
    listing = parse_json_page(body, INDEX + f"{name}/", INDEX).listing
    files = ProjectFiles(canonicalize_name(name), [(listing, INDEX)], [INDEX])
    return ProjectCandidates.build(files, target)


def _entry(filename: str, **fields: object) -> dict[str, object]:
    return {"filename": filename, "url": f"https://f/{filename}", **fields}


class TestFilenamesAsPipAndUvReadThem:
    async def test_of_wheels_with_equal_tags_the_higher_build_wins(
        self, host: InterpreterInfo
    ) -> None:
        # pip's sort key and uv's compatibility both end with the build tag (PEP 427).
        target = Target.build(host, **LINUX_311)
        built = _from_json(
            target,
            _entry("foo-1.0-1-py3-none-any.whl"),
            _entry("foo-1.0-py3-none-any.whl"),
            _entry("foo-1.0-10a-py3-none-any.whl"),
            _entry("foo-1.0-2-py3-none-any.whl"),
            _entry("foo-1.0-1-cp311-cp311-manylinux_2_17_x86_64.whl"),
        )
        wheels = [f.filename for _, f, _ in built.versions[Version("1.0")].wheels]
        assert wheels == [
            "foo-1.0-1-cp311-cp311-manylinux_2_17_x86_64.whl",  # better tags come first
            "foo-1.0-10a-py3-none-any.whl",
            "foo-1.0-2-py3-none-any.whl",
            "foo-1.0-1-py3-none-any.whl",
            "foo-1.0-py3-none-any.whl",  # no build tag: last
        ]
        assert build_tag("foo-1.0-10a-py3-none-any.whl") == (10, "a")

    @pytest.mark.parametrize(
        ("filename", "name", "version"),
        [
            pytest.param("foo-1.0-1.tar.gz", "foo", "1.0.post1", id="legacy-post"),
            pytest.param("foo-2.0-rc1.tar.gz", "foo", "2.0rc1", id="dash-pre"),
            pytest.param("foo-bar-1.0-1.zip", "foo-bar", "1.0.post1", id="dashed-name"),
        ],
    )
    async def test_an_sdist_version_may_hold_a_dash(
        self, host: InterpreterInfo, filename: str, name: str, version: str
    ) -> None:
        target = Target.build(host, **LINUX_311)
        built = _from_json(target, _entry(filename), _entry(f"{name}-0.5.tar.gz"), name=name)
        assert built.ordered == [Version(version), Version("0.5")]

    async def test_another_projects_sdist_makes_no_version(self, host: InterpreterInfo) -> None:
        target = Target.build(host, **LINUX_311)
        built = _from_json(target, _entry("foo-bar-1.0.tar.gz"), _entry("foo-0.5.tar.gz"))
        assert built.ordered == [Version("0.5")]

    async def test_a_malformed_wheel_name_makes_no_version(self, host: InterpreterInfo) -> None:
        # Without a platform tag it is no wheel name pip or uv accept: no empty version 3.0.
        target = Target.build(host, **LINUX_311)
        built = _from_json(
            target, _entry("foo-3.0-py3-none.whl"), _entry("foo-1.0-py3-none-any.whl")
        )
        assert built.ordered == [Version("1.0")]


class TestLenientEntries:
    async def test_yanked_null_is_not_yanked(self, host: InterpreterInfo) -> None:
        # pip reads file.get("yanked") and uv an optional value: null is not yanked, and the
        # target's best wheel is not passed over for a worse one.
        target = Target.build(host, **LINUX_311)
        built = _from_json(
            target,
            _entry("foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", yanked=None),
            _entry("foo-1.0-py3-none-any.whl"),
        )
        best = built.versions[Version("1.0")].best(target, allow_yanked=False)
        assert best is not None
        assert best[0].filename == "foo-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"

    async def test_a_version_is_not_called_yanked_for_an_odd_field(
        self, host: InterpreterInfo
    ) -> None:
        target = Target.build(host, **LINUX_311)
        built = _from_json(
            target,
            _entry("foo-2.0-py3-none-any.whl", yanked="broken build"),
            _entry("foo-2.0.tar.gz", size="123"),
        )
        version = built.versions[Version("2.0")]
        assert not version.yanked
        choice = version.best(target, allow_yanked=False)
        assert choice is not None
        assert choice[0].filename == "foo-2.0.tar.gz"
        assert version.skipped() == []

    async def test_an_entry_without_a_url_is_skipped_and_said(self, host: InterpreterInfo) -> None:
        target = Target.build(host, **LINUX_311)
        built = _from_json(
            target,
            _entry("foo-2.0-py3-none-any.whl", url=20),
            _entry("foo-2.0.tar.gz"),
        )
        version = built.versions[Version("2.0")]
        assert [f.filename for f, _ in version.usable(allow_yanked=False)] == ["foo-2.0.tar.gz"]
        [(filename, loc, why)] = version.skipped()
        assert (filename, loc) == ("foo-2.0-py3-none-any.whl", INDEX)
        assert "str" in why


def test_an_upload_time_without_an_offset_is_utc() -> None:
    # PEP 700 asks for UTC; a time without an offset is read as UTC, not a crash.
    f = IndexFile("foo-1.0.tar.gz", "https://f/x", {}, upload_time="2022-06-01T12:00:00")
    assert uploaded_by(f, datetime(2022, 6, 1, 12, 0, 1, tzinfo=UTC))
    assert not uploaded_by(f, datetime(2022, 6, 1, 12, 0, 0, tzinfo=UTC))


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
