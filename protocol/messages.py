"""Params and result types of every method: the one contract of the wire.

One ``<Method>Params``/``<Method>Result`` pair per method, all frozen, keyword-only
``msgspec.Struct``s. Fields added later get defaults so old and new peers can talk; unknown
fields are ignored on the wire, never forbidden.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

__all__ = [
    "CancelParams",
    "Empty",
    "InitializeParams",
    "InitializeResult",
    "PrereleaseName",
    "ProgressParams",
    "RequestInfo",
    "ResolutionName",
    "ShutdownParams",
    "ShutdownResult",
    "StatusParams",
    "StatusResult",
]


#: Pre-release modes, as uv names them.
PrereleaseName: TypeAlias = Literal[
    "disallow", "allow", "if-necessary", "explicit", "if-necessary-or-explicit"
]
#: Resolution strategies, as uv names them.
ResolutionName: TypeAlias = Literal["highest", "lowest", "lowest-direct"]


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every params and result struct."""


class Empty(Message, frozen=True, kw_only=True):
    """Params of a method that takes none."""


# -- lifecycle ---------------------------------------------------------------------------


class InitializeParams(Message, frozen=True, kw_only=True):
    """What the client tells the daemon about itself first."""

    protocol_version: int
    client_version: str
    client_build: str
    client_name: str = "burrow"


class InitializeResult(Message, frozen=True, kw_only=True):
    """What the daemon answers; the client restarts a daemon whose build differs."""

    protocol_version: int
    server_version: str
    server_build: str
    pid: int


class StatusParams(Message, frozen=True, kw_only=True):
    """Params of ``status``."""


class RequestInfo(Message, frozen=True, kw_only=True):
    """One request being served."""

    id: int | str | None
    method: str
    elapsed: float
    phase: str = ""


class StatusResult(Message, frozen=True, kw_only=True):
    """A snapshot of the daemon."""

    pid: int
    version: str
    build: str
    started_at: float
    uptime: float
    socket: str
    cache_dir: str
    log_file: str
    connections: int
    requests: list[RequestInfo]
    idle_timeout: float
    idle_for: float
    #: What the daemon keeps warm, and what it cost so far.
    memory_pages: int = 0
    memory_metadata: int = 0
    http_requests: int = 0
    downloads: int = 0


class ShutdownParams(Message, frozen=True, kw_only=True):
    """Params of ``shutdown``."""


class ShutdownResult(Message, frozen=True, kw_only=True):
    """The daemon has stopped listening; it exits once its requests are done."""

    pid: int


# -- notifications ------------------------------------------------------------------------


class ProgressParams(Message, frozen=True, kw_only=True):
    """``$/progress``: how far a long request has come (token = the request id)."""

    token: int | str
    phase: str
    current: int = 0
    total: int | None = None
    bytes: int = 0
    message: str = ""


class CancelParams(Message, frozen=True, kw_only=True):
    """``$/cancelRequest``: cancel the request with this id, and only that one."""

    id: int | str


# -- options shared by the package methods --------------------------------------------------


class ClientEnv(Message, frozen=True, kw_only=True):
    """Where the client runs: relative paths and the default interpreter depend on it."""

    cwd: str
    virtual_env: str | None = None
    path: str = ""
    #: The client's environment variables, for ``${NAME}`` in requirements files.
    variables: dict[str, str] = {}


class IndexOptions(Message, frozen=True, kw_only=True):
    """Where to find distributions and how fresh the cached pages must be."""

    index_url: str | None = None
    extra_index_urls: list[str] = []
    find_links: list[str] = []
    no_index: bool = False
    offline: bool = False
    refresh: bool = False
    refresh_packages: list[str] = []


class PythonOptions(Message, frozen=True, kw_only=True):
    """The target interpreter, and overrides of its version and platform."""

    python: str | None = None
    python_version: str | None = None
    python_platform: str | None = None


# -- cache ----------------------------------------------------------------------------------


class CacheDirParams(Message, frozen=True, kw_only=True):
    """Params of ``cache.dir``."""


class CacheDirResult(Message, frozen=True, kw_only=True):
    """The cache root of the daemon."""

    path: str


class CacheStatsParams(Message, frozen=True, kw_only=True):
    """Params of ``cache.stats``."""


class BucketStats(Message, frozen=True, kw_only=True):
    """Size and entry count of one cache bucket."""

    bucket: str
    entries: int
    size: int


class CacheStatsResult(Message, frozen=True, kw_only=True):
    """What the cache holds, per bucket, and what the daemon keeps in memory."""

    path: str
    buckets: list[BucketStats]
    size: int
    memory_pages: int = 0
    memory_metadata: int = 0


class CacheCleanParams(Message, frozen=True, kw_only=True):
    """Params of ``cache.clean``: the packages to forget, or everything when empty."""

    packages: list[str] = []


class CacheCleanResult(Message, frozen=True, kw_only=True):
    """What ``cache.clean`` removed."""

    path: str
    packages: list[str]
    entries: int
    size: int


class CachePruneParams(Message, frozen=True, kw_only=True):
    """Params of ``cache.prune``."""


class CachePruneResult(Message, frozen=True, kw_only=True):
    """What ``cache.prune`` removed, per kind (``temporary``, ``archives``, ``buckets``...)."""

    path: str
    removed: dict[str, int]
    size: int


# -- prefetch -------------------------------------------------------------------------------


class PrefetchParams(Message, frozen=True, kw_only=True):
    """Download and unpack pinned wheels into the cache (``NAME==VERSION``, wheel paths/URLs)."""

    env: ClientEnv
    requirements: list[str] = []
    requirement_files: list[str] = []
    index: IndexOptions = IndexOptions()
    python: PythonOptions = PythonOptions()


class PrefetchedWheel(Message, frozen=True, kw_only=True):
    """One wheel that is now unpacked in the cache."""

    name: str
    version: str
    filename: str
    archive: str
    size: int
    #: False when this request downloaded or unpacked it, True when it was already there.
    cached: bool
    yanked: str | None = None


class PrefetchResult(Message, frozen=True, kw_only=True):
    """The wheels prefetched, for which target, and what it cost."""

    target: str
    wheels: list[PrefetchedWheel]
    downloaded: int
    bytes: int
    elapsed: float
    warnings: list[str] = []


# -- resolve --------------------------------------------------------------------------------


class ResolveParams(Message, frozen=True, kw_only=True):
    """Resolve requirements to pins (``burrow compile``), optionally writing a file."""

    env: ClientEnv
    #: Requirements given directly (``foo>=1``), as on a command line.
    requirements: list[str] = []
    #: ``requirements.in``/``.txt`` files and ``pyproject.toml`` files; ``-`` is ``stdin``.
    requirement_files: list[str] = []
    #: The text the client read from standard input, for a ``-`` among the files.
    stdin: str | None = None
    constraint_files: list[str] = []
    override_files: list[str] = []
    extras: list[str] = []
    all_extras: bool = False
    groups: list[str] = []
    index: IndexOptions = IndexOptions()
    python: PythonOptions = PythonOptions()
    #: ``None``: "allow" if a requirements file says ``--pre``, else uv's default.
    prerelease: PrereleaseName | None = None
    resolution: ResolutionName = "highest"
    upgrade: bool = False
    upgrade_packages: list[str] = []
    #: RFC 3339 date or date-time: ignore files uploaded after it.
    exclude_newer: str | None = None
    no_deps: bool = False
    #: pip's format control: project names, ``:all:`` or ``:none:`` (also read from files).
    only_binary: list[str] = []
    no_binary: list[str] = []
    #: Write the result here (atomically); its pins are preferences unless upgrading.
    output_file: str | None = None
    dry_run: bool = False
    generate_hashes: bool = False
    annotate: bool = True
    header: bool = True
    emit_index_url: bool = False
    #: The command line shown in the output's header.
    command: str = "burrow compile"


class Via(Message, frozen=True, kw_only=True):
    """Why a package is pinned: a requirement file line, or a package that needs it."""

    #: "requirement", "constraint", "override" (``name`` is a file or "command line"),
    #: "project" (``name`` is "NAME (pyproject.toml)") or "package" (one that needs it).
    kind: str
    name: str
    line: int | None = None


class ResolvedPackage(Message, frozen=True, kw_only=True):
    """One pin of a resolution."""

    name: str
    version: str
    filename: str
    url: str
    index: str
    extras: list[str] = []
    via: list[Via] = []
    marker: str | None = None
    hashes: list[str] = []
    direct: bool = False
    #: Required with ``-e`` (a local project directory).
    editable: bool = False
    yanked: bool = False


class ResolveResult(Message, frozen=True, kw_only=True):
    """The pins, the pip-compile text, and what the resolution cost."""

    target: str
    packages: list[ResolvedPackage]
    output: str
    output_file: str | None = None
    wrote: bool = False
    elapsed: float = 0.0
    warnings: list[str] = []
    #: Project pages served from memory, disk and network during the request.
    pages: dict[str, int] = {}
