"""Security: private socket and directories, other users refused, no secrets in logs or status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import msgspec
import pytest

from burrowd.daemon import rpc
from burrowd.daemon.rpc import RequestContext, RpcServer
from burrowd.protocol.messages import CacheDirResult
from tests.e2e.helpers import BurrowEnv, DaemonProcess, burrow_env
from tests.resolve_e2e.harness import release
from tests.support.index import FakeIndex

PASSWORD: Final = "s3cr3t-Pa55w0rd"
TOKEN: Final = "tok3n-0123456789abcdef"


def mode(path: Path) -> int:
    """Return the permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Run the test (and the daemons it starts) under umask 000."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


class TestModes:
    @pytest.mark.usefixtures("loose_umask")
    def test_socket_and_directories_are_private_even_under_umask_000(self) -> None:
        with burrow_env() as env:
            env.start_daemon()
            with env.connect() as client:
                client.call("cache.prune")  # creates the cache root, if nothing did yet
            assert env.socket.is_socket()
            assert mode(env.socket) == 0o600
            assert mode(env.run_dir) == 0o700
            assert mode(env.log.parent) == 0o700
            # The cache holds what anyone could download, but no other user may write it.
            for path in (env.cache, *env.cache.rglob("*")):
                assert mode(path) & 0o002 == 0, (path, oct(mode(path)))
            assert env.socket.stat().st_uid == os.getuid()

    def test_another_user_cannot_even_reach_the_socket(self) -> None:
        if os.geteuid() != 0:
            pytest.skip("connecting as another uid needs root")
        with burrow_env() as env:
            env.start_daemon()
            env.root.chmod(0o755)  # only the 0700 run directory stands in the way now
            pid = os.fork()
            if pid == 0:  # the child: become nobody, try to connect, report by exit status
                code = 3
                try:
                    os.setgid(65534)
                    os.setuid(65534)
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                        s.connect(os.fspath(env.socket))
                    code = 0
                except PermissionError:
                    code = 1
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 1


class TestPeerCredentials:
    async def test_a_peer_of_another_uid_is_refused_logged_and_never_read(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        called: list[Any] = []

        async def cache_dir(params: Any, ctx: RequestContext) -> msgspec.Struct:
            called.append(params)
            return CacheDirResult(path="/nowhere")

        # The kernel says the peer is someone else (tests cannot switch uid unprivileged).
        monkeypatch.setattr(rpc, "peer_credentials", lambda sock: (4242, os.getuid() + 1, 0))
        directory = Path(tempfile.mkdtemp(prefix="bw", dir="/tmp"))
        server_rpc = RpcServer({"cache.dir": cache_dir})
        server = await asyncio.start_unix_server(
            server_rpc.handle_stream, path=os.fspath(directory / "s")
        )
        try:
            with caplog.at_level(logging.WARNING, logger="burrowd.daemon.rpc"):
                reader, writer = await asyncio.open_unix_connection(os.fspath(directory / "s"))
                with contextlib.suppress(ConnectionError):
                    writer.write(b'{"jsonrpc": "2.0", "id": 1, "method": "cache.dir"}\n')
                    await writer.drain()
                async with asyncio.timeout(5.0):
                    with contextlib.suppress(ConnectionResetError):
                        assert await reader.read() == b""
                writer.close()
            assert not called
            assert not server_rpc.connections
            assert f"refused connection from pid 4242 uid {os.getuid() + 1}" in caplog.text
        finally:
            server.close()
            await server.wait_closed()
            shutil.rmtree(directory, ignore_errors=True)

    async def test_unreadable_credentials_are_a_refusal(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        def broken(sock: Any) -> tuple[int, int, int]:
            raise OSError(95, "Operation not supported")

        monkeypatch.setattr(rpc, "peer_credentials", broken)
        directory = Path(tempfile.mkdtemp(prefix="bw", dir="/tmp"))
        server_rpc = RpcServer({})
        server = await asyncio.start_unix_server(
            server_rpc.handle_stream, path=os.fspath(directory / "s")
        )
        try:
            with caplog.at_level(logging.WARNING, logger="burrowd.daemon.rpc"):
                reader, writer = await asyncio.open_unix_connection(os.fspath(directory / "s"))
                async with asyncio.timeout(5.0):
                    with contextlib.suppress(ConnectionResetError):
                        assert await reader.read() == b""
                writer.close()
            assert "peer credentials unavailable" in caplog.text
        finally:
            server.close()
            await server.wait_closed()
            shutil.rmtree(directory, ignore_errors=True)


# -- secrets -------------------------------------------------------------------------------------


@pytest.fixture
def env() -> Iterator[BurrowEnv]:
    """Return a private environment with no daemon running."""
    with burrow_env() as e:
        yield e


@pytest.fixture
def daemon(env: BurrowEnv) -> DaemonProcess:
    """Return a daemon of ``env`` that logs debug messages too (the most it ever says)."""
    return env.start_daemon("--verbose")


@pytest.fixture
def private_index(fake_index: FakeIndex) -> FakeIndex:
    """An index that wants ``user:PASSWORD`` and serves ``app`` (which needs ``lib``)."""
    release(fake_index, "app==1.0", "lib>=1")
    release(fake_index, "lib==1.0")
    fake_index.auth = ("user", PASSWORD)
    return fake_index


def with_credentials(url: str, credentials: str) -> str:
    """Return ``url`` with ``credentials@`` in front of its host."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{credentials}@{rest}"


def everything_said(env: BurrowEnv, outputs: list[str]) -> str:
    """Return every text the daemon and client produced: outputs, log, stderr, status."""
    status = env.cli("daemon", "status", "--json")
    assert status.returncode == 0, status.stderr
    texts = [*outputs, status.stdout, status.stderr, env.log_text()]
    texts += [d.stderr() for d in env.daemons]
    return "\n".join(texts)


class TestNoSecrets:
    def test_index_credentials_never_show(
        self, env: BurrowEnv, daemon: DaemonProcess, private_index: FakeIndex, tmp_path: Path
    ) -> None:
        good = with_credentials(private_index.simple_url, f"user:{PASSWORD}")
        wrong = with_credentials(private_index.simple_url, f"user:{PASSWORD}-wrong")
        token = with_credentials(private_index.simple_url, TOKEN)
        outputs = []
        req = tmp_path / "requirements.in"
        req.write_text("app\n")
        done = env.cli("-v", "compile", os.fspath(req), "-i", good, "--emit-index-url")
        assert done.returncode == 0, done.stderr
        assert "app==1.0" in done.stdout
        outputs += [done.stdout, done.stderr]
        # Failures: a project the index lacks, refused credentials, a token that is refused.
        for url in (good, wrong, token):
            missing = tmp_path / "missing.in"
            missing.write_text("app\nno-such-project\n")
            failed = env.cli("-v", "compile", os.fspath(missing), "-i", url)
            assert failed.returncode != 0
            outputs += [failed.stdout, failed.stderr]
        out = tmp_path / "requirements.txt"
        written = env.cli("compile", os.fspath(req), "-i", good, "-o", os.fspath(out))
        assert written.returncode == 0, written.stderr
        outputs.append(out.read_text())
        said = everything_said(env, outputs)
        assert PASSWORD not in said
        assert TOKEN not in said
        # The URLs are still there, redacted, where they help.
        assert "user:****@127.0.0.1" in said

    def test_credentials_in_a_sync_never_show(
        self, env: BurrowEnv, daemon: DaemonProcess, private_index: FakeIndex, tmp_path: Path
    ) -> None:
        url = with_credentials(private_index.simple_url, f"user:{PASSWORD}")
        venv = tmp_path / "venv"
        made = env.cli("venv", os.fspath(venv), timeout=60.0)
        assert made.returncode == 0, made.stderr
        pins = tmp_path / "requirements.txt"
        pins.write_text("app==1.0\nlib==1.0\n")
        synced = env.cli("-v", "sync", os.fspath(pins), "--python", os.fspath(venv), "-i", url)
        assert synced.returncode == 0, synced.stderr
        pins.write_text("app==1.0\nlib==1.0\nno-such-project==1.0\n")
        failed = env.cli("-v", "sync", os.fspath(pins), "--python", os.fspath(venv), "-i", url)
        assert failed.returncode != 0
        said = everything_said(
            env, [synced.stdout, synced.stderr, failed.stdout, failed.stderr, made.stderr]
        )
        assert PASSWORD not in said
        for record in (venv / "lib").glob("python*/site-packages/*.dist-info/direct_url.json"):
            assert PASSWORD not in record.read_text()
