"""Parse pip requirements files (``requirements.in``, ``requirements.txt``, constraints).

pip's own parser (``pip._internal.req.req_file``) is internal to pip and not importable as
an API, so this is an independent implementation of pip's "Requirements File Format":

* physical lines ending in ``\\`` join the next one; a comment line ends the join;
* ``#`` at the start of a line or after whitespace starts a comment;
* ``${NAME}`` (upper-case letters, digits, ``_``) is replaced from the environment when
  the variable is set and not empty, and left as written otherwise;
* a line holds a requirement followed by its per-requirement options (``--hash``,
  ``--config-settings``), or only options: the file-wide ones (``-r``, ``-c``, ``-e``,
  ``-i``, ``--extra-index-url``, ``-f``, ``--no-index``, ``--pre``, ``--trusted-host``,
  ``--only-binary``, ``--no-binary``, ``--prefer-binary``, ``--require-hashes``,
  ``--use-feature``), in ``--opt=value`` or ``--opt value`` form, long options
  abbreviated to any unique prefix as optparse allows;
* a requirement is PEP 508 (``name[extra] >=1 ; marker``, ``name @ url``), a URL of a
  wheel, sdist or VCS checkout (``git+https://...#egg=name``), or a local path to a
  project directory, wheel or sdist, optionally with ``[extras]`` and ``; marker``.

Where pip silently ignores something that cannot do what the author meant, this parser
raises ``InvalidRequirement`` instead: a file-wide option on a requirement's line, ``--hash``
on a line without a requirement or on an ``-e`` line, text after the options, several
``-e`` on one line. Relative local paths resolve against the directory of the file that
names them (pip uses the working directory), as ``-r``/``-c`` and ``-f`` paths do.
"""

from __future__ import annotations

import codecs
import difflib
import os
import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from msgspec import Struct, field
from packaging.requirements import InvalidRequirement as PackagingInvalidRequirement
from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from burrowd.daemon.errors import InvalidRequirement
from burrowd.daemon.inputs.model import (
    IndexOptions,
    Origin,
    ParsedRequirements,
    RequirementEntry,
    apply_binary_option,
)
from burrowd.daemon.inputs.pyproject import project_name

__all__ = [
    "canonical_name",
    "logical_lines",
    "parse_requirement_text",
    "parse_requirements_file",
    "variable_names",
]

canonical_name = canonicalize_name
"""Re-export of ``packaging.utils.canonicalize_name`` (PEP 503 normalization)."""

_COMMENT_RE = re.compile(r"(^|\s+)#.*$")
#: pip's rule: only upper-case names, digits and underscores are expanded.
_ENV_VAR_RE = re.compile(r"\$\{([A-Z0-9_]+)\}")
_OPTION_START_RE = re.compile(r"(?:^|\s)-")
_TOKEN_RE = re.compile(r"\S+")
_EXTRAS_SUFFIX_RE = re.compile(r"^(.+?)(\[[^\]]+\])$")
_CODING_RE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
_NAME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_OPERATOR = r"(?:===|==|!=|~=|<=|>=|<|>)[ \t]*[A-Za-z0-9.*+!_-]+"
# ``name``, ``name[extras]`` and ``name <specifiers>``: most lines of most files. These
# skip packaging's general parser, which costs several times more per line.
_SIMPLE_REQUIREMENT_RE = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
    r"[ \t]*(?:\[(?P<extras>[A-Za-z0-9._, \t-]+)\])?"
    rf"[ \t]*(?P<specifier>{_OPERATOR}(?:[ \t]*,[ \t]*{_OPERATOR})*)?"
)

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)

_VCS_SCHEMES = frozenset(
    {
        "git",
        "git+http",
        "git+https",
        "git+ssh",
        "git+git",
        "git+file",
        "hg+http",
        "hg+https",
        "hg+ssh",
        "hg+static-http",
        "hg+file",
        "svn",
        "svn+http",
        "svn+https",
        "svn+ssh",
        "svn+svn",
        "svn+file",
        "bzr+http",
        "bzr+https",
        "bzr+ssh",
        "bzr+sftp",
        "bzr+ftp",
        "bzr+lp",
        "bzr+file",
    }
)
_URL_SCHEMES = frozenset({"http", "https", "file", "ftp"}) | _VCS_SCHEMES

# pip's ARCHIVE_EXTENSIONS: what a bare path or URL must end in to be a distribution file.
_WHEEL_EXTENSION = ".whl"
_SDIST_EXTENSIONS = (
    ".tar.gz",
    ".zip",
    ".tgz",
    ".tar",
    ".tar.bz2",
    ".tbz",
    ".tar.xz",
    ".txz",
    ".tlz",
    ".tar.lz",
    ".tar.lzma",
)

_HASH_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_HEX_DIGITS = frozenset("0123456789abcdef")

# Option destinations. Long names map to them; unique prefixes of long names are accepted.
_LONG_OPTIONS = {
    "--requirement": "requirement",
    "--constraint": "constraint",
    "--editable": "editable",
    "--index-url": "index_url",
    "--pypi-url": "index_url",
    "--extra-index-url": "extra_index_url",
    "--find-links": "find_links",
    "--no-index": "no_index",
    "--pre": "pre",
    "--trusted-host": "trusted_host",
    "--only-binary": "only_binary",
    "--no-binary": "no_binary",
    "--prefer-binary": "prefer_binary",
    "--require-hashes": "require_hashes",
    "--use-feature": "use_feature",
    "--hash": "hash",
    "--config-settings": "config_settings",
    "--global-option": "global_option",
}
_SHORT_OPTIONS = {
    "-r": "requirement",
    "-c": "constraint",
    "-e": "editable",
    "-i": "index_url",
    "-f": "find_links",
    "-C": "config_settings",
}
_FLAG_OPTIONS = frozenset({"no_index", "pre", "prefer_binary", "require_hashes"})
_SUPPORTED_LIST = (
    "-r/--requirement, -c/--constraint, -e/--editable, -i/--index-url, --extra-index-url, "
    "-f/--find-links, --no-index, --pre, --trusted-host, --only-binary, --no-binary, "
    "--prefer-binary, --require-hashes, --use-feature, and after a requirement --hash "
    "and -C/--config-settings"
)


def variable_names(text: str) -> set[str]:
    """Return the names of the ``${VARIABLES}`` that parsing ``text`` would expand."""
    return {m.group(1) for m in _ENV_VAR_RE.finditer(text)}


def parse_requirements_file(
    path: Path | str,
    *,
    cwd: Path,
    constraint: bool = False,
    env: Mapping[str, str] | None = None,
    text: str | None = None,
) -> ParsedRequirements:
    """Read a requirements (or, with ``constraint``, a constraints) file and its includes.

    With ``text``, that is the file's content (``-`` for standard input, say) and ``path``
    only names it; relative paths in it resolve against ``cwd``.

    ``path`` resolves against ``cwd`` when relative. ``-r`` files add to the same list as
    the file that names them; ``-c`` files, and everything read from a constraints file,
    add to ``constraints``. Index options of every file update one ``IndexOptions`` in
    reading order. ``env`` (default ``os.environ``) supplies ``${NAME}`` values.

    Raises ``InvalidRequirement`` naming the file, the 1-based line (the first physical
    line of a continued line) and the problem.
    """
    result = ParsedRequirements()
    reader = _FileReader(result, os.environ if env is None else env)
    absolute = os.path.normpath(os.path.join(os.fspath(cwd), os.fspath(path)))
    if text is not None:
        reader.preloaded[absolute] = text
    reader.read(absolute, str(path), constraint=constraint, included_by=None)
    return result


def parse_requirement_text(
    text: str, *, origin: Origin, base_dir: Path, editable: bool = False
) -> RequirementEntry:
    """Parse one requirement as given on a command line or in an RPC request.

    ``text`` takes every form a requirements-file line can (PEP 508, URL, local path,
    ``[extras]`` and ``; marker``) but no options: pass ``editable=True`` for what
    followed ``-e``. Relative paths resolve against ``base_dir``.
    """
    where = _Where(origin, os.fspath(base_dir), text)
    stripped = text.strip()
    if stripped.startswith("-"):
        raise where.error(
            f"{stripped.split()[0]!r} is an option, not a requirement; give -e as "
            "editable=True and index options separately"
        )
    return _build_entry(stripped, where, editable=editable)


class _Where(Struct, frozen=True):
    """The line being parsed, for error messages and relative paths."""

    origin: Origin
    base_dir: str
    text: str

    def error(self, message: str) -> InvalidRequirement:
        """Build an ``InvalidRequirement`` about this line."""
        return InvalidRequirement(
            message, file=self.origin.file, line=self.origin.line, text=self.text
        )


class _Include(Struct, frozen=True):
    """A ``-r``/``-c`` line, remembered to report loops and unreadable files."""

    key: str
    display: str


class _LineOptions(Struct):
    """The options of one logical line, in the order written."""

    file_options: list[tuple[str, str | None, str]] = field(default_factory=list)
    editable: str | None = None
    hashes: list[str] = field(default_factory=list)
    config_settings: list[tuple[str, str]] = field(default_factory=list)
    requirement_option_names: list[str] = field(default_factory=list)


class _FileReader:
    """Reads one top-level file and everything it includes into one result."""

    def __init__(self, result: ParsedRequirements, env: Mapping[str, str]) -> None:
        self._result = result
        self._env = env
        self._stack: list[_Include] = []
        self._done: set[tuple[str, bool]] = set()
        #: Files whose text was given rather than read (standard input).
        self.preloaded: dict[str, str] = {}

    def read(
        self, absolute: str, display: str, *, constraint: bool, included_by: _Where | None
    ) -> None:
        """Read one file, recursing into its ``-r``/``-c`` lines."""
        key = os.path.realpath(absolute)
        for index, include in enumerate(self._stack):
            if include.key == key:
                chain = " -> ".join([*(i.display for i in self._stack[index:]), display])
                assert included_by is not None  # the top-level file is never on the stack
                raise included_by.error(
                    f"requirements files include each other in a loop ({chain}); "
                    "remove one of the -r/-c lines that close it"
                )
        if (key, constraint) in self._done:
            # Included twice without a loop (a diamond): the second read adds nothing.
            return
        text = self._load(absolute, included_by)
        file_path = Path(absolute)
        if file_path not in self._result.files:
            self._result.files.append(file_path)
        self._stack.append(_Include(key, display))
        base_dir = os.path.dirname(absolute)
        for number, line in logical_lines(text):
            self._line(line, Origin(absolute, number, display), base_dir, constraint=constraint)
        self._stack.pop()
        self._done.add((key, constraint))

    def _load(self, absolute: str, included_by: _Where | None) -> str:
        """Return the decoded text of a requirements file."""
        if absolute in self.preloaded:
            return self.preloaded[absolute]
        try:
            with open(absolute, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if included_by is None:
                raise InvalidRequirement(
                    f"cannot read the requirements file: {reason}", file=absolute
                ) from None
            raise included_by.error(
                f"cannot read the included file {absolute}: {reason}; check the path, "
                "which is relative to the directory of the including file"
            ) from None
        return _decode(data, absolute)

    def _line(self, line: str, origin: Origin, base_dir: str, *, constraint: bool) -> None:
        """Handle one logical line: a requirement, an ``-e``, or file-wide options."""
        if "#" in line:
            line = _COMMENT_RE.sub("", line, count=1)
        line = line.strip()
        if not line:
            return
        if "${" in line:
            line = _ENV_VAR_RE.sub(self._env_value, line)
        where = _Where(origin, base_dir, line)

        start = _OPTION_START_RE.search(line)
        if start is None:
            self._add(_build_entry(line, where, editable=False), constraint, where)
            return
        args = line[: start.start()].strip()
        options = _parse_options(line[start.start() :].strip(), where)

        if args or options.editable is not None:
            if options.file_options:
                spelled = options.file_options[0][2]
                if args:
                    raise where.error(
                        f"{spelled} applies to the whole file, not to the requirement on "
                        "this line; move it to a line of its own"
                    )
                raise where.error(
                    f"{spelled} cannot share a line with -e; move it to a line of its own"
                )
            if args and options.editable is not None:
                raise where.error(
                    "a line holds either a requirement or -e, not both; split it in two"
                )
            if options.editable is not None and options.hashes:
                raise where.error(
                    "--hash cannot check an editable requirement (it is built from its "
                    "directory or checkout); remove the --hash options or the -e"
                )
            entry = _build_entry(
                args or (options.editable or ""),
                where,
                editable=options.editable is not None,
                hashes=tuple(dict.fromkeys(options.hashes)),
                config_settings=tuple(options.config_settings),
            )
            self._add(entry, constraint, where)
            return

        if options.requirement_option_names:
            raise where.error(
                f"{options.requirement_option_names[0]} belongs to a requirement, but this "
                "line has none; put it after the requirement, or end the requirement's "
                "line with \\ to continue it here"
            )
        for dest, value, spelled in options.file_options:
            self._file_option(dest, value, spelled, where, constraint)

    def _env_value(self, match: re.Match[str]) -> str:
        """Return the variable's value, or the ``${NAME}`` text when unset or empty."""
        value = self._env.get(match.group(1))
        return value if value else match.group(0)

    def _add(self, entry: RequirementEntry, constraint: bool, where: _Where) -> None:
        """File the entry under requirements or constraints."""
        if not constraint:
            self._result.requirements.append(entry)
            return
        if entry.editable:
            raise where.error(
                "a constraints file cannot hold an editable requirement; move the -e line "
                "to a requirements file"
            )
        self._result.constraints.append(entry)

    def _file_option(
        self, dest: str, value: str | None, spelled: str, where: _Where, constraint: bool
    ) -> None:
        """Apply one file-wide option, or read the file that ``-r``/``-c`` names."""
        options: IndexOptions = self._result.options
        if dest in ("requirement", "constraint"):
            assert value is not None
            target = _included_path(value, spelled, where)
            if os.path.isabs(value) or _url_scheme(value) is not None:
                shown = target
            else:
                parent_display = self._stack[-1].display
                shown = os.path.normpath(os.path.join(os.path.dirname(parent_display), value))
            self.read(
                target,
                shown,
                constraint=constraint or dest == "constraint",
                included_by=where,
            )
        elif dest == "index_url":
            options.index_url = value
        elif dest == "extra_index_url":
            _append_unique(options.extra_index_urls, value)
        elif dest == "find_links":
            assert value is not None
            _append_unique(options.find_links, _location(value, where.base_dir))
        elif dest == "trusted_host":
            _append_unique(options.trusted_hosts, value)
        elif dest == "use_feature":
            _append_unique(options.use_features, value)
        elif dest in ("only_binary", "no_binary"):
            assert value is not None
            if dest == "only_binary":
                apply_binary_option(value, options.only_binary, options.no_binary)
            else:
                apply_binary_option(value, options.no_binary, options.only_binary)
        elif dest == "no_index":
            options.no_index = True
        elif dest == "pre":
            options.pre = True
        elif dest == "prefer_binary":
            options.prefer_binary = True
        elif dest == "require_hashes":
            options.require_hashes = True


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Join continued lines and return ``(first physical line number, text)`` pairs.

    A line ending in a backslash (trailing whitespace after it is forgiven) continues on
    the next; a comment line ends the continuation and is dropped, as in pip.
    """
    logical: list[tuple[int, str]] = []
    pending: list[str] = []
    first = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.lstrip()
        if stripped.startswith("#"):
            if pending:
                logical.append((first, "".join(pending)))
                pending = []
            continue
        body = raw.rstrip()
        if body.endswith("\\"):
            if not pending:
                first = number
            pending.append(body[:-1])
            continue
        if pending:
            pending.append(raw)
            logical.append((first, "".join(pending)))
            pending = []
        elif stripped:
            logical.append((number, raw))
    if pending:
        logical.append((first, "".join(pending)))
    return logical


def _decode(data: bytes, absolute: str) -> str:
    """Decode a requirements file: a BOM, else a PEP 263 coding line, else UTF-8."""
    encoding = "utf-8"
    for bom, name in _BOMS:
        if data.startswith(bom):
            data = data[len(bom) :]
            encoding = name
            break
    else:
        for first_line in data.split(b"\n", 2)[:2]:
            declared = _CODING_RE.match(first_line)
            if declared is not None:
                encoding = declared.group(1).decode("ascii")
                break
    try:
        return data.decode(encoding)
    except LookupError:
        raise InvalidRequirement(
            f"unknown encoding {encoding!r} in the coding declaration; use a Python codec "
            "name such as utf-8 or latin-1",
            file=absolute,
        ) from None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidRequirement(
            f"the file is not valid {encoding} (byte {data[exc.start]:#04x}); save it as "
            "UTF-8 or declare its encoding with a `# -*- coding: NAME -*-` first line",
            file=absolute,
            line=line,
        ) from None


def _tokenize(text: str, where: _Where) -> list[tuple[str, int, int]]:
    """Split options like a POSIX shell: ``(value, start, end)`` with quotes removed.

    Plain text is split on whitespace with a regex; only text holding quotes or
    backslashes takes the slower character walk (pip runs shlex over every option text).
    """
    if "'" not in text and '"' not in text and "\\" not in text:
        return [(m.group(), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]
    tokens: list[tuple[str, int, int]] = []
    index = 0
    length = len(text)
    while index < length:
        if text[index].isspace():
            index += 1
            continue
        start = index
        pieces: list[str] = []
        while index < length and not text[index].isspace():
            char = text[index]
            if char == "'":
                close = text.find("'", index + 1)
                if close == -1:
                    raise where.error("unterminated ' quote in the options; close the quote")
                pieces.append(text[index + 1 : close])
                index = close + 1
            elif char == '"':
                index += 1
                while index < length and text[index] != '"':
                    if text[index] == "\\" and index + 1 < length and text[index + 1] in '"\\$`':
                        index += 1
                    pieces.append(text[index])
                    index += 1
                if index >= length:
                    raise where.error('unterminated " quote in the options; close the quote')
                index += 1
            elif char == "\\" and index + 1 < length:
                pieces.append(text[index + 1])
                index += 2
            else:
                pieces.append(char)
                index += 1
        tokens.append(("".join(pieces), start, index))
    return tokens


def _parse_options(text: str, where: _Where) -> _LineOptions:
    """Parse the options part of a line (everything from its first ``-`` token)."""
    tokens = _tokenize(text, where)
    parsed = _LineOptions()
    index = 0
    while index < len(tokens):
        token = tokens[index][0]
        if not token.startswith("-") or token == "-":
            raise where.error(
                f"unexpected {token!r} after the options; a requirement comes before its "
                "options, and an option line holds only options"
            )
        if token.startswith("--"):
            spelled, equals, value = token.partition("=")
            dest = _long_option(spelled, where)
            spelled = _display_name(spelled, dest)
            has_value = bool(equals)
        else:
            spelled = token[:2]
            found = _SHORT_OPTIONS.get(spelled)
            if found is None:
                raise where.error(_unknown_option_message(spelled))
            dest = found
            value = token[2:]
            # ``-r=base.txt`` is accepted as ``-r base.txt`` (optparse would read "=base.txt").
            value = value.removeprefix("=")
            has_value = len(token) > 2
        index += 1

        if dest in _FLAG_OPTIONS:
            if has_value:
                raise where.error(f"{spelled} takes no value; write it alone")
            parsed.file_options.append((dest, None, spelled))
            continue
        if dest == "editable":
            end = index
            while end < len(tokens) and not tokens[end][0].startswith("-"):
                end += 1
            if parsed.editable is not None:
                raise where.error("one line holds one -e; put each on a line of its own")
            parsed.editable = _editable_text(
                tokens,
                (index, end),
                attached=value if has_value else None,
                text=text,
                spelled=spelled,
                where=where,
            )
            index = end
            continue
        if not has_value:
            if index >= len(tokens):
                raise where.error(f"{spelled} needs a value, as in `{spelled} VALUE`")
            value = tokens[index][0]
            index += 1
        _store_option(parsed, dest, value, spelled, where)
    return parsed


def _editable_text(
    tokens: list[tuple[str, int, int]],
    span: tuple[int, int],
    *,
    attached: str | None,
    text: str,
    spelled: str,
    where: _Where,
) -> str:
    """Return what follows ``-e``: one token, or the raw text up to the next option.

    A marker after the path (``-e ./pkg ; python_version < "3.12"``) spans several tokens,
    so several tokens are taken as written, quotes kept, for the requirement parser.
    """
    start, end = span
    if attached is None:
        if start == end:
            raise where.error(f"{spelled} needs a project directory or a VCS URL after it")
        if end - start == 1:
            return tokens[start][0]
        return text[tokens[start][1] : tokens[end - 1][2]]
    if start == end:
        return attached
    return f"{attached} {text[tokens[start][1] : tokens[end - 1][2]]}"


def _store_option(parsed: _LineOptions, dest: str, value: str, spelled: str, where: _Where) -> None:
    """Validate one option that takes a value and record it."""
    if dest == "hash":
        parsed.hashes.append(_hash_value(value, where))
        parsed.requirement_option_names.append(spelled)
    elif dest == "config_settings":
        key, equals, setting = value.partition("=")
        if not equals or not key:
            raise where.error(
                f"{spelled} takes KEY=VALUE, as in `{spelled} editable_mode=compat`, not {value!r}"
            )
        parsed.config_settings.append((key, setting))
        parsed.requirement_option_names.append(spelled)
    elif dest == "global_option":
        raise where.error(
            "--global-option passes arguments to setup.py, which burrowd never runs; remove "
            "it (PEP 517 backends take -C/--config-settings)"
        )
    else:
        if not value.strip():
            raise where.error(f"{spelled} needs a non-empty value")
        if dest in ("only_binary", "no_binary") and value.startswith("-"):
            raise where.error(
                f"{spelled} needs a value: project names separated by commas, :all: or :none:"
            )
        parsed.file_options.append((dest, value, spelled))


def _long_option(spelled: str, where: _Where) -> str:
    """Return the destination of a long option, accepting unique prefixes as optparse does."""
    dest = _LONG_OPTIONS.get(spelled)
    if dest is not None:
        return dest
    matches = [name for name in _LONG_OPTIONS if name.startswith(spelled)]
    dests = {_LONG_OPTIONS[name] for name in matches}
    if len(dests) == 1:
        return dests.pop()
    if dests:
        raise where.error(
            f"ambiguous option {spelled}: it could be {', '.join(sorted(matches))}; "
            "write the option in full"
        )
    raise where.error(_unknown_option_message(spelled))


def _display_name(spelled: str, dest: str) -> str:
    """Return the full long name of an option given by a prefix, for messages."""
    if spelled in _LONG_OPTIONS:
        return spelled
    return next(name for name, value in _LONG_OPTIONS.items() if value == dest)


def _unknown_option_message(spelled: str) -> str:
    """Explain an unknown option: the likely intended one, and every one that is allowed."""
    close = difflib.get_close_matches(spelled, [*_LONG_OPTIONS, *_SHORT_OPTIONS], n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return (
        f"unknown option {spelled}; {hint}a requirements file may hold only "
        f"{_SUPPORTED_LIST} (see `pip install --help` and pip's Requirements File Format); "
        "other pip options go on the command line"
    )


def _hash_value(value: str, where: _Where) -> str:
    """Return ``algorithm:hexdigest`` normalized to lower case, or raise."""
    algorithm, colon, digest = value.partition(":")
    algorithm = algorithm.strip().lower()
    digest = digest.strip().lower()
    if not colon or not algorithm or not digest:
        raise where.error(
            f"--hash takes ALGORITHM:DIGEST, as in --hash=sha256:<64 hex digits>, not {value!r}"
        )
    expected = _HASH_LENGTHS.get(algorithm)
    if expected is None:
        raise where.error(
            f"--hash algorithm {algorithm!r} is not allowed; use one of "
            f"{', '.join(_HASH_LENGTHS)} (pip refuses weaker ones too)"
        )
    if len(digest) != expected or not _HEX_DIGITS.issuperset(digest):
        raise where.error(
            f"--hash={algorithm}:{digest} is not a {algorithm} digest ({expected} hex "
            "digits); copy the whole value from `pip hash` or the index"
        )
    return f"{algorithm}:{digest}"


def _included_path(value: str, spelled: str, where: _Where) -> str:
    """Return the absolute path of a ``-r``/``-c`` target."""
    scheme = _url_scheme(value)
    if scheme == "file":
        return _file_url_path(value, where)
    if scheme is not None:
        raise where.error(
            f"{spelled} {value}: burrowd does not read requirements files from URLs; "
            "download the file and name its local path"
        )
    return os.path.normpath(os.path.join(where.base_dir, value))


def _location(value: str, base_dir: str) -> str:
    """Return a ``--find-links`` value: a URL as given, a path made absolute."""
    if _url_scheme(value) is not None:
        return value
    return os.path.normpath(os.path.join(base_dir, value))


def _append_unique(target: list[str], value: str | None) -> None:
    """Append ``value`` unless it is ``None`` or already there."""
    if value is not None and value not in target:
        target.append(value)


def _url_scheme(text: str) -> str | None:
    """Return the lower-case scheme of a URL (one letter is a Windows drive, not one)."""
    scheme, colon, _ = text.partition(":")
    if not colon or len(scheme) < 2:
        return None
    if not scheme[0].isalpha() or not all(c.isalnum() or c in "+-." for c in scheme):
        return None
    return scheme.lower()


def _is_url(text: str) -> bool:
    """Tell whether ``text`` starts with a scheme pip installs from, as ``pip`` judges it."""
    scheme, colon, _ = text.partition(":")
    return bool(colon) and scheme.lower() in _URL_SCHEMES


def _looks_like_path(text: str) -> bool:
    """Tell whether ``text`` looks like a path: a separator in it, or a leading dot."""
    if os.sep in text or (os.altsep is not None and os.altsep in text):
        return True
    return text.startswith(".")


def _is_archive(text: str) -> bool:
    """Tell whether ``text`` ends like a distribution file (pip's archive extensions)."""
    lowered = text.lower()
    return lowered.endswith(_WHEEL_EXTENSION) or lowered.endswith(_SDIST_EXTENSIONS)


def _split_url_marker(text: str) -> tuple[str, str | None]:
    """Split ``URL ; marker``; a ``;`` inside a URL has no whitespace beside it."""
    index = text.find(";")
    while index != -1:
        after = index + 1
        if (index > 0 and text[index - 1].isspace()) or after == len(text) or text[after].isspace():
            return text[:index].strip(), text[after:].strip() or None
        index = text.find(";", after)
    return text.strip(), None


def _file_url_path(url: str, where: _Where) -> str:
    """Return the absolute path of a ``file:`` URL; relative ones resolve against the file."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise where.error(
            f"file URL {url} names the host {parts.netloc!r}; only local file:///path "
            "URLs are supported"
        )
    return os.path.normpath(os.path.join(where.base_dir, unquote(parts.path)))


def _drop_egg(url: str) -> str:
    """Remove ``egg=`` from a URL's fragment; the name now lives in the requirement."""
    base, hash_sign, fragment = url.partition("#")
    if not hash_sign:
        return url
    kept = [part for part in fragment.split("&") if part and not part.startswith("egg=")]
    return f"{base}#{'&'.join(kept)}" if kept else base


def _egg(url: str, where: _Where) -> tuple[str | None, str]:
    """Return the ``#egg=name[extras]`` of a URL as ``(name, "[extras]")``."""
    _, _, fragment = url.partition("#")
    for part in fragment.split("&"):
        if part.startswith("egg="):
            value = unquote(part[4:]).strip()
            if not value:
                break
            try:
                parsed = Requirement(value)
            except PackagingInvalidRequirement:
                parsed = None
            if parsed is None or parsed.specifier or parsed.url or parsed.marker:
                raise where.error(
                    f"#egg={value} is not a project name; write the requirement as "
                    f"`NAME @ {_drop_egg(url)}`"
                )
            extras = f"[{','.join(sorted(parsed.extras))}]" if parsed.extras else ""
            return parsed.name, extras
    return None, ""


def _name_from_filename(filename: str, where: _Where) -> str | None:
    """Return the project name in a wheel or sdist file name, ``None`` if there is none."""
    lowered = filename.lower()
    if lowered.endswith(_WHEEL_EXTENSION):
        try:
            parse_wheel_filename(filename)
        except InvalidWheelFilename as exc:
            raise where.error(f"{filename!r} is not a valid wheel file name: {exc}") from None
        return filename.split("-", 1)[0]
    for extension in _SDIST_EXTENSIONS:
        if lowered.endswith(extension):
            stem = filename[: -len(extension)]
            name, dash, version = stem.rpartition("-")
            if not dash or not name:
                return None
            try:
                Version(version)
            except InvalidVersion:
                return None
            return name
    return None


def _build_entry(
    text: str,
    where: _Where,
    *,
    editable: bool,
    hashes: tuple[str, ...] = (),
    config_settings: tuple[tuple[str, str], ...] = (),
) -> RequirementEntry:
    """Turn the requirement part of a line into an entry (see the module docstring)."""
    if not text:
        raise where.error("empty requirement")
    extras_from_path = ""
    simple = None if editable or ";" in text or _is_archive(text) else _simple_requirement(text)
    if simple is not None:
        return RequirementEntry(
            requirement=simple,
            origin=where.origin,
            hashes=hashes,
            config_settings=config_settings,
        )
    if _is_url(text):
        url, marker = _split_url_marker(text)
        requirement, local = _from_url(url, marker, where, editable=editable)
    else:
        head, _, marker_text = text.partition(";")
        head = head.strip()
        marker = marker_text.strip() or None
        path_text, extras_from_path = _strip_extras(head)
        looks = _looks_like_path(path_text)
        absolute = os.path.normpath(os.path.join(where.base_dir, path_text))
        name_at = head.partition("@")
        named = bool(name_at[1]) and not _looks_like_path(name_at[0])
        if (looks and os.path.isdir(absolute)) or (
            _is_archive(path_text) and os.path.isfile(absolute)
        ):
            requirement, local = _from_path(
                absolute,
                path_text,
                name=None,
                extras=extras_from_path,
                marker=marker,
                where=where,
                editable=editable,
            )
        elif (looks or _is_archive(path_text)) and not named:
            if os.path.exists(absolute):
                raise where.error(
                    f"{path_text} is neither a project directory nor a wheel or sdist archive; "
                    "a requirements file is included with -r"
                )
            raise where.error(
                f"{path_text} looks like a path, but {absolute} does not exist (relative "
                f"paths start from {where.base_dir})"
            )
        else:
            requirement, local = _from_pep508(head, marker, where, editable=editable)
    return RequirementEntry(
        requirement=requirement,
        origin=where.origin,
        hashes=hashes,
        editable=editable,
        path=local,
        config_settings=config_settings,
    )


def _simple_requirement(text: str) -> Requirement | None:
    """Build a plain ``name[extras] specifiers`` requirement without the general parser.

    Returns ``None`` for anything else, or anything doubtful, which the general parser
    then handles (and reports on); the result equals what ``Requirement(text)`` gives.
    """
    found = _SIMPLE_REQUIREMENT_RE.fullmatch(text)
    if found is None:
        return None
    extras: set[str] = set()
    if found.group("extras") is not None:
        for written in found.group("extras").split(","):
            extra = written.strip()
            if not _NAME_RE.fullmatch(extra):
                return None
            extras.add(extra)
    specifier = found.group("specifier") or ""
    try:
        specifier_set = SpecifierSet(specifier)
    except InvalidSpecifier:
        return None
    requirement = Requirement.__new__(Requirement)
    requirement.name = found.group("name")
    requirement.url = None
    requirement.extras = extras
    requirement.specifier = specifier_set
    requirement.marker = None
    return requirement


def _strip_extras(text: str) -> tuple[str, str]:
    """Split ``./pkg[test]`` into ``("./pkg", "[test]")``."""
    if not text.endswith("]"):
        return text, ""
    found = _EXTRAS_SUFFIX_RE.match(text)
    if found is None:
        return text, ""
    return found.group(1), found.group(2)


def _make_requirement(
    name: str, extras: str, url: str, marker: str | None, where: _Where
) -> Requirement:
    """Build ``name[extras] @ url ; marker``."""
    text = f"{name}{extras} @ {url}"
    if marker:
        text = f"{text} ; {marker}"
    try:
        return Requirement(text)
    except PackagingInvalidRequirement as exc:
        raise where.error(f"invalid requirement {text!r}: {exc}") from None


def _from_path(
    absolute: str,
    written: str,
    *,
    name: str | None,
    extras: str,
    marker: str | None,
    where: _Where,
    editable: bool,
) -> tuple[Requirement, Path]:
    """Build the requirement of a local directory, wheel or sdist."""
    if os.path.isdir(absolute):
        if not (
            os.path.isfile(os.path.join(absolute, "pyproject.toml"))
            or os.path.isfile(os.path.join(absolute, "setup.py"))
        ):
            raise where.error(
                f"directory {written} is not an installable project: it has neither "
                "pyproject.toml nor setup.py"
            )
        if name is None:
            try:
                name = project_name(Path(absolute))
            except InvalidRequirement as exc:
                raise where.error(f"cannot read the project name of {written}: {exc}") from None
        if name is None:
            raise where.error(
                f"cannot tell the project name of {written}: neither [project] name in its "
                "pyproject.toml nor [metadata] name in its setup.cfg; write it as "
                f"`NAME @ {written}`"
            )
    elif os.path.isfile(absolute):
        if editable:
            raise where.error(
                f"-e needs a project directory or a VCS URL, and {written} is a file; drop "
                "the -e to install the archive"
            )
        if name is None:
            name = _name_from_filename(os.path.basename(absolute), where)
        if name is None:
            raise where.error(
                f"cannot tell the project name of {written}: it is not a wheel or sdist "
                f"file name (NAME-VERSION...); write it as `NAME @ {written}`"
            )
    else:
        raise where.error(
            f"{written} does not exist ({absolute}; relative paths start from {where.base_dir})"
        )
    url = Path(absolute).as_uri()
    return _make_requirement(name, extras, url, marker, where), Path(absolute)


def _from_url(
    url: str, marker: str | None, where: _Where, *, editable: bool
) -> tuple[Requirement, Path | None]:
    """Build the requirement of a bare URL: a file URL, a VCS URL or an archive URL."""
    scheme = url.partition(":")[0].lower()
    egg_name, extras = _egg(url, where)
    if scheme == "file":
        absolute = _file_url_path(url.partition("#")[0], where)
        return _from_path(
            absolute,
            url,
            name=egg_name,
            extras=extras,
            marker=marker,
            where=where,
            editable=editable,
        )
    if scheme in _VCS_SCHEMES:
        if egg_name is None:
            raise where.error(
                f"cannot tell the project name of {url}; write it as `NAME @ {url}` "
                "(or add #egg=NAME to the URL)"
            )
        return _make_requirement(egg_name, extras, _drop_egg(url), marker, where), None
    if scheme not in ("http", "https"):
        raise where.error(f"{scheme}: URLs are not supported; use https:// or a VCS URL")
    if editable:
        raise where.error(
            "-e needs a project directory or a VCS URL (git+https://...), not an archive URL; "
            "drop the -e"
        )
    name = egg_name
    if name is None:
        filename = unquote(posixpath.basename(urlsplit(url).path))
        name = _name_from_filename(filename, where)
    if name is None:
        raise where.error(
            f"cannot tell the project name of {url}: the URL does not end in a wheel or "
            f"sdist file name; write it as `NAME @ {url}`"
        )
    return _make_requirement(name, extras, _drop_egg(url), marker, where), None


def _from_pep508(
    head: str, marker: str | None, where: _Where, *, editable: bool
) -> tuple[Requirement, Path | None]:
    """Parse a PEP 508 requirement; a ``name @ path`` or ``file:`` URL becomes a local one."""
    text = f"{head} ; {marker}" if marker else head
    try:
        requirement = Requirement(text)
    except PackagingInvalidRequirement as exc:
        hint = ""
        if "=" in head and not any(op in head for op in ("==", ">=", "<=", "!=", "~=")):
            hint = " (= is not a version operator; did you mean ==?)"
        raise where.error(f"invalid requirement{hint}: {exc}") from None
    url = requirement.url
    if url is None:
        if editable:
            raise where.error(
                f"-e needs a project directory or a VCS URL, not the name {requirement.name!r}; "
                "for a local project write -e ./path"
            )
        return requirement, None
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    marker_text = str(requirement.marker) if requirement.marker is not None else None
    scheme = _url_scheme(url)
    if scheme is None or scheme == "file":
        absolute = (
            _file_url_path(url, where)
            if scheme == "file"
            else os.path.normpath(os.path.join(where.base_dir, url))
        )
        return _from_path(
            absolute,
            url,
            name=requirement.name,
            extras=extras,
            marker=marker_text,
            where=where,
            editable=editable,
        )
    if scheme in _VCS_SCHEMES:
        clean = _drop_egg(url)
        if clean == url:
            return requirement, None
        return _make_requirement(requirement.name, extras, clean, marker_text, where), None
    if scheme not in ("http", "https"):
        raise where.error(f"{scheme}: URLs are not supported; use https:// or a VCS URL")
    if editable:
        raise where.error(
            "-e needs a project directory or a VCS URL (git+https://...), not an archive URL; "
            "drop the -e"
        )
    return requirement, None
