"""``burrow`` starts the daemon before it loads the client, for the commands that need one.

The start must come before msgspec and the client's modules are imported (that is its whole
point), must happen once (the client's first request waits for it, never starts a second
daemon), and must not happen for a command that runs without one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from _socket import socket as Socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from burrowd.client import cli, launch
from burrowd.client.connection import open_transport
from burrowd.protocol.messages import StatusParams, StatusResult
from tests.e2e.helpers import BurrowEnv, burrow_env, wait_until


@pytest.fixture
def env() -> Iterator[BurrowEnv]:
    with burrow_env() as e:
        yield e


def _early() -> tuple[str, Socket | launch.Starting] | None:
    """What :func:`launch.start_early` left (a call, so that mypy narrows nothing)."""
    return launch._early


def _status(env: BurrowEnv) -> StatusResult:
    """Ask ``status`` through :func:`open_transport`, in ``env``, as a command's first request."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.environ().items():
            mp.setenv(key, value)
        transport = open_transport()
        try:
            return transport.call("status", StatusParams(), StatusResult)
        finally:
            transport.close()


@pytest.fixture(autouse=True)
def _no_early_left() -> Iterator[None]:
    yield
    left = _early()
    launch.take_early(left[0] if left else "")


class TestWhichCommandsStartEarly:
    @pytest.mark.parametrize(
        ("argv", "command"),
        [
            (["compile", "requirements.in"], "compile"),
            (["compile", "-o", "out.txt", "requirements.in"], "compile"),
            (["-q", "--json", "sync", "requirements.txt"], "sync"),
            (["install", "--no-deps", "flask"], "install"),
            (["uninstall", "flask"], "uninstall"),
            (["prefetch", "flask==3.0"], "prefetch"),
            (["daemon", "start"], "daemon start"),
            (["daemon", "status", "-v"], "daemon status"),
        ],
    )
    def test_commands_that_wait_for_a_daemon(self, argv: list[str], command: str) -> None:
        assert launch._command(argv) == command

    @pytest.mark.parametrize(
        "argv",
        [
            [],
            ["--version"],
            ["compile", "--no-daemon", "requirements.in"],
            ["compile", "--no-d", "requirements.in"],  # argparse takes a unique prefix
            ["compile", "--help"],
            ["compile", "--he"],
            ["sync", "-h"],
            ["sync", "-qh"],  # a cluster of short flags
            ["daemon", "stop"],
            ["daemon", "logs"],
            ["cache", "dir"],
            ["list"],
            ["watch", "add", "requirements.in"],
            ["rpc", "status"],
            ["compiles"],
        ],
    )
    def test_commands_that_do_not(self, argv: list[str]) -> None:
        assert launch._command(argv) is None

    def test_every_early_command_is_a_command_of_the_cli(self) -> None:
        from burrowd.client.cli import _LEAVES  # noqa: PLC0415

        names = {" ".join(filter(None, (leaf.group, leaf.name))) for leaf in _LEAVES}
        assert names >= launch.STARTING_COMMANDS


class TestEarlyStart:
    def test_the_daemon_starts_before_the_client_loads(self, env: BurrowEnv) -> None:
        # An audit hook sees the spawn and the first import of msgspec, in order.
        probe = (
            "import sys\n"
            "def hook(event, args):\n"
            "    if event == 'os.posix_spawn' or (event == 'import' and args[0] == 'msgspec'):\n"
            "        sys.stderr.write(('spawn' if event == 'os.posix_spawn' else 'msgspec')"
            " + '\\n')\n"
            "sys.addaudithook(hook)\n"
            "sys.argv = ['burrow', '--json', 'daemon', 'start']\n"
            "from burrowd.client.launch import run\n"
            "run()\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe],
            env=env.environ(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        seen = [line for line in done.stderr.splitlines() if line in ("spawn", "msgspec")]
        assert seen[:2] == ["spawn", "msgspec"]
        assert seen.count("spawn") == 1  # the client waited for that start, never made another
        status = json.loads(done.stdout)
        assert env.pids() == [status["pid"]]
        assert env.log_text().count("serving") == 1

    def test_the_first_request_waits_for_that_start(self, env: BurrowEnv) -> None:
        launch.start_early(["compile", "requirements.in"], env.environ())
        early = _early()
        assert early is not None
        starting = early[1]
        assert isinstance(starting, launch.Starting)
        status = _status(env)
        assert _early() is None  # taken
        assert status.pid == starting.pid
        assert env.pids() == [starting.pid]
        assert env.log_text().count("serving") == 1
        assert "not starting" not in env.log_text()

    def test_a_running_daemon_is_connected_to_once(self, env: BurrowEnv) -> None:
        daemon = env.start_daemon()
        launch.start_early(["sync", "requirements.txt"], env.environ())
        early = _early()
        assert early is not None
        assert isinstance(early[1], Socket)  # connected, nothing spawned
        assert _status(env).pid == daemon.pid
        assert _early() is None  # taken
        assert env.pids() == [daemon.pid]

    @pytest.mark.parametrize(
        "argv", [["compile", "--no-daemon", "x.in"], ["daemon", "stop"], ["--version"]]
    )
    def test_no_daemon_for_a_command_that_runs_without_one(
        self, env: BurrowEnv, argv: list[str]
    ) -> None:
        launch.start_early(argv, env.environ())
        assert _early() is None
        assert not wait_until(lambda: bool(env.pids()) or env.log.exists(), 0.5)

    def test_a_socket_path_too_long_is_left_to_the_request_to_report(self) -> None:
        launch.start_early(["compile", "x.in"], {"BURROW_SOCKET": "/tmp/" + "x" * 200})
        assert _early() is None

    def test_an_early_start_for_another_socket_is_not_taken(self, env: BurrowEnv) -> None:
        daemon = env.start_daemon()
        launch.start_early(["compile", "x.in"], env.environ())
        assert launch.take_early("/somewhere/else.sock") is None
        assert _early() is None
        assert env.pids() == [daemon.pid]


class TestTheSpawnedDaemon:
    def test_it_takes_none_of_the_services_systemd_variables(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # `burrow` run inside a systemd service (a CI runner, a Type=notify unit): the daemon
        # it starts must not report READY=1 to that unit's manager, nor log to its journal.
        spawned: list[tuple[list[str], dict[str, str]]] = []

        def spawn(path: str, argv: list[str], env: dict[str, str], **_kw: object) -> int:
            spawned.append((list(argv), dict(env)))
            raise OSError("not started in this test")

        monkeypatch.setattr(os, "posix_spawn", spawn)
        environ = {
            "HOME": str(tmp_path),
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "NOTIFY_SOCKET": "/run/systemd/notify",
            "INVOCATION_ID": "abc",
            "JOURNAL_STREAM": "8:123",
            "LISTEN_PID": "1",
            "LISTEN_FDS": "1",
            "KEEP_ME": "yes",
        }
        with pytest.raises(OSError, match="not started in this test"):
            launch.Starting(environ)
        [(argv, env)] = spawned
        # -P: the installed burrowd, never a `burrowd` folder where the command ran.
        assert argv[:4] == [sys.executable, "-P", "-m", "burrowd.daemon"]
        assert env["KEEP_ME"] == "yes"
        assert not {"NOTIFY_SOCKET", "INVOCATION_ID", "JOURNAL_STREAM", "LISTEN_PID"} & {*env}


class TestClientEnvironment:
    def test_a_variable_that_is_not_utf8_is_left_out(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # A Latin-1 OLDPWD used to crash every command that sends its environment.
        monkeypatch.setenv("LEGACY", "caf\udce9")
        monkeypatch.setenv("PLAIN", "café")
        env = cli.client_env()
        assert "LEGACY" not in env.variables
        assert env.variables["PLAIN"] == "café"

    def test_a_working_directory_that_is_not_utf8_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        odd = tmp_path / os.fsdecode(b"d\xff")
        odd.mkdir()
        monkeypatch.chdir(odd)
        with pytest.raises(cli.Failure, match="is not UTF-8"):
            cli.client_env()

    def test_a_closed_stdout_is_no_crash(self) -> None:
        done = subprocess.run(
            ["sh", "-c", f"{sys.executable} -m burrowd.client --version >&-"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
