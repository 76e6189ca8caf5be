"""Params and result types of every method: the one contract of the wire.

One ``<Method>Params``/``<Method>Result`` pair per method, all frozen, keyword-only
``msgspec.Struct``s. Fields added later get defaults so old and new peers can talk; unknown
fields are ignored on the wire, never forbidden.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

__all__ = [
    "BuildOptions",
    "CancelParams",
    "Empty",
    "EnvironmentChange",
    "EnvironmentOptions",
    "ErrorInfo",
    "InitializeParams",
    "InitializeResult",
    "InstallOptions",
    "InstallParams",
    "InstallResult",
    "InstalledPackage",
    "JobInfo",
    "LinkModeName",
    "ListParams",
    "ListResult",
    "PackageChange",
    "PinChange",
    "PrereleaseName",
    "ProgressParams",
    "QueueInfo",
    "RequestInfo",
    "Requirements",
    "ResolutionName",
    "ShutdownParams",
    "ShutdownResult",
    "StatusParams",
    "StatusResult",
    "SyncParams",
    "SyncResult",
    "UninstallParams",
    "UninstallResult",
    "VenvParams",
    "VenvResult",
    "WatchAddParams",
    "WatchAddResult",
    "WatchEvent",
    "WatchEventName",
    "WatchEventsParams",
    "WatchEventsResult",
    "WatchInfo",
    "WatchKindName",
    "WatchListParams",
    "WatchListResult",
    "WatchRemoveParams",
    "WatchRemoveResult",
    "WatchStateName",
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
    #: Who sent it (``pid N uid M``): request ids are only unique per connection.
    client: str = ""


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
    #: Build backend runs (metadata or wheel) and git fetches so far.
    builds: int = 0
    git_fetches: int = 0
    #: Shared work in flight (downloads, unpacks, builds, metadata), with who waits on it.
    jobs: list[JobInfo] = []
    #: Each bounded kind of work: how much runs and how much waits for a turn.
    queues: list[QueueInfo] = []
    #: Watched requirement inputs and what warming them did last.
    watches: list[WatchInfo] = []
    #: The last failures of requests and warming jobs, newest last.
    errors: list[ErrorInfo] = []
    #: Bytes the cache holds, measured in the background (``None`` until first measured).
    cache_size: int | None = None
    #: Seconds since ``cache_size`` was measured.
    cache_size_age: float | None = None
    #: Foreground requests doing package work now (warming yields to them).
    foreground: int = 0
    #: Clients subscribed to ``watch.event`` notifications.
    subscribers: int = 0


class JobInfo(Message, frozen=True, kw_only=True):
    """One piece of shared work in flight: done once, whoever asks for it."""

    #: ``page``, ``metadata``, ``wheel``, ``digest``, ``build``, ``build-env``, ``git``...
    kind: str
    #: What it works on (a project, a file name, a redacted URL).
    what: str
    elapsed: float
    #: Who waits for it: ``request 7 (sync, pid 4242 uid 1000)`` or ``watch 2``.
    waiters: list[str] = []
    #: Started for a warming job and not yet wanted by a request.
    background: bool = False


class QueueInfo(Message, frozen=True, kw_only=True):
    """One bounded kind of work (``network``, ``unpack``, ``build``)."""

    name: str
    limit: int
    running: int
    #: Waiting for a turn: foreground requests first, then warming jobs.
    waiting: int = 0
    waiting_background: int = 0


class ErrorInfo(Message, frozen=True, kw_only=True):
    """A failure the daemon answered or met while warming."""

    #: Seconds since the epoch.
    at: float
    #: ``request 7 (resolve, pid 4242 uid 1000)`` or ``watch 2 (/path/requirements.in)``.
    source: str
    code: int
    #: The first line of the error message.
    message: str


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


class BuildOptions(Message, frozen=True, kw_only=True):
    """Whether sources may be built, and how (``--no-build``, ``--no-build-isolation``)."""

    no_build: bool = False
    #: Build with the target environment's own packages instead of an isolated environment.
    no_build_isolation: bool = False


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
    build: BuildOptions = BuildOptions()


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


class Requirements(Message, frozen=True, kw_only=True):
    """What to resolve and how: the fields ``resolve`` and ``install`` share."""

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
    build: BuildOptions = BuildOptions()
    #: ``None``: "allow" if a requirements file says ``--pre``, else uv's default.
    prerelease: PrereleaseName | None = None
    resolution: ResolutionName = "highest"
    #: Without these, existing pins (an output file, installed versions) are kept.
    upgrade: bool = False
    upgrade_packages: list[str] = []
    #: RFC 3339 date or date-time: ignore files uploaded after it.
    exclude_newer: str | None = None
    no_deps: bool = False
    #: pip's format control: project names, ``:all:`` or ``:none:`` (also read from files).
    only_binary: list[str] = []
    no_binary: list[str] = []


class ResolveParams(Requirements, frozen=True, kw_only=True):
    """Resolve requirements to pins (``burrow compile``), optionally writing a file."""

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


# -- environments: sync, install, uninstall, list, venv ------------------------------------

#: How files get from the unpacked cache into an environment.
LinkModeName: TypeAlias = Literal["hardlink", "copy", "symlink"]


class EnvironmentOptions(Message, frozen=True, kw_only=True):
    """Which environment to change, and the consent a non-virtual one needs.

    The interpreter itself is ``PythonOptions.python`` (a path or a version); without it the
    daemon takes ``VIRTUAL_ENV``, then a ``.venv`` in the working directory or a parent.
    ``system`` skips virtual environments and allows the first ``python3`` on ``PATH``;
    a PEP 668 externally managed one also needs ``break_system_packages``.
    """

    system: bool = False
    break_system_packages: bool = False


class InstallOptions(Message, frozen=True, kw_only=True):
    """How ``sync`` and ``install`` change an environment."""

    link_mode: LinkModeName = "hardlink"
    #: Reinstall every package of the request, or only these (names).
    reinstall: bool = False
    reinstall_packages: list[str] = []
    compile_bytecode: bool = False
    dry_run: bool = False
    #: Every requirement must carry ``--hash``; implied when any of them does.
    require_hashes: bool = False
    #: After the change, report installed packages whose requirements are not met.
    strict: bool = False


class PackageChange(Message, frozen=True, kw_only=True):
    """One distribution installed into or removed from an environment."""

    name: str
    version: str
    #: The version it replaced (a reinstall or an upgrade), for an installed one.
    previous: str | None = None
    #: Why it changes: "missing", "version", "source", "reinstall", "extraneous", "requested".
    reason: str = ""
    #: ``url``/``path`` of a direct reference (as in ``direct_url.json``), else empty.
    url: str = ""
    #: False when this request downloaded or unpacked the wheel.
    cached: bool = True
    editable: bool = False


class EnvironmentChange(Message, frozen=True, kw_only=True):
    """What a request did to one environment (or would do, with ``dry_run``)."""

    #: The environment's prefix and the interpreter that runs it.
    environment: str
    python: str
    target: str
    installed: list[PackageChange] = []
    removed: list[PackageChange] = []
    #: Requirements already satisfied by what is installed.
    unchanged: int = 0
    dry_run: bool = False
    downloaded: int = 0
    bytes: int = 0
    elapsed: float = 0.0
    #: Seconds spent per phase ("resolve", "prepare", "uninstall", "install", "compile").
    timings: dict[str, float] = {}
    warnings: list[str] = []
    #: With ``strict``: requirements of installed packages that are not met.
    problems: list[str] = []


class SyncParams(Message, frozen=True, kw_only=True):
    """Make an environment hold exactly the pins of requirements files (``uv pip sync``)."""

    env: ClientEnv
    requirement_files: list[str] = []
    #: Requirements given directly, as on a command line (pins, URLs, paths).
    requirements: list[str] = []
    stdin: str | None = None
    index: IndexOptions = IndexOptions()
    python: PythonOptions = PythonOptions()
    environment: EnvironmentOptions = EnvironmentOptions()
    options: InstallOptions = InstallOptions()
    build: BuildOptions = BuildOptions()
    #: Accept requirement files without any requirement (and remove everything).
    allow_empty: bool = False


class SyncResult(EnvironmentChange, frozen=True, kw_only=True):
    """The result of ``sync``."""


class InstallParams(Requirements, frozen=True, kw_only=True):
    """Resolve requirements and add what they need to an environment, removing nothing."""

    environment: EnvironmentOptions = EnvironmentOptions()
    options: InstallOptions = InstallOptions()


class InstallResult(EnvironmentChange, frozen=True, kw_only=True):
    """The result of ``install``."""

    #: How many packages the resolution holds.
    resolved: int = 0


class UninstallParams(Message, frozen=True, kw_only=True):
    """Remove distributions (by name, or the names in requirements files)."""

    env: ClientEnv
    packages: list[str] = []
    requirement_files: list[str] = []
    stdin: str | None = None
    python: PythonOptions = PythonOptions()
    environment: EnvironmentOptions = EnvironmentOptions()
    dry_run: bool = False


class UninstallResult(EnvironmentChange, frozen=True, kw_only=True):
    """The result of ``uninstall``."""


class ListParams(Message, frozen=True, kw_only=True):
    """List the distributions installed in an environment."""

    env: ClientEnv
    python: PythonOptions = PythonOptions()
    environment: EnvironmentOptions = EnvironmentOptions()


class InstalledPackage(Message, frozen=True, kw_only=True):
    """One distribution found in an environment."""

    name: str
    version: str
    #: The ``.dist-info`` (or legacy ``.egg-info``) directory.
    path: str
    installer: str = ""
    requested: bool = False
    #: ``direct_url.json``'s URL for a URL, path or editable install.
    url: str | None = None
    editable: bool = False


class ListResult(Message, frozen=True, kw_only=True):
    """The distributions of one environment, by name."""

    environment: str
    python: str
    packages: list[InstalledPackage]


class VenvParams(Message, frozen=True, kw_only=True):
    """Create a virtual environment (``burrow venv``)."""

    env: ClientEnv
    path: str = ".venv"
    python: PythonOptions = PythonOptions()
    index: IndexOptions = IndexOptions()
    #: Install pip (and setuptools and wheel before Python 3.12) into it.
    seed: bool = False
    #: Replace an existing virtual environment at ``path``.
    clear: bool = False
    prompt: str | None = None
    system_site_packages: bool = False
    link_mode: LinkModeName = "hardlink"


class VenvResult(Message, frozen=True, kw_only=True):
    """The virtual environment created."""

    path: str
    python: str
    version: str
    seeded: list[PackageChange] = []
    elapsed: float = 0.0


# -- watches ------------------------------------------------------------------------------

#: What a watch does on a change: resolve (``.in``, ``pyproject.toml``, a requirements file
#: with ranges) then prefetch the result, or prefetch a file of exact pins (a lock file).
WatchKindName: TypeAlias = Literal["resolve", "pins"]
#: ``pending`` a change waits out the debounce; ``warming`` resolving and prefetching;
#: ``yielding`` paused while foreground requests run; ``warm`` done; ``failed`` the last run
#: failed (see ``error``); ``missing`` the file is gone (watched again when it comes back).
WatchStateName: TypeAlias = Literal["pending", "warming", "yielding", "warm", "failed", "missing"]


class WatchAddParams(Requirements, frozen=True, kw_only=True):
    """Watch requirement inputs: each of ``requirement_files`` becomes one watch.

    Accepted inputs are ``*.in``, ``requirements*.txt`` (any ``.txt`` requirements file) and
    ``pyproject.toml``. The other fields are those of the compile the watch prepares for:
    its interpreter, indexes, extras, groups, constraints. Requirements given directly and
    standard input cannot be watched. Adding a path already watched replaces its options.
    """

    #: The file a compile writes: its pins are preferred, as that compile prefers them. By
    #: default ``X.txt`` next to a watched ``X.in``, when it exists.
    output_file: str | None = None


class WatchInfo(Message, frozen=True, kw_only=True):
    """One watched file and what warming it did last."""

    id: int
    path: str
    #: ``None`` until the file was first read.
    kind: WatchKindName | None = None
    state: WatchStateName = "pending"
    #: The target interpreter (``CPython 3.12.1 (/usr/bin/python3)``), once known.
    target: str = ""
    #: Seconds since the epoch.
    added_at: float = 0.0
    #: Every file a change of which warms it again (includes, constraints, the output file).
    files: list[str] = []
    #: Seconds since the epoch: the last change seen, and the end of the last warming.
    changed_at: float | None = None
    warmed_at: float | None = None
    #: Seconds the last warming took.
    elapsed: float = 0.0
    #: Pins of the last resolution (or of the lock file) for the target.
    packages: int = 0
    #: Wheels the last warming downloaded or built.
    downloaded: int = 0
    #: Warmings run since the daemon started.
    runs: int = 0
    #: Project pages kept fresh for this watch, and seconds until the next revalidation.
    pages: int = 0
    refresh_in: float | None = None
    #: The last run's failure, first line.
    error: str | None = None


class WatchAddResult(Message, frozen=True, kw_only=True):
    """The watches added (or updated); their first warming has started."""

    watches: list[WatchInfo]


class WatchRemoveParams(Message, frozen=True, kw_only=True):
    """Stop watching files, named by path or id; a warming job of theirs is cancelled."""

    #: Relative paths are relative to ``env.cwd``.
    env: ClientEnv | None = None
    paths: list[str] = []
    ids: list[int] = []
    all: bool = False


class WatchRemoveResult(Message, frozen=True, kw_only=True):
    """The watches removed."""

    removed: list[WatchInfo]


class WatchListParams(Message, frozen=True, kw_only=True):
    """Params of ``watch.list``."""


class WatchListResult(Message, frozen=True, kw_only=True):
    """Every watch, in the order added."""

    watches: list[WatchInfo]


class WatchEventsParams(Message, frozen=True, kw_only=True):
    """Subscribe this connection to ``watch.event`` notifications (or unsubscribe it).

    Events flow until the connection closes or it unsubscribes.
    """

    subscribe: bool = True


class WatchEventsResult(Message, frozen=True, kw_only=True):
    """Whether the connection is subscribed now, and the watches as they stand."""

    subscribed: bool
    watches: list[WatchInfo]


#: ``resolution-changed`` a warming resolved other pins than the last one;
#: ``prefetch-done`` every wheel of the result is in the cache;
#: ``yanked-pin`` a pinned version is yanked on its index;
#: ``warming-failed`` a warming failed (``message`` says why);
#: ``watch-missing`` a watched file disappeared (it is watched again when it comes back).
WatchEventName: TypeAlias = Literal[
    "resolution-changed", "prefetch-done", "yanked-pin", "warming-failed", "watch-missing"
]


class PinChange(Message, frozen=True, kw_only=True):
    """A package whose pin a new resolution changed (``None``: added or removed)."""

    name: str
    old: str | None = None
    new: str | None = None


class WatchEvent(Message, frozen=True, kw_only=True):
    """``watch.event``: something happened to a watch (sent only to subscribers)."""

    event: WatchEventName
    watch: int
    path: str
    #: Seconds since the epoch.
    at: float
    message: str = ""
    #: ``resolution-changed``: what changed.
    changes: list[PinChange] = []
    #: ``yanked-pin``: the pin and the index's reason.
    name: str | None = None
    version: str | None = None
    reason: str | None = None
    #: ``prefetch-done``: wheels of the result, how many were fetched now, and the bytes.
    packages: int = 0
    downloaded: int = 0
    bytes: int = 0
    elapsed: float = 0.0
