"""``burrowd``: run the daemon in the foreground of this process.

Normally started by the ``burrow`` client (detached, with ``--ready-fd``) or by systemd
(socket activation, ``NOTIFY_SOCKET``); running it by hand is fine too.
"""

from __future__ import annotations

import gc
import sys

if __name__ == "__main__":
    # Importing the daemon allocates tens of thousands of objects that live as long as it
    # does; collecting during the imports is wasted work, about a sixth of start-up.
    # tune_gc() turns the collector back on before the daemon serves.
    gc.disable()

import argparse
import contextlib
import os
from collections.abc import Sequence

from burrowd.daemon import pyquery
from burrowd.daemon.config import Config, ConfigError
from burrowd.protocol import __version__
from burrowd.protocol.paths import SocketPathError

__all__ = ["EXIT_ALREADY_RUNNING", "main"]

#: Exit status when another daemon already owns the socket (the client then just connects).
EXIT_ALREADY_RUNNING = 3
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3
LOG_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"


def _setup_logging(config: Config, verbose: bool) -> None:
    import logging.handlers  # noqa: PLC0415  (see main)

    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    handler: logging.Handler
    if config.log_to_stderr:
        handler = logging.StreamHandler(sys.stderr)
    else:
        config.log_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            config.log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _write_ready(fd: int | None, message: str) -> None:
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.write(fd, message.encode() + b"\n")
    with contextlib.suppress(OSError):
        os.close(fd)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the daemon; return its exit status."""
    parser = argparse.ArgumentParser(prog="burrowd", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"burrowd {__version__}")
    parser.add_argument(
        "--ready-fd", type=int, help="write READY=1 to this file descriptor once serving"
    )
    parser.add_argument("--foreground", action="store_true", help="log to stderr, not the log file")
    parser.add_argument("--idle-timeout", type=float, help="override BURROW_IDLE_TIMEOUT (seconds)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    args = parser.parse_args(argv)

    ready_fd: int | None = args.ready_fd
    if ready_fd is None and os.environ.get("BURROW_READY_FD", "").isdigit():
        ready_fd = int(os.environ.pop("BURROW_READY_FD"))
    try:
        config = Config.from_env()
    except (ConfigError, SocketPathError) as exc:
        print(f"burrowd: {exc}", file=sys.stderr)
        _write_ready(ready_fd, f"ERROR={exc}")
        return 1
    # Before the imports below (most of the start-up, asyncio's alone about 30 ms): the
    # first request will want this, and behind a pyenv shim it takes longer than they do.
    pyquery.start_early(config.cache_dir)
    import asyncio  # noqa: PLC0415
    import logging  # noqa: PLC0415

    from burrowd.daemon.app import (  # noqa: PLC0415
        AlreadyRunning,
        Daemon,
        SocketBusy,
        bind_listener,
        tune_gc,
    )

    if args.foreground:
        config = config.with_changes(log_to_stderr=True)
    if args.idle_timeout is not None:
        config = config.with_changes(idle_timeout=max(0.0, args.idle_timeout))
    _setup_logging(config, args.verbose)

    try:
        listener = bind_listener(config)
    except SocketBusy as exc:
        print(f"burrowd: {exc}", file=sys.stderr)
        _write_ready(ready_fd, f"ERROR={exc}")
        return 1
    except AlreadyRunning as exc:
        print(f"burrowd: {exc}", file=sys.stderr)
        logging.getLogger(__name__).info("not starting: %s", exc)
        _write_ready(ready_fd, "ALREADY_RUNNING=1")
        return EXIT_ALREADY_RUNNING
    except OSError as exc:
        print(f"burrowd: cannot listen on {config.socket_path}: {exc}", file=sys.stderr)
        _write_ready(ready_fd, f"ERROR={exc}")
        return 1

    daemon = Daemon(config, listener, on_ready=lambda: _write_ready(ready_fd, "READY=1"))
    tune_gc()
    try:
        asyncio.run(daemon.run())
    except Exception:
        logging.getLogger(__name__).exception("burrowd crashed")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
