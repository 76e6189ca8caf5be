"""Plain data read from requirements files and ``pyproject.toml``.

These are the daemon's internal values (not wire types): the readers in this package fill
them, the resolver and the ``compile`` output consume them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from msgspec import Struct, field
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

__all__ = [
    "IndexOptions",
    "Origin",
    "ParsedRequirements",
    "RequirementEntry",
    "apply_binary_option",
    "fold_format_control",
]


class Origin(Struct, frozen=True):
    """Where a requirement came from, for ``# via -r file (line N)`` annotations and errors.

    ``file`` is the absolute path of the file, or ``None`` for the command line or an RPC
    request. ``display`` is the same path as the user wrote it (``requirements.in``,
    ``requirements/base.in``); it does not take part in equality (nor does ``project``), so
    two origins of the same line compare equal however the file was named.
    """

    file: str | None
    line: int | None
    display: str | None = None
    #: The project a ``pyproject.toml`` declares: pip-compile writes ``# via NAME (FILE)``.
    project: str | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Origin):
            return NotImplemented
        return self.file == other.file and self.line == other.line

    def __hash__(self) -> int:
        return hash((self.file, self.line))

    def __str__(self) -> str:
        """Return ``requirements.in:3`` style text, or ``command line``."""
        if self.file is None:
            return "command line"
        shown = self.display if self.display is not None else self.file
        return shown if self.line is None else f"{shown}:{self.line}"


class RequirementEntry(Struct, frozen=True):
    """One requirement or constraint, with the per-line options that travel with it.

    ``requirement.url`` holds the normalized URL of a direct reference: a ``file://`` URL
    for a local path (then ``path`` is that absolute path too), the ``https://`` or
    ``git+...`` URL otherwise. ``hashes`` are ``"sha256:<hex>"`` strings with a lowercase
    algorithm. ``config_settings`` keeps ``--config-settings KEY=VALUE`` pairs in the
    order given (a key may repeat, as pip allows).
    """

    requirement: Requirement
    origin: Origin
    hashes: tuple[str, ...] = ()
    editable: bool = False
    path: Path | None = None
    config_settings: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> NormalizedName:
        """Return the canonical (PEP 503) project name."""
        return canonicalize_name(self.requirement.name)


def apply_binary_option(value: str, target: set[str], other: set[str]) -> None:
    """Apply one ``--no-binary``/``--only-binary`` value the way pip's FormatControl does.

    ``value`` is a comma-separated list of project names, ``:all:`` or ``:none:``.
    ``target`` is the set of the option given, ``other`` the opposite option's set: a
    project named in one option leaves the other, ``:all:`` empties both and ``:none:``
    empties the target.
    """
    names = value.split(",")
    while ":all:" in names:
        other.clear()
        target.clear()
        target.add(":all:")
        del names[: names.index(":all:") + 1]
        # Without a later ``:none:`` the names after ``:all:`` add nothing: it covers them.
        if ":none:" not in names:
            return
    for name in names:
        if name == ":none:":
            target.clear()
            continue
        if not name.strip():
            continue
        canonical = canonicalize_name(name.strip())
        other.discard(canonical)
        target.add(canonical)


class IndexOptions(Struct):
    """Index and format options collected from requirements files (and the command line).

    Nested files share one instance and update it in reading order, as pip's finder does.
    """

    index_url: str | None = None
    extra_index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    no_index: bool = False
    pre: bool = False
    trusted_hosts: list[str] = field(default_factory=list)
    only_binary: set[str] = field(default_factory=set)
    no_binary: set[str] = field(default_factory=set)
    prefer_binary: bool = False
    require_hashes: bool = False
    use_features: list[str] = field(default_factory=list)

    def merge(self, other: IndexOptions) -> None:
        """Fold ``other`` (read later) into these options.

        A later ``--index-url`` replaces the earlier one; lists are extended without
        duplicates; flags are switched on by either side; ``--no-binary`` and then
        ``--only-binary`` names of ``other`` are applied with pip's mutual-exclusion rules.
        """
        if other.index_url is not None:
            self.index_url = other.index_url
        _extend_unique(self.extra_index_urls, other.extra_index_urls)
        _extend_unique(self.find_links, other.find_links)
        _extend_unique(self.trusted_hosts, other.trusted_hosts)
        _extend_unique(self.use_features, other.use_features)
        self.no_index = self.no_index or other.no_index
        self.pre = self.pre or other.pre
        self.prefer_binary = self.prefer_binary or other.prefer_binary
        self.require_hashes = self.require_hashes or other.require_hashes
        fold_format_control(
            self.only_binary, self.no_binary, only=other.only_binary, no=other.no_binary
        )


def fold_format_control(
    only_binary: set[str], no_binary: set[str], *, only: Iterable[str], no: Iterable[str]
) -> None:
    """Apply ``--only-binary`` values ``only`` and ``--no-binary`` values ``no`` in place.

    Their order between the two options is lost once collected, so the blanket values
    (``:all:``, ``:none:``) of either go first: a project named beside them, in either
    option, keeps its own setting, as it did when the options were read line by line.
    """
    given = [(v, no_binary, only_binary) for v in no]
    given += [(v, only_binary, no_binary) for v in only]
    given.sort(key=lambda item: ":" not in item[0])
    for value, target, other in given:
        apply_binary_option(value, target, other)


class ParsedRequirements(Struct):
    """Everything read from one requirements file and the files it includes."""

    requirements: list[RequirementEntry] = field(default_factory=list)
    constraints: list[RequirementEntry] = field(default_factory=list)
    options: IndexOptions = field(default_factory=IndexOptions)
    files: list[Path] = field(default_factory=list)


def _extend_unique(target: list[str], values: list[str]) -> None:
    """Append the values not already in ``target``, keeping their order."""
    for value in values:
        if value not in target:
            target.append(value)
