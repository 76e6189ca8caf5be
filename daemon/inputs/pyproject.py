"""Read requirements from a ``pyproject.toml``: PEP 621 dependencies and extras, PEP 735 groups.

Every requirement keeps the 1-based line of its string in the file, found in the raw text
(``tomllib`` does not report positions), so ``# via`` annotations and errors can point at
it. Dynamic dependencies would need a build backend to run and are rejected with advice.
"""

from __future__ import annotations

import configparser
import os
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement as PackagingInvalidRequirement
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from burrowd.daemon.errors import InvalidRequirement
from burrowd.daemon.inputs.model import Origin, RequirementEntry

__all__ = ["project_name", "read_pyproject"]

_TOML_LINE_RE = re.compile(r"at line (\d+)")
_HEADER_RE = re.compile(r"^[ \t]*\[", re.MULTILINE)


def read_pyproject(
    path: Path,
    *,
    extras: Sequence[str] = (),
    all_extras: bool = False,
    groups: Sequence[str] = (),
    include_project: bool = True,
) -> list[RequirementEntry]:
    """Return the requirements of a ``pyproject.toml``.

    The list holds ``[project] dependencies`` (when ``include_project``), then the
    selected ``[project.optional-dependencies]`` (``extras``, or every one with
    ``all_extras``), then the requested ``[dependency-groups]`` with their
    ``{include-group = ...}`` entries expanded. Extra and group names match after PEP 685 /
    PEP 503 normalization. An extra that lists the project itself (``all = ["me[a,b]"]``)
    is expanded in place, its markers joined with ``and``.

    Raises ``InvalidRequirement`` naming the file and line for a TOML syntax error, a
    malformed table, a bad requirement string, an unknown extra or group, a group cycle or
    ``dynamic`` dependencies.
    """
    display = str(path)
    path = Path(os.path.abspath(path))
    text, data = _load(path)
    reader = _Reader(path, display, text)

    project = data.get("project")
    if project is not None and not isinstance(project, dict):
        raise reader.error("[project] must be a table", line=reader.key_line(None, "project"))
    wants_extras = bool(extras) or all_extras

    entries: list[RequirementEntry] = []
    if include_project:
        if project is None:
            if wants_extras:
                raise reader.error(
                    "extras were asked for but the file has no [project] table to hold "
                    "[project.optional-dependencies]"
                )
            if not groups:
                raise reader.error(
                    "no [project] table, so there are no dependencies to read; add a "
                    "[project] table with `dependencies = [...]`, or select a "
                    "[dependency-groups] group with --group"
                )
        else:
            entries.extend(reader.project_dependencies(project))
            if wants_extras:
                entries.extend(reader.extras(project, extras, all_extras=all_extras))
    elif wants_extras:
        raise reader.error(
            "extras belong to the project and cannot be selected without it; "
            "drop the extras or include the project"
        )
    if groups:
        entries.extend(reader.groups(data, groups))
    return entries


def project_name(path: Path) -> str | None:
    """Return the distribution name declared by a project directory, or ``None``.

    ``path`` is the project directory (a ``pyproject.toml`` file is accepted too). The
    name comes from ``[project] name`` in ``pyproject.toml``, else from ``[metadata] name``
    in ``setup.cfg``. A ``pyproject.toml`` that is not valid TOML raises
    ``InvalidRequirement``; an unreadable ``setup.cfg`` counts as naming nothing.
    """
    directory = path.parent if path.name == "pyproject.toml" and path.is_file() else path
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        _, data = _load(pyproject)
        project = data.get("project")
        if isinstance(project, dict):
            name = project.get("name")
            if isinstance(name, str) and name.strip():
                return name.strip()
    setup_cfg = directory / "setup.cfg"
    if setup_cfg.is_file():
        parser = configparser.RawConfigParser()
        try:
            parser.read(setup_cfg, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError, OSError):
            return None
        name = parser.get("metadata", "name", fallback="").strip()
        # ``attr:``/``file:`` directives would need setuptools to evaluate them.
        if name and ":" not in name:
            return name
    return None


def _load(path: Path) -> tuple[str, dict[str, Any]]:
    """Read and parse a TOML file, turning every failure into ``InvalidRequirement``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InvalidRequirement(
            "no such file; check the path to pyproject.toml", file=path
        ) from None
    except OSError as exc:
        raise InvalidRequirement(
            f"cannot read the file: {exc.strerror or exc}", file=path
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InvalidRequirement(
            "TOML files must be UTF-8; re-save the file as UTF-8", file=path, line=line
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_LINE_RE.search(message)
        if found is not None:
            line = int(found.group(1))
        else:
            # "at end of document": the last line is where the parser gave up.
            line = text.count("\n") + (0 if text.endswith("\n") else 1)
        raise InvalidRequirement(f"invalid TOML: {message}", file=path, line=max(line, 1)) from None
    return text, data


class _Reader:
    """The parsed file plus its raw text, to build entries with their line numbers."""

    def __init__(self, path: Path, display: str, text: str) -> None:
        self.path = path
        self.display = display
        self.text = text

    # --- errors and positions -------------------------------------------------------------

    def error(
        self, message: str, *, line: int | None = None, text: str | None = None
    ) -> InvalidRequirement:
        """Build an ``InvalidRequirement`` about this file."""
        return InvalidRequirement(message, file=self.path, line=line, text=text)

    def line_of(self, offset: int) -> int:
        """Return the 1-based line holding ``offset``."""
        return self.text.count("\n", 0, offset) + 1

    def _header(self, table: Sequence[str]) -> re.Match[str] | None:
        """Find the ``[a.b]`` header line of a table."""
        parts = r"[ \t]*\.[ \t]*".join(_key_pattern(part) for part in table)
        return re.search(rf"^[ \t]*\[[ \t]*{parts}[ \t]*\][ \t]*(?:#.*)?$", self.text, re.MULTILINE)

    def _section(self, table: Sequence[str] | None) -> tuple[int, int] | None:
        """Return the text span of the ``[a.b]`` table, the top level for ``None``."""
        if table is None:
            first = _HEADER_RE.search(self.text)
            return 0, first.start() if first is not None else len(self.text)
        header = self._header(table)
        if header is None:
            return None
        following = _HEADER_RE.search(self.text, header.end())
        return header.end(), following.start() if following is not None else len(self.text)

    def key_offset(self, table: Sequence[str] | None, key: str) -> tuple[int, int] | None:
        """Return where ``key = ...`` starts in ``[table]`` and where that table ends."""
        section = self._section(table)
        if section is None:
            return None
        start, end = section
        found = re.compile(rf"^[ \t]*{_key_pattern(key)}[ \t]*=", re.MULTILINE).search(
            self.text, start, end
        )
        if found is None:
            return start, end
        return found.start(), end

    def key_line(self, table: Sequence[str] | None, key: str) -> int | None:
        """Return the line of ``key = ...`` in ``[table]``, or of the table header."""
        located = self.key_offset(table, key)
        return None if located is None else self.line_of(located[0])

    def table_line(self, table: Sequence[str]) -> int | None:
        """Return the line of the ``[a.b]`` header, or of ``b = ...`` inside ``[a]``."""
        header = self._header(table)
        if header is not None:
            return self.line_of(header.start())
        parent = tuple(table[:-1]) or None
        return self.key_line(parent, table[-1])

    # --- requirement strings -------------------------------------------------------------

    def entries(
        self,
        values: object,
        *,
        where: str,
        table: Sequence[str],
        key: str,
    ) -> list[RequirementEntry]:
        """Parse an array of PEP 508 strings found at ``[table] key``."""
        located = self.key_offset(table, key)
        anchor_line = None if located is None else self.line_of(located[0])
        if not isinstance(values, list):
            raise self.error(f"{where} must be an array of requirement strings", line=anchor_line)
        cursor, end = located if located is not None else (0, len(self.text))
        entries: list[RequirementEntry] = []
        for value in values:
            if not isinstance(value, str):
                raise self.error(
                    f"{where} must hold only requirement strings, not {value!r}", line=anchor_line
                )
            line, cursor = self._find_string(value, cursor, end)
            entries.append(self.entry(value, line=line, where=where))
        return entries

    def _find_string(self, value: str, start: int, end: int) -> tuple[int | None, int]:
        """Return the line of the string literal ``value`` after ``start``, and the new cursor."""
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        candidates = [f'"{escaped}"']
        if "'" not in value:
            candidates.append(f"'{value}'")
        best = -1
        best_end = start
        for literal in candidates:
            found = self.text.find(literal, start, end)
            if found != -1 and (best == -1 or found < best):
                best, best_end = found, found + len(literal)
        if best == -1:
            return None, start
        return self.line_of(best), best_end

    def entry(self, value: str, *, line: int | None, where: str) -> RequirementEntry:
        """Parse one PEP 508 string into an entry."""
        try:
            requirement = Requirement(value)
        except PackagingInvalidRequirement as exc:
            raise self.error(
                f"invalid requirement in {where}: {exc}", line=line, text=value
            ) from None
        local: Path | None = None
        if requirement.url is not None:
            local = self._local_path(requirement.url, line=line, text=value)
        origin = Origin(str(self.path), line, self.display)
        return RequirementEntry(requirement=requirement, origin=origin, path=local)

    def _local_path(self, url: str, *, line: int | None, text: str) -> Path | None:
        """Return the path of a ``file:`` URL; reject URLs that are not URLs."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme == "file":
            if parts.netloc not in ("", "localhost"):
                raise self.error(
                    f"file URL {url!r} names the host {parts.netloc!r}; only local "
                    "file:///absolute/path URLs are supported",
                    line=line,
                    text=text,
                )
            local = unquote(parts.path)
            if not os.path.isabs(local):
                raise self.error(
                    f"file URL {url!r} is relative; pyproject.toml requirements need an "
                    "absolute file:///path URL",
                    line=line,
                    text=text,
                )
            return Path(os.path.normpath(local))
        if not scheme or len(scheme) == 1:
            # One letter is a Windows drive, not a scheme: still a bare path.
            raise self.error(
                f"{url!r} is a path, not a URL; PEP 508 direct references in "
                "pyproject.toml need a URL such as file:///absolute/path",
                line=line,
                text=text,
            )
        return None

    # --- tables ---------------------------------------------------------------------------

    def project_dependencies(self, project: dict[str, Any]) -> list[RequirementEntry]:
        """Return ``[project] dependencies``; reject dynamic ones."""
        self._reject_dynamic(project, "dependencies")
        if "dependencies" not in project:
            return []
        return self.entries(
            project["dependencies"],
            where="[project] dependencies",
            table=("project",),
            key="dependencies",
        )

    def _reject_dynamic(self, project: dict[str, Any], field: str) -> None:
        dynamic = project.get("dynamic", [])
        if isinstance(dynamic, list) and field in dynamic:
            raise self.error(
                f"[project] {field} are listed in `dynamic`, so only a build of the project "
                "could tell them, and burrowd does not run builds yet; list them statically "
                f"in [project] {field} and remove {field!r} from `dynamic`",
                line=self.key_line(("project",), "dynamic"),
            )

    def extras(
        self, project: dict[str, Any], wanted: Sequence[str], *, all_extras: bool
    ) -> list[RequirementEntry]:
        """Return the requirements of the selected extras, self-references expanded."""
        self._reject_dynamic(project, "optional-dependencies")
        table = project.get("optional-dependencies", {})
        table_name = ("project", "optional-dependencies")
        if not isinstance(table, dict):
            raise self.error(
                "[project.optional-dependencies] must be a table of arrays",
                line=self.table_line(table_name),
            )
        by_name: dict[str, list[RequirementEntry]] = {}
        written: dict[str, str] = {}
        for key, values in table.items():
            normalized = canonicalize_name(key)
            parsed = self.entries(
                values,
                where=f"[project.optional-dependencies] {key}",
                table=table_name,
                key=key,
            )
            by_name.setdefault(normalized, []).extend(parsed)
            written.setdefault(normalized, key)
        if all_extras:
            selected = list(by_name)
        else:
            selected = []
            for extra in wanted:
                normalized = canonicalize_name(extra)
                if normalized not in by_name:
                    available = ", ".join(written.values()) or "none"
                    raise self.error(
                        f"unknown extra {extra!r}; [project.optional-dependencies] "
                        f"defines: {available}",
                        line=self.table_line(table_name),
                    )
                if normalized not in selected:
                    selected.append(normalized)
        name = project.get("name")
        own = canonicalize_name(name) if isinstance(name, str) else None
        result: list[RequirementEntry] = []
        done: set[str] = set()
        for extra in selected:
            self._expand_extra(
                extra, by_name=by_name, own=own, marker=None, stack=(), done=done, result=result
            )
        return result

    def _expand_extra(
        self,
        extra: str,
        *,
        by_name: dict[str, list[RequirementEntry]],
        own: str | None,
        marker: Marker | None,
        stack: tuple[str, ...],
        done: set[str],
        result: list[RequirementEntry],
    ) -> None:
        """Append the entries of one extra, following ``project[other]`` self-references.

        An extra reached again through its own self-references adds nothing new (its
        entries are already being added under a weaker marker), so the loop stops there.
        """
        key = f"{extra};{marker}"
        if key in done or extra in stack:
            return
        done.add(key)
        for entry in by_name.get(extra, []):
            requirement = entry.requirement
            if (
                own is not None
                and canonicalize_name(requirement.name) == own
                and requirement.url is None
                and not requirement.specifier
            ):
                joined = _join_markers(marker, requirement.marker)
                for nested in sorted(canonicalize_name(e) for e in requirement.extras):
                    if nested not in by_name:
                        raise self.error(
                            f"{requirement} refers to the extra {nested!r} of this project, "
                            "which [project.optional-dependencies] does not define",
                            line=entry.origin.line,
                            text=str(requirement),
                        )
                    self._expand_extra(
                        nested,
                        by_name=by_name,
                        own=own,
                        marker=joined,
                        stack=(*stack, extra),
                        done=done,
                        result=result,
                    )
                continue
            if marker is not None:
                requirement = _with_marker(requirement, _join_markers(marker, requirement.marker))
                result.append(
                    RequirementEntry(requirement=requirement, origin=entry.origin, path=entry.path)
                )
            else:
                result.append(entry)

    def groups(self, data: dict[str, Any], wanted: Sequence[str]) -> list[RequirementEntry]:
        """Return the requirements of the requested PEP 735 groups, includes expanded."""
        table = data.get("dependency-groups")
        if table is None:
            raise self.error(
                f"dependency group {wanted[0]!r} was asked for but the file has no "
                "[dependency-groups] table"
            )
        if not isinstance(table, dict):
            raise self.error(
                "[dependency-groups] must be a table of arrays",
                line=self.table_line(("dependency-groups",)),
            )
        by_name: dict[str, str] = {}
        for key in table:
            normalized = canonicalize_name(key)
            if normalized in by_name:
                raise self.error(
                    f"dependency groups {by_name[normalized]!r} and {key!r} have the same "
                    "normalized name; rename or merge one of them",
                    line=self.key_line(("dependency-groups",), key),
                )
            by_name[normalized] = key

        def lookup(name: str, *, line: int | None) -> str:
            key = by_name.get(canonicalize_name(name))
            if key is None:
                available = ", ".join(table) or "none"
                raise self.error(
                    f"unknown dependency group {name!r}; [dependency-groups] defines: {available}",
                    line=line,
                )
            return key

        result: list[RequirementEntry] = []
        expanded: set[str] = set()

        def expand(key: str, stack: list[str]) -> None:
            if key in stack:
                loop = " -> ".join([*stack[stack.index(key) :], key])
                raise self.error(
                    f"dependency group {key!r} includes itself ({loop}); remove one of "
                    "the include-group entries",
                    line=self.key_line(("dependency-groups",), key),
                )
            if key in expanded:
                return
            where = f"[dependency-groups] {key}"
            located = self.key_offset(("dependency-groups",), key)
            key_line = None if located is None else self.line_of(located[0])
            items = table[key]
            if not isinstance(items, list):
                raise self.error(
                    f"{where} must be an array of requirement strings and "
                    "{include-group = ...} tables",
                    line=key_line,
                )
            cursor, end = located if located is not None else (0, len(self.text))
            for item in items:
                if isinstance(item, str):
                    line, cursor = self._find_string(item, cursor, end)
                    result.append(self.entry(item, line=line, where=where))
                elif (
                    isinstance(item, dict)
                    and list(item) == ["include-group"]
                    and isinstance(item["include-group"], str)
                ):
                    target = lookup(item["include-group"], line=key_line)
                    expand(target, [*stack, key])
                else:
                    raise self.error(
                        f"{where} holds {item!r}; an entry must be a requirement string or "
                        '{include-group = "name"}',
                        line=key_line,
                    )
            expanded.add(key)

        for name in wanted:
            expand(lookup(name, line=None), [])
        return result


def _key_pattern(key: str) -> str:
    """Return a regex matching a TOML key written bare, in double or in single quotes."""
    escaped = re.escape(key)
    return rf"(?:{escaped}|\"{escaped}\"|'{escaped}')"


def _join_markers(outer: Marker | None, inner: Marker | None) -> Marker | None:
    """Return ``(outer) and (inner)``, either side possibly absent."""
    if outer is None:
        return inner
    if inner is None:
        return outer
    try:
        return Marker(f"({outer}) and ({inner})")
    except InvalidMarker:  # pragma: no cover - both sides were valid markers already
        return outer


def _with_marker(requirement: Requirement, marker: Marker | None) -> Requirement:
    """Return a copy of ``requirement`` with its marker replaced."""
    copy = Requirement(str(requirement))
    copy.marker = marker
    return copy
