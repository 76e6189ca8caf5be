"""Generate the JSON-RPC API reference (``docs/rpc.md``) from the protocol's own types.

The contract is :data:`~burrowd.protocol.jsonrpc.METHODS`,
:data:`~burrowd.protocol.jsonrpc.NOTIFICATIONS`, :class:`~burrowd.protocol.errors.ErrorCode`
and the msgspec Structs of :mod:`burrowd.protocol.messages`: the reference is derived from
them and never edited by hand. Types and defaults come from :mod:`msgspec.inspect`; the
description of a field is the Sphinx-style ``#:`` comment written just above it (or after
it on its line), read from the source with :mod:`ast` and :mod:`tokenize`, followed by the
comment of a ``Literal`` type alias it uses.

Run ``python -m burrowd.protocol.apidoc`` to print the reference, ``--write PATH`` to write
it and ``--check PATH`` to fail when a file differs from it (``make docs`` writes
``docs/rpc.md``). Nothing of ours imports this module: it is a leaf, like the rest of
``protocol/``, and loads only the standard library and msgspec.
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import io
import json
import re
import sys
import tokenize
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
import msgspec.inspect as mi

from burrowd.protocol import jsonrpc
from burrowd.protocol.errors import ErrorCode

__all__ = [
    "ERROR_DESCRIPTIONS",
    "FieldDoc",
    "error_description",
    "field_docs",
    "main",
    "render",
    "render_type",
]

#: The command that regenerates the committed reference.
REGENERATE: Final = "make docs"

#: What each code means, for codes whose meaning no ``#:`` comment in ``errors.py`` gives.
ERROR_DESCRIPTIONS: Final[dict[ErrorCode, str]] = {
    ErrorCode.PARSE_ERROR: "The message is not valid JSON.",
    ErrorCode.INVALID_REQUEST: (
        "The message is JSON but not a JSON-RPC 2.0 request (no `method`, a null `id`, an id "
        "already in flight, an empty batch, or a frame that cannot be read)."
    ),
    ErrorCode.METHOD_NOT_FOUND: (
        "The daemon serves no such method; `data.methods` lists the ones it does."
    ),
    ErrorCode.INVALID_PARAMS: (
        "The params do not fit the method's type; `data.path` names the offending field."
    ),
    ErrorCode.INTERNAL_ERROR: "A bug in the daemon; `data.traceback` holds the traceback.",
    ErrorCode.REQUEST_CANCELLED: (
        "The request was cancelled by its client with `$/cancelRequest`."
    ),
    ErrorCode.RESOLUTION_IMPOSSIBLE: (
        "No set of versions satisfies the requirements; `data` holds the explanation."
    ),
    ErrorCode.PACKAGE_NOT_FOUND: "A project is on none of the configured indexes.",
    ErrorCode.HASH_MISMATCH: (
        "A downloaded file's digest differs from the index's or from a `--hash` pin."
    ),
    ErrorCode.BUILD_FAILED: (
        "Building a source distribution failed or was not allowed; `data` holds the build "
        "log's tail."
    ),
    ErrorCode.INTERPRETER_NOT_FOUND: "The target Python could not be found or queried.",
    ErrorCode.INVALID_REQUIREMENT: (
        "A requirement, a requirements file line or a `pyproject.toml` table is malformed; "
        "`data` names the file and line."
    ),
    ErrorCode.NETWORK_ERROR: (
        "An index or file server could not be reached or answered with an error."
    ),
    ErrorCode.LOCK_TIMEOUT: "A file lock was not granted in time; the message names it.",
    ErrorCode.INVALID_DISTRIBUTION: (
        "A wheel, sdist or metadata file is broken or contradicts its name."
    ),
    ErrorCode.OFFLINE_MISS: "Offline mode was asked for and the cache lacks what is needed.",
    ErrorCode.CACHE_ERROR: "The cache directory could not be read or written.",
    ErrorCode.SHUTTING_DOWN: (
        "The daemon is stopping and takes no new work; start a new one and retry."
    ),
    ErrorCode.ENVIRONMENT_ERROR: (
        "The environment cannot be changed as asked (not a virtual environment, externally "
        "managed, missing)."
    ),
    ErrorCode.INSTALL_CONFLICT: (
        "A file a wheel would write belongs to another distribution; nothing was changed."
    ),
    ErrorCode.WATCH_ERROR: "A file cannot be watched (unsupported kind, or not watched).",
}

_TRANSPORT_CODES: Final = frozenset(
    {
        ErrorCode.PARSE_ERROR,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.METHOD_NOT_FOUND,
        ErrorCode.INVALID_PARAMS,
        ErrorCode.INTERNAL_ERROR,
    }
)
#: Notifications a client sends; every other one comes from the daemon.
_FROM_CLIENT: Final = frozenset({jsonrpc.CANCEL})
_JSON_CONSTANTS: Final = {"None": "null", "True": "true", "False": "false"}
#: Example values of required fields where a type's placeholder would read badly.
_EXAMPLE_VALUES: Final[dict[str, Any]] = {
    "protocol_version": jsonrpc.PROTOCOL_VERSION,
    "client_version": "1.0.0",
    "client_build": "my-editor-build-1",
    "cwd": "/home/me/project",
    "id": 1,
    "token": 1,
}

# -- source comments -------------------------------------------------------------------------


@dataclass(frozen=True)
class _ModuleComments:
    """The ``#:`` comments of one module, by class and member, and of its type aliases."""

    members: dict[tuple[str, str], str]
    annotations: dict[tuple[str, str], frozenset[str]]
    aliases: dict[str, str]


def _doc_comments(source: str) -> tuple[dict[int, str], dict[int, str]]:
    """Return the ``#:`` comments of ``source``: standing alone and trailing code, by line."""
    alone: dict[int, str] = {}
    trailing: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT or not tok.string.startswith("#:"):
            continue
        text = tok.string[2:].strip()
        line = tok.start[0]
        if tok.line[: tok.start[1]].strip():
            trailing[line] = text
        else:
            alone[line] = text
    return alone, trailing


def _comment_of(node: ast.stmt, alone: dict[int, str], trailing: dict[int, str]) -> str:
    """Return the comment of a member: the ``#:`` lines right above it, else after it."""
    lines: list[str] = []
    line = node.lineno - 1
    while line in alone:
        lines.insert(0, alone[line])
        line -= 1
    if not lines and node.lineno in trailing:
        lines.append(trailing[node.lineno])
    return " ".join(part for part in lines if part)


def _member_name(node: ast.stmt) -> str | None:
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    if (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
    ):
        return node.targets[0].id
    return None


def _is_type_alias(node: ast.AnnAssign) -> bool:
    ann = node.annotation
    return (isinstance(ann, ast.Name) and ann.id == "TypeAlias") or (
        isinstance(ann, ast.Attribute) and ann.attr == "TypeAlias"
    )


@functools.cache
def _module_comments(module_name: str) -> _ModuleComments:
    source = inspect.getsource(sys.modules[module_name])
    alone, trailing = _doc_comments(source)
    tree = ast.parse(source)
    members: dict[tuple[str, str], str] = {}
    annotations: dict[tuple[str, str], frozenset[str]] = {}
    aliases: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if _is_type_alias(node):
                aliases[node.target.id] = _comment_of(node, alone, trailing)
        elif isinstance(node, ast.ClassDef):
            for stmt in node.body:
                name = _member_name(stmt)
                if name is None:
                    continue
                members[(node.name, name)] = _comment_of(stmt, alone, trailing)
                if isinstance(stmt, ast.AnnAssign):
                    used = {n.id for n in ast.walk(stmt.annotation) if isinstance(n, ast.Name)}
                    annotations[(node.name, name)] = frozenset(used)
    return _ModuleComments(members, annotations, aliases)


def _defining_class(cls: type, name: str) -> type:
    """Return the class of ``cls``'s MRO whose body declares the field ``name``."""
    for klass in cls.__mro__:
        if name in vars(klass).get("__annotations__", {}):
            return klass
    return cls


def _own_doc(cls: type) -> str:
    """Return ``cls``'s own docstring (``inspect.getdoc`` would return a base's)."""
    doc = vars(cls).get("__doc__")
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


def _summary(cls: type) -> str:
    return _own_doc(cls).split("\n\n", 1)[0].replace("\n", " ")


def _markdown(text: str) -> str:
    """Return reST inline markup (````code````, ``:class:`X```) as Markdown."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    text = re.sub(r"``(.+?)``", r"`\1`", text)
    # The comments are written for Python readers; the wire says null, true and false.
    return re.sub(r"`(None|True|False)`", lambda m: f"`{_JSON_CONSTANTS[m[1]]}`", text)


# -- fields ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldDoc:
    """One row of a struct's table: what a client sends or receives in one field."""

    name: str
    type: str
    default: str
    description: str
    #: The comment written at the field itself, without what its type adds.
    comment: str


def _struct_of(typ: mi.Type) -> type[msgspec.Struct] | None:
    """Return the struct a field holds directly or as an optional value."""
    if isinstance(typ, mi.StructType):
        return typ.cls
    if isinstance(typ, mi.UnionType):
        structs = [t.cls for t in typ.types if isinstance(t, mi.StructType)]
        others = [t for t in typ.types if not isinstance(t, (mi.StructType, mi.NoneType))]
        if len(structs) == 1 and not others:
            return structs[0]
    return None


def _render_default(f: mi.Field) -> str:
    if f.required:
        return "required"
    value = f.default_factory() if f.default is msgspec.NODEFAULT else f.default
    # A struct of defaults is the common case; spelling each field out says nothing new.
    if isinstance(value, msgspec.Struct) and value == type(value)():
        return "`{}`"
    return f"`{msgspec.json.encode(value).decode()}`"


def field_docs(cls: type[msgspec.Struct]) -> list[FieldDoc]:
    """Return the fields of ``cls``, inherited ones included, in declaration order."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    rows = []
    for f in info.fields:
        owner = _defining_class(cls, f.name)
        comments = _module_comments(owner.__module__)
        comment = _markdown(comments.members.get((owner.__name__, f.name), ""))
        parts = [comment] if comment else []
        for alias in sorted(comments.annotations.get((owner.__name__, f.name), ())):
            if comments.aliases.get(alias):
                parts.append(_markdown(comments.aliases[alias]))
        nested = _struct_of(f.type)
        if not parts and nested is not None and _summary(nested):
            parts.append(_markdown(_summary(nested)))
        rows.append(
            FieldDoc(
                name=f.encode_name,
                type=render_type(f.type),
                default=_render_default(f),
                description=" ".join(parts),
                comment=comment,
            )
        )
    return rows


def _anchor(kind: str, name: str) -> str:
    return f"{kind}-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def render_type(typ: mi.Type) -> str:
    """Return a JSON type as the reference spells it (``array of string``, ``X | null``)."""
    if isinstance(typ, mi.StrType):
        return "string"
    if isinstance(typ, mi.BoolType):
        return "boolean"
    if isinstance(typ, mi.IntType):
        return "integer"
    if isinstance(typ, mi.FloatType):
        return "number"
    if isinstance(typ, mi.NoneType):
        return "null"
    if isinstance(typ, (mi.AnyType, mi.RawType)):
        return "any"
    if isinstance(typ, mi.LiteralType):
        return " | ".join(json.dumps(v) for v in typ.values)
    if isinstance(typ, mi.StructType):
        return f"[{typ.cls.__name__}](#{_anchor('type', typ.cls.__name__)})"
    if isinstance(typ, (mi.ListType, mi.TupleType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)):
        if isinstance(typ, mi.TupleType):
            return "array"
        inner = render_type(typ.item_type)
        return f"array of ({inner})" if " | " in inner else f"array of {inner}"
    if isinstance(typ, mi.DictType):
        return f"object ({render_type(typ.key_type)} → {render_type(typ.value_type)})"
    if isinstance(typ, mi.UnionType):
        # null last, as it reads: "string | null".
        members = sorted(typ.types, key=lambda t: isinstance(t, mi.NoneType))
        return " | ".join(render_type(t) for t in members)
    return type(typ).__name__.removesuffix("Type").lower()


# -- examples --------------------------------------------------------------------------------


class _NoExample(Exception):
    """A required field has a type without an obvious example value."""


def _example_value(name: str, typ: mi.Type) -> Any:
    if name in _EXAMPLE_VALUES:
        return _EXAMPLE_VALUES[name]
    if isinstance(typ, mi.StrType):
        return f"<{name}>"
    if isinstance(typ, mi.BoolType):
        return False
    if isinstance(typ, mi.IntType):
        return 0
    if isinstance(typ, mi.FloatType):
        return 0.0
    if isinstance(typ, mi.LiteralType):
        return typ.values[0]
    if isinstance(typ, mi.ListType):
        return []
    if isinstance(typ, mi.DictType):
        return {}
    if isinstance(typ, mi.StructType):
        return _example_params(typ.cls)
    if isinstance(typ, mi.UnionType):
        first = next(t for t in typ.types if not isinstance(t, mi.NoneType))
        return _example_value(name, first)
    raise _NoExample(name)


def _example_params(cls: type[msgspec.Struct]) -> dict[str, Any]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return {f.encode_name: _example_value(f.name, f.type) for f in info.fields if f.required}


def _example(method: str, params: type[msgspec.Struct], *, request: bool) -> str | None:
    try:
        body = _example_params(params)
    except _NoExample:
        return None
    message: dict[str, Any] = {"jsonrpc": jsonrpc.JSONRPC}
    if request:
        message["id"] = 1
    message.update(method=method, params=body)
    return json.dumps(message, ensure_ascii=False)


# -- errors ----------------------------------------------------------------------------------


def error_description(code: ErrorCode) -> str:
    """Return what ``code`` means: its ``#:`` comment in the source, else our description."""
    comment = _module_comments(ErrorCode.__module__).members.get((ErrorCode.__name__, code.name))
    return _markdown(comment) if comment else ERROR_DESCRIPTIONS.get(code, "")


def _error_link(code: ErrorCode) -> str:
    return f"[`{code.name}`](#{_anchor('error', code.name)})"


# -- the document ----------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(cls: type[msgspec.Struct]) -> Iterator[str]:
    rows = field_docs(cls)
    if not rows:
        yield "No fields: send `{}` (or leave `params` out)."
        return
    yield "| Field | Type | Default | Description |"
    yield "|---|---|---|---|"
    for row in rows:
        yield (
            f"| `{row.name}` | {_cell(row.type)} | {_cell(row.default)} "
            f"| {_cell(row.description)} |"
        )


def _inherited(cls: type[msgspec.Struct]) -> list[type]:
    """Return the bases of ``cls`` that declare fields of their own, nearest first."""
    return [
        base
        for base in cls.__mro__[1:]
        if issubclass(base, msgspec.Struct) and vars(base).get("__annotations__")
    ]


def _nested(cls: type[msgspec.Struct]) -> Iterator[type[msgspec.Struct]]:
    """Yield every struct a field of ``cls`` holds, at any depth inside that field's type."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    stack: list[mi.Type] = [f.type for f in info.fields]
    while stack:
        typ = stack.pop()
        if isinstance(typ, mi.StructType):
            yield typ.cls
        elif isinstance(typ, mi.UnionType):
            stack.extend(typ.types)
        elif isinstance(typ, (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)):
            stack.append(typ.item_type)
        elif isinstance(typ, mi.TupleType):
            stack.extend(typ.item_types)
        elif isinstance(typ, mi.DictType):
            stack.extend((typ.key_type, typ.value_type))


def _reachable(cls: type[msgspec.Struct]) -> Iterable[type[msgspec.Struct]]:
    """Return every struct ``cls`` holds, directly or through other structs."""
    seen: set[type[msgspec.Struct]] = set()
    stack = list(_nested(cls))
    while stack:
        nested = stack.pop()
        if nested not in seen:
            seen.add(nested)
            stack.extend(_nested(nested))
    return seen


class _Writer:
    """Render each struct once; later mentions link to the first."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.rendered: set[type] = set()

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def struct(self, cls: type[msgspec.Struct], heading: str, *, doc: bool = True) -> None:
        """Add the section of ``cls`` (without its docstring if not ``doc``), or a link."""
        anchor = _anchor("type", cls.__name__)
        if cls in self.rendered:
            self.add(f"{heading} [`{cls.__name__}`](#{anchor})", "")
            return
        self.rendered.add(cls)
        self.add(f'<a id="{anchor}"></a>', "", f"{heading} `{cls.__name__}`", "")
        text = _markdown(_own_doc(cls)) if doc else ""
        if text:
            self.add(*text.split("\n"), "")
        bases = _inherited(cls)
        if bases:
            names = ", ".join(f"`{b.__name__}`" for b in bases)
            self.add(f"Includes the fields of {names}.", "")
        self.add(*_table(cls), "")


def _says_nothing(name: str, params: type) -> bool:
    """Return whether the params' docstring is only "Params of ``name``."."""
    return _own_doc(params) in ("", f"Params of ``{name}``.")


def _method_summary(name: str, spec: jsonrpc.MethodSpec) -> str:
    """Return the first sentence of the params' docstring, else of the result's."""
    cls = spec.result if _says_nothing(name, spec.params) else spec.params
    return _markdown(_summary(cls))


def _intro(w: _Writer) -> None:
    version = jsonrpc.PROTOCOL_VERSION
    body = json.dumps({"jsonrpc": jsonrpc.JSONRPC, "id": 1, "method": "status"})
    cancelled = int(ErrorCode.REQUEST_CANCELLED)
    w.add(
        "# burrowd JSON-RPC API",
        "",
        "burrowd serves [JSON-RPC 2.0](https://www.jsonrpc.org/specification) on a Unix "
        "socket. The `burrow` client, editors and scripts all speak it. This reference is "
        "generated from the protocol's types (`burrowd.protocol`): the types, defaults and "
        "descriptions below are the ones the daemon decodes and encodes.",
        "",
        f"Protocol version: **{version}**.",
        "",
        "## Connecting",
        "",
        "### Socket",
        "",
        "The socket is `$BURROW_SOCKET` when set, else `$XDG_RUNTIME_DIR/burrowd/burrowd.sock` "
        "(when `XDG_RUNTIME_DIR` is unset or not a private directory: "
        "`/run/user/$UID/burrowd/burrowd.sock`, else `$TMPDIR/runtime-$UID/burrowd/burrowd.sock`;"
        " `~/Library/Caches/TemporaryItems/burrowd/burrowd.sock` on macOS). Only processes of "
        "the daemon's own user may connect; others are disconnected before a byte is read. "
        "`burrow daemon start` starts the daemon; `burrow daemon status` prints its socket.",
        "",
        "### Framing",
        "",
        "By default a connection carries newline-delimited JSON: one UTF-8 JSON message per "
        "line, each ending with `\\n`.",
        "",
        "A connection whose first bytes are a header line (`Content-Length: N`) is read and "
        "answered with the LSP base-protocol framing instead, which editors' RPC libraries "
        "already speak: headers, an empty line, then exactly `N` bytes of JSON body.",
        "",
        "```",
        f"Content-Length: {len(body.encode())}\\r\\n\\r\\n{body}",
        "```",
        "",
        "The framing is chosen once per connection, by its first message. A message that cannot "
        f"be framed gets an `{ErrorCode.INVALID_REQUEST.name}` reply and the connection is "
        "closed; any other malformed message gets its error reply and the connection goes on.",
        "",
        "### Handshake: `initialize`",
        "",
        "Send [`initialize`](#method-initialize) first, with the protocol version the client "
        "was written for and its own version and build. The daemon answers with its protocol "
        "version, version, build and pid. It does not refuse another version: the client "
        "decides. `burrow` asks a daemon of another build to shut down and starts its own; an "
        f"editor should at least check that `protocol_version` is {version}.",
        "",
        "### Requests in parallel",
        "",
        "Every request runs on its own: one connection may have many requests in flight, and "
        "responses come in the order they finish, matched by `id`. An `id` must be unique among "
        "the connection's requests in flight.",
        "",
        "### Progress: `$/progress`",
        "",
        "Long-running methods (marked below) send "
        f"[`{jsonrpc.PROGRESS}`](#notification-progress) notifications before their response. "
        "The notification's `token` is the id of the request it reports on; `phase` names the "
        "step, `current`/`total` count it (`total` is null when unknown). A phase sends at most "
        "one notification every 100 ms; a new phase and the last step of a phase are always "
        "sent.",
        "",
        "### Cancellation: `$/cancelRequest`",
        "",
        f"Send the notification [`{jsonrpc.CANCEL}`](#notification-cancelrequest) with the "
        "`id` of a request of the same connection to cancel that request, and only that one. "
        f"It answers with error `{cancelled}` ({_error_link(ErrorCode.REQUEST_CANCELLED)}) "
        "soon after. An unknown or finished id is ignored. Closing the connection cancels all of "
        "its requests (with nobody left to answer).",
        "",
        "```json",
        json.dumps({"jsonrpc": jsonrpc.JSONRPC, "method": jsonrpc.CANCEL, "params": {"id": 7}}),
        "```",
        "",
        "### Watch events: `watch.events`",
        "",
        '[`watch.events`](#method-watch-events) with `{"subscribe": true}` subscribes the '
        f"connection to [`{jsonrpc.WATCH_EVENT}`](#notification-watch-event) notifications: "
        "the daemon sends one whenever something happens to a watched requirement file (see "
        "[`watch.add`](#method-watch-add)), until the connection closes or it sends "
        '`{"subscribe": false}`. The result lists the watches as they stand, so a client sees '
        "the state and then every change to it.",
        "",
        "### Batches",
        "",
        "A JSON array of requests and notifications is a batch. Its members run in parallel and "
        "the daemon answers with one array holding a response per request (in no particular "
        "order; notifications get none) once all of them are done. Progress notifications of "
        f"members are sent on their own meanwhile. An empty array is an "
        f"`{ErrorCode.INVALID_REQUEST.name}`.",
        "",
        "### Errors",
        "",
        "An error response carries `code`, a human `message` (print it as it is) and, for "
        "most codes, structured `data`. Transport errors can answer any request; the "
        "application errors a method may answer are listed with it. All codes are in "
        "[Error codes](#error-codes).",
        "",
    )


def _contents(w: _Writer, methods: Sequence[str], notifications: Sequence[str]) -> None:
    w.add("## Methods", "")
    w.add("| Method | Summary |", "|---|---|")
    for name in methods:
        spec = jsonrpc.METHODS[name]
        link = f"[`{name}`](#{_anchor('method', name)})"
        w.add(f"| {link} | {_cell(_method_summary(name, spec))} |")
    w.add("")
    w.add("Notifications: " + ", ".join(_notification_link(n) for n in notifications) + ".", "")


def _notification_link(name: str) -> str:
    return f"[`{name}`](#{_anchor('notification', name)})"


def _method(w: _Writer, name: str, spec: jsonrpc.MethodSpec) -> None:
    w.add(f'<a id="{_anchor("method", name)}"></a>', "", f"### `{name}`", "")
    if _says_nothing(name, spec.params):
        w.add(_method_summary(name, spec), "")
    else:
        w.add(*_markdown(_own_doc(spec.params)).split("\n"), "")
    if spec.long_running:
        w.add(
            f"Long running: sends `{jsonrpc.PROGRESS}` notifications (token = request id) and "
            f"can be cancelled with `{jsonrpc.CANCEL}` (error "
            f"`{int(ErrorCode.REQUEST_CANCELLED)}`).",
            "",
        )
    example = _example(name, spec.params, request=True)
    if example is not None:
        w.add("```json", example, "```", "")
    # The params' docstring is the method's description, just above.
    w.struct(spec.params, "#### Params:", doc=False)
    w.struct(spec.result, "#### Result:")
    w.add("#### Errors", "")
    wanted = {*spec.errors, *([ErrorCode.REQUEST_CANCELLED] if spec.long_running else [])}
    codes = [code for code in ErrorCode if code in wanted]
    if codes:
        w.add("| Code | Name | Meaning |", "|---|---|---|")
        w.add(
            *(f"| `{int(c)}` | {_error_link(c)} | {_cell(error_description(c))} |" for c in codes)
        )
        w.add("", "Any request may also get a [transport error](#error-codes).", "")
    else:
        w.add("Only the [transport errors](#error-codes) any request may get.", "")


def _notification(w: _Writer, name: str, params: type[msgspec.Struct]) -> None:
    w.add(f'<a id="{_anchor("notification", name)}"></a>', "", f"### `{name}`", "")
    direction = "client → daemon" if name in _FROM_CLIENT else "daemon → client"
    w.add(f"Direction: {direction}.", "")
    example = _example(name, params, request=False)
    if example is not None:
        w.add("```json", example, "```", "")
    w.struct(params, "#### Params:")


def _errors(w: _Writer) -> None:
    w.add('<a id="error-codes"></a>', "", "## Error codes", "")
    w.add(
        "Transport codes are JSON-RPC 2.0's, cancellation is LSP's; application codes run "
        "from -32010 down, clear of the range LSP reserves.",
        "",
    )
    w.add("| Code | Name | Kind | Meaning |", "|---|---|---|---|")
    # Definition order: transport codes, cancellation, then application codes from -32010 down.
    for code in ErrorCode:
        if code in _TRANSPORT_CODES:
            kind = "transport"
        elif code is ErrorCode.REQUEST_CANCELLED:
            kind = "cancellation"
        else:
            kind = "application"
        anchor = f'<a id="{_anchor("error", code.name)}"></a>'
        w.add(
            f"| `{int(code)}` | {anchor}`{code.name}` | {kind} | {_cell(error_description(code))} |"
        )
    w.add("")


def render() -> str:
    """Return the whole reference as Markdown, ending with a newline."""
    methods = sorted(jsonrpc.METHODS)
    notifications = sorted(jsonrpc.NOTIFICATIONS)
    w = _Writer()
    w.add(
        "<!-- Generated from burrowd.protocol by `python -m burrowd.protocol.apidoc`; "
        f"do not edit. Regenerate with `{REGENERATE}`. -->",
        "",
    )
    _intro(w)
    _contents(w, methods, notifications)
    for name in methods:
        _method(w, name, jsonrpc.METHODS[name])
    w.add("## Notifications", "")
    for name in notifications:
        _notification(w, name, jsonrpc.NOTIFICATIONS[name])
    nested = sorted(
        {n for cls in list(w.rendered) for n in _reachable(cls) if n not in w.rendered},
        key=lambda c: c.__name__,
    )
    w.add("## Types", "", "Structs used in the params and results above.", "")
    for cls in nested:
        w.struct(cls, "###")
    _errors(w)
    while w.lines and not w.lines[-1]:
        w.lines.pop()
    return "\n".join(w.lines) + "\n"


# -- command line ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Print, write or check the reference; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m burrowd.protocol.apidoc", description=__doc__.split("\n", 1)[0]
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="PATH", type=Path, help="write the reference to PATH")
    group.add_argument(
        "--check", metavar="PATH", type=Path, help="exit 1 when PATH differs from the reference"
    )
    args = parser.parse_args(argv)
    text = render()
    if args.write is not None:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text, encoding="utf-8", newline="\n")
        return 0
    if args.check is not None:
        try:
            current = args.check.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text:
            print(f"{args.check} is stale; run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
