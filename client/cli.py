"""``burrow``: the command-line client of burrowd.

Exit status: 0 success, 1 the operation failed (the daemon answered with an error, or no
daemon could be reached), 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import re  # argparse imports it anyway
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple, NoReturn, TypeVar, get_args

import msgspec

from burrowd.client import render
from burrowd.client.connection import (
    DaemonUnavailable,
    SocketTransport,
    Transport,
    connect,
    log_tail,
    open_transport,
)
from burrowd.protocol import __version__, jsonrpc, paths
from burrowd.protocol.errors import EXIT_FAILED, EXIT_OK, ErrorObject, RpcError
from burrowd.protocol.messages import (
    BuildOptions,
    CacheCleanParams,
    CacheCleanResult,
    CacheDirParams,
    CacheDirResult,
    CachePruneParams,
    CachePruneResult,
    CacheStatsParams,
    CacheStatsResult,
    ClientEnv,
    EnvironmentOptions,
    IndexOptions,
    InstallOptions,
    InstallParams,
    InstallResult,
    LinkModeName,
    ListParams,
    ListResult,
    PrefetchParams,
    PrefetchResult,
    PrereleaseName,
    PythonOptions,
    ResolutionName,
    ResolveParams,
    ResolveResult,
    ShutdownParams,
    ShutdownResult,
    StatusParams,
    StatusResult,
    SyncParams,
    SyncResult,
    UninstallParams,
    UninstallResult,
    VenvParams,
    VenvResult,
    WatchAddParams,
    WatchAddResult,
    WatchEvent,
    WatchEventsParams,
    WatchEventsResult,
    WatchListParams,
    WatchListResult,
    WatchRemoveParams,
    WatchRemoveResult,
)
from burrowd.protocol.process import process_alive

__all__ = ["Failure", "main", "run"]


def _untranslated(message: str) -> str:
    return message


# argparse passes each of its own messages through gettext as it builds a parser, and each
# lookup walks the locale's names and .mo paths (importing ``locale`` for it): nine lookups,
# about 3 ms, for one command. CPython ships no translation of argparse, and burrow's own
# text is English too, so the lookups can only ever return the message they were given.
argparse._ = _untranslated  # type: ignore[attr-defined]

T = TypeVar("T")
EXIT_INTERRUPTED = 130


class Failure(Exception):
    """A command failed for a reason the user should read; exits 1."""


def fail(message: str) -> NoReturn:
    """Stop the command with ``message`` and exit status 1."""
    raise Failure(message)


class Context:
    """What a command gets: its arguments and a lazily opened transport."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._transport: Transport | None = None

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    def transport(self, *, start: bool = True) -> Transport:
        """Return the transport, connecting (and starting a daemon) on first use."""
        if self._transport is None:
            self._transport = open_transport(no_daemon=self.args.no_daemon, start=start)
        return self._transport

    def call(self, method: str, params: msgspec.Struct, result_type: type[T]) -> T:
        """Send one request, rendering its progress on the terminal."""
        progress = render.Progress(enabled=None if not self.args.quiet else False)
        try:
            return self.transport().call(method, params, result_type, on_progress=progress)
        finally:
            progress.clear()

    def output(self, result: Any, human: Callable[[], None]) -> None:
        """Print ``result`` as JSON with ``--json``, else call ``human``."""
        if self.json:
            render.print_json(result)
        else:
            human()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


Command = Callable[[Context], int]


# -- daemon ----------------------------------------------------------------------------------


def do_daemon_start(ctx: Context) -> int:
    """Start the daemon unless one is running; print who serves."""
    status = ctx.call("status", StatusParams(), StatusResult)
    ctx.output(status, lambda: print(f"burrowd (pid {status.pid}) is serving {status.socket}"))
    return EXIT_OK


def do_daemon_status(ctx: Context) -> int:
    """Show the daemon's state (starting it if needed)."""
    status = ctx.call("status", StatusParams(), StatusResult)
    ctx.output(status, lambda: render.render_status(status))
    return EXIT_OK


def do_daemon_stop(ctx: Context) -> int:
    """Ask a running daemon to stop and wait until it has exited."""
    if ctx.args.no_daemon:
        fail("--no-daemon: there is no daemon to stop")
    path = paths.socket_path()
    sock = connect(path)
    if sock is None:
        ctx.output({"stopped": None}, lambda: print("burrowd is not running"))
        return EXIT_OK
    transport = SocketTransport(sock, path)
    try:
        result = transport.call("shutdown", ShutdownParams(), ShutdownResult)
    finally:
        transport.close()
    deadline = time.monotonic() + ctx.args.timeout
    while time.monotonic() < deadline and process_alive(result.pid):
        time.sleep(0.02)
    if process_alive(result.pid):
        fail(f"burrowd (pid {result.pid}) is still finishing requests after {ctx.args.timeout:g}s")
    ctx.output({"stopped": result.pid}, lambda: print(f"stopped burrowd (pid {result.pid})"))
    return EXIT_OK


def do_daemon_logs(ctx: Context) -> int:
    """Print the end of the daemon log; ``-f`` keeps following it."""
    log_file = paths.log_file()
    if not os.path.exists(log_file):
        fail(f"no log yet at {log_file}")
    print(log_tail(log_file, ctx.args.lines))
    if not ctx.args.follow:
        return EXIT_OK
    with open(log_file, "rb") as f:
        f.seek(0, os.SEEK_END)
        while True:
            line = f.readline()
            if line:
                sys.stdout.write(line.decode("utf-8", "replace"))
                sys.stdout.flush()
            else:
                time.sleep(0.2)


# -- cache -----------------------------------------------------------------------------------


def do_cache_dir(ctx: Context) -> int:
    """Print the cache directory."""
    result = ctx.call("cache.dir", CacheDirParams(), CacheDirResult)
    ctx.output(result, lambda: print(result.path))
    return EXIT_OK


def do_cache_stats(ctx: Context) -> int:
    """Show entries and size per bucket."""
    result = ctx.call("cache.stats", CacheStatsParams(), CacheStatsResult)
    ctx.output(result, lambda: render.render_cache_stats(result))
    return EXIT_OK


def do_cache_clean(ctx: Context) -> int:
    """Remove cache entries of the named packages, or everything."""
    result = ctx.call("cache.clean", CacheCleanParams(packages=ctx.args.packages), CacheCleanResult)
    what = ", ".join(result.packages) if result.packages else "everything"
    ctx.output(
        result,
        lambda: print(
            f"removed {result.entries} entries ({render.format_bytes(result.size)}) for {what} "
            f"from {result.path}"
        ),
    )
    return EXIT_OK


def do_cache_prune(ctx: Context) -> int:
    """Remove what no entry needs any more."""
    result = ctx.call("cache.prune", CachePruneParams(), CachePruneResult)
    ctx.output(result, lambda: render.render_prune(result))
    return EXIT_OK


# -- packages --------------------------------------------------------------------------------


def client_env() -> ClientEnv:
    """Describe where this client runs (cwd, active venv, PATH, variables).

    JSON carries text: a variable whose name or value is not UTF-8 (a Latin-1 ``OLDPWD``)
    is left out, as nothing burrow reads can be one; a working directory that is not
    UTF-8 is refused with the reason.
    """
    cwd = os.getcwd()
    if not _utf8(cwd):
        fail(
            f"the working directory {cwd!r} is not UTF-8, which burrowd cannot be told; "
            "run the command from another directory"
        )
    variables = {k: v for k, v in os.environ.items() if _utf8(k) and _utf8(v)}
    return ClientEnv(
        cwd=cwd,
        virtual_env=variables.get("VIRTUAL_ENV") or None,
        path=variables.get("PATH", ""),
        variables=variables,
    )


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def index_options(args: argparse.Namespace) -> IndexOptions:
    """Return the index options of the command line, with ``BURROW_*`` defaults."""
    env = os.environ
    extra = list(args.extra_index_url or [])
    if not extra and env.get("BURROW_EXTRA_INDEX_URL"):
        extra = env["BURROW_EXTRA_INDEX_URL"].split()
    links = list(args.find_links or [])
    if not links and env.get("BURROW_FIND_LINKS"):
        links = env["BURROW_FIND_LINKS"].split()
    return IndexOptions(
        index_url=args.index_url or env.get("BURROW_INDEX_URL") or None,
        extra_index_urls=extra,
        find_links=links,
        no_index=args.no_index,
        offline=args.offline or env.get("BURROW_OFFLINE", "") not in ("", "0"),
        refresh=args.refresh,
        refresh_packages=list(args.refresh_package or []),
    )


def build_options(args: argparse.Namespace) -> BuildOptions:
    """Return whether and how sources may be built."""
    return BuildOptions(
        no_build=bool(getattr(args, "no_build", False)),
        no_build_isolation=bool(getattr(args, "no_build_isolation", False)),
    )


def python_options(args: argparse.Namespace) -> PythonOptions:
    """Return the target interpreter options of the command line."""
    return PythonOptions(
        python=args.python or os.environ.get("BURROW_PYTHON") or None,
        python_version=getattr(args, "python_version", None),
        python_platform=getattr(args, "python_platform", None),
    )


def do_prefetch(ctx: Context) -> int:
    """Download and unpack pinned wheels into the cache."""
    if not ctx.args.requirements and not ctx.args.requirement:
        fail("give pins (NAME==VERSION) or -r FILE")
    params = PrefetchParams(
        env=client_env(),
        requirements=ctx.args.requirements,
        requirement_files=ctx.args.requirement or [],
        index=index_options(ctx.args),
        python=python_options(ctx.args),
        build=build_options(ctx.args),
    )
    result = ctx.call("prefetch", params, PrefetchResult)
    ctx.output(result, lambda: render.render_prefetch(result, verbose=ctx.args.verbose))
    return EXIT_OK


_SOURCE_SUFFIXES = (".in", ".txt", ".toml", ".cfg", ".py")
#: A wheel or an sdist (the daemon's ``DIST_SUFFIXES``; the client does not import the
#: daemon): a requirement, not a file to read.
_DIST_SUFFIXES = (".whl", ".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz", ".txz", ".tar", ".zip")


def _redact_secrets(text: str) -> str:
    """Hide URL secrets the way the daemon does: ``user:****@`` or, for a lone token, ``****@``."""
    text = re.sub(r"://([^:/@\s]+):[^@/\s]+@", r"://\1:****@", text)
    return re.sub(r"://[^:/@\s]+@", "://****@", text)


def _redacted_command(argv: Sequence[str]) -> str:
    """Return the command line for the output header, without passwords in URLs."""
    import shlex  # noqa: PLC0415

    # Flags that change only how burrow talks, not what it writes, stay out of the header.
    quiet = {"--no-daemon", "--json", "-q", "--quiet", "-v", "--verbose"}
    shown = [_redact_secrets(a) for a in argv if a not in quiet]
    return "burrow " + shlex.join(shown)


def _resolution_fields(a: argparse.Namespace) -> dict[str, Any]:
    """Return the ``Requirements`` fields that the resolver options on the command line set."""
    prerelease: PrereleaseName | None = a.prerelease or ("allow" if a.pre else None)
    return {
        "env": client_env(),
        "constraint_files": a.constraint or [],
        "override_files": a.override or [],
        "extras": a.extra or [],
        "all_extras": a.all_extras,
        "groups": a.group or [],
        "index": index_options(a),
        "python": python_options(a),
        "build": build_options(a),
        "prerelease": prerelease,
        "resolution": a.resolution,
        "upgrade": a.upgrade,
        "upgrade_packages": a.upgrade_package or [],
        "exclude_newer": a.exclude_newer,
        "no_deps": a.no_deps,
        "only_binary": a.only_binary or [],
        "no_binary": a.no_binary or [],
    }


def do_compile(ctx: Context) -> int:
    """Resolve requirements to pins in the pip-compile format."""
    a = ctx.args
    files: list[str] = []
    direct: list[str] = []
    for src in a.src:
        # A project directory or a distribution file is a requirement, not a file to read.
        archive = src.endswith(_DIST_SUFFIXES)
        if src == "-" or src.endswith(_SOURCE_SUFFIXES) or (os.path.isfile(src) and not archive):
            files.append(src)
        else:
            direct.append(src)
    if not files and not direct:
        for default in ("requirements.in", "pyproject.toml"):
            if os.path.exists(default):
                files.append(default)
                break
        else:
            fail(
                "no input: give requirements files (requirements.in, pyproject.toml) "
                "or requirements"
            )
    stdin = sys.stdin.read() if "-" in files else None
    params = ResolveParams(
        **_resolution_fields(a),
        requirements=direct,
        requirement_files=files,
        stdin=stdin,
        output_file=a.output_file,
        dry_run=a.dry_run,
        generate_hashes=a.generate_hashes,
        annotate=not a.no_annotate,
        header=not a.no_header,
        emit_index_url=a.emit_index_url,
        command=_redacted_command(a.argv),
    )
    result = ctx.call("resolve", params, ResolveResult)
    ctx.output(result, lambda: render.render_resolve(result, verbose=a.verbose, quiet=a.quiet))
    return EXIT_OK


# -- environments ----------------------------------------------------------------------------


def environment_options(args: argparse.Namespace) -> EnvironmentOptions:
    """Return which environment the command may change (``--system``...)."""
    return EnvironmentOptions(
        system=bool(getattr(args, "system", False)),
        break_system_packages=bool(getattr(args, "break_system_packages", False)),
    )


def install_options(args: argparse.Namespace) -> InstallOptions:
    """Return how ``sync``/``install`` change the environment."""
    return InstallOptions(
        link_mode=args.link_mode,
        reinstall=args.reinstall,
        reinstall_packages=args.reinstall_package or [],
        compile_bytecode=args.compile_bytecode,
        dry_run=args.dry_run,
        require_hashes=args.require_hashes,
        strict=args.strict,
    )


def do_sync(ctx: Context) -> int:
    """Make the environment hold exactly the pins of requirements files."""
    a = ctx.args
    stdin = sys.stdin.read() if "-" in a.src else None
    params = SyncParams(
        env=client_env(),
        requirement_files=a.src,
        stdin=stdin,
        index=index_options(a),
        python=python_options(a),
        environment=environment_options(a),
        options=install_options(a),
        build=build_options(a),
        allow_empty=a.allow_empty_requirements,
    )
    result = ctx.call("sync", params, SyncResult)
    ctx.output(result, lambda: render.render_change(result, verbose=a.verbose, quiet=a.quiet))
    return EXIT_OK


def do_install(ctx: Context) -> int:
    """Resolve requirements and add what they need to the environment."""
    a = ctx.args
    if not a.packages and not a.requirement:
        fail("give packages to install, or -r FILE")
    files = a.requirement or []
    stdin = sys.stdin.read() if "-" in files else None
    prerelease: PrereleaseName | None = a.prerelease or ("allow" if a.pre else None)
    requirements = list(a.packages) + [f"-e {path}" for path in a.editable or []]
    params = InstallParams(
        env=client_env(),
        requirements=requirements,
        requirement_files=files,
        stdin=stdin,
        constraint_files=a.constraint or [],
        override_files=a.override or [],
        extras=a.extra or [],
        all_extras=a.all_extras,
        index=index_options(a),
        python=python_options(a),
        environment=environment_options(a),
        options=install_options(a),
        build=build_options(a),
        prerelease=prerelease,
        resolution=a.resolution,
        upgrade=a.upgrade,
        upgrade_packages=a.upgrade_package or [],
        exclude_newer=a.exclude_newer,
        no_deps=a.no_deps,
        only_binary=a.only_binary or [],
        no_binary=a.no_binary or [],
    )
    result = ctx.call("install", params, InstallResult)
    ctx.output(result, lambda: render.render_change(result, verbose=a.verbose, quiet=a.quiet))
    return EXIT_OK


def do_uninstall(ctx: Context) -> int:
    """Remove packages from the environment."""
    a = ctx.args
    if not a.packages and not a.requirement:
        fail("name the packages to uninstall, or give -r FILE")
    files = a.requirement or []
    params = UninstallParams(
        env=client_env(),
        packages=a.packages,
        requirement_files=files,
        stdin=sys.stdin.read() if "-" in files else None,
        python=python_options(a),
        environment=environment_options(a),
        dry_run=a.dry_run,
    )
    result = ctx.call("uninstall", params, UninstallResult)
    ctx.output(result, lambda: render.render_change(result, verbose=a.verbose, quiet=a.quiet))
    return EXIT_OK


def _list(ctx: Context) -> ListResult:
    params = ListParams(
        env=client_env(),
        python=python_options(ctx.args),
        environment=environment_options(ctx.args),
    )
    return ctx.call("list", params, ListResult)


def do_list(ctx: Context) -> int:
    """List the packages installed in the environment."""
    result = _list(ctx)
    ctx.output(result, lambda: render.render_list(result, verbose=ctx.args.verbose))
    return EXIT_OK


def do_freeze(ctx: Context) -> int:
    """Print the installed packages as requirements."""
    result = _list(ctx)
    ctx.output(result, lambda: render.render_freeze(result))
    return EXIT_OK


def do_venv(ctx: Context) -> int:
    """Create a virtual environment."""
    a = ctx.args
    params = VenvParams(
        env=client_env(),
        path=a.path,
        python=python_options(a),
        index=index_options(a),
        seed=a.seed,
        clear=a.clear,
        prompt=a.prompt,
        system_site_packages=a.system_site_packages,
        link_mode=a.link_mode,
    )
    result = ctx.call("venv", params, VenvResult)
    ctx.output(result, lambda: render.render_venv(result))
    return EXIT_OK


# -- watches and raw requests ----------------------------------------------------------------


def do_watch_add(ctx: Context) -> int:
    """Watch requirement inputs; the daemon warms the cache when they change."""
    params = WatchAddParams(
        **_resolution_fields(ctx.args),
        requirement_files=ctx.args.paths,
        output_file=ctx.args.output_file,
    )
    result = ctx.call("watch.add", params, WatchAddResult)
    ctx.output(result, lambda: render.render_watches(result.watches, verb="watching"))
    return EXIT_OK


def do_watch_remove(ctx: Context) -> int:
    """Stop watching files."""
    a = ctx.args
    if not (a.paths or a.id or a.all):
        fail("name the files to stop watching, or give --id N or --all")
    params = WatchRemoveParams(env=client_env(), paths=a.paths, ids=a.id or [], all=a.all)
    result = ctx.call("watch.remove", params, WatchRemoveResult)
    ctx.output(result, lambda: render.render_watches(result.removed, verb="stopped watching"))
    return EXIT_OK


def do_watch_list(ctx: Context) -> int:
    """List the watched files and what warming them did."""
    result = ctx.call("watch.list", WatchListParams(), WatchListResult)
    ctx.output(result, lambda: render.render_watches(result.watches))
    return EXIT_OK


def do_watch_events(ctx: Context) -> int:
    """Print watch events as they happen (``--count`` to stop after some)."""
    a = ctx.args
    transport = ctx.transport()
    result = transport.call("watch.events", WatchEventsParams(), WatchEventsResult)
    if not ctx.json:
        render.render_watches(result.watches, out=sys.stderr)
    seen = 0

    def show(env: jsonrpc.Envelope) -> bool:
        nonlocal seen
        if env.method != jsonrpc.WATCH_EVENT:
            return True
        event = jsonrpc.decode_as(env.params, WatchEvent)
        if ctx.json:
            render.print_json(event)
        else:
            render.render_watch_event(event)
        sys.stdout.flush()
        seen += 1
        return not (a.count and seen >= a.count)

    if not transport.listen(show, timeout=a.timeout):
        fail(f"no watch event within {a.timeout:g}s ({seen} seen)")
    return EXIT_OK


def do_rpc(ctx: Context) -> int:
    """Send any request and print the reply as JSON (for scripts)."""
    a = ctx.args
    text = sys.stdin.read() if a.params == "-" else a.params
    try:
        params = msgspec.json.decode(text.encode() if text else b"{}")
    except msgspec.DecodeError as exc:
        fail(f"PARAMS is not JSON: {exc}")
    spec = jsonrpc.METHODS.get(a.method)
    if (
        isinstance(params, dict)
        and "env" not in params
        and spec is not None
        and "env" in spec.params.__struct_fields__
    ):
        # Where the daemon needs to know where the client runs, it is this terminal.
        params["env"] = client_env()
    transport = ctx.transport()

    def notification(env: jsonrpc.Envelope) -> bool:
        if a.notifications or env.method != jsonrpc.PROGRESS:
            render.print_json(
                {"jsonrpc": "2.0", "method": env.method, "params": msgspec.json.decode(env.params)}
            )
            sys.stdout.flush()
        return True

    reply = transport.call_raw(a.method, msgspec.Raw(msgspec.json.encode(params)), notification)
    if isinstance(reply.error, ErrorObject):
        render.print_json({"error": reply.error}, sys.stderr)
        return EXIT_FAILED
    render.print_json(msgspec.json.decode(reply.result) if reply.result else None)
    if a.follow:
        sys.stdout.flush()
        transport.listen(notification)
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------------


def _index_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("index options")
    group.add_argument("-i", "--index-url", help="the package index (default: PyPI), searched last")
    group.add_argument(
        "--extra-index-url",
        action="append",
        metavar="URL",
        help="another index, searched before --index-url in the order given (repeatable); "
        "a project is taken from the first index that has it",
    )
    group.add_argument(
        "-f", "--find-links", action="append", metavar="PATH|URL", help="extra file locations"
    )
    group.add_argument("--no-index", action="store_true", help="use --find-links only")
    group.add_argument("--offline", action="store_true", help="never touch the network")
    group.add_argument("--refresh", action="store_true", help="revalidate every cached page")
    group.add_argument(
        "--refresh-package", action="append", metavar="NAME", help="revalidate this project"
    )


def _python_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("target options")
    group.add_argument("-p", "--python", help="the target interpreter (path or version)")
    group.add_argument("--python-version", help="resolve for this Python (3.12 or 3.12.4)")
    group.add_argument(
        "--python-platform", help="resolve for this platform (linux, x86_64-manylinux_2_28, ...)"
    )


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the raw result as JSON",
    )
    group.add_argument(
        "--no-daemon",
        action="store_true",
        default=argparse.SUPPRESS,
        help="run the request in this process instead of the daemon",
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress output"
    )
    group.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="more detail"
    )


def _setup_daemon_stop(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=35.0, help="seconds to wait (default 35)")


def _setup_daemon_logs(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--lines", type=int, default=40, help="how many lines (default 40)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")


def _setup_cache_clean(p: argparse.ArgumentParser) -> None:
    p.add_argument("packages", nargs="*", metavar="PACKAGE")


def _setup_compile(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", nargs="*", metavar="SRC", help="requirements.in, pyproject.toml, or REQ")
    p.add_argument("-o", "--output-file", metavar="FILE", help="write the pins here")
    _resolution_args(p)
    p.add_argument("--generate-hashes", action="store_true", help="add --hash for every file")
    p.add_argument("--no-annotate", action="store_true", help="leave out the # via comments")
    p.add_argument("--no-header", action="store_true", help="leave out the header")
    p.add_argument("--emit-index-url", action="store_true", help="write the index URLs too")
    p.add_argument("--dry-run", action="store_true", help="print, do not write -o FILE")


def _setup_watch_add(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="requirements.in, requirements*.txt, pyproject.toml",
    )
    p.add_argument(
        "-o",
        "--output-file",
        metavar="FILE",
        help="the file a compile writes, whose pins are preferred (default: X.txt beside X.in)",
    )
    _resolution_args(p)


def _setup_watch_remove(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="PATH")
    p.add_argument("--id", type=int, action="append", help="a watch id (`burrow watch list`)")
    p.add_argument("--all", action="store_true", help="every watch")


def _setup_watch_events(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", type=int, default=0, help="stop after this many events")
    p.add_argument(
        "--timeout", type=float, default=None, help="fail after this many seconds without one"
    )


def _setup_rpc(p: argparse.ArgumentParser) -> None:
    p.add_argument("method", metavar="METHOD", help="a method of docs/rpc.md (resolve, status...)")
    p.add_argument(
        "params",
        nargs="?",
        default="{}",
        metavar="PARAMS",
        help="the params as a JSON object, - for standard input (default {}); a missing "
        '"env" is this terminal\'s',
    )
    p.add_argument(
        "--notifications", action="store_true", help="print $/progress notifications too"
    )
    p.add_argument(
        "--follow", action="store_true", help="keep printing notifications after the reply"
    )


def _resolution_args(p: argparse.ArgumentParser) -> None:
    """Add the options that decide a resolution (compile, watch add)."""
    p.add_argument("-c", "--constraint", action="append", metavar="FILE", help="constraints file")
    p.add_argument("--override", action="append", metavar="FILE", help="overrides file")
    p.add_argument("--extra", action="append", metavar="NAME", help="optional dependencies")
    p.add_argument("--all-extras", action="store_true", help="every optional dependency")
    p.add_argument("--group", action="append", metavar="NAME", help="a PEP 735 dependency group")
    p.add_argument("-U", "--upgrade", action="store_true", help="ignore the pins of -o FILE")
    p.add_argument(
        "-P", "--upgrade-package", action="append", metavar="NAME", help="upgrade this package"
    )
    _resolver_args(p)
    _build_args(p)
    _index_args(p)
    _python_args(p)


def _setup_prefetch(p: argparse.ArgumentParser) -> None:
    p.add_argument("requirements", nargs="*", metavar="NAME==VERSION")
    p.add_argument("-r", "--requirement", action="append", metavar="FILE", help="pins file")
    _build_args(p)
    _index_args(p)
    _python_args(p)


def _build_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("build options")
    group.add_argument("--no-build", action="store_true", help="never build a source; wheels only")
    group.add_argument(
        "--no-build-isolation",
        action="store_true",
        help="build with the target environment's packages, not an isolated environment",
    )


def _environment_args(parser: argparse.ArgumentParser, *, write: bool = True) -> None:
    group = parser.add_argument_group("environment options")
    group.add_argument(
        "-p",
        "--python",
        help="the environment's interpreter (path or version); default: VIRTUAL_ENV, "
        "then .venv here or in a parent",
    )
    group.add_argument(
        "--system",
        action="store_true",
        help="use the first python3 on PATH, not a virtual environment",
    )
    if write:
        group.add_argument(
            "--break-system-packages",
            action="store_true",
            help="allow changing an externally managed (PEP 668) interpreter",
        )


def _install_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("install options")
    group.add_argument(
        "--link-mode",
        choices=get_args(LinkModeName),
        default="hardlink",
        help="how files get from the cache into the environment (default: hardlink)",
    )
    group.add_argument("--reinstall", action="store_true", help="reinstall every package")
    group.add_argument(
        "--reinstall-package", action="append", metavar="NAME", help="reinstall this package"
    )
    group.add_argument(
        "--compile-bytecode", action="store_true", help="compile the installed .py files"
    )
    group.add_argument("--dry-run", action="store_true", help="show what would change")
    group.add_argument(
        "--require-hashes", action="store_true", help="every requirement needs --hash"
    )
    group.add_argument(
        "--strict", action="store_true", help="report installed packages with unmet requirements"
    )
    group.add_argument("--python-version", help="check wheels against this Python (3.12)")
    group.add_argument("--python-platform", help="check wheels against this platform")


def _setup_sync(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", nargs="+", metavar="REQUIREMENTS", help="pinned requirements files")
    p.add_argument(
        "--allow-empty-requirements",
        action="store_true",
        help="accept files that name no package (everything is removed)",
    )
    _install_args(p)
    _build_args(p)
    _index_args(p)
    _environment_args(p)


def _resolver_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prerelease",
        choices=get_args(PrereleaseName),
        help="when pre-releases may be chosen (default: if-necessary-or-explicit)",
    )
    p.add_argument("--pre", action="store_true", help="the same as --prerelease allow")
    p.add_argument(
        "--resolution",
        choices=get_args(ResolutionName),
        default="highest",
        help="which versions to prefer",
    )
    p.add_argument("--exclude-newer", metavar="DATE", help="ignore files uploaded after DATE")
    p.add_argument("--no-deps", action="store_true", help="only the direct requirements")
    p.add_argument(
        "--only-binary", action="append", metavar="NAMES", help="wheels only (names or :all:)"
    )
    p.add_argument(
        "--no-binary", action="append", metavar="NAMES", help="sdists only (names or :all:)"
    )


def _setup_install(p: argparse.ArgumentParser) -> None:
    p.add_argument("packages", nargs="*", metavar="PACKAGE", help="requirements (foo>=1, ./x.whl)")
    p.add_argument("-r", "--requirement", action="append", metavar="FILE", help="requirements file")
    p.add_argument("-e", "--editable", action="append", metavar="PATH", help="an editable project")
    p.add_argument("-c", "--constraint", action="append", metavar="FILE", help="constraints file")
    p.add_argument("--override", action="append", metavar="FILE", help="overrides file")
    p.add_argument("--extra", action="append", metavar="NAME", help="optional dependencies")
    p.add_argument("--all-extras", action="store_true", help="every optional dependency")
    p.add_argument("-U", "--upgrade", action="store_true", help="upgrade installed packages")
    p.add_argument(
        "-P", "--upgrade-package", action="append", metavar="NAME", help="upgrade this package"
    )
    _resolver_args(p)
    _install_args(p)
    _build_args(p)
    _index_args(p)
    _environment_args(p)


def _setup_uninstall(p: argparse.ArgumentParser) -> None:
    p.add_argument("packages", nargs="*", metavar="PACKAGE")
    p.add_argument("-r", "--requirement", action="append", metavar="FILE", help="names from FILE")
    p.add_argument("--dry-run", action="store_true", help="show what would be removed")
    _environment_args(p)


def _setup_list(p: argparse.ArgumentParser) -> None:
    _environment_args(p, write=False)


def _setup_venv(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default=".venv", help="where (default: .venv)")
    p.add_argument("-p", "--python", help="the interpreter to base it on (path or version)")
    p.add_argument("--seed", action="store_true", help="install pip (and setuptools, wheel)")
    p.add_argument("--clear", action="store_true", help="replace an existing environment")
    p.add_argument("--prompt", help="the prompt shown when activated")
    p.add_argument(
        "--system-site-packages", action="store_true", help="see the base interpreter's packages"
    )
    p.add_argument(
        "--link-mode", choices=get_args(LinkModeName), default="hardlink", help="for --seed"
    )
    _index_args(p)


def _no_options(p: argparse.ArgumentParser) -> None:
    return None


class _Leaf(NamedTuple):
    group: str | None
    name: str
    help: str
    func: Command
    setup: Callable[[argparse.ArgumentParser], None] = _no_options
    description: str | None = None


#: Command groups: name -> (help, dest of the action).
_GROUPS: Final = {
    "daemon": ("start, stop and inspect the daemon", "daemon_command"),
    "cache": ("inspect and clean the cache", "cache_command"),
    "watch": ("warm the cache when requirement files change", "watch_command"),
}

#: Every command, in the order ``--help`` lists them.
_LEAVES: Final = [
    _Leaf("daemon", "start", "start the daemon if it is not running", do_daemon_start),
    _Leaf("daemon", "status", "show what the daemon is doing", do_daemon_status),
    _Leaf(
        "daemon",
        "stop",
        "stop the daemon once its requests are done",
        do_daemon_stop,
        _setup_daemon_stop,
    ),
    _Leaf("daemon", "logs", "print the daemon log", do_daemon_logs, _setup_daemon_logs),
    _Leaf("cache", "dir", "print the cache directory", do_cache_dir),
    _Leaf("cache", "stats", "entries and size per bucket", do_cache_stats),
    _Leaf(
        "cache",
        "clean",
        "remove entries of PACKAGEs, or everything",
        do_cache_clean,
        _setup_cache_clean,
    ),
    _Leaf("cache", "prune", "remove what no entry needs", do_cache_prune),
    _Leaf(
        None,
        "compile",
        "resolve requirements to pinned versions (like uv pip compile / pip-compile)",
        do_compile,
        _setup_compile,
        "Resolve requirements files, pyproject.toml or requirements given here "
        "(arguments that are not files) into pins written in the pip-compile format.",
    ),
    _Leaf(
        None,
        "prefetch",
        "download and unpack pinned wheels into the cache",
        do_prefetch,
        _setup_prefetch,
    ),
    _Leaf(
        None,
        "sync",
        "make the environment hold exactly these pins (like uv pip sync / pip-sync)",
        do_sync,
        _setup_sync,
        "Install the pins of requirements files into the environment as given (no "
        "resolution) and remove every other package, keeping pip, setuptools and wheel in "
        "an environment burrowd did not create.",
    ),
    _Leaf(
        None,
        "install",
        "resolve and install packages, removing nothing (like uv pip install)",
        do_install,
        _setup_install,
    ),
    _Leaf(
        None, "uninstall", "remove packages from the environment", do_uninstall, _setup_uninstall
    ),
    _Leaf(None, "list", "list the installed packages", do_list, _setup_list),
    _Leaf(None, "freeze", "print the installed packages as requirements", do_freeze, _setup_list),
    _Leaf(None, "venv", "create a virtual environment", do_venv, _setup_venv),
    _Leaf(
        "watch",
        "add",
        "watch requirement files: resolve and prefetch whenever they change",
        do_watch_add,
        _setup_watch_add,
        "Watch requirements inputs (*.in, requirements*.txt, pyproject.toml). On every change "
        "the daemon resolves them as `burrow compile` would, with these options, and "
        "prefetches every wheel the result needs, in the background; a file of exact pins is "
        "prefetched as `burrow sync` installs it. Watches are kept across restarts.",
    ),
    _Leaf("watch", "remove", "stop watching files", do_watch_remove, _setup_watch_remove),
    _Leaf("watch", "list", "list the watched files and their state", do_watch_list),
    _Leaf(
        "watch",
        "events",
        "print watch events as they happen",
        do_watch_events,
        _setup_watch_events,
    ),
    _Leaf(
        None,
        "rpc",
        "send any JSON-RPC request and print the reply (see docs/rpc.md)",
        do_rpc,
        _setup_rpc,
    ),
]


def _chosen(argv: Sequence[str] | None) -> tuple[str | None, str | None] | None:
    """Return the (group, command) ``argv`` names, or ``None`` to build every command."""
    if argv is None:
        return None
    words = [a for a in argv if not a.startswith("-")]
    if not words:
        return None
    if words[0] in _GROUPS:
        return words[0], words[1] if len(words) > 1 else None
    return None, words[0]


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, sized without ``shutil``.

    argparse makes a formatter for every ``add_argument`` (to check the metavar), and the
    stock one imports ``shutil`` for the terminal's width: with ``zlib``, ``bz2`` and
    ``lzma``, 2 ms of every command, help or not. The width comes from the same places.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def _terminal_columns() -> int:
    """Return ``$COLUMNS``, else the width of the terminal on stdout, else 80."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """Return the argument parser of ``burrow``.

    Given ``argv`` that names a command, only that command's parser is built: building
    all of them costs a third as much as importing the client, on every run.
    """
    parser = argparse.ArgumentParser(
        prog="burrow",
        formatter_class=_Formatter,
        description="Talk to burrowd, the per-user Python package cache daemon.",
        epilog="Exit status: 0 ok, 1 the operation failed, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"burrow {__version__}")
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _chosen(argv)
    if (
        chosen is None
        and argv is not None
        and "--version" in argv
        and not {"-h", "--help"} & {*argv}
    ):
        return parser  # argparse prints the version and exits before it looks for a command
    if chosen is not None and not any(
        chosen in ((leaf.group, leaf.name), (leaf.group, None)) for leaf in _LEAVES
    ):
        chosen = None  # an unknown command: build them all so the error lists the choices
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for leaf in _LEAVES:
        wanted = chosen is None or chosen in ((leaf.group, leaf.name), (leaf.group, None))
        if not wanted:
            # Each sub-parser costs gettext lookups on disk; only the command run needs one.
            continue
        if leaf.group is None:
            parent = sub
        elif leaf.group in groups:
            parent = groups[leaf.group]
        else:
            help_text, dest = _GROUPS[leaf.group]
            group = sub.add_parser(leaf.group, help=help_text, formatter_class=_Formatter)
            parent = groups[leaf.group] = group.add_subparsers(
                dest=dest, metavar="ACTION", required=True
            )
        p = parent.add_parser(
            leaf.name, help=leaf.help, description=leaf.description, formatter_class=_Formatter
        )
        _common(p)
        leaf.setup(p)
        p.set_defaults(func=leaf.func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``burrow``; return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    args.argv = args_list
    for flag in ("json", "no_daemon", "quiet", "verbose"):
        if not hasattr(args, flag):
            setattr(args, flag, False)
    ctx = Context(args)
    command: Command = args.func
    try:
        return command(ctx)
    except RpcError as exc:
        if ctx.json:
            render.print_json({"error": exc.to_error()}, sys.stderr)
        else:
            render.print_error(exc, verbose=args.verbose)
        return EXIT_FAILED
    except (Failure, DaemonUnavailable, paths.SocketPathError) as exc:
        render.print_error(exc)
        return EXIT_FAILED
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    finally:
        ctx.close()


def run() -> NoReturn:
    """Run ``burrow`` as a program: flush the output, then exit without interpreter teardown.

    Tearing down the modules and running the garbage collector at exit costs a few
    milliseconds that nothing needs: there is no state left to clean up once the output is
    flushed. (Tests and embedders call :func:`main` instead.)
    """
    try:
        code = main()
    except SystemExit as exc:  # argparse's --version, --help and usage errors
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            sys.stderr.write(f"{exc.code}\n")
            code = EXIT_FAILED
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None: started with that descriptor closed
                stream.flush()
    except (BrokenPipeError, ValueError):
        code = code or EXIT_FAILED
    os._exit(code)


if __name__ == "__main__":
    run()
