"""The JSON-RPC transport in-process: a real ``RpcServer`` on a real Unix socket.

The handlers here are the test's own (a sleeper, a progress reporter, failing ones) so that
cancellation, progress and error paths can be driven before the daemon has slow methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec
import pytest

from burrowd.daemon.errors import LockTimeout
from burrowd.daemon.rpc import MAX_MESSAGE, Handler, RequestContext, RpcServer
from burrowd.protocol.errors import ErrorCode
from burrowd.protocol.messages import RequestInfo, ShutdownResult

RequestId = int | str
JSON = Any
READ_TIMEOUT = 3.0


class Client:
    """An asyncio client that speaks NDJSON to the server under test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, *messages: JSON) -> None:
        """Send messages in one write (the server reads them as one chunk)."""
        await self.send_raw(b"".join(json.dumps(m).encode() + b"\n" for m in messages))

    async def request(self, rid: RequestId, method: str = "status", params: JSON = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)

    async def cancel(self, rid: RequestId) -> None:
        await self.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": rid}})

    async def read(self, timeout: float = READ_TIMEOUT) -> JSON:
        async with asyncio.timeout(timeout):
            line = await self.reader.readline()
        if not line:
            raise EOFError("the server closed the connection")
        return json.loads(line)

    async def read_replies(self, count: int) -> tuple[dict[RequestId, JSON], list[JSON]]:
        """Read until ``count`` responses came; return them by id, and the notifications."""
        replies: dict[RequestId, JSON] = {}
        notes: list[JSON] = []
        while len(replies) < count:
            message = await self.read()
            if "method" in message:
                notes.append(message)
            else:
                replies[message["id"]] = message
        return replies, notes

    async def nothing_pending(self, wait: float = 0.2) -> bool:
        try:
            async with asyncio.timeout(wait):
                line = await self.reader.readline()
        except TimeoutError:
            return True
        raise AssertionError(f"unexpected message {line!r}")

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


class Harness:
    """One ``RpcServer`` served on a temporary socket, and the clients connected to it."""

    def __init__(self, rpc: RpcServer, server: asyncio.Server, directory: Path) -> None:
        self.rpc = rpc
        self.server = server
        self.directory = directory
        self.path = directory / "s"
        self.clients: list[Client] = []

    async def connect(self) -> Client:
        before = len(self.rpc.connections)
        reader, writer = await asyncio.open_unix_connection(os.fspath(self.path))
        client = Client(reader, writer)
        self.clients.append(client)
        # Wait until the server has taken the connection, so counts below are exact.
        await wait_for(lambda: len(self.rpc.connections) > before)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        await wait_for(lambda: not self.rpc.connections)
        self.server.close()
        await self.server.wait_closed()
        shutil.rmtree(self.directory, ignore_errors=True)


async def wait_for(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll ``predicate`` in the loop until it holds; fail the test after ``timeout``."""
    async with asyncio.timeout(timeout):
        # The state polled here (connections, cancelled handlers) has no event to wait on.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


Serve = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Return ``serve(handlers, **rpc_kwargs)``: start an RpcServer on a fresh socket."""
    harnesses: list[Harness] = []

    async def start(handlers: Mapping[str, Handler], **kwargs: Any) -> Harness:
        directory = Path(tempfile.mkdtemp(prefix="bw", dir="/tmp"))
        rpc = RpcServer(handlers, **kwargs)
        server = await asyncio.start_unix_server(
            rpc.handle_stream, path=os.fspath(directory / "s"), limit=MAX_MESSAGE
        )
        harness = Harness(rpc, server, directory)
        harnesses.append(harness)
        return harness

    yield start
    for harness in harnesses:
        await harness.close()


class Sleeper:
    """A handler that sleeps (``delays[id]``, else 30 s) and records how each request ended."""

    def __init__(self, delays: Mapping[RequestId, float] | None = None) -> None:
        self.delays = dict(delays or {})
        self.started: defaultdict[RequestId, asyncio.Event] = defaultdict(asyncio.Event)
        self.cancelled: list[RequestId] = []
        self.finished: list[RequestId] = []

    async def __call__(self, params: Any, ctx: RequestContext) -> ShutdownResult:
        self.started[ctx.id].set()
        try:
            await asyncio.sleep(self.delays.get(ctx.id, 30.0))
        except asyncio.CancelledError:
            self.cancelled.append(ctx.id)
            raise
        self.finished.append(ctx.id)
        return ShutdownResult(pid=os.getpid())

    async def wait_started(self, *ids: RequestId) -> None:
        async with asyncio.timeout(READ_TIMEOUT):
            for rid in ids:
                await self.started[rid].wait()


class TestCancellation:
    async def test_cancel_one_of_two_in_flight(self, serve: Serve) -> None:
        sleeper = Sleeper({2: 0.2})
        harness = await serve({"status": sleeper})
        client = await harness.connect()
        await client.request(1)
        await client.request(2)
        await sleeper.wait_started(1, 2)
        assert harness.rpc.in_flight == 2
        await client.cancel(1)
        replies, _ = await client.read_replies(2)
        assert replies[1]["error"] == {
            "code": ErrorCode.REQUEST_CANCELLED,
            "message": "request 1 was cancelled",
        }
        assert replies[2]["result"] == {"pid": os.getpid()}
        assert sleeper.cancelled == [1]
        assert sleeper.finished == [2]
        assert harness.rpc.in_flight == 0

    async def test_cancel_with_a_string_id(self, serve: Serve) -> None:
        sleeper = Sleeper()
        harness = await serve({"status": sleeper})
        client = await harness.connect()
        await client.request("job")
        await sleeper.wait_started("job")
        await client.cancel("job")
        reply = await client.read()
        assert reply["id"] == "job"
        assert reply["error"]["code"] == -32800

    async def test_cancel_in_the_same_write_as_the_request(self, serve: Serve) -> None:
        # Both lines arrive in one chunk, so the cancel is read before the request's task has
        # run a single step: it must still be answered, and must not stay "in flight".
        sleeper = Sleeper()
        harness = await serve({"status": sleeper})
        client = await harness.connect()
        await client.send(
            {"jsonrpc": "2.0", "id": 1, "method": "status"},
            {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}},
        )
        reply = await client.read()
        assert reply["id"] == 1
        assert reply["error"]["code"] == -32800
        assert harness.rpc.in_flight == 0
        assert await harness.rpc.wait_idle(0.5)

    async def test_cancel_of_an_unknown_or_finished_id_is_ignored(self, serve: Serve) -> None:
        sleeper = Sleeper({1: 0})
        harness = await serve({"status": sleeper})
        client = await harness.connect()
        await client.request(1)
        assert "result" in await client.read()
        await client.cancel(1)
        await client.cancel(12345)
        await client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"x": 1}})
        assert await client.nothing_pending()
        await client.request(2)
        await sleeper.wait_started(2)
        await client.cancel(2)
        assert (await client.read())["error"]["code"] == -32800

    async def test_cancel_inside_a_batch(self, serve: Serve) -> None:
        sleeper = Sleeper({2: 0.1})
        harness = await serve({"status": sleeper})
        client = await harness.connect()
        await client.send(
            [
                {"jsonrpc": "2.0", "id": 1, "method": "status"},
                {"jsonrpc": "2.0", "id": 2, "method": "status"},
            ]
        )
        await sleeper.wait_started(1, 2)
        await client.cancel(1)
        replies = {r["id"]: r for r in await client.read()}
        assert replies[1]["error"]["code"] == -32800
        assert "result" in replies[2]

    async def test_dropped_connection_cancels_only_its_requests(self, serve: Serve) -> None:
        sleeper = Sleeper({"other": 0.3})
        harness = await serve({"status": sleeper})
        leaving = await harness.connect()
        staying = await harness.connect()
        await leaving.request(1)
        await leaving.request(2)
        await staying.request("other")
        await sleeper.wait_started(1, 2, "other")
        await leaving.close()
        await wait_for(lambda: sorted(map(str, sleeper.cancelled)) == ["1", "2"])
        reply = await staying.read()
        assert reply["id"] == "other"
        assert "result" in reply
        assert sleeper.finished == ["other"]
        assert harness.rpc.in_flight == 0
        assert len(harness.rpc.connections) == 1

    async def test_dropped_connection_in_the_same_chunk(self, serve: Serve) -> None:
        sleeper = Sleeper()
        harness = await serve({"status": sleeper})
        client = await harness.connect()
        await client.request(1)
        await client.close()
        await wait_for(lambda: not harness.rpc.connections)
        assert harness.rpc.in_flight == 0

    async def test_cancel_everything(self, serve: Serve) -> None:
        sleeper = Sleeper()
        harness = await serve({"status": sleeper})
        client = await harness.connect()
        await client.request(1)
        await client.request(2)
        await sleeper.wait_started(1, 2)
        assert not await harness.rpc.wait_idle(0.05)
        harness.rpc.cancel_everything()
        assert await harness.rpc.wait_idle(1.0)
        assert sorted(map(int, sleeper.cancelled)) == [1, 2]
        # Nobody asked for these cancellations, so nobody is answered.
        assert await client.nothing_pending()


class Reporter:
    """A handler that reports ``steps`` steps of one phase, ``interval`` seconds apart."""

    def __init__(self, steps: int, interval: float) -> None:
        self.steps = steps
        self.interval = interval

    async def __call__(self, params: Any, ctx: RequestContext) -> ShutdownResult:
        for step in range(1, self.steps + 1):
            ctx.progress("download", step, self.steps, nbytes=step * 100)
            await asyncio.sleep(self.interval)
        return ShutdownResult(pid=0)


class TestProgress:
    @pytest.mark.parametrize("rid", [pytest.param(7, id="int"), pytest.param("dl", id="str")])
    async def test_progress_reaches_the_client_throttled(
        self, serve: Serve, rid: RequestId
    ) -> None:
        harness = await serve({"status": Reporter(steps=30, interval=0.01)})
        client = await harness.connect()
        await client.request(rid)
        replies, notes = await client.read_replies(1)
        assert "result" in replies[rid]
        params = [n["params"] for n in notes]
        assert {n["method"] for n in notes} == {"$/progress"}
        assert {p["token"] for p in params} == {rid}
        assert {p["phase"] for p in params} == {"download"}
        # 30 steps over at least 0.3 s, throttled to one every 0.1 s: the first, a few
        # in between and the last one (always sent).
        assert 3 <= len(params) <= 8, params
        assert params[0]["current"] == 1
        assert params[-1] == {
            "token": rid,
            "phase": "download",
            "current": 30,
            "total": 30,
            "bytes": 3000,
            "message": "",
        }
        currents = [p["current"] for p in params]
        assert currents == sorted(set(currents))

    async def test_a_new_phase_and_force_are_always_sent(self, serve: Serve) -> None:
        async def phases(params: Any, ctx: RequestContext) -> ShutdownResult:
            ctx.progress("resolve")
            ctx.progress("download", 0, 10)
            ctx.progress("download", 1, 10)  # throttled
            ctx.progress("download", 2, 10, message="forced", force=True)
            ctx.progress("download", 3, 10)  # throttled
            ctx.progress("download", 10, 10)  # the last step
            return ShutdownResult(pid=0)

        harness = await serve({"status": phases})
        client = await harness.connect()
        await client.request(1)
        _, notes = await client.read_replies(1)
        assert [(n["params"]["phase"], n["params"]["current"]) for n in notes] == [
            ("resolve", 0),
            ("download", 0),
            ("download", 2),
            ("download", 10),
        ]

    async def test_status_sees_the_phase_of_requests_in_flight(self, serve: Serve) -> None:
        go = asyncio.Event()

        async def waiting(params: Any, ctx: RequestContext) -> ShutdownResult:
            ctx.progress("build", 1, 5)
            ctx.progress("unpack", 2, 5)
            await go.wait()
            return ShutdownResult(pid=0)

        harness = await serve({"status": waiting})
        client = await harness.connect()
        await client.request("r")
        await wait_for(lambda: bool(harness.rpc.request_infos()))
        [info] = harness.rpc.request_infos()
        assert isinstance(info, RequestInfo)
        assert (info.id, info.method, info.phase) == ("r", "status", "unpack")
        assert info.elapsed >= 0
        go.set()
        replies, notes = await client.read_replies(1)
        assert "result" in replies["r"]
        assert len(notes) == 2


class Weird(msgspec.Struct):
    value: Any


class TestDispatch:
    async def test_duplicate_id_in_flight(self, serve: Serve) -> None:
        sleeper = Sleeper()
        harness = await serve({"status": sleeper})
        client = await harness.connect()
        await client.request(1)
        await sleeper.wait_started(1)
        await client.request(1)
        reply = await client.read()
        assert reply["error"]["code"] == -32600
        assert "already in flight" in reply["error"]["message"]
        assert harness.rpc.in_flight == 1

    async def test_daemon_error_keeps_its_code_and_data(self, serve: Serve) -> None:
        async def locked(params: Any, ctx: RequestContext) -> ShutdownResult:
            raise LockTimeout("the cache", Path("/c/.lock"), 2.0, "pid 9")

        harness = await serve({"status": locked})
        client = await harness.connect()
        await client.request(1)
        error = (await client.read())["error"]
        assert error["code"] == ErrorCode.LOCK_TIMEOUT
        assert error["data"] == {
            "resource": "the cache",
            "path": "/c/.lock",
            "timeout": 2.0,
            "holder": "pid 9",
        }

    async def test_crash_is_an_internal_error_with_traceback(self, serve: Serve) -> None:
        async def crash(params: Any, ctx: RequestContext) -> ShutdownResult:
            raise ValueError("boom")

        harness = await serve({"status": crash, "shutdown": Sleeper({1: 0})})
        client = await harness.connect()
        await client.request(1)
        error = (await client.read())["error"]
        assert error["code"] == -32603
        assert error["message"] == "internal error in status: ValueError: boom"
        assert "Traceback" in error["data"]["traceback"]
        await client.request(1, "shutdown")
        assert "result" in await client.read()

    async def test_a_full_disk_is_the_users_to_fix_not_a_crash(self, serve: Serve) -> None:
        async def full(params: Any, ctx: RequestContext) -> ShutdownResult:
            raise OSError(errno.ENOSPC, "No space left on device", "/venv/lib/x.py")

        harness = await serve({"status": full})
        client = await harness.connect()
        await client.request(1)
        error = (await client.read())["error"]
        assert error["code"] == ErrorCode.CACHE_ERROR
        assert error["message"] == (
            "no space left on device while writing /venv/lib/x.py: free space on that file "
            "system and run the command again"
        )
        assert error["data"] == {
            "path": "/venv/lib/x.py",
            "reason": "no space left on device",
            "errno": "ENOSPC",
        }

    async def test_other_os_errors_are_crashes(self, serve: Serve) -> None:
        async def broken(params: Any, ctx: RequestContext) -> ShutdownResult:
            raise PermissionError(errno.EACCES, "Permission denied", "/etc/x")

        harness = await serve({"status": broken})
        client = await harness.connect()
        await client.request(1)
        error = (await client.read())["error"]
        assert error["code"] == -32603
        assert "PermissionError" in error["message"]

    async def test_unencodable_result(self, serve: Serve) -> None:
        async def weird(params: Any, ctx: RequestContext) -> Weird:
            return Weird(value=object())

        harness = await serve({"status": weird})
        client = await harness.connect()
        await client.request(1)
        error = (await client.read())["error"]
        assert error["code"] == -32603
        assert "unencodable result" in error["message"]

    async def test_only_status_and_initialize_while_shutting_down(self, serve: Serve) -> None:
        harness = await serve({"status": Sleeper({1: 0}), "shutdown": Sleeper({2: 0})})
        harness.rpc.accepting = False
        client = await harness.connect()
        await client.request(1)
        await client.request(2, "shutdown")
        replies, _ = await client.read_replies(2)
        assert "result" in replies[1]
        assert replies[2]["error"]["code"] == ErrorCode.SHUTTING_DOWN

    async def test_activity_is_reported(self, serve: Serve) -> None:
        events: list[int] = []
        harness = await serve({"status": Sleeper({1: 0})}, on_activity=lambda: events.append(1))
        client = await harness.connect()
        connected = len(events)
        assert connected >= 1
        await client.request(1)
        await client.read()
        assert len(events) >= connected + 2  # the request started and ended
        await client.close()
        await wait_for(lambda: not harness.rpc.connections)
        assert len(events) >= connected + 3

    async def test_wait_idle(self, serve: Serve) -> None:
        sleeper = Sleeper({1: 0.2})
        harness = await serve({"status": sleeper})
        assert await harness.rpc.wait_idle(0.01)
        client = await harness.connect()
        await client.request(1)
        await sleeper.wait_started(1)
        assert not await harness.rpc.wait_idle(0.01)
        assert await harness.rpc.wait_idle(2.0)


class TestTransport:
    async def test_peer_of_another_uid_is_closed_unanswered(self, serve: Serve) -> None:
        harness = await serve({"status": Sleeper({1: 0})})
        # Pretend the server runs as another user: this process is then a foreign peer.
        harness.rpc._uid = os.getuid() + 1
        reader, writer = await asyncio.open_unix_connection(os.fspath(harness.path))
        with contextlib.suppress(ConnectionError):
            writer.write(b'{"jsonrpc": "2.0", "id": 1, "method": "status"}\n')
            await writer.drain()
        async with asyncio.timeout(READ_TIMEOUT):
            try:
                received = await reader.read()
            except ConnectionResetError:
                received = b""
        assert received == b""
        writer.close()
        assert not harness.rpc.connections

    async def test_message_over_the_limit_closes_the_connection(self, serve: Serve) -> None:
        harness = await serve({"status": Sleeper({1: 0})})
        client = await harness.connect()
        writer = asyncio.ensure_future(client.send_raw(b"[" + b" " * (MAX_MESSAGE + 1024)))
        reply = await client.read(timeout=10.0)
        assert reply["error"]["code"] == -32600
        assert "exceeds the limit" in reply["error"]["message"]
        async with asyncio.timeout(READ_TIMEOUT):
            assert await client.reader.read() == b""
        with contextlib.suppress(ConnectionError):
            await writer
        fresh = await harness.connect()
        await fresh.request(1)
        assert "result" in await fresh.read()
