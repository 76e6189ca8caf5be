"""Tests of the pip requirements-file parser and the shared input model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.requirements import Requirement

from burrowd.daemon.errors import InvalidRequirement
from burrowd.daemon.inputs.model import IndexOptions, Origin, ParsedRequirements
from burrowd.daemon.inputs.requirements_txt import (
    canonical_name,
    parse_requirement_text,
    parse_requirements_file,
)


def _hash(seed: str) -> str:
    """Return a realistic sha256 hex digest."""
    return hashlib.sha256(seed.encode()).hexdigest()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _parse(tmp_path: Path, text: str, **kwargs: object) -> ParsedRequirements:
    _write(tmp_path / "requirements.txt", text)
    return parse_requirements_file("requirements.txt", cwd=tmp_path, **kwargs)  # type: ignore[arg-type]


def _error(tmp_path: Path, text: str, name: str = "requirements.txt") -> InvalidRequirement:
    _write(tmp_path / name, text)
    with pytest.raises(InvalidRequirement) as caught:
        parse_requirements_file(name, cwd=tmp_path)
    return caught.value


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Lay out local projects and archives that requirement lines can point at."""
    _write(tmp_path / "pkg" / "pyproject.toml", '[project]\nname = "My_Pkg"\nversion = "1"\n')
    _write(tmp_path / "legacy" / "setup.py", "from setuptools import setup\nsetup()\n")
    _write(tmp_path / "legacy" / "setup.cfg", "[metadata]\nname = legacy-proj\n")
    _write(tmp_path / "noname" / "setup.py", "from setuptools import setup\nsetup()\n")
    (tmp_path / "empty").mkdir()
    _write(tmp_path / "dist" / "foo-1.0-py3-none-any.whl", "")
    _write(tmp_path / "dist" / "bar_baz-2.0.tar.gz", "")
    _write(tmp_path / "dist" / "qux-3.0.zip", "")
    _write(tmp_path / "dist" / "broken.whl", "")
    _write(tmp_path / "my dir" / "pyproject.toml", '[project]\nname = "spaced"\n')
    _write(tmp_path / "requirements-dev.txt", "pytest\n")
    return tmp_path


class TestOrigin:
    @pytest.mark.parametrize(
        ("origin", "shown"),
        [
            pytest.param(Origin(None, None), "command line", id="command-line"),
            pytest.param(Origin("/w/requirements.in", 3), "/w/requirements.in:3", id="abs"),
            pytest.param(
                Origin("/w/requirements.in", 3, "requirements.in"), "requirements.in:3", id="given"
            ),
            pytest.param(Origin("/w/r.in", None, "r.in"), "r.in", id="no-line"),
        ],
    )
    def test_str(self, origin: Origin, shown: str) -> None:
        assert str(origin) == shown

    def test_display_does_not_affect_equality(self) -> None:
        assert Origin("/w/r.in", 1, "r.in") == Origin("/w/r.in", 1, "./r.in")
        assert hash(Origin("/w/r.in", 1, "r.in")) == hash(Origin("/w/r.in", 1))


class TestIndexOptions:
    def test_merge_overrides_and_extends(self) -> None:
        first = IndexOptions(
            index_url="https://a/simple", extra_index_urls=["https://x"], trusted_hosts=["x"]
        )
        second = IndexOptions(
            index_url="https://b/simple",
            extra_index_urls=["https://x", "https://y"],
            find_links=["/wheels"],
            pre=True,
            require_hashes=True,
        )
        first.merge(second)
        assert first.index_url == "https://b/simple"
        assert first.extra_index_urls == ["https://x", "https://y"]
        assert first.find_links == ["/wheels"]
        assert first.trusted_hosts == ["x"]
        assert first.pre
        assert first.require_hashes
        assert not first.no_index

    def test_merge_keeps_index_url_when_other_has_none(self) -> None:
        first = IndexOptions(index_url="https://a/simple")
        first.merge(IndexOptions(no_index=True))
        assert first.index_url == "https://a/simple"
        assert first.no_index

    def test_merge_binary_sets_exclude_each_other(self) -> None:
        first = IndexOptions(only_binary={"foo", "bar"})
        first.merge(IndexOptions(no_binary={"foo"}))
        assert first.only_binary == {"bar"}
        assert first.no_binary == {"foo"}
        first.merge(IndexOptions(no_binary={":all:"}, only_binary={"baz"}))
        assert first.no_binary == {":all:"}
        assert first.only_binary == {"baz"}

    def test_merge_applies_blanket_values_of_either_option_first(self) -> None:
        # A later file with "--only-binary :all:" and "--no-binary foo": foo stays source.
        first = IndexOptions()
        first.merge(IndexOptions(only_binary={":all:"}, no_binary={"foo"}))
        assert first.only_binary == {":all:"}
        assert first.no_binary == {"foo"}


class TestComments:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            pytest.param("# only a comment\n\nfoo\n", ["foo"], id="full-line"),
            pytest.param("foo  # trailing comment\n", ["foo"], id="trailing"),
            pytest.param("foo>=1\t# tab before hash\n", ["foo>=1"], id="tab"),
            pytest.param("   # indented comment\nfoo\n", ["foo"], id="indented"),
            pytest.param("\n\n   \nfoo\n\n", ["foo"], id="blank-lines"),
            pytest.param("foo\r\nbar\r\n", ["foo", "bar"], id="crlf"),
        ],
    )
    def test_comments_and_blanks(self, tmp_path: Path, text: str, expected: list[str]) -> None:
        parsed = _parse(tmp_path, text)
        assert [str(e.requirement) for e in parsed.requirements] == expected

    def test_hash_without_space_is_part_of_url(self, tmp_path: Path) -> None:
        parsed = _parse(tmp_path, "git+https://example.com/repo.git@v1#egg=thing\n")
        assert parsed.requirements[0].requirement.name == "thing"


class TestContinuations:
    def test_joined_line_takes_first_line_number(self, tmp_path: Path) -> None:
        parsed = _parse(tmp_path, "first\nsecond \\\n  >=1.0 \\\n  ,<2\nthird\n")
        assert [(str(e.requirement), e.origin.line) for e in parsed.requirements] == [
            ("first", 1),
            ("second<2,>=1.0", 2),
            ("third", 5),
        ]

    def test_comment_line_ends_continuation(self, tmp_path: Path) -> None:
        parsed = _parse(tmp_path, "foo==1.0 \\\n# a comment ends it\nbar\n")
        assert [(str(e.requirement), e.origin.line) for e in parsed.requirements] == [
            ("foo==1.0", 1),
            ("bar", 3),
        ]

    def test_backslash_on_last_line(self, tmp_path: Path) -> None:
        parsed = _parse(tmp_path, "foo==1.0 \\")
        assert str(parsed.requirements[0].requirement) == "foo==1.0"

    def test_trailing_space_after_backslash_still_continues(self, tmp_path: Path) -> None:
        digest = _hash("a")
        parsed = _parse(tmp_path, f"foo==1.0 \\  \n    --hash=sha256:{digest}\n")
        assert parsed.requirements[0].hashes == (f"sha256:{digest}",)

    def test_trailing_comment_with_backslash_swallows_next_line(self, tmp_path: Path) -> None:
        # pip joins first and strips the comment after, so the next line goes with it.
        parsed = _parse(tmp_path, "foo  # note \\\nbar\nbaz\n")
        assert [str(e.requirement) for e in parsed.requirements] == ["foo", "baz"]


class TestEnvironmentVariables:
    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            pytest.param(
                "--index-url https://${USER_1}:${TOKEN}@host/simple",
                "https://me:s3cr3t@host/simple",
                id="both",
            ),
            pytest.param(
                "--index-url https://${UNSET}@host/simple",
                "https://${UNSET}@host/simple",
                id="unset-left",
            ),
            pytest.param(
                "--index-url https://${EMPTY}@host/simple",
                "https://${EMPTY}@host/simple",
                id="empty-left",
            ),
            pytest.param(
                "--index-url https://$TOKEN@host/simple",
                "https://$TOKEN@host/simple",
                id="no-braces",
            ),
            pytest.param(
                "--index-url https://${lower}@host/simple",
                "https://${lower}@host/simple",
                id="lowercase",
            ),
        ],
    )
    def test_expansion(self, tmp_path: Path, line: str, expected: str) -> None:
        env = {"USER_1": "me", "TOKEN": "s3cr3t", "EMPTY": "", "lower": "no"}
        parsed = _parse(tmp_path, line + "\n", env=env)
        assert parsed.options.index_url == expected

    def test_expansion_in_requirement(self, tmp_path: Path) -> None:
        parsed = _parse(tmp_path, "foo==${VERSION}\n", env={"VERSION": "2.0"})
        assert str(parsed.requirements[0].requirement) == "foo==2.0"

    def test_expansion_happens_after_comments_are_removed(self, tmp_path: Path) -> None:
        # As in pip, a "#" that comes from a variable is text, not the start of a comment.
        _write(tmp_path / "requirements.txt", "foo${SUFFIX}\n")
        with pytest.raises(InvalidRequirement, match="invalid requirement"):
            parse_requirements_file("requirements.txt", cwd=tmp_path, env={"SUFFIX": " # x"})

    def test_defaults_to_os_environ(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BURROW_TEST_INDEX", "https://idx.example/simple")
        parsed = _parse(tmp_path, "-i ${BURROW_TEST_INDEX}\n")
        assert parsed.options.index_url == "https://idx.example/simple"


class TestRequirementForms:
    @pytest.mark.parametrize(
        ("text", "expected", "local"),
        [
            pytest.param("requests", "requests", None, id="name"),
            pytest.param("Foo_Bar.baz", "Foo_Bar.baz", None, id="name-kept-as-written"),
            pytest.param(
                "foo==1.0.20230628214621", "foo==1.0.20230628214621", None, id="big-segment"
            ),
            pytest.param(
                "foo==99999999999999999999999.1",
                "foo==99999999999999999999999.1",
                None,
                id="huge-segment",
            ),
            pytest.param(
                "name[extra1,extra2] >=1.0, <2 ; python_version < '3.8'",
                'name[extra1,extra2]>=1.0,<2; python_version < "3.8"',
                None,
                id="pep508-full",
            ),
            pytest.param(
                "foo ; python_version<'3'", 'foo; python_version < "3"', None, id="marker-only"
            ),
            pytest.param(
                "foo;python_version<'3'", 'foo; python_version < "3"', None, id="marker-no-space"
            ),
            pytest.param("foo[ a , b ]", "foo[a,b]", None, id="spaced-extras"),
            pytest.param("foo == 1.*", "foo==1.*", None, id="spaced-wildcard"),
            pytest.param("foo===weird", "foo===weird", None, id="arbitrary-equality"),
            pytest.param("foo~=1.4.2", "foo~=1.4.2", None, id="compatible"),
            pytest.param(
                "foo @ https://example.com/foo-1.0-py3-none-any.whl ; python_version >= '3.8'",
                'foo @ https://example.com/foo-1.0-py3-none-any.whl ; python_version >= "3.8"',
                None,
                id="name-at-url-marker",
            ),
            pytest.param(
                'foo@https://example.com/foo-1.0.tar.gz;python_version>="3.8"',
                'foo @ https://example.com/foo-1.0.tar.gz ; python_version >= "3.8"',
                None,
                id="name-at-url-tight-marker",
            ),
            pytest.param(
                "https://example.com/pkgs/foo-1.0-py3-none-any.whl",
                "foo @ https://example.com/pkgs/foo-1.0-py3-none-any.whl",
                None,
                id="bare-wheel-url",
            ),
            pytest.param(
                "https://example.com/Bar_Baz-2.0.tar.gz",
                "Bar_Baz @ https://example.com/Bar_Baz-2.0.tar.gz",
                None,
                id="bare-sdist-url",
            ),
            pytest.param(
                "https://example.com/foo-1.0.tar.gz#sha256=abc",
                "foo @ https://example.com/foo-1.0.tar.gz#sha256=abc",
                None,
                id="url-hash-fragment",
            ),
            pytest.param(
                "https://example.com/foo-1.0-py3-none-any.whl ; python_version < '3.9'",
                'foo @ https://example.com/foo-1.0-py3-none-any.whl ; python_version < "3.9"',
                None,
                id="bare-url-marker",
            ),
            pytest.param(
                "https://example.com/foo-1.0-py3-none-any.whl; python_version < '3.9'",
                'foo @ https://example.com/foo-1.0-py3-none-any.whl ; python_version < "3.9"',
                None,
                id="bare-url-pip-marker",
            ),
            pytest.param(
                "https://example.com/archive/main.zip#egg=thing[cli]",
                "thing[cli] @ https://example.com/archive/main.zip",
                None,
                id="url-egg-extras",
            ),
            pytest.param(
                "git+https://github.com/org/repo.git@v1.2#egg=repo-name&subdirectory=sub",
                "repo-name @ git+https://github.com/org/repo.git@v1.2#subdirectory=sub",
                None,
                id="vcs-egg-subdirectory",
            ),
            pytest.param(
                "git+ssh://git@github.com/org/repo.git#egg=repo",
                "repo @ git+ssh://git@github.com/org/repo.git",
                None,
                id="vcs-ssh",
            ),
            pytest.param(
                "repo @ git+https://github.com/org/repo.git@main",
                "repo @ git+https://github.com/org/repo.git@main",
                None,
                id="name-at-vcs",
            ),
            pytest.param("./pkg", "My_Pkg @ {uri}/pkg", "pkg", id="dir-pyproject"),
            pytest.param("pkg/", "My_Pkg @ {uri}/pkg", "pkg", id="dir-trailing-slash"),
            pytest.param("./pkg[test]", "My_Pkg[test] @ {uri}/pkg", "pkg", id="dir-extras"),
            pytest.param(
                "./pkg[test] ; python_version >= '3.8'",
                'My_Pkg[test] @ {uri}/pkg ; python_version >= "3.8"',
                "pkg",
                id="dir-extras-marker",
            ),
            pytest.param("./legacy", "legacy-proj @ {uri}/legacy", "legacy", id="dir-setup-cfg"),
            pytest.param("sub/../pkg", "My_Pkg @ {uri}/pkg", "pkg", id="dir-normalized"),
            pytest.param("{root}/pkg", "My_Pkg @ {uri}/pkg", "pkg", id="dir-absolute"),
            pytest.param("file://{root}/pkg", "My_Pkg @ {uri}/pkg", "pkg", id="dir-file-url"),
            pytest.param("file:pkg", "My_Pkg @ {uri}/pkg", "pkg", id="dir-relative-file-url"),
            pytest.param(
                "./dist/foo-1.0-py3-none-any.whl",
                "foo @ {uri}/dist/foo-1.0-py3-none-any.whl",
                "dist/foo-1.0-py3-none-any.whl",
                id="wheel-path",
            ),
            pytest.param(
                "dist/bar_baz-2.0.tar.gz",
                "bar_baz @ {uri}/dist/bar_baz-2.0.tar.gz",
                "dist/bar_baz-2.0.tar.gz",
                id="sdist-path",
            ),
            pytest.param(
                "../{base}/dist/qux-3.0.zip",
                "qux @ {uri}/dist/qux-3.0.zip",
                "dist/qux-3.0.zip",
                id="zip-parent-path",
            ),
            pytest.param(
                "{root}/dist/foo-1.0-py3-none-any.whl",
                "foo @ {uri}/dist/foo-1.0-py3-none-any.whl",
                "dist/foo-1.0-py3-none-any.whl",
                id="wheel-absolute",
            ),
            pytest.param(
                "./dist/foo-1.0-py3-none-any.whl ; sys_platform == 'linux'",
                'foo @ {uri}/dist/foo-1.0-py3-none-any.whl ; sys_platform == "linux"',
                "dist/foo-1.0-py3-none-any.whl",
                id="wheel-marker",
            ),
            pytest.param("other @ ./pkg", "other @ {uri}/pkg", "pkg", id="name-at-relative-path"),
            pytest.param(
                "other @ file://{root}/dist/qux-3.0.zip",
                "other @ {uri}/dist/qux-3.0.zip",
                "dist/qux-3.0.zip",
                id="name-at-file-url",
            ),
            pytest.param(
                "spaced @ file://{root}/my%20dir",
                "spaced @ {uri}/my%20dir",
                "my dir",
                id="percent-encoded",
            ),
        ],
    )
    def test_form(self, tree: Path, text: str, expected: str, local: str | None) -> None:
        fill = {"root": str(tree), "uri": tree.as_uri(), "base": tree.name}
        parsed = _parse(tree, text.format(**fill) + "\n")
        (entry,) = parsed.requirements
        assert str(entry.requirement) == str(Requirement(expected.format(**fill)))
        assert entry.path == (tree / local if local is not None else None)
        assert not entry.editable
        assert entry.origin == Origin(str(tree / "requirements.txt"), 1)

    def test_bare_directory_name_is_a_project_name(self, tree: Path) -> None:
        # pip treats "pkg" as a name even when a directory of that name exists.
        (entry,) = _parse(tree, "pkg\n").requirements
        assert entry.requirement.url is None
        assert entry.path is None

    def test_bare_archive_name_is_a_path(self, tree: Path) -> None:
        _write(tree / "zed-0.1-py3-none-any.whl", "")
        (entry,) = _parse(tree, "zed-0.1-py3-none-any.whl\n").requirements
        assert entry.requirement.name == "zed"
        assert entry.path == tree / "zed-0.1-py3-none-any.whl"

    def test_paths_resolve_against_the_including_file(self, tree: Path) -> None:
        _write(tree / "reqs" / "sub.txt", "../pkg\n")
        parsed = _parse(tree, "-r reqs/sub.txt\n")
        assert parsed.requirements[0].path == tree / "pkg"

    def test_canonical_name(self) -> None:
        assert canonical_name("Foo_Bar.baz") == "foo-bar-baz"


class TestFastPath:
    names = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,8}[A-Za-z0-9])?", fullmatch=True)
    versions = st.from_regex(r"[0-9]{1,25}(\.[0-9]{1,20}){0,3}", fullmatch=True)
    operators = st.sampled_from(["==", "!=", ">=", "<=", ">", "<", "~=", "==="])

    @given(
        name=names,
        extras=st.lists(names, max_size=3),
        specifiers=st.lists(st.tuples(operators, versions), max_size=3),
        spaced=st.booleans(),
    )
    def test_matches_packaging(
        self,
        name: str,
        extras: list[str],
        specifiers: list[tuple[str, str]],
        spaced: bool,
    ) -> None:
        gap = " " if spaced else ""
        text = name
        if extras:
            text += f"{gap}[{','.join(extras)}]"
        text += gap + f"{gap},{gap}".join(f"{op}{gap}{version}" for op, version in specifiers)
        try:
            expected = Requirement(text)
        except ValueError:
            with pytest.raises(InvalidRequirement):
                parse_requirement_text(text, origin=Origin(None, None), base_dir=Path("/"))
            return
        got = parse_requirement_text(text, origin=Origin(None, None), base_dir=Path("/"))
        assert got.requirement == expected
        assert str(got.requirement) == str(expected)
        assert got.requirement.extras == expected.extras
        assert got.requirement.name == expected.name


class TestIndexFileOptions:
    @pytest.mark.parametrize(
        "line",
        [
            pytest.param("-i https://idx.example/simple", id="short-space"),
            pytest.param("-ihttps://idx.example/simple", id="short-attached"),
            pytest.param("-i=https://idx.example/simple", id="short-equals"),
            pytest.param("--index-url https://idx.example/simple", id="long-space"),
            pytest.param("--index-url=https://idx.example/simple", id="long-equals"),
            pytest.param("--index https://idx.example/simple", id="long-prefix"),
            pytest.param("--pypi-url https://idx.example/simple", id="alias"),
            pytest.param("--index-url 'https://idx.example/simple'", id="quoted"),
            pytest.param("  --index-url   https://idx.example/simple  ", id="padded"),
        ],
    )
    def test_index_url_forms(self, tmp_path: Path, line: str) -> None:
        assert _parse(tmp_path, line + "\n").options.index_url == "https://idx.example/simple"

    def test_all_file_options(self, tmp_path: Path) -> None:
        (tmp_path / "wheels").mkdir()
        parsed = _parse(
            tmp_path,
            "--index-url https://a.example/simple\n"
            "--index-url https://b.example/simple\n"
            "--extra-index-url https://c.example/simple\n"
            "--extra-index-url=https://c.example/simple\n"
            "-f ./wheels\n"
            "--find-links https://d.example/links/\n"
            "--find-links=file:///srv/wheels\n"
            "--no-index\n"
            "--pre\n"
            "--trusted-host c.example --trusted-host d.example:8080\n"
            "--prefer-binary\n"
            "--require-hashes\n"
            "--use-feature truststore\n"
            "--only-binary :all:\n"
            "--no-binary Foo_Bar,baz\n",
        )
        options = parsed.options
        assert options.index_url == "https://b.example/simple"
        assert options.extra_index_urls == ["https://c.example/simple"]
        assert options.find_links == [
            str(tmp_path / "wheels"),
            "https://d.example/links/",
            "file:///srv/wheels",
        ]
        assert options.no_index
        assert options.pre
        assert options.trusted_hosts == ["c.example", "d.example:8080"]
        assert options.prefer_binary
        assert options.require_hashes
        assert options.use_features == ["truststore"]
        assert options.only_binary == {":all:"}
        assert options.no_binary == {"foo-bar", "baz"}
        assert parsed.requirements == []

    @pytest.mark.parametrize(
        ("lines", "only", "no"),
        [
            pytest.param(["--only-binary :all:"], {":all:"}, set(), id="only-all"),
            pytest.param(
                ["--no-binary :all:", "--only-binary foo"], {"foo"}, {":all:"}, id="all-then-name"
            ),
            pytest.param(
                ["--only-binary foo,bar", "--no-binary foo"], {"bar"}, {"foo"}, id="moves-between"
            ),
            pytest.param(
                ["--only-binary foo", "--only-binary :none:"], set(), set(), id="none-clears"
            ),
            pytest.param(["--no-binary :all:,:none:,bar"], set(), {"bar"}, id="all-none-names"),
            pytest.param(
                ["--only-binary :all:", "--no-binary :all:"], set(), {":all:"}, id="all-flips"
            ),
        ],
    )
    def test_binary_semantics(
        self, tmp_path: Path, lines: list[str], only: set[str], no: set[str]
    ) -> None:
        options = _parse(tmp_path, "\n".join(lines) + "\n").options
        assert options.only_binary == only
        assert options.no_binary == no

    def test_find_links_in_nested_file_resolve_there(self, tmp_path: Path) -> None:
        _write(tmp_path / "sub" / "more.txt", "--find-links ../wheels\n-f local\n")
        options = _parse(tmp_path, "-r sub/more.txt\n").options
        assert options.find_links == [str(tmp_path / "wheels"), str(tmp_path / "sub" / "local")]


class TestHashesAndSettings:
    def test_hashes_on_one_line_and_continued(self, tmp_path: Path) -> None:
        a, b, c = _hash("a"), _hash("b"), _hash("c")
        parsed = _parse(
            tmp_path,
            f"foo==1.0 --hash=sha256:{a} --hash sha256:{b}\n"
            f"bar==2.0 \\\n    --hash=SHA256:{c.upper()} \\\n    --hash=sha256:{c}\n"
            f"baz==3 --hash=sha512:{'ab' * 64} --hash=sha384:{'cd' * 48}\n",
        )
        foo, bar, baz = parsed.requirements
        assert foo.hashes == (f"sha256:{a}", f"sha256:{b}")
        assert bar.hashes == (f"sha256:{c}",)
        assert bar.origin.line == 2
        assert baz.hashes == (f"sha512:{'ab' * 64}", f"sha384:{'cd' * 48}")

    def test_hash_on_url_requirement_with_marker(self, tmp_path: Path) -> None:
        digest = _hash("url")
        parsed = _parse(
            tmp_path,
            "foo @ https://example.com/foo-1.0-py3-none-any.whl ; python_version > '3' \\\n"
            f"    --hash=sha256:{digest}\n",
        )
        (entry,) = parsed.requirements
        assert entry.hashes == (f"sha256:{digest}",)
        assert str(entry.requirement.marker) == 'python_version > "3"'

    def test_config_settings(self, tree: Path) -> None:
        parsed = _parse(
            tree,
            "foo --config-settings=editable_mode=compat -C setup-args=-Dx=y -C k=\n"
            "-e ./pkg --config-settings key=value\n",
        )
        foo, pkg = parsed.requirements
        assert foo.config_settings == (
            ("editable_mode", "compat"),
            ("setup-args", "-Dx=y"),
            ("k", ""),
        )
        assert pkg.editable
        assert pkg.config_settings == (("key", "value"),)


class TestEditable:
    @pytest.mark.parametrize(
        ("line", "expected", "local"),
        [
            pytest.param("-e ./pkg", "My_Pkg @ {uri}/pkg", "pkg", id="short"),
            pytest.param("-e./pkg", "My_Pkg @ {uri}/pkg", "pkg", id="short-attached"),
            pytest.param("--editable=./pkg", "My_Pkg @ {uri}/pkg", "pkg", id="long-equals"),
            pytest.param(
                "--editable ./pkg[test,docs]", "My_Pkg[docs,test] @ {uri}/pkg", "pkg", id="extras"
            ),
            pytest.param("-e .", "NAME @ {uri}", "", id="dot"),
            pytest.param(
                "-e file://{root}/legacy", "legacy-proj @ {uri}/legacy", "legacy", id="file-url"
            ),
            pytest.param(
                '-e ./pkg ; python_version >= "3.8"',
                'My_Pkg @ {uri}/pkg ; python_version >= "3.8"',
                "pkg",
                id="marker",
            ),
            pytest.param('-e "./my dir"', "spaced @ {uri}/my%20dir", "my dir", id="quoted-path"),
            pytest.param(
                "-e git+https://github.com/org/repo.git@main#egg=repo",
                "repo @ git+https://github.com/org/repo.git@main",
                None,
                id="vcs",
            ),
            pytest.param("-e mine @ ./pkg", "mine @ {uri}/pkg", "pkg", id="named-path"),
        ],
    )
    def test_editable_forms(self, tree: Path, line: str, expected: str, local: str | None) -> None:
        _write(tree / "pyproject.toml", '[project]\nname = "NAME"\n')
        fill = {"root": str(tree), "uri": tree.as_uri()}
        (entry,) = _parse(tree, line.format(**fill) + "\n").requirements
        assert entry.editable
        assert str(entry.requirement) == str(Requirement(expected.format(**fill)))
        assert entry.path == (Path(str(tree / local).rstrip("/")) if local is not None else None)


class TestIncludes:
    def test_nested_requirements_and_constraints(self, tmp_path: Path) -> None:
        _write(tmp_path / "base.txt", "six\n-c constraints/pins.txt\n")
        _write(tmp_path / "constraints" / "pins.txt", "six==1.16.0\n-r more.txt\n")
        _write(tmp_path / "constraints" / "more.txt", "attrs<24\n")
        _write(tmp_path / "extra.txt", "idna\n")
        parsed = _parse(tmp_path, "requests\n-r base.txt\n--requirement=extra.txt\n")
        assert [str(e.requirement) for e in parsed.requirements] == ["requests", "six", "idna"]
        assert [str(e.requirement) for e in parsed.constraints] == ["six==1.16.0", "attrs<24"]
        assert [str(e.origin) for e in parsed.requirements] == [
            "requirements.txt:1",
            "base.txt:1",
            "extra.txt:1",
        ]
        assert [str(e.origin) for e in parsed.constraints] == [
            "constraints/pins.txt:1",
            "constraints/more.txt:1",
        ]
        assert parsed.constraints[0].origin.file == str(tmp_path / "constraints" / "pins.txt")
        assert parsed.files == [
            tmp_path / "requirements.txt",
            tmp_path / "base.txt",
            tmp_path / "constraints" / "pins.txt",
            tmp_path / "constraints" / "more.txt",
            tmp_path / "extra.txt",
        ]

    def test_top_level_constraint_file(self, tmp_path: Path) -> None:
        _write(tmp_path / "c.txt", "foo<2\n--pre\n")
        parsed = parse_requirements_file(tmp_path / "c.txt", cwd=Path("/"), constraint=True)
        assert parsed.requirements == []
        assert [str(e.requirement) for e in parsed.constraints] == ["foo<2"]
        assert parsed.options.pre

    def test_diamond_is_read_once(self, tmp_path: Path) -> None:
        _write(tmp_path / "a.txt", "-r common.txt\n")
        _write(tmp_path / "b.txt", "-r common.txt\n")
        _write(tmp_path / "common.txt", "six\n")
        parsed = _parse(tmp_path, "-r a.txt\n-r b.txt\n")
        assert [str(e.requirement) for e in parsed.requirements] == ["six"]

    def test_same_file_as_requirements_and_constraints(self, tmp_path: Path) -> None:
        _write(tmp_path / "pins.txt", "six==1\n")
        parsed = _parse(tmp_path, "-r pins.txt\n-c pins.txt\n")
        assert len(parsed.requirements) == 1
        assert len(parsed.constraints) == 1

    def test_file_url_include(self, tmp_path: Path) -> None:
        _write(tmp_path / "base.txt", "six\n")
        parsed = _parse(tmp_path, f"-r {(tmp_path / 'base.txt').as_uri()}\n")
        assert [str(e.requirement) for e in parsed.requirements] == ["six"]
        assert str(parsed.requirements[0].origin) == f"{tmp_path / 'base.txt'}:1"

    def test_absolute_top_level_path_ignores_cwd(self, tmp_path: Path) -> None:
        _write(tmp_path / "deep" / "r.in", "six\n-r ../other.in\n")
        _write(tmp_path / "other.in", "attrs\n")
        parsed = parse_requirements_file(tmp_path / "deep" / "r.in", cwd=Path("/"))
        assert [str(e.origin) for e in parsed.requirements] == [
            f"{tmp_path / 'deep' / 'r.in'}:1",
            f"{tmp_path / 'other.in'}:1",
        ]
        assert parsed.requirements[0].name == "six"

    def test_loop_is_reported(self, tmp_path: Path) -> None:
        _write(tmp_path / "a.txt", "foo\n-r sub/b.txt\n")
        _write(tmp_path / "sub" / "b.txt", "-r ../a.txt\n")
        with pytest.raises(InvalidRequirement) as caught:
            parse_requirements_file("a.txt", cwd=tmp_path)
        error = caught.value
        assert error.file == str(tmp_path / "sub" / "b.txt")
        assert error.line == 1
        assert "loop (a.txt -> sub/b.txt -> a.txt)" in error.reason

    def test_self_include_is_reported(self, tmp_path: Path) -> None:
        error = _error(tmp_path, "foo\n-r requirements.txt\n")
        assert error.file == str(tmp_path / "requirements.txt")
        assert error.line == 2
        assert "requirements.txt -> requirements.txt" in error.reason

    def test_missing_top_level_file(self, tmp_path: Path) -> None:
        with pytest.raises(InvalidRequirement) as caught:
            parse_requirements_file("nope.txt", cwd=tmp_path)
        assert caught.value.file == str(tmp_path / "nope.txt")
        assert caught.value.line is None
        assert "cannot read the requirements file" in caught.value.reason

    def test_missing_included_file(self, tmp_path: Path) -> None:
        error = _error(tmp_path, "foo\n\n-r missing.txt\n")
        assert error.file == str(tmp_path / "requirements.txt")
        assert error.line == 3
        assert f"cannot read the included file {tmp_path / 'missing.txt'}" in error.reason


class TestEncoding:
    def test_utf8_bom(self, tmp_path: Path) -> None:
        (tmp_path / "requirements.txt").write_bytes(b"\xef\xbb\xbffoo\n")
        parsed = parse_requirements_file("requirements.txt", cwd=tmp_path)
        assert str(parsed.requirements[0].requirement) == "foo"

    def test_utf16_bom(self, tmp_path: Path) -> None:
        (tmp_path / "requirements.txt").write_bytes("foo\nbar\n".encode("utf-16"))
        parsed = parse_requirements_file("requirements.txt", cwd=tmp_path)
        assert [str(e.requirement) for e in parsed.requirements] == ["foo", "bar"]

    def test_coding_declaration(self, tmp_path: Path) -> None:
        (tmp_path / "requirements.txt").write_bytes(b"# -*- coding: latin-1 -*-\nfoo  # caf\xe9\n")
        parsed = parse_requirements_file("requirements.txt", cwd=tmp_path)
        assert str(parsed.requirements[0].requirement) == "foo"

    def test_invalid_utf8(self, tmp_path: Path) -> None:
        (tmp_path / "requirements.txt").write_bytes(b"foo\nbar  # caf\xe9\n")
        with pytest.raises(InvalidRequirement) as caught:
            parse_requirements_file("requirements.txt", cwd=tmp_path)
        assert caught.value.line == 2
        assert "not valid utf-8" in caught.value.reason


class TestErrors:
    @pytest.mark.parametrize(
        ("text", "line", "message"),
        [
            pytest.param(
                "foo\n--foo\n",
                2,
                "unknown option --foo; a requirements file may hold only -r/--requirement",
                id="unknown-option",
            ),
            pytest.param(
                "--index_url https://x\n", 1, "did you mean --index-url?", id="typo-suggestion"
            ),
            pytest.param("-Z foo\n", 1, "unknown option -Z", id="unknown-short"),
            pytest.param(
                "--no https://x\n",
                1,
                "ambiguous option --no: it could be --no-binary, --no-index",
                id="ambiguous",
            ),
            pytest.param("\n-r\n", 2, "-r needs a value", id="missing-value"),
            pytest.param("--pre=yes\n", 1, "--pre takes no value", id="flag-with-value"),
            pytest.param(
                "foo==1 --pre\n",
                1,
                "--pre applies to the whole file",
                id="file-option-on-requirement",
            ),
            pytest.param(
                "foo==1 --index https://x\n",
                1,
                "--index-url applies to the whole file",
                id="prefix-named-in-full",
            ),
            pytest.param(
                "--hash=sha256:" + "a" * 64 + "\n",
                1,
                "--hash belongs to a requirement, but this line has none",
                id="orphan-hash",
            ),
            pytest.param(
                "foo --hash=md5:abc\n", 1, "--hash algorithm 'md5' is not allowed", id="weak-hash"
            ),
            pytest.param(
                "foo --hash=sha256:abc\n",
                1,
                "is not a sha256 digest (64 hex digits)",
                id="short-hash",
            ),
            pytest.param(
                "foo --hash=" + "a" * 64 + "\n",
                1,
                "--hash takes ALGORITHM:DIGEST",
                id="hash-without-algorithm",
            ),
            pytest.param("foo -C novalue\n", 1, "-C takes KEY=VALUE", id="bad-config-setting"),
            pytest.param(
                "foo --global-option=--x\n",
                1,
                "--global-option passes arguments to setup.py",
                id="global-option",
            ),
            pytest.param(
                "--index-url https://x extra\n",
                1,
                "unexpected 'extra' after the options",
                id="trailing-argument",
            ),
            pytest.param(
                '--index-url "https://x\n', 1, 'unterminated " quote', id="unterminated-quote"
            ),
            pytest.param("--only-binary=-x\n", 1, "--only-binary needs a value", id="binary-dash"),
            pytest.param("-e ./pkg -e ./legacy\n", 1, "one line holds one -e", id="two-editables"),
            pytest.param(
                "foo -e ./pkg\n",
                1,
                "either a requirement or -e, not both",
                id="requirement-and-editable",
            ),
            pytest.param(
                "-e ./pkg --pre\n",
                1,
                "--pre cannot share a line with -e",
                id="editable-with-file-option",
            ),
            pytest.param(
                "-e ./pkg --hash=sha256:" + "a" * 64 + "\n",
                1,
                "--hash cannot check an editable",
                id="editable-hash",
            ),
            pytest.param(
                "-e\n", 1, "-e needs a project directory or a VCS URL after it", id="editable-empty"
            ),
            pytest.param(
                "-e requests\n",
                1,
                "-e needs a project directory or a VCS URL, not the name 'requests'",
                id="editable-name",
            ),
            pytest.param(
                "-e ./dist/qux-3.0.zip\n",
                1,
                "and ./dist/qux-3.0.zip is a file; drop the -e",
                id="editable-archive",
            ),
            pytest.param(
                "-e https://example.com/foo-1.0.tar.gz\n",
                1,
                "not an archive URL",
                id="editable-archive-url",
            ),
            pytest.param(
                "git+https://github.com/org/repo.git\n",
                1,
                "cannot tell the project name of git+https://github.com/org/repo.git; "
                "write it as `NAME @ git+https://github.com/org/repo.git`",
                id="vcs-without-egg",
            ),
            pytest.param(
                "https://example.com/archive/main.zip\n",
                1,
                "cannot tell the project name of https://example.com/archive/main.zip",
                id="url-without-name",
            ),
            pytest.param(
                "git+https://x/r.git#egg=foo>=1\n",
                1,
                "#egg=foo>=1 is not a project name",
                id="egg-with-specifier",
            ),
            pytest.param(
                "ftp://example.com/foo-1.0.tar.gz\n", 1, "ftp: URLs are not supported", id="ftp"
            ),
            pytest.param(
                "foo @ ftp://example.com/foo-1.0.tar.gz\n",
                1,
                "ftp: URLs are not supported",
                id="name-at-ftp",
            ),
            pytest.param(
                "file://server/share/foo-1.0.tar.gz\n",
                1,
                "names the host 'server'",
                id="file-url-host",
            ),
            pytest.param("./missing\n", 1, "./missing looks like a path, but", id="missing-dir"),
            pytest.param(
                "./dist/nope-1.0.tar.gz\n",
                1,
                "./dist/nope-1.0.tar.gz looks like a path",
                id="missing-archive",
            ),
            pytest.param(
                "nope-1.0-py3-none-any.whl\n", 1, "looks like a path", id="missing-bare-wheel"
            ),
            pytest.param("foo @ ./missing\n", 1, "./missing does not exist", id="name-at-missing"),
            pytest.param(
                "./empty\n", 1, "directory ./empty is not an installable project", id="empty-dir"
            ),
            pytest.param(
                "./noname\n",
                1,
                "cannot tell the project name of ./noname: neither [project] name",
                id="dir-without-name",
            ),
            pytest.param(
                "./requirements-dev.txt\n",
                1,
                "a requirements file is included with -r",
                id="plain-file",
            ),
            pytest.param(
                "./dist/broken.whl\n",
                1,
                "'broken.whl' is not a valid wheel file name",
                id="bad-wheel-name",
            ),
            pytest.param("foo=1.0\n", 1, "did you mean ==?", id="single-equals"),
            pytest.param("foo >=\n", 1, "invalid requirement", id="bad-specifier"),
            pytest.param("foo>=1.0[extra]\n", 1, "invalid requirement", id="extras-after-version"),
            pytest.param(
                "foo ; python_version >< '3'\n", 1, "invalid requirement", id="bad-marker"
            ),
            pytest.param(
                "-r https://example.com/r.txt\n",
                1,
                "does not read requirements files from URLs",
                id="url-include",
            ),
            pytest.param(
                "ok\n# comment\nbad==\\\n  1.0 \\\n  --pre\n",
                3,
                "--pre applies to the whole file",
                id="continued-line-number",
            ),
        ],
    )
    def test_error(self, tree: Path, text: str, line: int, message: str) -> None:
        error = _error(tree, text)
        assert error.file == str(tree / "requirements.txt")
        assert error.line == line
        assert message in error.reason
        assert f"{tree / 'requirements.txt'}:{line}: " in str(error)

    def test_editable_in_constraints_file(self, tree: Path) -> None:
        _write(tree / "c.txt", "foo<2\n-e ./pkg\n")
        error = _error(tree, "-c c.txt\n")
        assert error.file == str(tree / "c.txt")
        assert error.line == 2
        assert "a constraints file cannot hold an editable requirement" in error.reason

    def test_unreadable_project_name(self, tree: Path) -> None:
        _write(tree / "badproj" / "pyproject.toml", "[project\n")
        error = _error(tree, "./badproj\n")
        assert error.line == 1
        assert "cannot read the project name of ./badproj" in error.reason
        assert "invalid TOML" in error.reason

    def test_error_text_shows_the_line(self, tree: Path) -> None:
        error = _error(tree, "foo=1.0  # pinned\n")
        assert error.text == "foo=1.0"


class TestParseRequirementText:
    @pytest.mark.parametrize(
        ("text", "editable", "expected", "local"),
        [
            pytest.param("foo>=1", False, "foo>=1", None, id="specifier"),
            pytest.param("  foo  ", False, "foo", None, id="padded"),
            pytest.param("./pkg", False, "My_Pkg @ {uri}/pkg", "pkg", id="path"),
            pytest.param("pkg[test]", False, "pkg[test]", None, id="name-not-dir"),
            pytest.param("./pkg", True, "My_Pkg @ {uri}/pkg", "pkg", id="editable-path"),
            pytest.param(
                "foo @ https://example.com/foo-1.0.tar.gz",
                False,
                "foo @ https://example.com/foo-1.0.tar.gz",
                None,
                id="url",
            ),
            pytest.param(
                "dist/foo-1.0-py3-none-any.whl",
                False,
                "foo @ {uri}/dist/foo-1.0-py3-none-any.whl",
                "dist/foo-1.0-py3-none-any.whl",
                id="wheel",
            ),
        ],
    )
    def test_forms(
        self, tree: Path, text: str, editable: bool, expected: str, local: str | None
    ) -> None:
        origin = Origin(None, None)
        entry = parse_requirement_text(text, origin=origin, base_dir=tree, editable=editable)
        assert str(entry.requirement) == str(Requirement(expected.format(uri=tree.as_uri())))
        assert entry.editable is editable
        assert entry.path == (tree / local if local is not None else None)
        assert entry.origin == origin
        assert str(entry.origin) == "command line"

    def test_option_is_rejected(self, tree: Path) -> None:
        with pytest.raises(InvalidRequirement, match="'-e' is an option, not a requirement"):
            parse_requirement_text("-e ./pkg", origin=Origin(None, None), base_dir=tree)

    def test_error_has_no_file(self, tree: Path) -> None:
        with pytest.raises(InvalidRequirement) as caught:
            parse_requirement_text("foo=1", origin=Origin(None, None), base_dir=tree)
        assert caught.value.file is None
        assert "did you mean ==?" in caught.value.reason


PIP_COMPILE_OUTPUT = """\
#
# This file is autogenerated by pip-compile with Python 3.11
# by the following command:
#
#    pip-compile --allow-unsafe --generate-hashes --output-file=requirements.txt requirements.in
#
--index-url https://pypi.org/simple
--extra-index-url https://download.example.com/simple
--trusted-host download.example.com
--find-links wheels

-e file://{root}/libs/mylib
    # via -r requirements.in
certifi==2024.2.2 \\
    --hash=sha256:{certifi1} \\
    --hash=sha256:{certifi2}
    # via requests
charset-normalizer==3.3.2 \\
    --hash=sha256:{charset1} \\
    --hash=sha256:{charset2} \\
    --hash=sha256:{charset3}
    # via requests
idna==3.6 \\
    --hash=sha256:{idna1} \\
    --hash=sha256:{idna2}
    # via requests
pysocks==1.7.1 \\
    --hash=sha256:{pysocks1}
    # via requests
requests[socks]==2.31.0 \\
    --hash=sha256:{requests1} \\
    --hash=sha256:{requests2}
    # via -r requirements.in
tomli==2.0.1 ; python_version < "3.11" \\
    --hash=sha256:{tomli1}
    # via -r requirements.in
urllib3==2.2.1 \\
    --hash=sha256:{urllib31} \\
    --hash=sha256:{urllib32}
    # via
    #   -r requirements.in
    #   requests
wheel @ https://files.example.com/packages/wheel-0.42.0-py3-none-any.whl \\
    --hash=sha256:{wheel1}
    # via -r requirements.in

# The following packages are considered to be unsafe in a requirements file:
setuptools==69.1.0 \\
    --hash=sha256:{setuptools1}
    # via mylib
"""

UV_OUTPUT = """\
# This file was autogenerated by uv via the following command:
#    uv pip compile requirements.in --generate-hashes --emit-index-url
--index-url https://pypi.org/simple

-e ./libs/mylib
    # via -r requirements.in
anyio==4.3.0 \\
    --hash=sha256:{anyio1} \\
    --hash=sha256:{anyio2}
    # via httpx
colorama==0.4.6 ; sys_platform == 'win32' \\
    --hash=sha256:{colorama1}
    # via click
mylib-helper @ file://{root}/dist/mylib_helper-0.1-py3-none-any.whl \\
    --hash=sha256:{helper1}
    # via -r requirements.in
"""


def _render(parsed: ParsedRequirements) -> str:
    """Write entries back in pip-compile's layout, to check that they parse the same."""
    lines: list[str] = []
    options = parsed.options
    if options.index_url:
        lines.append(f"--index-url {options.index_url}")
    lines.extend(f"--extra-index-url {url}" for url in options.extra_index_urls)
    lines.extend(f"--trusted-host {host}" for host in options.trusted_hosts)
    lines.extend(f"--find-links {link}" for link in options.find_links)
    for entry in parsed.requirements:
        head = f"-e {entry.requirement.url}" if entry.editable else str(entry.requirement)
        if entry.hashes:
            lines.append(head + " \\")
            lines.extend(f"    --hash={h} \\" for h in entry.hashes[:-1])
            lines.append(f"    --hash={entry.hashes[-1]}")
        else:
            lines.append(head)
        lines.append("    # via something")
    return "\n".join(lines) + "\n"


class TestRoundTrip:
    @pytest.fixture
    def digests(self, tmp_path: Path) -> dict[str, str]:
        keys = [
            "certifi1",
            "certifi2",
            "charset1",
            "charset2",
            "charset3",
            "idna1",
            "idna2",
            "pysocks1",
            "requests1",
            "requests2",
            "tomli1",
            "urllib31",
            "urllib32",
            "wheel1",
            "setuptools1",
            "anyio1",
            "anyio2",
            "colorama1",
            "helper1",
        ]
        _write(tmp_path / "libs" / "mylib" / "pyproject.toml", '[project]\nname = "mylib"\n')
        _write(tmp_path / "dist" / "mylib_helper-0.1-py3-none-any.whl", "")
        (tmp_path / "wheels").mkdir()
        return {key: _hash(key) for key in keys} | {"root": str(tmp_path)}

    def test_pip_compile_output(self, tmp_path: Path, digests: dict[str, str]) -> None:
        parsed = _parse(tmp_path, PIP_COMPILE_OUTPUT.format(**digests))
        assert parsed.options.index_url == "https://pypi.org/simple"
        assert parsed.options.extra_index_urls == ["https://download.example.com/simple"]
        assert parsed.options.trusted_hosts == ["download.example.com"]
        assert parsed.options.find_links == [str(tmp_path / "wheels")]
        summary = [
            (str(e.requirement), e.origin.line, len(e.hashes), e.editable)
            for e in parsed.requirements
        ]
        assert summary == [
            (f"mylib @ {(tmp_path / 'libs' / 'mylib').as_uri()}", 12, 0, True),
            ("certifi==2024.2.2", 14, 2, False),
            ("charset-normalizer==3.3.2", 18, 3, False),
            ("idna==3.6", 23, 2, False),
            ("pysocks==1.7.1", 27, 1, False),
            ("requests[socks]==2.31.0", 30, 2, False),
            ('tomli==2.0.1; python_version < "3.11"', 34, 1, False),
            ("urllib3==2.2.1", 37, 2, False),
            (
                "wheel @ https://files.example.com/packages/wheel-0.42.0-py3-none-any.whl",
                43,
                1,
                False,
            ),
            ("setuptools==69.1.0", 48, 1, False),
        ]
        assert parsed.requirements[1].hashes == (
            f"sha256:{digests['certifi1']}",
            f"sha256:{digests['certifi2']}",
        )
        self._assert_round_trip(tmp_path, parsed)

    def test_uv_output(self, tmp_path: Path, digests: dict[str, str]) -> None:
        parsed = _parse(tmp_path, UV_OUTPUT.format(**digests))
        names = [e.requirement.name for e in parsed.requirements]
        assert names == ["mylib", "anyio", "colorama", "mylib-helper"]
        assert parsed.requirements[0].path == tmp_path / "libs" / "mylib"
        assert str(parsed.requirements[2].requirement.marker) == 'sys_platform == "win32"'
        assert parsed.requirements[3].path == (
            tmp_path / "dist" / "mylib_helper-0.1-py3-none-any.whl"
        )
        self._assert_round_trip(tmp_path, parsed)

    @staticmethod
    def _assert_round_trip(tmp_path: Path, parsed: ParsedRequirements) -> None:
        _write(tmp_path / "again.txt", _render(parsed))
        again = parse_requirements_file("again.txt", cwd=tmp_path)
        assert [(e.requirement, e.hashes, e.editable, e.path) for e in again.requirements] == [
            (e.requirement, e.hashes, e.editable, e.path) for e in parsed.requirements
        ]
        assert again.options == parsed.options


class TestLargeLockFile:
    def test_a_large_hashed_lock_file_keeps_every_pin_and_hash(self, tmp_path: Path) -> None:
        # pip-compile --generate-hashes output: continuation lines, two hashes and a comment
        # per pin, version segments of any size. (How fast it parses is the benchmarks'
        # business: every warm compile in bench/ parses its inputs.)
        lines = []
        for index in range(125):
            lines += [
                f"package-{index}==1.{index}.20230628214621 \\",
                f"    --hash=sha256:{_hash(str(index))} \\",
                f"    --hash=sha256:{_hash(str(-index))}",
                "    # via -r requirements.in",
            ]
        _write(tmp_path / "requirements.txt", "\n".join(lines) + "\n")
        parsed = parse_requirements_file("requirements.txt", cwd=tmp_path)
        assert len(parsed.requirements) == 125
        for index, entry in enumerate(parsed.requirements):
            assert entry.requirement.name == f"package-{index}"
            assert str(entry.requirement.specifier) == f"==1.{index}.20230628214621"
            # (index 0 lists one hash twice: kept once)
            assert set(entry.hashes) == {
                f"sha256:{_hash(str(index))}",
                f"sha256:{_hash(str(-index))}",
            }
            assert len(entry.hashes) == (1 if index == 0 else 2)
            assert entry.origin.line == 4 * index + 1
