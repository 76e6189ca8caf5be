"""Tests of the ``pyproject.toml`` requirements reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement

from burrowd.daemon.errors import InvalidRequirement
from burrowd.daemon.inputs.model import RequirementEntry
from burrowd.daemon.inputs.pyproject import project_name, read_pyproject

PYPROJECT = """\
[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "My-Project"
version = "1.0"
dependencies = [
    "requests>=2",
    'tomli; python_version < "3.11"',
    "attrs",  # the same string appears again below
    "typing-extensions; python_version < \\"3.12\\"",
]

[project.optional-dependencies]
Test_Extra = [
    "pytest>=8",
    "attrs",
]
docs = ["sphinx"]
all = ["My_Project[test-extra,docs]"]
cli = [
    "click; sys_platform != 'win32'",
    "my-project[docs] ; python_version >= '3.10'",
]

[dependency-groups]
Lint = ["ruff"]
dev = [
    {include-group = "lint"},
    "pytest",
    {include-group = "typing"},
]
typing = ["mypy", {include-group = "LINT"}]
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _summary(entries: list[RequirementEntry]) -> list[tuple[str, int | None]]:
    return [(str(e.requirement), e.origin.line) for e in entries]


def _error(path: Path, **kwargs: object) -> InvalidRequirement:
    with pytest.raises(InvalidRequirement) as caught:
        read_pyproject(path, **kwargs)  # type: ignore[arg-type]
    assert caught.value.file == str(path)
    return caught.value


@pytest.fixture
def pyproject(tmp_path: Path) -> Path:
    return _write(tmp_path / "pyproject.toml", PYPROJECT)


class TestProjectDependencies:
    def test_dependencies_with_lines(self, pyproject: Path) -> None:
        entries = read_pyproject(pyproject)
        assert _summary(entries) == [
            ("requests>=2", 9),
            ('tomli; python_version < "3.11"', 10),
            ("attrs", 11),
            ('typing-extensions; python_version < "3.12"', 12),
        ]
        assert all(e.origin.file == str(pyproject) for e in entries)
        assert str(entries[0].origin) == f"{pyproject}:9"

    def test_origin_shows_path_as_given(
        self, pyproject: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(pyproject.parent)
        entries = read_pyproject(Path("pyproject.toml"))
        assert str(entries[0].origin) == "pyproject.toml:9"
        assert entries[0].origin.file == str(pyproject)

    def test_no_dependencies_key(self, tmp_path: Path) -> None:
        path = _write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
        assert read_pyproject(path) == []

    def test_line_unknown_for_multiline_string(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path / "pyproject.toml",
            '[project]\nname = "x"\ndependencies = ["""\nfoo>=1"""]\n',
        )
        assert _summary(read_pyproject(path)) == [("foo>=1", None)]

    def test_inline_array_and_literal_strings(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path / "pyproject.toml",
            "[project]\nname = 'x'\n\n\"dependencies\" = ['a', \"b\",\n  'c']\n",
        )
        assert _summary(read_pyproject(path)) == [("a", 4), ("b", 4), ("c", 5)]

    def test_file_url_sets_path(self, tmp_path: Path) -> None:
        wheel = tmp_path / "dist" / "foo-1.0-py3-none-any.whl"
        path = _write(
            tmp_path / "pyproject.toml",
            f'[project]\nname = "x"\ndependencies = ["foo @ {wheel.as_uri()}"]\n',
        )
        (entry,) = read_pyproject(path)
        assert entry.path == wheel
        assert entry.requirement.url == wheel.as_uri()

    def test_https_url_has_no_path(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path / "pyproject.toml",
            '[project]\nname = "x"\ndependencies = ["foo @ https://example.com/foo-1.0.tar.gz"]\n',
        )
        (entry,) = read_pyproject(path)
        assert entry.path is None
        assert entry.requirement.url == "https://example.com/foo-1.0.tar.gz"


class TestExtras:
    @pytest.mark.parametrize(
        "extra",
        [
            pytest.param("Test_Extra", id="as-written"),
            pytest.param("test-extra", id="normalized"),
            pytest.param("TEST.EXTRA", id="other-spelling"),
        ],
    )
    def test_extra_names_are_normalized(self, pyproject: Path, extra: str) -> None:
        entries = read_pyproject(pyproject, extras=[extra])
        assert _summary(entries)[4:] == [("pytest>=8", 17), ("attrs", 18)]

    def test_self_reference_is_expanded(self, pyproject: Path) -> None:
        entries = read_pyproject(pyproject, extras=["all"], include_project=True)
        assert _summary(entries)[4:] == [("sphinx", 20), ("pytest>=8", 17), ("attrs", 18)]

    def test_self_reference_markers_are_joined(self, pyproject: Path) -> None:
        entries = read_pyproject(pyproject, extras=["cli"])
        assert [e.requirement for e in entries[4:]] == [
            Requirement('click; sys_platform != "win32"'),
            Requirement('sphinx; python_version >= "3.10"'),
        ]
        assert entries[5].origin.line == 20

    def test_all_extras(self, pyproject: Path) -> None:
        entries = read_pyproject(pyproject, all_extras=True)
        assert [str(e.requirement) for e in entries[4:]] == [
            "pytest>=8",
            "attrs",
            "sphinx",
            'click; sys_platform != "win32"',
            'sphinx; python_version >= "3.10"',
        ]

    def test_self_reference_cycle_terminates(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path / "pyproject.toml",
            '[project]\nname = "me"\n[project.optional-dependencies]\n'
            'a = ["x", "me[b]"]\nb = ["y", "me[a]"]\n',
        )
        entries = read_pyproject(path, extras=["a"])
        assert [str(e.requirement) for e in entries] == ["x", "y"]

    def test_unknown_extra(self, pyproject: Path) -> None:
        error = _error(pyproject, extras=["tests"])
        assert error.line == 15
        assert error.reason == (
            "unknown extra 'tests'; [project.optional-dependencies] defines: "
            "Test_Extra, docs, all, cli"
        )

    def test_unknown_self_referenced_extra(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path / "pyproject.toml",
            '[project]\nname = "me"\n[project.optional-dependencies]\na = ["me[nope]"]\n',
        )
        error = _error(path, extras=["a"])
        assert error.line == 4
        assert "refers to the extra 'nope' of this project" in error.reason

    def test_no_extras_table(self, tmp_path: Path) -> None:
        path = _write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
        error = _error(path, extras=["test"])
        assert "unknown extra 'test'; [project.optional-dependencies] defines: none" in (
            error.reason
        )


class TestDependencyGroups:
    def test_groups_with_includes(self, pyproject: Path) -> None:
        entries = read_pyproject(pyproject, groups=["dev"], include_project=False)
        assert _summary(entries) == [("ruff", 28), ("pytest", 31), ("mypy", 34)]

    @pytest.mark.parametrize(
        "group",
        [
            pytest.param("Lint", id="as-written"),
            pytest.param("lint", id="lower"),
            pytest.param("LINT", id="upper"),
        ],
    )
    def test_group_names_are_normalized(self, pyproject: Path, group: str) -> None:
        entries = read_pyproject(pyproject, groups=[group], include_project=False)
        assert _summary(entries) == [("ruff", 28)]

    def test_groups_after_project(self, pyproject: Path) -> None:
        entries = read_pyproject(pyproject, groups=["lint", "typing"], extras=["docs"])
        assert [str(e.requirement) for e in entries][4:] == ["sphinx", "ruff", "mypy"]

    def test_groups_without_project_table(self, tmp_path: Path) -> None:
        path = _write(tmp_path / "pyproject.toml", '[dependency-groups]\ntest = ["pytest"]\n')
        assert _summary(read_pyproject(path, groups=["test"])) == [("pytest", 2)]

    def test_cycle(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path / "pyproject.toml",
            "[dependency-groups]\n"
            'a = ["x", {include-group = "b"}]\n'
            'b = [{include-group = "C"}]\n'
            'c = [{include-group = "a"}]\n',
        )
        error = _error(path, groups=["a"])
        assert error.line == 2
        assert "dependency group 'a' includes itself (a -> b -> c -> a)" in error.reason

    def test_unknown_requested_group(self, pyproject: Path) -> None:
        error = _error(pyproject, groups=["test"])
        assert error.line is None
        assert error.reason == (
            "unknown dependency group 'test'; [dependency-groups] defines: Lint, dev, typing"
        )

    def test_unknown_included_group(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path / "pyproject.toml",
            '[dependency-groups]\nfirst = ["x"]\nsecond = [{include-group = "thrid"}]\n',
        )
        error = _error(path, groups=["second"])
        assert error.line == 3
        assert "unknown dependency group 'thrid'; [dependency-groups] defines: first, second" in (
            error.reason
        )

    def test_no_groups_table(self, tmp_path: Path) -> None:
        path = _write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
        error = _error(path, groups=["dev"])
        assert "has no [dependency-groups] table" in error.reason

    def test_duplicate_normalized_names(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path / "pyproject.toml", '[dependency-groups]\nDev = ["a"]\ndev = ["b"]\n'
        )
        error = _error(path, groups=["dev"])
        assert error.line == 3
        assert "'Dev' and 'dev' have the same normalized name" in error.reason

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            pytest.param('dev = "pytest"', "must be an array", id="not-array"),
            pytest.param(
                'dev = [{include = "x"}]', "an entry must be a requirement string", id="bad-table"
            ),
            pytest.param("dev = [1]", "holds 1", id="number"),
            pytest.param(
                'dev = ["pytest>="]',
                "invalid requirement in [dependency-groups] dev",
                id="bad-requirement",
            ),
        ],
    )
    def test_malformed_group(self, tmp_path: Path, body: str, message: str) -> None:
        path = _write(tmp_path / "pyproject.toml", f"[dependency-groups]\n{body}\n")
        error = _error(path, groups=["dev"])
        assert error.line == 2
        assert message in error.reason


class TestErrors:
    @pytest.mark.parametrize(
        ("text", "kwargs", "line", "message"),
        [
            pytest.param(
                '[project]\nname = "x"\ndependencies = [\n  "ok",\n  "bad>=",\n]\n',
                {},
                5,
                "invalid requirement in [project] dependencies",
                id="bad-requirement",
            ),
            pytest.param(
                '[project]\nname = "x"\ndependencies = "requests"\n',
                {},
                3,
                "[project] dependencies must be an array",
                id="not-array",
            ),
            pytest.param(
                '[project]\nname = "x"\ndependencies = ["a", 3]\n',
                {},
                3,
                "must hold only requirement strings, not 3",
                id="not-string",
            ),
            pytest.param(
                '[project]\nname = "x"\ndynamic = ["version", "dependencies"]\n',
                {},
                3,
                "only a build of the project could tell them, and burrowd does not run builds "
                "yet; list them statically",
                id="dynamic",
            ),
            pytest.param(
                '[project]\nname = "x"\ndynamic = ["optional-dependencies"]\n',
                {"extras": ["a"]},
                3,
                "[project] optional-dependencies are listed in `dynamic`",
                id="dynamic-extras",
            ),
            pytest.param(
                '[project]\nname = "x"\n[project.optional-dependencies]\ntest = "pytest"\n',
                {"extras": ["test"]},
                4,
                "must be an array",
                id="extra-not-array",
            ),
            pytest.param(
                '[project]\nname = "x"\ndependencies = ["a"\n',
                {},
                3,
                "invalid TOML",
                id="toml-end-of-document",
            ),
            pytest.param(
                '[project]\nname = "x"\nname = "y"\n',
                {},
                3,
                "invalid TOML: Cannot overwrite a value (at line 3",
                id="toml-duplicate-key",
            ),
            pytest.param('[project\nname = "x"\n', {}, 1, "invalid TOML", id="toml-header"),
            pytest.param("[tool.x]\na = 1\n", {}, None, "no [project] table", id="no-project"),
            pytest.param(
                "[tool.x]\na = 1\n",
                {"extras": ["a"], "groups": ["g"]},
                None,
                "extras were asked for but the file has no [project] table",
                id="extras-without-project",
            ),
            pytest.param(
                '[project]\nname = "x"\n',
                {"extras": ["a"], "include_project": False},
                None,
                "extras belong to the project",
                id="extras-without-including-project",
            ),
            pytest.param(
                'project = "x"\n', {}, 1, "[project] must be a table", id="project-not-table"
            ),
            pytest.param(
                '[project]\nname = "x"\ndependencies = ["foo @ ./rel"]\n',
                {},
                3,
                "is a path, not a URL",
                id="relative-path",
            ),
            pytest.param(
                '[project]\nname = "x"\ndependencies = ["foo @ file:rel/foo.whl"]\n',
                {},
                3,
                "is relative",
                id="relative-file-url",
            ),
            pytest.param(
                '[project]\nname = "x"\ndependencies = ["foo @ file://host/x.whl"]\n',
                {},
                3,
                "names the host 'host'",
                id="file-url-host",
            ),
        ],
    )
    def test_error(
        self,
        tmp_path: Path,
        text: str,
        kwargs: dict[str, object],
        line: int | None,
        message: str,
    ) -> None:
        path = _write(tmp_path / "pyproject.toml", text)
        error = _error(path, **kwargs)
        assert error.line == line
        assert message in error.reason

    def test_missing_file(self, tmp_path: Path) -> None:
        error = _error(tmp_path / "pyproject.toml")
        assert error.line is None
        assert "no such file" in error.reason

    def test_not_utf8(self, tmp_path: Path) -> None:
        path = tmp_path / "pyproject.toml"
        path.write_bytes(b'[project]\nname = "caf\xe9"\n')
        error = _error(path)
        assert error.line == 2
        assert "must be UTF-8" in error.reason

    def test_invalid_requirement_text_is_kept(self, tmp_path: Path) -> None:
        path = _write(
            tmp_path / "pyproject.toml", '[project]\nname = "x"\ndependencies = ["a=1"]\n'
        )
        assert _error(path).text == "a=1"


class TestProjectName:
    def test_from_pyproject(self, tmp_path: Path) -> None:
        _write(tmp_path / "pyproject.toml", '[project]\nname = "Some_Name"\n')
        assert project_name(tmp_path) == "Some_Name"
        assert project_name(tmp_path / "pyproject.toml") == "Some_Name"

    def test_from_setup_cfg(self, tmp_path: Path) -> None:
        _write(tmp_path / "pyproject.toml", "[build-system]\nrequires = ['setuptools']\n")
        _write(tmp_path / "setup.cfg", "[metadata]\nname = legacy.name\nversion = 1\n")
        assert project_name(tmp_path) == "legacy.name"

    @pytest.mark.parametrize(
        ("files", "expected"),
        [
            pytest.param({}, None, id="nothing"),
            pytest.param({"setup.py": "setup()"}, None, id="setup-py-only"),
            pytest.param({"setup.cfg": "[metadata]\nversion = 1\n"}, None, id="cfg-without-name"),
            pytest.param(
                {"setup.cfg": "[metadata]\nname = attr: pkg.NAME\n"}, None, id="cfg-directive"
            ),
            pytest.param({"setup.cfg": "not an ini file"}, None, id="cfg-broken"),
            pytest.param({"pyproject.toml": "[project]\nname = 3\n"}, None, id="name-not-string"),
        ],
    )
    def test_no_name(self, tmp_path: Path, files: dict[str, str], expected: str | None) -> None:
        for name, text in files.items():
            _write(tmp_path / name, text)
        assert project_name(tmp_path) == expected

    def test_invalid_toml_raises(self, tmp_path: Path) -> None:
        _write(tmp_path / "pyproject.toml", "[project\n")
        with pytest.raises(InvalidRequirement) as caught:
            project_name(tmp_path)
        assert caught.value.file == str(tmp_path / "pyproject.toml")
        assert caught.value.line == 1
