#!/usr/bin/env python3
"""Talk to burrowd as an editor plugin would, with nothing but the standard library.

Connect to the daemon's socket, speak JSON-RPC 2.0 with LSP framing (``Content-Length``
headers), ``initialize``, resolve the requirements given on the command line with
``$/progress`` shown on stderr, and print the pins and the compiled text::

    burrow daemon start
    python examples/editor_client.py 'requests>=2'
    python examples/editor_client.py --cancel-after-progress 'django>=5'
    python examples/editor_client.py --watch requirements.in --events 3

The API reference is ``docs/rpc.md``. Copy this file freely.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

#: burrowd's ``burrowd.protocol.jsonrpc.PROTOCOL_VERSION``, hardcoded because this script
#: imports nothing of burrowd; ``initialize`` tells us the daemon's.
PROTOCOL_VERSION = 1
REQUEST_CANCELLED = -32800
INITIALIZE = {
    "protocol_version": PROTOCOL_VERSION,
    "client_version": "0.1",
    "client_build": "example-0.1",
    "client_name": "example-editor",
}

Message = dict[str, Any]


class RpcError(Exception):
    """An error response from the daemon: the ``code`` and ``message`` of its error object."""

    def __init__(self, error: Message) -> None:
        super().__init__(error["message"])
        self.code: int = error["code"]
        self.message: str = error["message"]


def _private_dir(path: str) -> bool:
    """Return whether ``path`` is a directory of ours with mode 0700, as XDG requires."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o777 == 0o700


def socket_path(env: Mapping[str, str] = os.environ) -> str:
    """Return the daemon's socket path, by the rules burrowd itself follows."""
    if env.get("BURROW_SOCKET"):
        return os.path.abspath(env["BURROW_SOCKET"])
    xdg = env.get("XDG_RUNTIME_DIR", "")
    run_user = f"/run/user/{os.geteuid()}"
    if xdg and os.path.isabs(xdg) and _private_dir(xdg):
        base = xdg
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches/TemporaryItems")
    elif _private_dir(run_user):
        base = run_user
    else:
        base = os.path.join(tempfile.gettempdir(), f"runtime-{os.geteuid()}")
    return os.path.join(base, "burrowd", "burrowd.sock")


def frame(message: Message) -> bytes:
    """Encode ``message`` with LSP framing: the header tells the daemon to answer in kind."""
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def read_message(stream: BinaryIO) -> Message:
    """Read one LSP-framed message; raise ``EOFError`` when the daemon hung up."""
    length = None
    while True:
        line = stream.readline()
        if not line:
            raise EOFError("the daemon closed the connection")
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("ascii").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length is None:
        raise ValueError("a message without a Content-Length header")
    message: Message = json.loads(stream.read(length))
    return message


class Connection:
    """One connection to burrowd: send requests and notifications, read what comes back."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.stream, self.next_id = self.sock.makefile("rb"), 0

    def send(self, method: str, params: Message, *, notification: bool = False) -> int:
        """Send a request and return its id, or a notification (no id: nobody answers)."""
        message: Message = {"jsonrpc": "2.0", "method": method, "params": params}
        if not notification:
            self.next_id += 1
            message["id"] = self.next_id
        self.sock.sendall(frame(message))
        return self.next_id

    def wait(self, request_id: int, on_notification: Callable[[Message], None]) -> Any:
        """Read until the response to ``request_id``; hand notifications to the callback."""
        while True:
            message = read_message(self.stream)
            if "method" in message:
                on_notification(message)
            elif message.get("id") == request_id:
                if "error" in message:
                    raise RpcError(message["error"])
                return message["result"]

    def call(self, method: str, params: Message) -> Any:
        """Send a request and return its result, ignoring notifications meanwhile."""
        return self.wait(self.send(method, params), lambda _: None)


def package_params(args: argparse.Namespace, **fields: Any) -> Message:
    """Return the params of a package method: where we run, the index, and ``fields``."""
    # The daemon resolves relative paths against cwd and picks the target Python from these.
    env = {
        "cwd": os.getcwd(),
        "virtual_env": os.environ.get("VIRTUAL_ENV"),
        "path": os.environ.get("PATH", ""),
    }
    params: Message = {"env": env, **fields}
    if args.index_url:
        params["index"] = {"index_url": args.index_url}
    return params


def resolve(conn: Connection, args: argparse.Namespace) -> int:
    """Resolve ``args.requirements``, show progress, print the pins; return the exit status."""
    params = package_params(args, requirements=args.requirements, dry_run=True)
    request_id = conn.send("resolve", params)
    cancel_sent = False

    def on_notification(message: Message) -> None:
        nonlocal cancel_sent
        if message["method"] != "$/progress" or message["params"]["token"] != request_id:
            return
        p = message["params"]
        total = "" if p.get("total") is None else f"/{p['total']}"
        print(f"[{p['phase']}] {p.get('current', 0)}{total}", file=sys.stderr)
        if args.cancel_after_progress and not cancel_sent:
            conn.send("$/cancelRequest", {"id": request_id}, notification=True)
            cancel_sent = True

    try:
        result = conn.wait(request_id, on_notification)
    except RpcError as exc:
        if exc.code == REQUEST_CANCELLED and cancel_sent:
            print(f"cancelled: {exc.message} (error {exc.code})")
            return 0
        raise
    for package in result["packages"]:
        print(f"{package['name']}=={package['version']}")
    print()
    print(result["output"], end="")
    return 0


def watch(conn: Connection, args: argparse.Namespace) -> int:
    """Subscribe to watch events, watch ``args.watch`` and print events as JSON lines."""
    # Subscribe first, so that no event of the first warming is missed.
    conn.call("watch.events", {"subscribe": True})
    conn.call("watch.add", package_params(args, requirement_files=[args.watch]))
    received = 0
    while args.events is None or received < args.events:
        message = read_message(conn.stream)
        if message.get("method") == "watch.event":
            print(json.dumps(message["params"]), flush=True)
            received += 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the example; return its exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("requirements", nargs="*", help="requirements to resolve (foo>=1)")
    parser.add_argument("--socket", help="the daemon's socket (default: as burrowd finds it)")
    parser.add_argument("--index-url", help="the package index to resolve from")
    parser.add_argument("--cancel-after-progress", action="store_true", help="then cancel")
    parser.add_argument("--watch", metavar="PATH", help="print watch events of this file")
    parser.add_argument("--events", type=int, help="with --watch: stop after N events")
    args = parser.parse_args(argv)
    if not args.requirements and not args.watch:
        parser.error("give requirements to resolve, or --watch PATH")

    path = args.socket or socket_path()
    try:
        conn = Connection(path)
    except OSError as exc:
        print(f"cannot connect to {path} ({exc}): run `burrow daemon start`", file=sys.stderr)
        return 1
    try:
        server = conn.call("initialize", INITIALIZE)
        # With --watch, stdout carries only events, one JSON document a line.
        out = sys.stderr if args.watch else sys.stdout
        print(f"burrowd {server['server_version']} (pid {server['pid']})", file=out)
        if server["protocol_version"] != PROTOCOL_VERSION:
            print(f"warning: written for protocol {PROTOCOL_VERSION}", file=sys.stderr)
        return watch(conn, args) if args.watch else resolve(conn, args)
    except RpcError as exc:
        print(f"error {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, EOFError, ValueError) as exc:
        print(f"connection to burrowd failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        conn.sock.close()


if __name__ == "__main__":
    sys.exit(main())
