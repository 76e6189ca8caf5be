"""The API reference generated from the protocol's structs, and the committed ``docs/rpc.md``."""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import msgspec
import msgspec.inspect as mi
import pytest

from burrowd.protocol import apidoc, jsonrpc
from burrowd.protocol import messages as m
from burrowd.protocol.errors import ErrorCode
from tests.protocol.importgraph import imports_of, package_files

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "rpc.md"
HINT = "docs/rpc.md is stale; run `make docs`"


@pytest.fixture(scope="module")
def text() -> str:
    """Return the reference as generated from the protocol now."""
    return apidoc.render()


def section(text: str, anchor: str) -> str:
    """Return the text from ``<a id="anchor">`` up to the next anchor (a struct's section)."""
    start = text.index(f'<a id="{anchor}"></a>')
    end = text.find('<a id="', start + 1)
    return text[start : end if end != -1 else None]


def entry(text: str, kind: str, name: str) -> str:
    """Return the whole section of a method or notification, up to the next heading of its rank."""
    start = text.index(f'<a id="{kind}-{re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")}">')
    match = re.compile(r"^##?#? ", re.MULTILINE).search(text, text.index("\n### ", start) + 2)
    return text[start : match.start() if match else None]


def rows(body: str) -> dict[str, list[str]]:
    """Return the rows of the field table in ``body``: field name -> the other cells."""
    lines = iter(body.splitlines())
    for line in lines:
        if line == "| Field | Type | Default | Description |":
            next(lines)  # the |---| line
            break
    found = {}
    for line in lines:
        if not line.startswith("| "):
            break
        name, *cells = line.strip("| ").split(" | ")
        found[name.strip("`")] = cells
    return found


def top_level_structs() -> Iterator[type[msgspec.Struct]]:
    for spec in jsonrpc.METHODS.values():
        yield spec.params
        yield spec.result
    yield from jsonrpc.NOTIFICATIONS.values()


class TestCommittedReference:
    def test_docs_rpc_md_is_up_to_date(self, text: str) -> None:
        committed = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
        # Not `assert a == b`: a 1400-line diff would bury the one line that matters.
        if committed != text:
            pytest.fail(HINT)

    def test_check_flags_a_stale_file(
        self, tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        stale = tmp_path / "rpc.md"
        stale.write_text(text.replace("JSON-RPC", "JSON RPC", 1))
        assert apidoc.main(["--check", str(stale)]) == 1
        assert capsys.readouterr().err == f"{stale} is stale; run `make docs`\n"

    def test_check_flags_a_missing_file(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        missing = tmp_path / "rpc.md"
        assert apidoc.main(["--check", str(missing)]) == 1
        assert "is stale; run `make docs`" in capsys.readouterr().err

    def test_write_then_check_passes(self, tmp_path: Path, text: str) -> None:
        target = tmp_path / "docs" / "rpc.md"
        assert apidoc.main(["--write", str(target)]) == 0
        assert target.read_bytes() == text.encode()
        assert apidoc.main(["--check", str(target)]) == 0

    def test_prints_by_default(self, text: str, capsys: pytest.CaptureFixture[str]) -> None:
        assert apidoc.main([]) == 0
        assert capsys.readouterr().out == text


class TestDocument:
    def test_is_deterministic_and_ends_with_a_newline(self, text: str) -> None:
        assert apidoc.render() == text
        assert text.endswith("\n")
        assert not text.endswith("\n\n")

    def test_first_line_says_generated_and_how_to_regenerate(self, text: str) -> None:
        first = text.splitlines()[0]
        assert first.startswith("<!--")
        assert "python -m burrowd.protocol.apidoc" in first
        assert "make docs" in first

    @pytest.mark.parametrize("method", sorted(jsonrpc.METHODS))
    def test_every_method_has_a_section(self, text: str, method: str) -> None:
        spec = jsonrpc.METHODS[method]
        body = entry(text, "method", method)
        assert f"### `{method}`" in body
        assert f"`{spec.params.__name__}`" in body
        assert f"`{spec.result.__name__}`" in body
        assert ("Long running" in body) is spec.long_running
        for code in spec.errors:
            assert f"| `{int(code)}` | [`{code.name}`]" in body

    @pytest.mark.parametrize("method", sorted(jsonrpc.NOTIFICATIONS))
    def test_every_notification_has_a_section(self, text: str, method: str) -> None:
        body = entry(text, "notification", method)
        assert f"### `{method}`" in body
        assert f"`{jsonrpc.NOTIFICATIONS[method].__name__}`" in body

    @pytest.mark.parametrize(
        "struct",
        [
            pytest.param(struct, id=struct.__name__)
            for struct in sorted(set(top_level_structs()), key=lambda c: c.__name__)
        ],
    )
    def test_every_field_is_in_its_table(self, text: str, struct: type[msgspec.Struct]) -> None:
        table = rows(section(text, "type-" + struct.__name__.lower()))
        fields = [f.encode_name for f in msgspec.structs.fields(struct)]
        assert list(table) == fields

    def test_nested_structs_get_one_section_each(self, text: str) -> None:
        for name in ("ClientEnv", "IndexOptions", "PythonOptions", "BuildOptions", "WatchInfo"):
            assert text.count(f'<a id="type-{name.lower()}"></a>') == 1
            assert f"[{name}](#type-{name.lower()})" in text

    def test_long_running_methods_list_the_cancelled_error(self, text: str) -> None:
        body = entry(text, "method", "resolve")
        assert "| `-32800` | [`REQUEST_CANCELLED`](#error-request-cancelled) |" in body

    @pytest.mark.parametrize("method", sorted(jsonrpc.METHODS))
    def test_examples_are_valid_requests(self, text: str, method: str) -> None:
        body = entry(text, "method", method)
        examples = re.findall(r"```json\n(.*)\n```", body)
        if not examples:
            pytest.skip(f"{method} has no example: a required field has no obvious value")
        request = msgspec.json.decode(examples[0])
        assert (request["jsonrpc"], request["method"]) == ("2.0", method)
        params = msgspec.json.encode(request["params"])
        jsonrpc.decode_as(params, jsonrpc.METHODS[method].params)


class TestErrors:
    @pytest.mark.parametrize("code", list(ErrorCode), ids=lambda c: c.name)
    def test_every_code_has_a_description(self, code: ErrorCode) -> None:
        assert apidoc.error_description(code).strip()

    def test_descriptions_are_written_for_every_code(self) -> None:
        # A code added to ErrorCode must be described here (or by a `#:` comment there).
        undescribed = [
            code
            for code in ErrorCode
            if code not in apidoc.ERROR_DESCRIPTIONS and not apidoc.error_description(code)
        ]
        assert undescribed == []

    def test_error_table_lists_every_code_once(self, text: str) -> None:
        table = text[text.index("## Error codes") :]
        for code in ErrorCode:
            assert table.count(f"| `{int(code)}` |") == 1, code
            assert f'<a id="error-{code.name.lower().replace("_", "-")}"></a>' in table


class TestFieldTypes:
    @pytest.mark.parametrize(
        ("struct", "field", "rendered"),
        [
            pytest.param(m.InitializeParams, "protocol_version", "integer", id="int"),
            pytest.param(m.RequestInfo, "elapsed", "number", id="float"),
            pytest.param(m.IndexOptions, "no_index", "boolean", id="bool"),
            pytest.param(m.ResolveParams, "requirements", "array of string", id="list"),
            pytest.param(m.ResolveParams, "stdin", "string | null", id="optional"),
            pytest.param(m.CancelParams, "id", "integer | string", id="union"),
            pytest.param(m.ClientEnv, "variables", "object (string → string)", id="dict"),
            pytest.param(
                m.ResolveParams,
                "resolution",
                '"highest" | "lowest" | "lowest-direct"',
                id="literal",
            ),
            pytest.param(m.WatchInfo, "kind", '"pins" | "resolve" | null', id="optional-literal"),
            pytest.param(
                m.ResolveParams, "index", "[IndexOptions](#type-indexoptions)", id="struct"
            ),
            pytest.param(
                m.StatusResult,
                "requests",
                "array of [RequestInfo](#type-requestinfo)",
                id="list-of-struct",
            ),
            pytest.param(
                m.WatchRemoveParams, "env", "[ClientEnv](#type-clientenv) | null", id="opt-struct"
            ),
        ],
    )
    def test_renders(self, struct: type[msgspec.Struct], field: str, rendered: str) -> None:
        [row] = [r for r in apidoc.field_docs(struct) if r.name == field]
        assert row.type == rendered

    def test_union_inside_an_array_is_parenthesised(self) -> None:
        assert apidoc.render_type(mi.type_info(list[int | str])) == "array of (integer | string)"

    @pytest.mark.parametrize(
        ("struct", "field", "default"),
        [
            pytest.param(m.ResolveParams, "env", "required", id="required"),
            pytest.param(m.ResolveParams, "resolution", '`"highest"`', id="literal"),
            pytest.param(m.ResolveParams, "requirements", "`[]`", id="list-factory"),
            pytest.param(m.ClientEnv, "variables", "`{}`", id="dict-factory"),
            pytest.param(m.ResolveParams, "index", "`{}`", id="struct-of-defaults"),
            pytest.param(m.ResolveParams, "output_file", "`null`", id="none"),
            pytest.param(m.ResolveParams, "annotate", "`true`", id="bool"),
            pytest.param(m.InitializeParams, "client_name", '`"burrow"`', id="string"),
        ],
    )
    def test_defaults(self, struct: type[msgspec.Struct], field: str, default: str) -> None:
        [row] = [r for r in apidoc.field_docs(struct) if r.name == field]
        assert row.default == default


SAMPLE = '''\
"""A module of structs documented the way messages.py is."""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

#: How fast: the alias's own comment,
#: over two lines.
Speed: TypeAlias = Literal["slow", "fast"]


class Inner(msgspec.Struct, frozen=True, kw_only=True):
    """Something nested."""

    x: int = 0


class Base(msgspec.Struct, kw_only=True):
    """The base."""

    #: Inherited and documented.
    inherited: str = ""


class Sample(Base, kw_only=True):
    """A struct with every kind of comment."""

    #: One line.
    single: int
    #: First line,
    #: second line with ``code``.
    multi: str = ""
    # A plain comment is not documentation.
    plain: bool = False
    trailing: int = 0  #: After the field.
    #: Stands above a blank line, so it documents nothing.

    orphan: int = 0
    #: Rendered with ``None`` as null.
    speed: Speed | None = None
    inner: Inner = Inner()
'''


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, apidoc.FieldDoc]]:
    """Import ``SAMPLE`` from a file (comments are read from source) and document ``Sample``."""
    path = tmp_path_factory.mktemp("apidoc") / "apidoc_sample.py"
    path.write_text(textwrap.dedent(SAMPLE))
    name = "tests_protocol_apidoc_sample"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        yield {row.name: row for row in apidoc.field_docs(module.Sample)}
    finally:
        del sys.modules[name]


class TestComments:
    @pytest.mark.parametrize(
        ("field", "description"),
        [
            pytest.param("single", "One line.", id="one-line"),
            pytest.param("multi", "First line, second line with `code`.", id="multi-line"),
            pytest.param("inherited", "Inherited and documented.", id="inherited"),
            pytest.param("trailing", "After the field.", id="trailing"),
            pytest.param("plain", "", id="plain-comment"),
            pytest.param("orphan", "", id="blank-line-between"),
            pytest.param(
                "speed",
                "Rendered with `null` as null. How fast: the alias's own comment, over two lines.",
                id="alias",
            ),
            pytest.param("inner", "Something nested.", id="struct-docstring"),
        ],
    )
    def test_description(
        self, sample: dict[str, apidoc.FieldDoc], field: str, description: str
    ) -> None:
        assert sample[field].description == description

    def test_inherited_fields_come_first(self, sample: dict[str, apidoc.FieldDoc]) -> None:
        assert next(iter(sample)) == "inherited"

    def test_inherited_protocol_field_keeps_its_base_comment(self) -> None:
        base = {r.name: r for r in apidoc.field_docs(m.Requirements)}
        derived = {r.name: r for r in apidoc.field_docs(m.ResolveParams)}
        assert base["requirements"].comment
        assert derived["requirements"].description == base["requirements"].description


class TestLeaf:
    def test_nothing_of_ours_imports_apidoc(self) -> None:
        importers = [
            f"{imp.path}:{imp.line}"
            for package in ("protocol", "client", "daemon")
            for path, name in package_files(package)
            for imp in imports_of(path, name)
            if imp.module == "burrowd.protocol.apidoc"
        ]
        assert importers == []
