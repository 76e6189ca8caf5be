"""The composition root in-process: the instance lock, the bound socket, readiness, lifecycle."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from burrowd.daemon.app import (
    GC_YOUNG_THRESHOLD,
    AlreadyRunning,
    Daemon,
    Listener,
    _prepare_dir,
    bind_listener,
    sd_notify,
)
from burrowd.daemon.config import Config
from burrowd.daemon.locks import FileLock
from burrowd.protocol import paths


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Return a directory short enough for socket paths."""
    directory = Path(tempfile.mkdtemp(prefix="bw", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def _no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFY_SOCKET", "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        monkeypatch.delenv(name, raising=False)


def make_config(directory: Path, sock: Path | None = None, **changes: Any) -> Config:
    sock = sock or directory / "run" / "burrowd.sock"
    config = Config(
        socket_path=sock,
        lock_path=Path(paths.lock_path(sock)),
        cache_dir=directory / "cache",
        log_file=directory / "log" / "burrowd.log",
        state_dir=directory / "state",
    )
    return config.with_changes(**changes) if changes else config


@pytest.fixture
def listeners() -> Iterator[list[Listener]]:
    """Collect listeners to close at teardown."""
    made: list[Listener] = []
    yield made
    for listener in made:
        listener.unlink()
        listener.lock.release()
        listener.sock.close()


class TestBindListener:
    def test_binds_a_private_socket_under_the_lock(
        self, short_dir: Path, listeners: list[Listener]
    ) -> None:
        config = make_config(short_dir)
        listener = bind_listener(config)
        listeners.append(listener)
        assert listener.path == config.socket_path
        assert not listener.inherited
        assert listener.lock.locked
        assert config.socket_path.is_socket()
        assert config.socket_path.stat().st_mode & 0o777 == 0o600
        assert config.socket_path.parent.stat().st_mode & 0o777 == 0o700
        assert listener.still_ours()
        assert FileLock(config.lock_path, "x").read_holder() == f"pid {os.getpid()}"

    def test_a_second_bind_is_refused(self, short_dir: Path, listeners: list[Listener]) -> None:
        config = make_config(short_dir)
        listeners.append(bind_listener(config))
        inode = config.socket_path.stat().st_ino
        with pytest.raises(AlreadyRunning, match=f"already running \\(pid {os.getpid()}\\)"):
            bind_listener(config)
        assert config.socket_path.stat().st_ino == inode

    def test_stale_socket_is_replaced(
        self, short_dir: Path, listeners: list[Listener], caplog: pytest.LogCaptureFixture
    ) -> None:
        config = make_config(short_dir)
        config.socket_path.parent.mkdir(mode=0o700)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
            stale.bind(os.fspath(config.socket_path))
        with caplog.at_level(logging.INFO, logger="burrowd.daemon.app"):
            listeners.append(bind_listener(config))
        assert f"removing stale socket {config.socket_path}" in caplog.text
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(os.fspath(config.socket_path))

    def test_live_socket_without_the_lock_is_not_stolen(self, short_dir: Path) -> None:
        config = make_config(short_dir)
        config.socket_path.parent.mkdir(mode=0o700)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as foreign:
            foreign.bind(os.fspath(config.socket_path))
            foreign.listen(1)
            with pytest.raises(AlreadyRunning, match="something already serves"):
                bind_listener(config)
            assert config.socket_path.is_socket()
        # The lock was given back when binding failed.
        lock = FileLock(config.lock_path, "x")
        assert lock.try_acquire()
        lock.release()

    def test_a_regular_file_is_never_removed(self, short_dir: Path) -> None:
        config = make_config(short_dir, sock=short_dir / "notes.txt")
        config.socket_path.write_text("keep me")
        with pytest.raises(FileExistsError, match="not a socket"):
            bind_listener(config)
        assert config.socket_path.read_text() == "keep me"

    @pytest.mark.parametrize(
        ("name", "mode_after"),
        [
            pytest.param("burrowd", 0o700, id="own-runtime-dir-tightened"),
            pytest.param("elsewhere", 0o755, id="other-dir-untouched"),
        ],
    )
    def test_existing_directory_mode(
        self, short_dir: Path, listeners: list[Listener], name: str, mode_after: int
    ) -> None:
        directory = short_dir / name
        directory.mkdir()
        directory.chmod(0o755)
        listeners.append(bind_listener(make_config(short_dir, sock=directory / "burrowd.sock")))
        assert directory.stat().st_mode & 0o777 == mode_after

    def test_listener_forgets_a_replaced_socket(
        self, short_dir: Path, listeners: list[Listener]
    ) -> None:
        listener = bind_listener(make_config(short_dir))
        listeners.append(listener)
        listener.path.unlink()
        listener.path.write_text("someone else's")
        assert not listener.still_ours()
        listener.unlink()
        assert listener.path.read_text() == "someone else's"


class TestSdNotify:
    def test_without_notify_socket(self) -> None:
        assert sd_notify("READY=1", env={}) is False

    @pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
    def test_sends_the_message(self, short_dir: Path, abstract: bool) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
            if abstract:
                name = f"burrowd-test-{os.getpid()}-{id(receiver)}"
                receiver.bind("\0" + name)
                addr = "@" + name
            else:
                addr = os.fspath(short_dir / "notify")
                receiver.bind(addr)
            receiver.settimeout(2)
            assert sd_notify("READY=1\nMAINPID=5", env={"NOTIFY_SOCKET": addr}) is True
            assert receiver.recv(100) == b"READY=1\nMAINPID=5"

    def test_unreachable_socket_only_warns(
        self, short_dir: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        addr = os.fspath(short_dir / "nobody")
        assert sd_notify("READY=1", env={"NOTIFY_SOCKET": addr}) is True
        assert "sd_notify" in caplog.text


class RunningDaemon:
    def __init__(self, daemon: Daemon, task: asyncio.Task[None]) -> None:
        self.daemon = daemon
        self.task = task

    async def finished(self, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            await self.task


@pytest.fixture
async def run_daemon(short_dir: Path) -> AsyncIterator[Any]:
    """Return ``start(**config_changes)``: run a Daemon in this loop until it is ready."""
    running: list[RunningDaemon] = []

    async def start(**changes: Any) -> RunningDaemon:
        ready = asyncio.Event()
        config = make_config(short_dir, **changes)
        daemon = Daemon(config, bind_listener(config), on_ready=ready.set)
        task = asyncio.create_task(daemon.run())
        async with asyncio.timeout(5):
            await ready.wait()
        handle = RunningDaemon(daemon, task)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        if not handle.task.done():
            handle.daemon.begin_shutdown("test teardown")
            await handle.finished()


class TestDaemonLifecycle:
    async def test_idle_daemon_stops_and_gives_everything_back(self, run_daemon: Any) -> None:
        running: RunningDaemon = await run_daemon(idle_timeout=0.2)
        config = running.daemon.config
        await running.finished()
        assert running.daemon.stop_reason == "idle for 0.2s"
        assert not config.socket_path.exists()
        lock = FileLock(config.lock_path, "x")
        assert lock.try_acquire()
        lock.release()

    async def test_replaced_socket_stops_the_daemon(self, run_daemon: Any) -> None:
        # A short idle timeout makes the watchdog tick fast; the open connection keeps the
        # daemon from idling out, so only the ownership check can stop it.
        running: RunningDaemon = await run_daemon(idle_timeout=0.5, ownership_check_interval=0.05)
        path = running.daemon.config.socket_path
        _, writer = await asyncio.open_unix_connection(os.fspath(path))
        path.unlink()
        path.write_text("not yours")
        await running.finished()
        writer.close()
        assert running.daemon.stop_reason == f"socket {path} was removed or replaced"
        assert path.read_text() == "not yours"

    async def test_removed_lock_stops_the_daemon(self, run_daemon: Any) -> None:
        running: RunningDaemon = await run_daemon(idle_timeout=0.5, ownership_check_interval=0.05)
        _, writer = await asyncio.open_unix_connection(os.fspath(running.daemon.config.socket_path))
        running.daemon.config.lock_path.unlink()
        await running.finished()
        writer.close()
        assert running.daemon.stop_reason == (
            f"instance lock {running.daemon.config.lock_path} was removed"
        )

    async def test_shutdown_request(self, run_daemon: Any) -> None:
        running: RunningDaemon = await run_daemon(idle_timeout=0)
        path = running.daemon.config.socket_path
        reader, writer = await asyncio.open_unix_connection(os.fspath(path))
        writer.write(b'{"jsonrpc": "2.0", "id": 1, "method": "shutdown"}\n')
        async with asyncio.timeout(5):
            reply = json.loads(await reader.readline())
            assert await reader.read() == b""
        writer.close()
        assert reply["result"] == {"pid": os.getpid()}
        await running.finished()
        assert running.daemon.stop_reason == "shutdown requested by a client"
        assert not path.exists()


def test_the_collector_is_off_while_the_daemon_imports_and_on_when_it_serves(
    tmp_path: Path,
) -> None:
    # Collecting during the imports is wasted work (about a sixth of start-up); tune_gc()
    # must turn the collector back on before the daemon serves.
    probe = """
import asyncio, builtins, gc, json, runpy, sys
seen = {}
real_import = builtins.__import__
def watch(name, *args, **kwargs):
    if name == "burrowd.daemon.app" and "importing" not in seen:
        seen["importing"] = gc.isenabled()
    return real_import(name, *args, **kwargs)
def serve(coro):
    coro.close()
    seen["serving"] = gc.isenabled()
    seen["young"] = gc.get_threshold()[0]
builtins.__import__ = watch
asyncio.run = serve
sys.argv = ["burrowd", "--foreground"]
try:
    runpy.run_module("burrowd.daemon", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
print(json.dumps(seen))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BURROW_")}
    env.update(
        BURROW_SOCKET=str(tmp_path / "s.sock"),
        BURROW_CACHE_DIR=str(tmp_path / "cache"),
        BURROW_LOG_FILE=str(tmp_path / "d.log"),
        XDG_STATE_HOME=str(tmp_path / "state"),
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen == {"importing": False, "serving": True, "young": GC_YOUNG_THRESHOLD}


def test_a_socket_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    # Its owner could put their socket in place of ours, and read what clients send.
    if os.geteuid() != 0:
        pytest.skip("a directory of another user needs root to make")
    theirs = tmp_path / "burrowd"
    theirs.mkdir(mode=0o777)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(AlreadyRunning, match="belongs to another user \\(uid 65534\\)"):
        _prepare_dir(theirs)
    ours = tmp_path / "mine"
    ours.mkdir(mode=0o755)
    _prepare_dir(ours)  # ours (or root's, like /tmp): fine
