"""``burrow``: the command-line client of burrowd.

Exit status: 0 success, 1 the operation failed (the daemon answered with an error, or no
daemon could be reached), 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

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
from burrowd.protocol import __version__, paths
from burrowd.protocol.errors import EXIT_FAILED, EXIT_OK, RpcError
from burrowd.protocol.messages import (
    ShutdownParams,
    ShutdownResult,
    StatusParams,
    StatusResult,
)

__all__ = ["Failure", "main"]

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
    while time.monotonic() < deadline and _alive(result.pid):
        time.sleep(0.02)
    if _alive(result.pid):
        fail(f"burrowd (pid {result.pid}) is still finishing requests after {ctx.args.timeout:g}s")
    ctx.output({"stopped": result.pid}, lambda: print(f"stopped burrowd (pid {result.pid})"))
    return EXIT_OK


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return waited == 0


def do_daemon_logs(ctx: Context) -> int:
    """Print the end of the daemon log; ``-f`` keeps following it."""
    log_file = paths.log_file()
    if not log_file.exists():
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


# -- parser ----------------------------------------------------------------------------------


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


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``burrow``."""
    parser = argparse.ArgumentParser(
        prog="burrow",
        description="Talk to burrowd, the per-user Python package cache daemon.",
        epilog="Exit status: 0 ok, 1 the operation failed, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"burrow {__version__}")
    _common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    daemon = sub.add_parser("daemon", help="start, stop and inspect the daemon")
    dsub = daemon.add_subparsers(dest="daemon_command", metavar="ACTION", required=True)
    p = dsub.add_parser("start", help="start the daemon if it is not running")
    _common(p)
    p.set_defaults(func=do_daemon_start)
    p = dsub.add_parser("status", help="show what the daemon is doing")
    _common(p)
    p.set_defaults(func=do_daemon_status)
    p = dsub.add_parser("stop", help="stop the daemon once its requests are done")
    _common(p)
    p.add_argument("--timeout", type=float, default=35.0, help="seconds to wait (default 35)")
    p.set_defaults(func=do_daemon_stop)
    p = dsub.add_parser("logs", help="print the daemon log")
    _common(p)
    p.add_argument("-n", "--lines", type=int, default=40, help="how many lines (default 40)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    p.set_defaults(func=do_daemon_logs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``burrow``; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
