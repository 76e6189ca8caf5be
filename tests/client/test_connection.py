"""The blocking client transport, against a peer the test scripts on a socket pair."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from burrowd.client import connection, launch
from burrowd.client.connection import DaemonUnavailable, SocketTransport
from burrowd.protocol import __version__, jsonrpc
from burrowd.protocol.build import build_id
from burrowd.protocol.errors import ErrorCode, RpcError
from burrowd.protocol.messages import ProgressParams, StatusParams, StatusResult

STATUS = {
    "pid": 1,
    "version": "v",
    "build": "b",
    "started_at": 0.0,
    "uptime": 0.0,
    "socket": "/s",
    "cache_dir": "/c",
    "log_file": "/l",
    "connections": 1,
    "requests": [],
    "idle_timeout": 0.0,
    "idle_for": 0.0,
}


class Peer:
    """The daemon's end of a socket pair, played by a script in a thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")
        self.received: list[dict[str, Any]] = []

    def read(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.reader.readline())
        self.received.append(message)
        return message

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[[Peer], None]], tuple[SocketTransport, Peer]]]:
    """Return ``start(script)``: a transport whose peer runs ``script`` in a thread."""
    threads: list[threading.Thread] = []
    opened: list[tuple[SocketTransport, Peer]] = []
    errors: list[BaseException] = []

    def start(script: Callable[[Peer], None]) -> tuple[SocketTransport, Peer]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.settimeout(5)
        theirs.settimeout(5)
        peer = Peer(theirs)
        transport = SocketTransport(ours, Path("/test.sock"))
        opened.append((transport, peer))

        def run() -> None:
            try:
                script(peer)
            except BaseException as exc:  # reported by the fixture
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
        return transport, peer

    yield start
    for thread in threads:
        thread.join(5)
    for transport, peer in opened:
        transport.close()
        peer.reader.close()
        peer.sock.close()
    assert not errors, errors


Scripted = Callable[[Callable[[Peer], None]], tuple[SocketTransport, Peer]]


class TestSocketTransport:
    def test_result_after_progress_and_strangers(self, scripted: Scripted) -> None:
        def script(peer: Peer) -> None:
            request = peer.read()
            rid = request["id"]
            progress = {"token": rid, "phase": "download", "current": 1, "total": 2}
            peer.send({"jsonrpc": "2.0", "method": "$/progress", "params": progress})
            peer.send({"jsonrpc": "2.0", "method": "$/progress", "params": {"bad": True}})
            peer.send({"jsonrpc": "2.0", "id": 999, "result": {}})
            peer.send({"jsonrpc": "2.0", "id": rid, "result": STATUS})

        transport, peer = scripted(script)
        seen: list[ProgressParams] = []
        result = transport.call("status", StatusParams(), StatusResult, on_progress=seen.append)
        assert result == msgspec.convert(STATUS, StatusResult)
        assert [(p.phase, p.current, p.total) for p in seen] == [("download", 1, 2)]
        assert peer.received == [{"method": "status", "id": 1, "params": {}, "jsonrpc": "2.0"}]

    def test_ids_increase(self, scripted: Scripted) -> None:
        def script(peer: Peer) -> None:
            for _ in range(2):
                peer.send({"jsonrpc": "2.0", "id": peer.read()["id"], "result": STATUS})

        transport, peer = scripted(script)
        transport.call("status", StatusParams(), StatusResult)
        transport.call("status", StatusParams(), StatusResult)
        assert [m["id"] for m in peer.received] == [1, 2]

    def test_error_reply_raises_rpc_error(self, scripted: Scripted) -> None:
        def script(peer: Peer) -> None:
            error = {"code": ErrorCode.LOCK_TIMEOUT, "message": "timed out", "data": {"k": 1}}
            peer.send({"jsonrpc": "2.0", "id": peer.read()["id"], "error": error})

        transport, _ = scripted(script)
        with pytest.raises(RpcError) as caught:
            transport.call("status", StatusParams(), StatusResult)
        assert (caught.value.code, caught.value.message, caught.value.data) == (
            ErrorCode.LOCK_TIMEOUT,
            "timed out",
            {"k": 1},
        )

    @pytest.mark.parametrize("how", ["closed-before", "reset"])
    def test_a_lost_connection_is_no_success(self, scripted: Scripted, how: str) -> None:
        # A BrokenPipeError is how a closed stdout ends a command quietly (exit 0): a request
        # that never reached the daemon, or whose answer never came, must not pass for one.
        def script(peer: Peer) -> None:
            if how == "reset":
                peer.sock.recv(1)  # leave the rest unread: closing then resets the connection
            peer.reader.close()
            peer.sock.close()

        transport, _peer = scripted(script)
        if how == "closed-before":
            time.sleep(0.1)
        with pytest.raises(DaemonUnavailable, match="connection"):
            transport.call("status", StatusParams(), StatusResult)

    def test_closed_connection(self, scripted: Scripted) -> None:
        def script(peer: Peer) -> None:
            peer.read()
            peer.sock.shutdown(socket.SHUT_WR)

        transport, _ = scripted(script)
        with pytest.raises(DaemonUnavailable, match="closed the connection"):
            transport.call("status", StatusParams(), StatusResult)

    def test_interrupt_cancels_the_request(self, scripted: Scripted) -> None:
        def script(peer: Peer) -> None:
            rid = peer.read()["id"]
            peer.send(
                {"jsonrpc": "2.0", "method": "$/progress", "params": {"token": rid, "phase": "x"}}
            )
            cancel = peer.read()
            assert cancel == {
                "method": "$/cancelRequest",
                "params": {"id": rid},
                "jsonrpc": "2.0",
            }
            error = {"code": -32800, "message": "cancelled"}
            peer.send({"jsonrpc": "2.0", "id": rid, "error": error})

        def interrupt(_: ProgressParams) -> None:
            raise KeyboardInterrupt

        transport, peer = scripted(script)
        with pytest.raises(KeyboardInterrupt):
            transport.call("status", StatusParams(), StatusResult, on_progress=interrupt)
        assert len(peer.received) == 2


@pytest.fixture
def short_dir() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="bw", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


class TestConnect:
    def test_nothing_there(self, short_dir: Path) -> None:
        assert connection.connect(short_dir / "missing.sock") is None
        assert connection.connect(short_dir / "missing" / "x.sock") is None

    def test_stale_socket(self, short_dir: Path) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
            stale.bind(os.fspath(short_dir / "s"))
        assert connection.connect(short_dir / "s") is None

    def test_not_a_directory(self, short_dir: Path) -> None:
        (short_dir / "file").write_text("")
        assert connection.connect(short_dir / "file" / "s") is None

    def test_live_socket(self, short_dir: Path) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(os.fspath(short_dir / "s"))
            listener.listen(1)
            sock = connection.connect(short_dir / "s")
            assert sock is not None
            sock.close()

    def test_open_transport_without_start(
        self, short_dir: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("BURROW_SOCKET", os.fspath(short_dir / "s"))
        with pytest.raises(DaemonUnavailable, match="burrowd is not running"):
            connection.open_transport(start=False)

    def test_open_transport_with_a_long_socket_path(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BURROW_SOCKET", "/tmp/" + "x" * 200)
        with pytest.raises(DaemonUnavailable, match="shorter path"):
            connection.open_transport(start=False)

    def test_a_socket_another_user_serves_gets_nothing(self, short_dir: Path) -> None:
        # A request carries the whole environment: in a shared directory the socket could be
        # anyone's. (The listener runs as another user, which only root can arrange.)
        if os.geteuid() != 0:
            pytest.skip("serving a socket as another user needs root")
        path = short_dir / "s"
        os.chmod(short_dir, 0o777)
        code = (
            "import os, socket, sys, time\n"
            "os.setgid(65534); os.setuid(65534)\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            f"s.bind({os.fspath(path)!r}); s.listen(1)\n"
            "print('ready', flush=True); time.sleep(30)\n"
        )
        with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) as server:
            try:
                assert server.stdout is not None
                assert server.stdout.readline() == b"ready\n"
                with pytest.raises(DaemonUnavailable, match="served by another user"):
                    connection.connect(path)
            finally:
                server.kill()

    @pytest.mark.parametrize("refusal", ["close", "shutting-down"])
    def test_a_stopping_daemon_is_asked_again(
        self, short_dir: Path, monkeypatch: pytest.MonkeyPatch, refusal: str
    ) -> None:
        # Another terminal's `daemon stop`, or an upgrade: the daemon still accepts a
        # connection, then closes it or refuses the handshake; the next one answers.
        path = short_dir / "s"
        monkeypatch.setenv("BURROW_SOCKET", os.fspath(path))
        answer = {
            "protocol_version": jsonrpc.PROTOCOL_VERSION,
            "server_version": __version__,
            "server_build": build_id(),
            "pid": os.getpid(),
        }
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(os.fspath(path))
            listener.listen(4)

            def serve() -> None:
                for attempt in range(3):
                    conn, _ = listener.accept()
                    with conn:
                        peer = Peer(conn)
                        request = peer.read()
                        if attempt == 2:
                            peer.send({"jsonrpc": "2.0", "id": request["id"], "result": answer})
                            conn.recv(1)  # until the client hangs up
                        elif refusal == "shutting-down":
                            error = {"code": ErrorCode.SHUTTING_DOWN, "message": "stopping"}
                            peer.send({"jsonrpc": "2.0", "id": request["id"], "error": error})
                        peer.reader.close()

            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            transport = connection.open_transport(start=False)
            assert isinstance(transport, SocketTransport)
            transport.close()
            thread.join(5)


class TestHelpers:
    def test_log_tail(self, tmp_path: Path) -> None:
        log = tmp_path / "d.log"
        log.write_text("".join(f"line {n}\n" for n in range(100)))
        assert connection.log_tail(log, 3) == "line 97\nline 98\nline 99"
        assert connection.log_tail(tmp_path / "missing.log") == ""

    @pytest.mark.parametrize(
        ("written", "close", "expected"),
        [
            pytest.param(b"READY=1\n", False, "READY=1", id="ready"),
            pytest.param(b"ALREADY_RUNNING=1\nmore\n", False, "ALREADY_RUNNING=1", id="first-line"),
            pytest.param(b"ERROR=bad", True, "ERROR=bad", id="eof-after-partial"),
            pytest.param(b"", True, "", id="eof"),
            pytest.param(b"READY", False, None, id="timeout"),
        ],
    )
    def test_wait_ready(self, written: bytes, close: bool, expected: str | None) -> None:
        read_fd, write_fd = os.pipe()
        try:
            os.write(write_fd, written)
            if close:
                os.close(write_fd)
                write_fd = -1
            assert launch._wait_ready(read_fd, 0.1) == expected
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)


class TestLineReader:
    """The transport reads newline-delimited messages straight from the socket."""

    @pytest.fixture
    def pair(self) -> Iterator[tuple[socket.socket, socket.socket]]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with ours, theirs:
            yield ours, theirs

    def test_lines_that_arrive_together_or_in_pieces(
        self, pair: tuple[socket.socket, socket.socket]
    ) -> None:
        ours, theirs = pair
        reader = connection._LineReader(ours)
        theirs.sendall(b'{"a": 1}\n{"b": 2}\n{"c"')
        assert reader.readline() == b'{"a": 1}\n'
        assert reader.readline() == b'{"b": 2}\n'
        theirs.sendall(b": 3}\n")
        assert reader.readline() == b'{"c": 3}\n'

    def test_a_line_longer_than_one_read(self, pair: tuple[socket.socket, socket.socket]) -> None:
        ours, theirs = pair
        big = b'{"x": "' + b"y" * (3 * connection.RECV_SIZE) + b'"}\n'
        sender = threading.Thread(target=theirs.sendall, args=(big + b"{}\n",))
        sender.start()
        reader = connection._LineReader(ours)
        assert reader.readline() == big
        assert reader.readline() == b"{}\n"
        sender.join()

    def test_end_of_stream(self, pair: tuple[socket.socket, socket.socket]) -> None:
        ours, theirs = pair
        reader = connection._LineReader(ours)
        theirs.sendall(b"{}\npartial")
        theirs.shutdown(socket.SHUT_WR)
        assert reader.readline() == b"{}\n"
        assert reader.readline() == b"partial"
        assert reader.readline() == b""

    def test_a_timeout_keeps_what_arrived(self, pair: tuple[socket.socket, socket.socket]) -> None:
        ours, theirs = pair
        reader = connection._LineReader(ours)
        theirs.sendall(b'{"half": ')
        ours.settimeout(0.05)
        with pytest.raises(TimeoutError):
            reader.readline()
        ours.settimeout(None)
        theirs.sendall(b"true}\n")
        assert reader.readline() == b'{"half": true}\n'
