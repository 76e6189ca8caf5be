"""``examples/editor_client.py`` against a real daemon (started with ``burrow daemon start``).

The example runs as a user would run it, in a subprocess, but with ``-I -S``: without
site-packages neither msgspec nor burrowd can be imported, so every run also proves it
needs nothing but the standard library.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import msgspec
import pytest

from burrowd.protocol import __version__, jsonrpc, paths
from burrowd.protocol.errors import ErrorCode
from burrowd.protocol.messages import WatchEvent
from tests.e2e.helpers import BurrowEnv, short_tmpdir
from tests.resolve_e2e.harness import release
from tests.support.index import FakeIndex

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "editor_client.py"
#: Seconds one run of the example may take (a resolve against the fake index takes < 2).
RUN_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def example() -> ModuleType:
    """Import the example from its file, as a module of its own."""
    spec = importlib.util.spec_from_file_location("editor_client", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Return a private directory short enough for a Unix socket path."""
    path = short_tmpdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def served(env: BurrowEnv) -> BurrowEnv:
    """Start the daemon of ``env`` the way a user does, with ``burrow daemon start``."""
    done = env.cli("daemon", "start")
    assert done.returncode == 0, done.stderr
    assert len(env.pids()) == 1
    return env


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Return the directory the example runs in."""
    root = tmp_path / "project"
    root.mkdir()
    return root


def run_example(
    env: BurrowEnv, cwd: Path, *args: str, timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run the example in ``cwd``; the daemon's target Python is this test run's own."""
    return subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), *args],
        env=env.environ({"VIRTUAL_ENV": sys.prefix}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


class TestResolve:
    def test_prints_pins_compiled_text_and_progress(
        self, served: BurrowEnv, project: Path, fake_index: FakeIndex
    ) -> None:
        release(fake_index, "app==1.0", "lib>=1")
        release(fake_index, "lib==1.0")
        release(fake_index, "lib==2.0")
        done = run_example(served, project, "--index-url", fake_index.simple_url, "app")
        assert done.returncode == 0, done.stderr

        lines = done.stdout.splitlines()
        assert re.fullmatch(rf"burrowd {re.escape(__version__)} \(pid \d+\)", lines[0])
        assert lines[1:4] == ["app==1.0", "lib==2.0", ""]
        compiled = "\n".join(lines[4:])
        assert re.search(r"^app==1\.0$", compiled, re.MULTILINE), compiled
        assert re.search(r"^lib==2\.0$", compiled, re.MULTILINE), compiled
        assert not (project / "requirements.txt").exists()
        # $/progress, rendered as "[phase] current/total", one per notification.
        assert re.search(r"^\[resolving\] \d+/\d+$", done.stderr, re.MULTILINE), done.stderr

    def test_another_error_prints_message_and_code_and_exits_1(
        self, served: BurrowEnv, project: Path, fake_index: FakeIndex
    ) -> None:
        done = run_example(served, project, "--index-url", fake_index.simple_url, "nowhere")
        assert done.returncode == 1
        code = int(ErrorCode.PACKAGE_NOT_FOUND)
        assert re.search(rf"^error {code}: .*nowhere", done.stderr, re.MULTILINE), done.stderr


class TestCancel:
    def test_cancel_after_progress_gets_the_cancelled_reply_and_the_daemon_serves_on(
        self, served: BurrowEnv, project: Path, fake_index: FakeIndex
    ) -> None:
        release(fake_index, "app==1.0")
        # Every index response waits: the resolve is still running when the cancel arrives.
        fake_index.latency = 3.0
        done = run_example(
            served, project, "--index-url", fake_index.simple_url, "--cancel-after-progress", "app"
        )
        assert done.returncode == 0, done.stderr
        assert re.search(r"^cancelled: .* \(error -32800\)$", done.stdout, re.MULTILINE), done
        assert "app==1.0" not in done.stdout
        assert done.stderr.startswith("["), "no progress was shown before the cancel"

        with served.connect() as client:
            status = client.call("status")
        assert served.pids() == [status["pid"]]
        assert [r for r in status["requests"] if r["method"] == "resolve"] == []


class TestWatch:
    def test_prints_watch_events_as_json_lines(
        self, served: BurrowEnv, project: Path, fake_index: FakeIndex
    ) -> None:
        with served.connect() as client:
            probe = client.request("watch.events", {"subscribe": False})
        if probe.get("error", {}).get("code") == ErrorCode.METHOD_NOT_FOUND:
            pytest.skip("the daemon does not serve watch.events yet (it answers -32601)")
        assert "error" not in probe, probe
        release(fake_index, "app==1.0")
        (project / "requirements.in").write_text("app\n")

        done = run_example(
            served,
            project,
            *("--index-url", fake_index.simple_url, "--watch", "requirements.in", "--events", "1"),
        )
        assert done.returncode == 0, done.stderr
        [line] = done.stdout.splitlines()
        event = msgspec.json.decode(line, type=WatchEvent)
        assert Path(event.path).name == "requirements.in"


class TestWire:
    def test_speaks_lsp_framing_from_its_first_byte(self, short_dir: Path) -> None:
        # A stand-in daemon records exactly what the example sends, then refuses it.
        path = short_dir / "fake.sock"
        received: list[bytes] = []
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(str(path))
            server.listen(1)
            server.settimeout(RUN_TIMEOUT)

            def serve() -> None:
                conn, _ = server.accept()
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        data += conn.recv(4096)
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = int(head.split(b":", 1)[1])
                    while len(body) < length:
                        body += conn.recv(4096)
                    received.append(data[: len(head) + 4 + length])
                    request = json.loads(body[:length])
                    error = {"code": ErrorCode.INTERNAL_ERROR, "message": "refused by the test"}
                    reply = json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error})
                    conn.sendall(b"Content-Length: %d\r\n\r\n%s" % (len(reply), reply.encode()))

            thread = threading.Thread(target=serve, daemon=True)
            thread.start()
            done = subprocess.run(
                [sys.executable, "-I", "-S", str(SCRIPT), "--socket", str(path), "app"],
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            thread.join(RUN_TIMEOUT)

        [first] = received
        assert re.match(rb"Content-Length: \d+\r\n\r\n\{", first), first
        body = json.loads(first.partition(b"\r\n\r\n")[2])
        assert body["method"] == "initialize"
        assert body["params"]["client_name"] == "example-editor"
        assert body["params"]["protocol_version"] == jsonrpc.PROTOCOL_VERSION
        jsonrpc.decode_as(json.dumps(body["params"]).encode(), jsonrpc.METHODS["initialize"].params)
        assert done.returncode == 1
        assert f"error {int(ErrorCode.INTERNAL_ERROR)}: refused by the test" in done.stderr


class TestFraming:
    def test_frame_has_a_content_length_header(self, example: ModuleType) -> None:
        message = {"jsonrpc": "2.0", "id": 1, "method": "status", "params": {"ü": "✓"}}
        framed: bytes = example.frame(message)
        head, sep, body = framed.partition(b"\r\n\r\n")
        assert (head, sep) == (b"Content-Length: %d" % len(body), b"\r\n\r\n")
        assert json.loads(body) == message

    def test_read_message_reads_frames_back_to_back(self, example: ModuleType) -> None:
        first = {"jsonrpc": "2.0", "method": "$/progress", "params": {"token": 1, "phase": "x"}}
        second = {"jsonrpc": "2.0", "id": 1, "result": {"pid": 7}}
        extra_header = b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
        framed = example.frame(first) + extra_header + example.frame(second)
        stream = io.BytesIO(framed)
        assert example.read_message(stream) == first
        assert example.read_message(stream) == second
        with pytest.raises(EOFError):
            example.read_message(stream)

    def test_protocol_version_matches_the_daemon(self, example: ModuleType) -> None:
        assert example.PROTOCOL_VERSION == jsonrpc.PROTOCOL_VERSION
        assert example.REQUEST_CANCELLED == ErrorCode.REQUEST_CANCELLED

    def test_imports_only_the_standard_library(self) -> None:
        tree = ast.parse(SCRIPT.read_text())
        imported = {
            name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for name in (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
        }
        assert imported <= set(sys.stdlib_module_names)

    def test_is_short(self) -> None:
        assert len(SCRIPT.read_text().splitlines()) < 250


class TestSocketPath:
    @pytest.mark.parametrize(
        "case", ["burrow-socket", "xdg-private", "xdg-not-private", "xdg-relative", "xdg-unset"]
    )
    def test_agrees_with_the_daemon(
        self, example: ModuleType, short_dir: Path, case: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        xdg = short_dir / "xdg"
        xdg.mkdir(mode=0o700)
        env = {"HOME": str(short_dir)}
        if case == "burrow-socket":
            monkeypatch.chdir(short_dir)
            env |= {"BURROW_SOCKET": "relative.sock", "XDG_RUNTIME_DIR": str(xdg)}
        elif case == "xdg-private":
            env["XDG_RUNTIME_DIR"] = str(xdg)
        elif case == "xdg-not-private":
            os.chmod(xdg, 0o755)
            env["XDG_RUNTIME_DIR"] = str(xdg)
        elif case == "xdg-relative":
            env["XDG_RUNTIME_DIR"] = "run"
        ours: str = example.socket_path(env)
        assert ours == paths.socket_path(env)
        if case == "xdg-private":
            assert ours == str(xdg / "burrowd" / "burrowd.sock")
