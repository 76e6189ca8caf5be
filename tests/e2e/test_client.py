"""The real ``burrow`` CLI against real daemons: auto-start, status, stop, logs, restarts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from burrowd.protocol.build import package_roots
from tests.e2e.helpers import BurrowEnv, DaemonProcess, current_build, process_gone, wait_until


class TestDaemonCommands:
    def test_status_starts_a_daemon_and_stop_stops_it(self, env: BurrowEnv) -> None:
        assert not env.pids()
        status = env.cli_json("daemon", "status")
        pid = status["pid"]
        assert env.pids() == [pid]
        assert status["socket"] == str(env.socket)
        assert status["cache_dir"] == str(env.cache)
        assert status["log_file"] == str(env.log)
        assert status["build"] == current_build()
        assert status["connections"] == 1

        human = env.cli("daemon", "status")
        assert human.returncode == 0, human.stderr
        lines = human.stdout.splitlines()
        assert f"pid           {pid}" in lines
        assert f"socket        {env.socket}" in lines
        assert f"cache         {env.cache}" in lines
        assert f"log           {env.log}" in lines
        assert "requests in flight: none" in lines

        started = env.cli("daemon", "start")
        assert started.stdout == f"burrowd (pid {pid}) is serving {env.socket}\n"
        assert env.pids() == [pid], "a running daemon was replaced"

        stopped = env.cli("daemon", "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout == f"stopped burrowd (pid {pid})\n"
        assert process_gone(pid)
        assert not env.socket.exists()
        assert not env.pids()
        # Stopping while the stop's own connection is open logs no cancelled task.
        assert "Traceback" not in env.log_text()

        again = env.cli("daemon", "stop")
        assert (again.returncode, again.stdout) == (0, "burrowd is not running\n")
        assert env.cli_json("daemon", "stop") == {"stopped": None}

    def test_start_then_stop_json(self, env: BurrowEnv) -> None:
        started = env.cli_json("daemon", "start")
        assert env.pids() == [started["pid"]]
        with env.connect() as client:
            client.call("shutdown")
        assert wait_until(lambda: process_gone(started["pid"]), 5.0)

    def test_uses_a_daemon_it_did_not_start(self, env: BurrowEnv, daemon: DaemonProcess) -> None:
        assert env.cli_json("daemon", "status")["pid"] == daemon.pid
        # --json is accepted before and after the subcommand.
        after = env.cli("daemon", "status", "--json")
        assert json.loads(after.stdout)["pid"] == daemon.pid

    def test_stop_does_not_wait_for_a_zombie(self, env: BurrowEnv, daemon: DaemonProcess) -> None:
        # The daemon is this process's child and nobody reaps it while the CLI waits.
        done = env.cli("daemon", "stop", "--timeout", "1")
        assert daemon.proc.poll() == 0
        assert (done.returncode, done.stdout) == (0, f"stopped burrowd (pid {daemon.pid})\n")

    def test_usage_error_exits_2(self, env: BurrowEnv) -> None:
        done = env.cli("daemon", "frobnicate")
        assert done.returncode == 2
        assert "invalid choice" in done.stderr
        assert env.cli().returncode == 2
        assert not env.pids()

    def test_version(self, env: BurrowEnv) -> None:
        from burrowd.protocol import __version__  # noqa: PLC0415

        done = env.cli("--version")
        assert (done.returncode, done.stdout) == (0, f"burrow {__version__}\n")


class TestNoDaemon:
    def test_status_runs_in_process_and_starts_nothing(self, env: BurrowEnv) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "burrowd.client", "--no-daemon", "--json", "daemon", "status"],
            env=env.environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        status = json.loads(out)
        assert status["pid"] == proc.pid
        assert status["cache_dir"] == str(env.cache)
        assert status["build"] == current_build()
        assert not env.socket.exists()
        assert not env.pids()

    def test_runs_in_process_even_with_a_daemon(
        self, env: BurrowEnv, daemon: DaemonProcess
    ) -> None:
        status = env.cli_json("--no-daemon", "daemon", "status")
        assert status["pid"] != daemon.pid
        assert env.pids() == [daemon.pid]

    def test_stop_is_refused(self, env: BurrowEnv) -> None:
        done = env.cli("--no-daemon", "daemon", "stop")
        assert done.returncode == 1
        assert "--no-daemon: there is no daemon to stop" in done.stderr


class TestLogs:
    def test_start_and_stop_lines(self, env: BurrowEnv) -> None:
        assert env.cli("daemon", "start").returncode == 0
        [pid] = env.pids()
        with env.connect() as client:
            client.call("shutdown")
        assert wait_until(lambda: process_gone(pid), 5.0)
        done = env.cli("daemon", "logs", "-n", "5")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert 3 <= len(lines) <= 5, lines
        assert f"burrowd {pid} serving {env.socket}" in lines[0]
        assert "shutting down: shutdown requested by a client" in done.stdout
        assert lines[-1].endswith(f"burrowd {pid} stopped")
        last = env.cli("daemon", "logs", "-n", "1")
        assert last.stdout.splitlines() == lines[-1:]

    def test_no_log_yet(self, env: BurrowEnv) -> None:
        done = env.cli("daemon", "logs")
        assert done.returncode == 1
        assert f"no log yet at {env.log}" in done.stderr


class TestFailures:
    def test_a_daemon_that_dies_at_start_is_explained(self, env: BurrowEnv) -> None:
        done = env.cli("daemon", "status", env={"BURROW_IDLE_TIMEOUT": "soon"})
        assert done.returncode == 1
        assert (
            "could not start burrowd: BURROW_IDLE_TIMEOUT='soon' is not a number of seconds"
            in done.stderr
        )
        assert f"--- last lines of {env.log} ---" in done.stderr
        assert "BURROW_IDLE_TIMEOUT" in done.stderr.split("---", 1)[1]
        assert wait_until(lambda: not env.pids(), 5.0)

    def test_socket_path_too_long(self, env: BurrowEnv) -> None:
        long_path = "/tmp/" + "x" * 120 + "/burrowd.sock"
        done = env.cli("daemon", "status", env={"BURROW_SOCKET": long_path})
        assert done.returncode == 1
        assert "Set BURROW_SOCKET to a shorter path" in done.stderr


def _old_build(root: Path) -> Path:
    """Return a copy of the three packages, edited a little: a build that is not ours.

    The copy is laid out as a ``burrowd`` namespace directory; put first on ``PYTHONPATH``,
    it shadows the editable install (whose finder comes after the path finder).
    """
    tree = root / "old"
    for source in map(Path, package_roots()):
        shutil.copytree(
            source, tree / "burrowd" / source.name, ignore=shutil.ignore_patterns("__pycache__")
        )
    build_py = tree / "burrowd" / "protocol" / "build.py"
    build_py.write_text(build_py.read_text() + "\n# an older build\n")
    return tree


class TestBuildMismatch:
    def test_client_replaces_a_daemon_of_another_build(self, env: BurrowEnv) -> None:
        tree = _old_build(env.root)
        old_env = {"PYTHONPATH": os.fspath(tree)}
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                "import burrowd.protocol.build as b; print(b.__file__, b.build_id())",
            ],
            env=env.environ(old_env),
            capture_output=True,
            text=True,
            check=True,
        )
        old_file, old_build = probe.stdout.split()
        assert old_file == os.fspath(tree / "burrowd" / "protocol" / "build.py")
        assert old_build != current_build()

        old = env.start_daemon(env=old_env)
        with env.connect() as client:
            assert client.initialize()["server_build"] == old_build

        done = env.cli("--json", "daemon", "status")
        assert done.returncode == 0, done.stderr
        assert "keeps coming back" not in done.stderr
        status = json.loads(done.stdout)
        assert status["pid"] != old.pid
        assert status["build"] == current_build()
        assert old.wait() == 0
        assert "shutdown requested by a client" in env.log_text()
        assert env.pids() == [status["pid"]]
