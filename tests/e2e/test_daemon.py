"""The real daemon over its real socket: handshake, framing, errors, instances, peers, idling."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from burrowd.daemon.locks import FileLock
from burrowd.protocol import __version__
from burrowd.protocol.jsonrpc import PROTOCOL_VERSION
from tests.e2e.helpers import BurrowEnv, DaemonProcess, current_build, wait_until

STATUS = b'{"jsonrpc": "2.0", "id": 1, "method": "status"}\n'


def _status_ok(client: Any) -> None:
    """Check that ``client``'s connection still gets answers."""
    result = client.call("status")
    assert result["pid"] > 0


class TestHandshake:
    def test_initialize_reports_versions_and_build(self, shared_env: BurrowEnv) -> None:
        with shared_env.connect() as client:
            result = client.initialize()
        assert result == {
            "protocol_version": PROTOCOL_VERSION,
            "server_version": __version__,
            "server_build": current_build(),
            "pid": shared_env.daemons[0].pid,
        }

    def test_status_describes_the_daemon(self, shared_env: BurrowEnv) -> None:
        env = shared_env
        with env.connect() as client, env.connect() as other:
            other.call("initialize", _init_params())
            status = client.call("status")
        assert status["pid"] == env.daemons[0].pid
        assert status["version"] == __version__
        assert status["build"] == current_build()
        assert status["socket"] == str(env.socket)
        assert status["cache_dir"] == str(env.cache)
        assert status["log_file"] == str(env.log)
        assert status["connections"] >= 2
        assert status["requests"] == []
        assert status["idle_timeout"] == 60.0
        assert 0 <= status["uptime"] < 300
        assert abs(status["started_at"] - time.time()) < 300
        assert 0 <= status["idle_for"] < 300

    def test_socket_and_dir_are_private(self, shared_env: BurrowEnv) -> None:
        assert shared_env.run_dir.stat().st_mode & 0o777 == 0o700
        assert shared_env.socket.stat().st_mode & 0o777 == 0o600
        assert shared_env.socket.is_socket()

    def test_sigterm_stops_cleanly(self, env: BurrowEnv, daemon: DaemonProcess) -> None:
        assert daemon.stop() == 0
        assert not env.socket.exists()
        lock = FileLock(env.lock, "the burrowd instance")
        assert lock.try_acquire(), "the stopped daemon still holds its instance lock"
        lock.release()
        log = env.log_text()
        assert f"burrowd {daemon.pid} serving {env.socket}" in log
        assert "shutting down: signal SIGTERM" in log
        assert f"burrowd {daemon.pid} stopped" in log


def _init_params(**changes: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "protocol_version": PROTOCOL_VERSION,
        "client_version": __version__,
        "client_build": "0" * 16,
    }
    params.update(changes)
    return params


class TestConcurrency:
    def test_two_connections_interleave(self, shared_env: BurrowEnv) -> None:
        with shared_env.connect() as a, shared_env.connect() as b:
            # A first round trip each, so that the daemon has accepted both connections.
            _status_ok(a)
            _status_ok(b)
            # The same id on two connections: each connection has its own id space.
            a.send_json(
                {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": _init_params()}
            )
            b.send_json({"jsonrpc": "2.0", "id": 1, "method": "status"})
            a.send_json({"jsonrpc": "2.0", "id": 2, "method": "status"})
            b.send_json(
                {"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": _init_params()}
            )
            b_replies = {r["id"]: r["result"] for r in (b.read(), b.read())}
            a_replies = {r["id"]: r["result"] for r in (a.read(), a.read())}
        assert a_replies[1]["protocol_version"] == PROTOCOL_VERSION
        assert b_replies[2]["protocol_version"] == PROTOCOL_VERSION
        assert a_replies[2]["connections"] >= 2
        assert b_replies[1]["connections"] >= 2

    def test_fifty_requests_in_flight_on_one_connection(self, shared_env: BurrowEnv) -> None:
        ids: list[int | str] = [n if n % 2 else f"req-{n}" for n in range(50)]
        burst = b"".join(
            json.dumps({"jsonrpc": "2.0", "id": rid, "method": "status"}).encode() + b"\n"
            for rid in ids
        )
        with shared_env.connect() as client:
            client.send(burst)
            replies = [client.read() for _ in ids]
            assert client.nothing_pending()
        assert sorted(map(str, (r["id"] for r in replies))) == sorted(map(str, ids))
        assert all("result" in r for r in replies)
        # Ids keep their JSON type: 1 stays a number, "req-2" a string.
        assert {type(r["id"]) for r in replies} == {int, str}


ERROR_CASES = [
    pytest.param(b"{bad", -32700, None, "parse error", id="malformed-json"),
    pytest.param(
        b'{"jsonrpc": "2.0", "id": 1, "method": "status"', -32700, None, "parse", id="truncated"
    ),
    pytest.param(b"\xff\xfe{}", -32700, None, "parse", id="not-utf8"),
    pytest.param(b"42", -32600, None, "invalid request", id="scalar"),
    pytest.param(b'{"id": 3, "method": "status"}', -32600, 3, '"jsonrpc"', id="no-jsonrpc"),
    pytest.param(
        b'{"jsonrpc": "1.0", "id": 4, "method": "status"}', -32600, 4, '"2.0"', id="jsonrpc-1.0"
    ),
    pytest.param(
        b'{"jsonrpc": 2.0, "id": 5, "method": "status"}',
        -32600,
        None,
        "$.jsonrpc",
        id="jsonrpc-num",
    ),
    pytest.param(
        b'{"jsonrpc": "2.0", "id": {"n": 1}, "method": "status"}', -32600, None, "$.id", id="id-obj"
    ),
    pytest.param(
        b'{"jsonrpc": "2.0", "id": [1], "method": "status"}', -32600, None, "$.id", id="id-array"
    ),
    pytest.param(
        b'{"jsonrpc": "2.0", "id": true, "method": "status"}', -32600, None, "$.id", id="id-bool"
    ),
    pytest.param(
        b'{"jsonrpc": "2.0", "id": null, "method": "status"}', -32600, None, "null", id="id-null"
    ),
    pytest.param(
        b'{"jsonrpc": "2.0", "id": 6, "method": 7}', -32600, None, "$.method", id="method-number"
    ),
    pytest.param(b'{"jsonrpc": "2.0", "id": 7}', -32600, 7, "method", id="no-method"),
    pytest.param(
        b'{"jsonrpc": "2.0", "id": 8, "method": "status", "params": []}',
        -32602,
        8,
        "must be an object",
        id="params-array",
    ),
    pytest.param(
        b'{"jsonrpc": "2.0", "id": 9, "method": "status", "params": "x"}',
        -32602,
        9,
        "must be an object",
        id="params-string",
    ),
    pytest.param(
        b'{"jsonrpc": "2.0", "id": 10, "method": "cache.frobnicate"}',
        -32601,
        10,
        "'cache.frobnicate' not found",
        id="unknown-method",
    ),
    pytest.param(
        json.dumps(
            {"jsonrpc": "2.0", "id": 11, "method": "initialize", "params": _init_params()}
        ).replace('"protocol_version": 1', '"protocol_version": "x"'),
        -32602,
        11,
        "$.protocol_version",
        id="protocol-version-str",
    ),
    pytest.param(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 12,
                "method": "initialize",
                "params": {"protocol_version": 1, "client_version": "x"},
            }
        ),
        -32602,
        12,
        "client_build",
        id="missing-field",
    ),
    pytest.param(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": "thirteen",
                "method": "initialize",
                "params": _init_params(client_version=13),
            }
        ),
        -32602,
        "thirteen",
        "$.client_version",
        id="client-version-int",
    ),
    pytest.param(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 14,
                "method": "resolve",
                "params": {"env": {"cwd": "/"}, "requirements": ["x"], "resolution": "weird"},
            }
        ),
        -32602,
        14,
        "$.resolution",
        id="resolution-not-a-strategy",
    ),
    pytest.param(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 15,
                "method": "resolve",
                "params": {"env": {"cwd": "/"}, "requirements": ["x"], "prerelease": "maybe"},
            }
        ),
        -32602,
        15,
        "$.prerelease",
        id="prerelease-not-a-mode",
    ),
]


class TestMalformedInput:
    @pytest.mark.parametrize(("line", "code", "rid", "fragment"), ERROR_CASES)
    def test_error_reply_then_the_connection_goes_on(
        self, shared_env: BurrowEnv, line: bytes | str, code: int, rid: Any, fragment: str
    ) -> None:
        data = line.encode() if isinstance(line, str) else line
        with shared_env.connect() as client:
            client.send(data + b"\n")
            reply = client.read()
            assert reply["jsonrpc"] == "2.0"
            assert reply["id"] == rid
            assert reply["error"]["code"] == code, reply
            assert fragment in reply["error"]["message"]
            _status_ok(client)
        with shared_env.connect() as fresh:
            _status_ok(fresh)

    def test_invalid_params_data_names_the_field(self, shared_env: BurrowEnv) -> None:
        with shared_env.connect() as client:
            reply = client.request("initialize", _init_params(protocol_version="x"))
        error = reply["error"]
        assert error["code"] == -32602
        assert error["data"]["method"] == "initialize"
        assert error["data"]["path"] == "$.protocol_version"

    def test_unknown_method_lists_the_methods(self, shared_env: BurrowEnv) -> None:
        with shared_env.connect() as client:
            reply = client.request("nope")
        data = reply["error"]["data"]
        assert data["method"] == "nope"
        assert data["methods"] == sorted(data["methods"])
        assert {"initialize", "shutdown", "status"} <= set(data["methods"])
        assert "nope" not in data["methods"]

    def test_empty_batch(self, shared_env: BurrowEnv) -> None:
        with shared_env.connect() as client:
            client.send(b"[]\n")
            reply = client.read()
            assert reply["id"] is None
            assert reply["error"]["code"] == -32600
            _status_ok(client)

    def test_mixed_batch(self, shared_env: BurrowEnv) -> None:
        batch = [
            {"jsonrpc": "2.0", "id": 1, "method": "status"},
            1,
            {"jsonrpc": "2.0", "method": "$/progress", "params": {}},
            {"jsonrpc": "2.0", "id": 2, "method": "nope"},
            {"jsonrpc": "2.0", "id": 3, "method": "status", "params": [1]},
            {"jsonrpc": "1.0", "id": 4, "method": "status"},
            {"jsonrpc": "2.0", "id": "five", "method": "initialize", "params": _init_params()},
        ]
        with shared_env.connect() as client:
            client.send_json(batch)
            replies = client.read()
            _status_ok(client)
        assert isinstance(replies, list)
        by_id = {str(r["id"]): r for r in replies}
        assert len(replies) == len(by_id) == 6, replies
        assert "pid" in by_id["1"]["result"]
        assert by_id["None"]["error"]["code"] == -32600
        assert by_id["2"]["error"]["code"] == -32601
        assert by_id["3"]["error"]["code"] == -32602
        assert by_id["4"]["error"]["code"] == -32600
        assert by_id["five"]["result"]["protocol_version"] == PROTOCOL_VERSION

    def test_notifications_get_no_reply(self, shared_env: BurrowEnv) -> None:
        with shared_env.connect() as client:
            client.send_json({"jsonrpc": "2.0", "method": "$/whatever"})
            client.send_json({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 99}})
            client.send_json({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": [1]})
            client.send_json([{"jsonrpc": "2.0", "method": "$/whatever"}])
            # Responses from the client (nothing asks it anything) are ignored too.
            client.send_json({"jsonrpc": "2.0", "id": 5, "result": {}})
            client.send_json({"jsonrpc": "2.0", "id": 6, "result": None})
            client.send_json({"jsonrpc": "2.0", "id": 7, "error": {"code": 1, "message": "no"}})
            assert client.nothing_pending()
            reply = client.request("status", rid="after")
        assert "result" in reply

    def test_blank_lines_are_skipped(self, shared_env: BurrowEnv) -> None:
        with shared_env.connect() as client:
            client.send(b"\n\r\n  \n" + STATUS)
            assert client.read()["id"] == 1


class TestLspFraming:
    def test_initialize_and_status_round_trip(self, shared_env: BurrowEnv) -> None:
        pid = shared_env.daemons[0].pid
        with shared_env.connect(lsp=True) as client:
            client.send_json(
                {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": _init_params()}
            )
            headers, body = client.read_lsp_frame()
            assert headers == {"content-length": str(len(body))}
            assert json.loads(body)["result"]["pid"] == pid
            status = client.call("status")
        assert status["pid"] == pid

    def test_extra_headers_and_frames_in_one_write(self, shared_env: BurrowEnv) -> None:
        body = b'{"jsonrpc": "2.0", "id": 7, "method": "status"}'
        frame = (
            b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        with shared_env.connect(lsp=True) as client:
            client.send(frame + frame.replace(b'"id": 7', b'"id": 8'))
            assert [client.read()["id"], client.read()["id"]] == [7, 8]

    def test_errors_are_framed_too(self, shared_env: BurrowEnv) -> None:
        with shared_env.connect(lsp=True) as client:
            client.send(b"Content-Length: 4\r\n\r\n{bad")
            assert client.read()["error"]["code"] == -32700
            _status_ok(client)

    @pytest.mark.parametrize(
        "frame",
        [
            pytest.param(b"Content-Length: lots\r\n\r\n{}", id="bad-length"),
            pytest.param(b"Content-Type: x\r\n\r\n{}", id="no-length"),
            pytest.param(b"Content-Length: 99999999999\r\n\r\n", id="too-long"),
        ],
    )
    def test_broken_framing_closes_the_connection(
        self, shared_env: BurrowEnv, frame: bytes
    ) -> None:
        with shared_env.connect(lsp=True) as client:
            client.send(frame)
            reply = client.read()
            assert reply["error"]["code"] == -32600
            assert client.read_eof() == b""
        with shared_env.connect() as fresh:
            _status_ok(fresh)


class TestSingleInstance:
    def test_second_daemon_refuses(self, env: BurrowEnv, daemon: DaemonProcess) -> None:
        before = env.socket.stat()
        second = env.start_daemon(expect="ALREADY_RUNNING=1")
        assert second.wait() == 3
        message = second.stderr()
        assert "burrowd is already running" in message
        assert f"pid {daemon.pid}" in message
        assert "burrow daemon stop" in message
        after = env.socket.stat()
        assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
        with env.connect() as client:
            assert client.call("status")["pid"] == daemon.pid

    def test_stale_socket_is_replaced(self, env: BurrowEnv) -> None:
        env.run_dir.mkdir(mode=0o700)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
            stale.bind(os.fspath(env.socket))
        assert env.socket.is_socket()
        daemon = env.start_daemon()
        with env.connect() as client:
            assert client.call("status")["pid"] == daemon.pid
        assert f"removing stale socket {env.socket}" in env.log_text()

    def test_live_socket_without_lock_is_not_stolen(self, env: BurrowEnv) -> None:
        env.run_dir.mkdir(mode=0o700)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as foreign:
            foreign.bind(os.fspath(env.socket))
            foreign.listen(1)
            before = env.socket.stat()
            # Not "already running": nothing a client could use serves that socket.
            second = env.start_daemon(expect=None)
            assert second.ready.startswith("ERROR=something already serves")
            assert second.wait() == 1
            assert "something already serves" in second.stderr()
            after = env.socket.stat()
            assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(os.fspath(env.socket))

    def test_a_file_that_is_not_a_socket_is_left_alone(self, env: BurrowEnv) -> None:
        env.run_dir.mkdir(mode=0o700)
        env.socket.write_text("precious")
        daemon = env.start_daemon(expect=None)
        assert daemon.ready.startswith("ERROR=")
        assert daemon.wait() == 1
        assert "not a socket" in daemon.stderr()
        assert env.socket.read_text() == "precious"

    def test_bad_configuration_is_reported(self, env: BurrowEnv) -> None:
        daemon = env.start_daemon(env={"BURROW_IDLE_TIMEOUT": "soon"}, expect=None)
        assert daemon.ready == "ERROR=BURROW_IDLE_TIMEOUT='soon' is not a number of seconds"
        assert daemon.wait() == 1
        assert "BURROW_IDLE_TIMEOUT" in daemon.stderr()


def _connect_as(uid: int | None, path: Path, data: bytes) -> dict[str, Any]:
    """Connect to ``path`` from a forked child running as ``uid``; report what it saw."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        status = 1
        try:
            os.close(read_fd)
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            out: dict[str, Any] = {"pid": os.getpid(), "connected": False, "error": ""}
            received = b""
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(3.0)
                try:
                    sock.connect(os.fspath(path))
                    out["connected"] = True
                    sock.sendall(data)
                    while b"\n" not in received and (chunk := sock.recv(4096)):
                        received += chunk
                except OSError as exc:
                    out["error"] = type(exc).__name__
            out["received"] = received.decode(errors="replace")
            os.write(write_fd, json.dumps(out).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    chunks = []
    with os.fdopen(read_fd, "rb") as pipe:
        chunks.append(pipe.read())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    result: dict[str, Any] = json.loads(b"".join(chunks))
    return result


class TestPeerCredentials:
    @pytest.mark.skipif(
        not hasattr(os, "geteuid") or os.geteuid() != 0,
        reason="connecting as another uid needs root",
    )
    def test_other_uid_is_closed_before_any_reply(
        self, env: BurrowEnv, daemon: DaemonProcess
    ) -> None:
        # The 0700 directory and 0600 socket alone keep uid 65534 out. Open both up so that
        # the daemon's SO_PEERCRED check is the only thing between that uid and an answer.
        env.root.chmod(0o711)
        env.run_dir.chmod(0o711)
        env.socket.chmod(0o666)

        own = _connect_as(None, env.socket, STATUS)
        assert own["connected"]
        assert json.loads(own["received"].splitlines()[0])["result"]["pid"] == daemon.pid

        other = _connect_as(65534, env.socket, STATUS)
        assert other["connected"], other
        assert other["received"] == ""
        assert other["error"] in ("", "ConnectionResetError", "BrokenPipeError"), other
        assert wait_until(
            lambda: f"refused connection from pid {other['pid']} uid 65534" in env.log_text(), 2.0
        )
        with env.connect() as client:
            assert client.call("status")["pid"] == daemon.pid


class TestIdleExit:
    @pytest.mark.parametrize(
        ("args", "extra"),
        [
            pytest.param((), {"BURROW_IDLE_TIMEOUT": "1"}, id="env"),
            pytest.param(("--idle-timeout", "0.5"), {}, id="flag"),
        ],
    )
    def test_idle_daemon_exits_and_removes_its_socket(
        self, env: BurrowEnv, args: tuple[str, ...], extra: dict[str, str]
    ) -> None:
        started = time.monotonic()
        daemon = env.start_daemon(*args, env=extra)
        assert daemon.wait(timeout=5.0) == 0
        assert time.monotonic() - started >= 0.5
        assert not env.socket.exists()
        assert "shutting down: idle for" in env.log_text()

    def test_open_connection_keeps_it_up(self, env: BurrowEnv) -> None:
        daemon = env.start_daemon(env={"BURROW_IDLE_TIMEOUT": "0.3"})
        with env.connect() as client:
            time.sleep(1.0)
            assert daemon.proc.poll() is None
            status = client.call("status")
            assert status["idle_timeout"] == 0.3
        assert daemon.wait(timeout=5.0) == 0
        assert not env.socket.exists()

    def test_zero_means_never(self, env: BurrowEnv) -> None:
        daemon = env.start_daemon(env={"BURROW_IDLE_TIMEOUT": "0"})
        time.sleep(0.5)
        assert daemon.proc.poll() is None
        with env.connect() as client:
            assert client.call("status")["idle_timeout"] == 0


class TestWarmUp:
    def test_the_starting_environments_interpreter_is_queried_unasked(self, env: BurrowEnv) -> None:
        venv = env.root / "venv"
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(sys.executable)
        env.start_daemon(env={"VIRTUAL_ENV": os.fspath(venv)})
        bucket = env.cache / "interpreter-v0"
        # No request at all: the daemon queries it by itself, once, and caches the answer.
        assert wait_until(lambda: any(bucket.glob("*.msgpack")), timeout=20.0)
        with env.connect() as client:
            _status_ok(client)
        assert len(list(bucket.glob("*.msgpack"))) == 1


#: Run by the test as a wrapper: put the listening socket on fd 3, as systemd does, set
#: LISTEN_PID to its own pid and exec the daemon command that follows (keeping that pid).
ACTIVATE = """\
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


class TestSocketActivation:
    def test_inherited_socket_and_sd_notify(self, env: BurrowEnv) -> None:
        env.run_dir.mkdir(mode=0o700)
        notify_path = env.root / "notify"
        with (
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener,
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify,
        ):
            listener.bind(os.fspath(env.socket))
            listener.listen(16)
            notify.bind(os.fspath(notify_path))
            notify.settimeout(5.0)
            daemon = env.start_daemon(
                env={"NOTIFY_SOCKET": os.fspath(notify_path), "LISTEN_FDS": "1"},
                wrapper=(sys.executable, "-c", ACTIVATE, str(listener.fileno())),
                pass_fds=(listener.fileno(),),
            )
            ready = notify.recv(4096).decode().splitlines()
            assert ready == ["READY=1", f"MAINPID={daemon.pid}"]

            with env.connect() as client:
                status = client.call("status")
                assert client.initialize()["pid"] == daemon.pid
            assert status["pid"] == daemon.pid
            assert status["socket"] == str(env.socket)
            assert f"serving {env.socket}" in env.log_text()

            assert daemon.stop() == 0
            assert notify.recv(4096) == b"STOPPING=1"
            # The socket belongs to "systemd" (this test): the daemon leaves it in place, and
            # it still accepts connections into its backlog for the next activation.
            assert env.socket.is_socket()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.connect(os.fspath(env.socket))

    def test_listen_pid_of_another_process_is_ignored(self, env: BurrowEnv) -> None:
        daemon = env.start_daemon(env={"LISTEN_PID": "1", "LISTEN_FDS": "1"})
        with env.connect() as client:
            assert client.call("status")["pid"] == daemon.pid
        assert env.socket.is_socket()
        assert daemon.stop() == 0
        assert not env.socket.exists()


class TestShutdown:
    def test_shutdown_request_stops_the_daemon(self, env: BurrowEnv, daemon: DaemonProcess) -> None:
        with env.connect() as client, env.connect() as bystander:
            result = client.call("shutdown")
            assert result == {"pid": daemon.pid}
            # The socket and the lock are given up before the reply, so that a new daemon
            # can start at once.
            assert not env.socket.exists()
            assert daemon.wait(timeout=5.0) == 0
            assert bystander.read_eof() == b""
        assert "shutting down: shutdown requested by a client" in env.log_text()
        replacement = env.start_daemon()
        assert replacement.pid != daemon.pid

    def test_sigint_stops_the_daemon(self, env: BurrowEnv, daemon: DaemonProcess) -> None:
        daemon.proc.send_signal(signal.SIGINT)
        assert daemon.wait(timeout=5.0) == 0
        assert not env.socket.exists()
        assert "shutting down: signal SIGINT" in env.log_text()
