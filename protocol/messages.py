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

    #: ``PROTOCOL_VERSION`` of the client; the daemon refuses nothing, the client
    #: decides what a mismatch means.
    protocol_version: int
    #: The client's package version, for the log.
    client_version: str
    #: A digest of the client's installed files (any string from an editor): the
    #: ``burrow`` client restarts a daemon whose ``server_build`` differs from its own.
    client_build: str
    #: Who connects (``burrow``, an editor's name), for the log.
    client_name: str = "burrow"


class InitializeResult(Message, frozen=True, kw_only=True):
    """What the daemon answers; the client restarts a daemon whose build differs."""

    #: The daemon's ``PROTOCOL_VERSION``.
    protocol_version: int
    #: The daemon's package version.
    server_version: str
    #: A digest of the daemon's installed files: an edited checkout is a new build.
    server_build: str
    #: The daemon's process id.
    pid: int


class StatusParams(Message, frozen=True, kw_only=True):
    """Params of ``status``."""


class RequestInfo(Message, frozen=True, kw_only=True):
    """One request being served."""

    #: The request id (unique per connection only).
    id: int | str | None
    #: The method called.
    method: str
    #: Seconds since the request arrived.
    elapsed: float
    #: What it does now, as its last ``$/progress`` said (``downloading``,
    #: ``waiting for the environment lock``...).
    phase: str = ""
    #: Who sent it (``pid N uid M``): request ids are only unique per connection.
    client: str = ""


class StatusResult(Message, frozen=True, kw_only=True):
    """A snapshot of the daemon."""

    #: The daemon's process id.
    pid: int
    #: The daemon's package version.
    version: str
    #: Its build id (see ``initialize``).
    build: str
    #: Seconds since the epoch when the daemon started.
    started_at: float
    #: Seconds it has been running.
    uptime: float
    #: The socket it serves.
    socket: str
    #: Its cache root.
    cache_dir: str
    #: Its log file.
    log_file: str
    #: Open connections.
    connections: int
    #: The requests being served (this ``status`` request left out).
    requests: list[RequestInfo]
    #: Seconds without connections, requests or watches after which the daemon exits
    #: (0: never).
    idle_timeout: float
    #: Seconds since the last connection or request ended.
    idle_for: float
    #: Project pages held in memory.
    memory_pages: int = 0
    #: Core metadata documents held in memory.
    memory_metadata: int = 0
    #: HTTP requests sent to indexes and file hosts since the start.
    http_requests: int = 0
    #: Files downloaded since the start (wheels and sdists).
    downloads: int = 0
    #: Build backend runs (metadata or wheel) since the start.
    builds: int = 0
    #: git fetches since the start.
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
    #: Seconds since it started.
    elapsed: float
    #: Who waits for it: ``request 7 (sync, pid 4242 uid 1000)`` or ``watch 2``.
    waiters: list[str] = []
    #: Started for a warming job and not yet wanted by a request.
    background: bool = False


class QueueInfo(Message, frozen=True, kw_only=True):
    """One bounded kind of work (``network``, ``unpack``, ``build``)."""

    #: ``network`` (HTTP requests), ``unpack`` (wheels being unpacked) or ``build``.
    name: str
    #: How many may run at once.
    limit: int
    #: How many run now.
    running: int
    #: Requests' work waiting for a turn (served first).
    waiting: int = 0
    #: Warming work waiting for a turn (served when no request waits).
    waiting_background: int = 0
    #: How many of the running ones are warming work.
    running_background: int = 0
    #: How many warming work may hold at once; the rest stay free for requests.
    background_limit: int = 0


class ErrorInfo(Message, frozen=True, kw_only=True):
    """A failure the daemon answered or met while warming."""

    #: Seconds since the epoch.
    at: float
    #: ``request 7 (resolve, pid 4242 uid 1000)`` or ``watch 2 (/path/requirements.in)``.
    source: str
    #: The JSON-RPC error code.
    code: int
    #: The first line of the error message.
    message: str


class ShutdownParams(Message, frozen=True, kw_only=True):
    """Params of ``shutdown``."""


class ShutdownResult(Message, frozen=True, kw_only=True):
    """The daemon has stopped listening; it exits once its requests are done."""

    #: The process id of the daemon that is stopping.
    pid: int


# -- notifications ------------------------------------------------------------------------


class ProgressParams(Message, frozen=True, kw_only=True):
    """``$/progress``: how far a long request has come (token = the request id)."""

    #: The id of the request this progress belongs to.
    token: int | str
    #: What the request does now (``resolving``, ``downloading``, ``installing``...).
    phase: str
    #: Steps done in this phase.
    current: int = 0
    #: Steps the phase has (``null``: unknown).
    total: int | None = None
    #: Bytes downloaded by the request so far (all phases).
    bytes: int = 0
    #: A detail to show (the file being built...).
    message: str = ""


class CancelParams(Message, frozen=True, kw_only=True):
    """``$/cancelRequest``: cancel the request with this id, and only that one."""

    #: The id of the request to cancel (on this connection).
    id: int | str


# -- options shared by the package methods --------------------------------------------------


class ClientEnv(Message, frozen=True, kw_only=True):
    """Where the client runs: relative paths and the default interpreter depend on it."""

    #: The client's working directory: relative paths resolve against it.
    cwd: str
    #: ``$VIRTUAL_ENV``: the default target interpreter when set.
    virtual_env: str | None = None
    #: ``$PATH``: where the default interpreter (``python3``) is looked for.
    path: str = ""
    #: The client's environment variables, for ``${NAME}`` in requirements files.
    variables: dict[str, str] = {}


class IndexOptions(Message, frozen=True, kw_only=True):
    """Where to find distributions and how fresh the cached pages must be."""

    #: The main index (``null``: PyPI, ``https://pypi.org/simple/``), searched last.
    index_url: str | None = None
    #: More indexes, searched first in this order; a project is taken from the first
    #: index that has it.
    extra_index_urls: list[str] = []
    #: Directories, HTML pages or ``file://`` URLs whose files add to the indexes'.
    find_links: list[str] = []
    #: Use no index at all, only ``find_links``.
    no_index: bool = False
    #: Never touch the network: only what memory and the cache hold.
    offline: bool = False
    #: Revalidate every cached project page this request uses (``--refresh``).
    refresh: bool = False
    #: Revalidate the pages of these projects only (``--refresh-package``).
    refresh_packages: list[str] = []


class BuildOptions(Message, frozen=True, kw_only=True):
    """Whether sources may be built, and how (``--no-build``, ``--no-build-isolation``)."""

    #: Never build a source distribution: versions without a usable wheel are
    #: passed over.
    no_build: bool = False
    #: Build with the target environment's own packages instead of an isolated environment.
    no_build_isolation: bool = False


class PythonOptions(Message, frozen=True, kw_only=True):
    """The target interpreter, and overrides of its version and platform."""

    #: The interpreter: a path, a version (``3.12``) found on ``PATH``, or a venv
    #: directory (``null``: ``VIRTUAL_ENV``, a ``.venv`` here or above, then ``python3``).
    python: str | None = None
    #: Resolve for this Python version instead of the interpreter's (``3.12`` or
    #: ``3.12.4``): markers and ``Requires-Python``.
    python_version: str | None = None
    #: Resolve for this platform instead of the interpreter's: ``linux``, ``macos``,
    #: ``windows`` or a target such as ``x86_64-manylinux_2_28``.
    python_platform: str | None = None


# -- cache ----------------------------------------------------------------------------------


class CacheDirParams(Message, frozen=True, kw_only=True):
    """Params of ``cache.dir``."""


class CacheDirResult(Message, frozen=True, kw_only=True):
    """The cache root of the daemon."""

    #: The cache root.
    path: str


class CacheStatsParams(Message, frozen=True, kw_only=True):
    """Params of ``cache.stats``."""


class BucketStats(Message, frozen=True, kw_only=True):
    """Size and entry count of one cache bucket."""

    #: The bucket's directory (``wheels-v0``...), or ``.tmp`` for temporary files.
    bucket: str
    #: Entries (pointers, archives, pages) in it.
    entries: int
    #: Bytes it holds.
    size: int


class CacheStatsResult(Message, frozen=True, kw_only=True):
    """What the cache holds, per bucket, and what the daemon keeps in memory."""

    #: The cache root.
    path: str
    #: One row per bucket, then temporary files.
    buckets: list[BucketStats]
    #: Bytes the whole cache holds.
    size: int
    #: Project pages the daemon holds in memory.
    memory_pages: int = 0
    #: Core metadata documents the daemon holds in memory.
    memory_metadata: int = 0


class CacheCleanParams(Message, frozen=True, kw_only=True):
    """Params of ``cache.clean``: the packages to forget, or everything when empty."""

    #: Project names whose entries to remove (empty: the whole cache).
    packages: list[str] = []


class CacheCleanResult(Message, frozen=True, kw_only=True):
    """What ``cache.clean`` removed."""

    #: The cache root.
    path: str
    #: The packages cleaned (empty: everything).
    packages: list[str]
    #: Cache entries removed.
    entries: int
    #: Bytes freed.
    size: int


class CachePruneParams(Message, frozen=True, kw_only=True):
    """Params of ``cache.prune``."""


class CachePruneResult(Message, frozen=True, kw_only=True):
    """What ``cache.prune`` removed, per kind (``temporary``, ``archives``, ``buckets``...)."""

    #: The cache root.
    path: str
    #: Entries removed, per kind.
    removed: dict[str, int]
    #: Bytes freed.
    size: int


# -- prefetch -------------------------------------------------------------------------------


class PrefetchParams(Message, frozen=True, kw_only=True):
    """Download and unpack pinned wheels into the cache (``NAME==VERSION``, wheel paths/URLs)."""

    env: ClientEnv
    #: Pins (``NAME==VERSION``), wheel paths or URLs.
    requirements: list[str] = []
    #: Files of pins (``requirements.txt``).
    requirement_files: list[str] = []
    index: IndexOptions = IndexOptions()
    python: PythonOptions = PythonOptions()
    build: BuildOptions = BuildOptions()


class PrefetchedWheel(Message, frozen=True, kw_only=True):
    """One wheel that is now unpacked in the cache."""

    #: The project's normalized name.
    name: str
    #: The wheel's version.
    version: str
    #: The wheel's file name (its tags tell which platform).
    filename: str
    #: Where the wheel is unpacked in the cache (``archive-v0/...``).
    archive: str
    #: Bytes of the wheel file.
    size: int
    #: False when this request downloaded or unpacked it, True when it was already there.
    cached: bool
    #: The index's yank reason (``""`` when it gave none), ``null`` if not yanked.
    yanked: str | None = None


class PrefetchResult(Message, frozen=True, kw_only=True):
    """The wheels prefetched, for which target, and what it cost."""

    #: The interpreter and platform the wheels were chosen for.
    target: str
    #: Every wheel asked for, now in the cache.
    wheels: list[PrefetchedWheel]
    #: Wheels downloaded (or built) by this request.
    downloaded: int
    #: Bytes this request downloaded.
    bytes: int
    #: Seconds the request took.
    elapsed: float
    #: What a person should know (a yanked pin...).
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
    #: Constraints files (``-c``): they limit versions, they add no package.
    constraint_files: list[str] = []
    #: Overrides files: their requirements replace every requirement on the same
    #: project, whoever declares it (as uv's ``--override``).
    override_files: list[str] = []
    #: Extras of the ``pyproject.toml`` projects among the files to include.
    extras: list[str] = []
    #: Include every extra of those projects.
    all_extras: bool = False
    #: PEP 735 dependency groups of those projects to include.
    groups: list[str] = []
    index: IndexOptions = IndexOptions()
    python: PythonOptions = PythonOptions()
    build: BuildOptions = BuildOptions()
    #: ``None``: "allow" if a requirements file says ``--pre``, else uv's default.
    prerelease: PrereleaseName | None = None
    #: Which versions to prefer: the highest, the lowest, or the lowest of direct
    #: requirements only.
    resolution: ResolutionName = "highest"
    #: Ignore existing pins (an output file, installed versions); without it they are kept.
    upgrade: bool = False
    #: Ignore the existing pins of these projects only.
    upgrade_packages: list[str] = []
    #: RFC 3339 date or date-time: ignore files uploaded after it.
    exclude_newer: str | None = None
    #: Pin only the direct requirements, not what they depend on.
    no_deps: bool = False
    #: Projects that must come as wheels: names, ``:all:`` or ``:none:`` (pip's format
    #: control; requirements files may say it too).
    only_binary: list[str] = []
    #: Projects that must be built from source: names, ``:all:`` or ``:none:``.
    no_binary: list[str] = []


class ResolveParams(Requirements, frozen=True, kw_only=True):
    """Resolve requirements to pins (``burrow compile``), optionally writing a file."""

    #: Write the result here (atomically); its pins are preferences unless upgrading.
    output_file: str | None = None
    #: Resolve and answer, but do not write ``output_file``.
    dry_run: bool = False
    #: Add ``--hash=sha256:...`` of every file of each pin to the output.
    generate_hashes: bool = False
    #: Write ``# via`` comments saying why each package is pinned.
    annotate: bool = True
    #: Write the header comment (the command that made the file).
    header: bool = True
    #: Write ``--index-url``/``--extra-index-url`` lines into the output.
    emit_index_url: bool = False
    #: The command line shown in the output's header.
    command: str = "burrow compile"


class Via(Message, frozen=True, kw_only=True):
    """Why a package is pinned: a requirement file line, or a package that needs it."""

    #: "requirement", "constraint", "override" (``name`` is a file or "command line"),
    #: "project" (``name`` is "NAME (pyproject.toml)") or "package" (one that needs it).
    kind: str
    #: Who: the file, the project or the package (see ``kind``).
    name: str
    #: The line of the requirement in that file (1-based), when it is a file.
    line: int | None = None


class ResolvedPackage(Message, frozen=True, kw_only=True):
    """One pin of a resolution."""

    #: The project's normalized name.
    name: str
    #: The pinned version.
    version: str
    #: The file the target would install (a wheel, or an sdist to build).
    filename: str
    #: Where that file comes from, without credentials.
    url: str
    #: The index it was found on (``direct:`` for a direct reference).
    index: str
    #: Extras of it that the resolution includes.
    extras: list[str] = []
    #: Why it is pinned (the ``# via`` lines).
    via: list[Via] = []
    #: The environment marker of the requirement lines that brought it in, when only
    #: they did: the pin applies where the marker holds.
    marker: str | None = None
    #: With ``generate_hashes``: ``sha256:<hex>`` of every file of the pinned version.
    hashes: list[str] = []
    #: Named by the inputs themselves (not only needed by another package).
    direct: bool = False
    #: Required with ``-e`` (a local project directory).
    editable: bool = False
    #: The version is yanked (allowed only by an exact ``==`` pin).
    yanked: bool = False


class ResolveResult(Message, frozen=True, kw_only=True):
    """The pins, the pip-compile text, and what the resolution cost."""

    #: The interpreter and platform resolved for.
    target: str
    #: The pins, by name.
    packages: list[ResolvedPackage]
    #: The resolution as pip-compile writes it.
    output: str
    #: The file written (``wrote``), or that would have been written.
    output_file: str | None = None
    #: The output file was written (not a dry run).
    wrote: bool = False
    #: Seconds the request took.
    elapsed: float = 0.0
    #: What a person should know (a yanked pin, an unreadable output file...).
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

    #: Allow an interpreter outside a virtual environment.
    system: bool = False
    #: Allow changing a PEP 668 externally managed environment.
    break_system_packages: bool = False


class InstallOptions(Message, frozen=True, kw_only=True):
    """How ``sync`` and ``install`` change an environment."""

    #: How files get into the environment from the cache (hard links fall back to
    #: copies across devices).
    link_mode: LinkModeName = "hardlink"
    #: Reinstall every package of the request, even those already installed.
    reinstall: bool = False
    #: Reinstall these packages (names) only.
    reinstall_packages: list[str] = []
    #: Compile the installed modules to ``.pyc`` files.
    compile_bytecode: bool = False
    #: Say what would change, change nothing.
    dry_run: bool = False
    #: Every requirement must carry ``--hash``; implied when any of them does.
    require_hashes: bool = False
    #: After the change, report installed packages whose requirements are not met.
    strict: bool = False


class PackageChange(Message, frozen=True, kw_only=True):
    """One distribution installed into or removed from an environment."""

    #: The distribution's normalized name.
    name: str
    #: Its version (the one installed, or the one removed).
    version: str
    #: The version it replaced (a reinstall or an upgrade), for an installed one.
    previous: str | None = None
    #: Why it changes: "missing", "version", "source", "reinstall", "extraneous", "requested".
    reason: str = ""
    #: ``url``/``path`` of a direct reference (as in ``direct_url.json``), else empty.
    url: str = ""
    #: False when this request downloaded or unpacked the wheel.
    cached: bool = True
    #: Installed in editable mode (PEP 660).
    editable: bool = False


class EnvironmentChange(Message, frozen=True, kw_only=True):
    """What a request did to one environment (or would do, with ``dry_run``)."""

    #: The environment's prefix.
    environment: str
    #: The interpreter that runs it.
    python: str
    #: Its version and platform, as wheels are chosen for it.
    target: str
    #: Distributions installed (or replaced).
    installed: list[PackageChange] = []
    #: Distributions removed.
    removed: list[PackageChange] = []
    #: Requirements already satisfied by what is installed.
    unchanged: int = 0
    #: Nothing was changed: this is what would change.
    dry_run: bool = False
    #: Wheels downloaded (or built) for the request.
    downloaded: int = 0
    #: Bytes the request downloaded.
    bytes: int = 0
    #: Seconds the request took.
    elapsed: float = 0.0
    #: Seconds spent per phase ("resolve", "prepare", "uninstall", "install", "compile").
    timings: dict[str, float] = {}
    #: What a person should know (a yanked pin, a kept seed package...).
    warnings: list[str] = []
    #: With ``strict``: requirements of installed packages that are not met.
    problems: list[str] = []


class SyncParams(Message, frozen=True, kw_only=True):
    """Make an environment hold exactly the pins of requirements files (``uv pip sync``)."""

    env: ClientEnv
    #: Files of pins (``requirements.txt``); ``-`` is ``stdin``.
    requirement_files: list[str] = []
    #: Requirements given directly, as on a command line (pins, URLs, paths).
    requirements: list[str] = []
    #: The text the client read from standard input, for a ``-`` among the files.
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
    #: Names of the distributions to remove.
    packages: list[str] = []
    #: Requirements files whose project names are removed too; ``-`` is ``stdin``.
    requirement_files: list[str] = []
    #: The text the client read from standard input, for a ``-`` among the files.
    stdin: str | None = None
    python: PythonOptions = PythonOptions()
    environment: EnvironmentOptions = EnvironmentOptions()
    #: Say what would be removed, remove nothing.
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

    #: The distribution's name as its metadata spells it.
    name: str
    #: Its version.
    version: str
    #: The ``.dist-info`` (or legacy ``.egg-info``) directory.
    path: str
    #: What installed it (the ``INSTALLER`` file: ``burrowd``, ``pip``, ``uv``).
    installer: str = ""
    #: Installed because it was asked for, not as a dependency (the ``REQUESTED``
    #: file).
    requested: bool = False
    #: ``direct_url.json``'s URL for a URL, path or editable install.
    url: str | None = None
    #: Installed in editable mode.
    editable: bool = False


class ListResult(Message, frozen=True, kw_only=True):
    """The distributions of one environment, by name."""

    #: The environment's prefix.
    environment: str
    #: The interpreter that runs it.
    python: str
    #: The installed distributions, by name.
    packages: list[InstalledPackage]


class VenvParams(Message, frozen=True, kw_only=True):
    """Create a virtual environment (``burrow venv``)."""

    env: ClientEnv
    #: Where to create it, relative to ``env.cwd``.
    path: str = ".venv"
    #: The interpreter it is made from (``python``; the version and platform
    #: overrides do not apply).
    python: PythonOptions = PythonOptions()
    #: Where the seed packages come from, with ``seed``.
    index: IndexOptions = IndexOptions()
    #: Install pip (and setuptools and wheel before Python 3.12) into it.
    seed: bool = False
    #: Replace an existing virtual environment at ``path``.
    clear: bool = False
    #: The prompt shown when activated (default: the directory's name).
    prompt: str | None = None
    #: Give it access to the base interpreter's site-packages.
    system_site_packages: bool = False
    #: How the seed packages are installed, with ``seed``.
    link_mode: LinkModeName = "hardlink"


class VenvResult(Message, frozen=True, kw_only=True):
    """The virtual environment created."""

    #: The environment's directory.
    path: str
    #: Its interpreter.
    python: str
    #: Its Python version.
    version: str
    #: The seed packages installed, with ``seed``.
    seeded: list[PackageChange] = []
    #: Seconds the request took.
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

    #: The watch's id (``watch.remove`` takes it).
    id: int
    #: The watched file, absolute.
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
    #: Seconds since the epoch when a change (or ``watch.add``) was last seen.
    changed_at: float | None = None
    #: Seconds since the epoch when the last warming ended.
    warmed_at: float | None = None
    #: Seconds the last warming took.
    elapsed: float = 0.0
    #: Pins of the last resolution (or of the lock file) for the target.
    packages: int = 0
    #: Wheels the last warming downloaded or built.
    downloaded: int = 0
    #: Warmings run since the daemon started.
    runs: int = 0
    #: Project pages kept fresh for this watch.
    pages: int = 0
    #: Seconds until they are next revalidated (``null``: none is planned).
    refresh_in: float | None = None
    #: The last run's failure, first line.
    error: str | None = None


class WatchAddResult(Message, frozen=True, kw_only=True):
    """The watches added (or updated); their first warming has started."""

    #: One watch per file, in the order given.
    watches: list[WatchInfo]


class WatchRemoveParams(Message, frozen=True, kw_only=True):
    """Stop watching files, named by path or id; a warming job of theirs is cancelled."""

    #: Relative paths are relative to ``env.cwd``.
    env: ClientEnv | None = None
    #: Watched files to stop watching.
    paths: list[str] = []
    #: Ids of watches to remove (``watch.list`` shows them).
    ids: list[int] = []
    #: Remove every watch.
    all: bool = False


class WatchRemoveResult(Message, frozen=True, kw_only=True):
    """The watches removed."""

    #: The watches removed, as they were.
    removed: list[WatchInfo]


class WatchListParams(Message, frozen=True, kw_only=True):
    """Params of ``watch.list``."""


class WatchListResult(Message, frozen=True, kw_only=True):
    """Every watch, in the order added."""

    #: Every watch.
    watches: list[WatchInfo]


class WatchEventsParams(Message, frozen=True, kw_only=True):
    """Subscribe this connection to ``watch.event`` notifications (or unsubscribe it).

    Events flow until the connection closes or it unsubscribes.
    """

    #: ``true`` to receive ``watch.event`` notifications, ``false`` to stop.
    subscribe: bool = True


class WatchEventsResult(Message, frozen=True, kw_only=True):
    """Whether the connection is subscribed now, and the watches as they stand."""

    #: Whether this connection receives the notifications now.
    subscribed: bool
    #: Every watch, as it stands when the subscription starts.
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

    #: The package's normalized name.
    name: str
    #: The version pinned before (``null``: newly added).
    old: str | None = None
    #: The version pinned now (``null``: no longer needed).
    new: str | None = None


class WatchEvent(Message, frozen=True, kw_only=True):
    """``watch.event``: something happened to a watch (sent only to subscribers)."""

    #: What happened.
    event: WatchEventName
    #: The watch's id.
    watch: int
    #: The watched file.
    path: str
    #: Seconds since the epoch.
    at: float
    #: The event in words, for a person.
    message: str = ""
    #: ``resolution-changed``: what changed.
    changes: list[PinChange] = []
    #: ``yanked-pin``: the yanked package.
    name: str | None = None
    #: ``yanked-pin``: its pinned version.
    version: str | None = None
    #: ``yanked-pin``: the reason the index gives (``null``: none).
    reason: str | None = None
    #: ``prefetch-done``: the pins of the result, all in the cache now.
    packages: int = 0
    #: ``prefetch-done``: wheels this warming downloaded or built.
    downloaded: int = 0
    #: ``prefetch-done``: bytes this warming downloaded.
    bytes: int = 0
    #: ``prefetch-done``: seconds the warming took.
    elapsed: float = 0.0
