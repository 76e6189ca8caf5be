"""Hostile RPC: fuzzed framing and params against a real daemon, and the framing parser alone.

The daemon must answer or close, never die, and never hold on to memory past a bound. The
number of examples is small in ``make test``; ``BURROW_FUZZ_EXAMPLES`` raises it for
``make reliability`` (and makes the runs random instead of derandomized).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Final

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from burrowd.daemon.rpc import (
    MAX_CONNECTIONS,
    MAX_MESSAGE,
    Connection,
    FrameDecoder,
    FramingError,
    RequestContext,
    RpcServer,
)
from burrowd.protocol import jsonrpc
from burrowd.protocol.errors import ErrorCode
from burrowd.protocol.messages import StatusResult
from tests.e2e.helpers import BurrowEnv, DaemonProcess, burrow_env, wait_until

JSON = Any

#: Examples per fuzz test: ``BURROW_FUZZ_EXAMPLES`` overrides the fast defaults.
_FUZZ_ENV: Final = int(os.environ.get("BURROW_FUZZ_EXAMPLES", "0") or 0)


def fuzz_settings(default: int) -> settings:
    """Return the hypothesis settings of one fuzz test (``default`` examples in ``make test``)."""
    return settings(
        max_examples=_FUZZ_ENV or default,
        deadline=None,
        derandomize=not _FUZZ_ENV,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


KNOWN_CODES: Final = frozenset(int(code) for code in ErrorCode)
#: Methods safe to call with any params: they change nothing outside the daemon's own cache
#: and never reach past the loopback. The others get sandboxed params (see ``sandboxed``).
SAFE_METHODS: Final = (
    "initialize",
    "status",
    "cache.dir",
    "cache.stats",
    "cache.prune",
    "watch.list",
    "watch.remove",
    "watch.events",
    "list",
)
#: Reading a whole answer may take this long (a loaded CI machine).
READ_TIMEOUT: Final = 10.0

# -- strategies --------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
request_ids = st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.text(max_size=8)


@st.composite
def hostile_messages(draw: st.DrawFn) -> JSON:
    """A message that is a JSON-RPC request only now and then."""
    message: dict[str, JSON] = {}
    if draw(st.booleans()):
        message["jsonrpc"] = draw(st.sampled_from(["2.0", "1.0"]) | json_values)
    if draw(st.booleans()):
        message["id"] = draw(request_ids | json_values)
    if draw(st.integers(0, 4)):
        message["method"] = draw(
            st.sampled_from([*SAFE_METHODS, jsonrpc.CANCEL, "nope", ""]) | json_values
        )
    if draw(st.booleans()):
        message["params"] = draw(json_values)
    for key in ("result", "error"):
        if not draw(st.integers(0, 6)):
            message[key] = draw(json_values)
    if not draw(st.integers(0, 5)):
        return draw(st.lists(st.just(message) | json_values, max_size=4))
    return message


@st.composite
def hostile_bodies(draw: st.DrawFn) -> bytes:
    """The body of one message: JSON-RPC-ish, mangled, or no JSON at all."""
    kind = draw(st.sampled_from(["message", "mangled", "bytes", "deep", "bad-utf8"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "deep":
        depth = draw(st.sampled_from([500, 990, 1100, 5000, 100_000]))
        opener = draw(st.sampled_from([b"[", b'{"a":', b'{"jsonrpc":"2.0","id":1,"params":[']))
        return opener * depth + draw(st.sampled_from([b"", b"1" + b"]" * depth]))
    body = json.dumps(draw(hostile_messages())).encode()
    if kind == "bad-utf8":
        at = draw(st.integers(0, len(body)))
        return body[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80"]))
    if kind == "mangled":
        at = draw(st.integers(0, len(body)))
        cut = draw(st.integers(0, 3))
        return body[:at] + draw(st.binary(max_size=4)) + body[at + cut :]
    return body


@st.composite
def hostile_streams(draw: st.DrawFn) -> bytes:
    """A whole connection's bytes: NDJSON lines or LSP frames, with broken framing now and then."""
    bodies = draw(st.lists(hostile_bodies(), min_size=1, max_size=4))
    if draw(st.booleans()):
        return b"".join(body.replace(b"\n", b" ") + b"\n" for body in bodies)
    frames = []
    for body in bodies:
        length = len(body)
        header = draw(
            st.sampled_from(
                [
                    f"Content-Length: {length}",
                    f"content-length:{length}\r\nContent-Type: application/json",
                    f"Content-Length: {length + draw(st.integers(-3, 3))}",
                    f"Content-Length: {draw(st.integers(-5, 2 * MAX_MESSAGE))}",
                    "Content-Length: lots",
                    "Content-Type: x",
                ]
            )
        )
        frames.append(header.encode() + b"\r\n\r\n" + body)
    return b"".join(frames)


# -- reading what the daemon said --------------------------------------------------------------


def split_replies(data: bytes) -> list[JSON]:
    """Split what the daemon wrote into messages (NDJSON lines or LSP frames)."""
    messages = []
    while data:
        if data.startswith(b"Content-Length:"):
            head, sep, rest = data.partition(b"\r\n\r\n")
            assert sep, data[:200]
            length = int(head.split(b":", 1)[1])
            body, data = rest[:length], rest[length:]
            assert len(body) == length, "a truncated frame"
        else:
            body, sep, data = data.partition(b"\n")
            assert sep, f"a reply without its newline: {body[:200]!r}"
        messages.append(json.loads(body))
    return messages


def check_reply(message: JSON) -> None:
    """Assert ``message`` is a well-formed response, with no internal error."""
    members = message if isinstance(message, list) else [message]
    for member in members:
        assert member["jsonrpc"] == "2.0", member
        if "method" in member:  # a notification ($/progress)
            continue
        assert "id" in member, member
        if "error" in member:
            code = member["error"]["code"]
            assert code in KNOWN_CODES, member
            assert code != ErrorCode.INTERNAL_ERROR, member
            assert isinstance(member["error"]["message"], str), member
        else:
            assert "result" in member, member


def exchange(path: Path, data: bytes, timeout: float = READ_TIMEOUT) -> bytes:
    """Send ``data``, shut down the write side, and return all the daemon said before closing."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(os.fspath(path))  # blocking, as the client's (see status_ok)
        sock.settimeout(timeout)
        # The daemon may close as soon as it sees broken framing, while we still write.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk


def status_ok(env: BurrowEnv, daemon: DaemonProcess) -> dict[str, Any]:
    """Assert the daemon lives and answers ``status`` on a fresh connection.

    The connect blocks, as the ``burrow`` client's does: under a storm of connections the
    accept queue can be full, and only a non-blocking connect fails (``EAGAIN``) then.
    """
    assert daemon.proc.poll() is None, daemon.stderr()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(os.fspath(env.socket))
        sock.settimeout(READ_TIMEOUT)
        sock.sendall(b'{"jsonrpc": "2.0", "id": "status", "method": "status"}\n')
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            assert chunk, f"closed without an answer: {data!r}"
            data += chunk
    reply = json.loads(data)
    assert reply["id"] == "status", reply
    result: dict[str, Any] = reply["result"]
    return result


def rss_kib(pid: int) -> int:
    """Return the resident set size of ``pid`` in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[BurrowEnv, DaemonProcess]]:
    """Return one daemon that serves every test of this module (each leaves it as it was)."""
    with burrow_env() as env:
        yield env, env.start_daemon()


@pytest.fixture(scope="module")
def sandbox(served: tuple[BurrowEnv, DaemonProcess]) -> Path:
    """Return a directory for the sandboxed params: cwd, interpreter and output paths."""
    root = served[0].root / "sandbox"
    root.mkdir()
    return root


# -- the framing parser, in process ------------------------------------------------------------


def feed_all(decoder: FrameDecoder, chunks: list[bytes]) -> list[bytes]:
    """Feed ``chunks`` one by one; return every body that came out."""
    bodies = []
    for chunk in chunks:
        decoder.feed(chunk)
        while (body := decoder.next()) is not None:
            bodies.append(body)
    return bodies


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    """Return ``data`` cut at the offsets ``cuts``."""
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


class TestFrameDecoder:
    @fuzz_settings(300)
    @given(
        bodies=st.lists(st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")), max_size=6),
        lsp=st.booleans(),
        cuts=st.lists(st.integers(min_value=0), max_size=12),
    )
    def test_any_chunking_gives_the_same_messages(
        self, bodies: list[bytes], lsp: bool, cuts: list[int]
    ) -> None:
        if lsp:
            stream = b"".join(b"Content-Length: %d\r\n\r\n%s" % (len(b), b) for b in bodies)
            expected = bodies
        else:
            bodies = [b"{" + b for b in bodies]  # a first line like a header switches to LSP
            stream = b"".join(b + b"\n" for b in bodies)
            expected = [b + b"\n" for b in bodies]
        decoder = FrameDecoder()
        assert feed_all(decoder, chunked(stream, cuts)) == expected
        assert not decoder.pending

    @fuzz_settings(500)
    @given(
        stream=st.binary(max_size=400) | hostile_streams(),
        cuts=st.lists(st.integers(min_value=0), max_size=8),
        limit=st.sampled_from([16, 100, MAX_MESSAGE]),
    )
    def test_any_bytes_give_messages_or_a_framing_error(
        self, stream: bytes, cuts: list[int], limit: int
    ) -> None:
        decoder = FrameDecoder(limit)
        bodies: list[bytes] = []
        with contextlib.suppress(FramingError):
            bodies = feed_all(decoder, chunked(stream, cuts))
        # Framing errors aside, nothing else is raised and no body is over the limit.
        assert all(len(body) <= limit + 1 for body in bodies)  # + the newline of a line

    def test_an_oversized_line_fails_before_its_end_comes(self) -> None:
        decoder = FrameDecoder(1000)
        decoder.feed(b"[" * 1001)
        with pytest.raises(FramingError, match="exceeds the limit of 1000 bytes"):
            decoder.next()

    @pytest.mark.parametrize(
        ("stream", "error"),
        [
            pytest.param(b"Content-Length: 1001\r\n\r\n", "exceeds the limit", id="too-long"),
            pytest.param(b"Content-Length: -1\r\n\r\n", "bad Content-Length", id="negative"),
            pytest.param(b"Content-Length: x\r\n\r\n", "bad Content-Length", id="not-a-number"),
            pytest.param(b"Content-Type: x\r\n\r\n", "without a Content-Length", id="missing"),
            pytest.param(b"X-A: b\r\n" * 2000, "headers exceed", id="endless-headers"),
            pytest.param(b"Content-Length: 1\r\n" + b"x" * 9000, "headers exceed", id="long"),
        ],
    )
    def test_broken_lsp_headers(self, stream: bytes, error: str) -> None:
        decoder = FrameDecoder(1000)
        decoder.feed(stream)
        with pytest.raises(FramingError, match=error):
            decoder.next()

    def test_pending_is_part_of_a_message(self) -> None:
        decoder = FrameDecoder()
        decoder.feed(b"\n \r\n")
        assert decoder.next() == b"\n"
        assert decoder.next() == b" \r\n"
        assert not decoder.pending
        decoder.feed(b'{"a"')
        assert decoder.next() is None
        assert decoder.pending


class TestReceive:
    """``RpcServer.receive`` takes any bytes: an error reply or nothing, never an exception."""

    @fuzz_settings(400)
    @given(body=hostile_bodies())
    def test_any_body_is_answered_without_raising(self, body: bytes) -> None:
        async def run() -> list[Any]:
            answered: list[Any] = []

            async def status(params: Any, ctx: RequestContext) -> msgspec.Struct:
                return StatusResult(
                    pid=0,
                    version="",
                    build="",
                    started_at=0.0,
                    uptime=0.0,
                    socket="",
                    cache_dir="",
                    log_file="",
                    connections=0,
                    requests=[],
                    idle_timeout=0.0,
                    idle_for=0.0,
                )

            server = RpcServer({"status": status})
            conn = _Recorder(server, answered)
            reply = server.receive(conn, body)
            if reply is not None:
                answered.append(msgspec.json.decode(jsonrpc.encode(reply)))
            await server.wait_idle(2.0)
            for _ in range(3):
                await asyncio.sleep(0)
            return answered

        for reply in asyncio.run(run()):
            check_reply(reply)


class _Recorder(Connection):
    """A connection that keeps what it was sent (as decoded JSON)."""

    def __init__(self, server: RpcServer, answered: list[Any]) -> None:
        super().__init__(server, "test")
        self.answered = answered

    def write(self, data: bytes) -> None:
        self.answered.append(json.loads(data))


# -- a real daemon -----------------------------------------------------------------------------


class TestHostileStreams:
    @fuzz_settings(60)
    @given(stream=hostile_streams())
    def test_answered_or_closed_never_dead(
        self, served: tuple[BurrowEnv, DaemonProcess], stream: bytes
    ) -> None:
        env, daemon = served
        for reply in split_replies(exchange(env.socket, stream)):
            check_reply(reply)
        assert daemon.proc.poll() is None, daemon.stderr()

    def test_still_serving_after_the_fuzzing(self, served: tuple[BurrowEnv, DaemonProcess]) -> None:
        env, daemon = served
        assert status_ok(env, daemon)["pid"] == daemon.pid
        assert "Traceback" not in env.log_text()


def sandboxed(method: str, params: JSON, sandbox: Path) -> JSON:
    """Pin whatever in ``params`` could reach past the sandbox: interpreter, index, paths.

    Fields of the wrong type stay as drawn (they must be refused); an object where an
    object belongs gets the sandbox's values, so a valid request can change nothing but
    files under ``sandbox`` and asks no index but an offline one.
    """
    if not isinstance(params, dict):
        return params
    params = dict(params)
    safe_env: dict[str, JSON] = {
        "cwd": os.fspath(sandbox),
        "virtual_env": None,
        "path": "",
        "variables": {},
    }
    params["env"] = safe_env if isinstance(params.get("env", {}), dict) else params["env"]
    if isinstance(params.get("python", {}), dict):
        params["python"] = {"python": os.fspath(sandbox / "no-such-python")}
    if isinstance(params.get("index", {}), dict):
        params["index"] = {"index_url": "http://127.0.0.1:9/simple", "offline": True}
    for key in ("output_file", "path"):
        if isinstance(params.get(key), str):
            params[key] = os.fspath(sandbox / "out")
    return params


param_fields: Final = {
    name: [f.encode_name for f in msgspec.structs.fields(spec.params)]
    for name, spec in jsonrpc.METHODS.items()
}


@st.composite
def method_params(draw: st.DrawFn) -> tuple[str, JSON]:
    """A method other than ``shutdown`` and params shaped like its own, or not."""
    method = draw(st.sampled_from(sorted(set(jsonrpc.METHODS) - {"shutdown"})))
    fields = param_fields[method]
    if not draw(st.integers(0, 5)):
        return method, draw(json_values)
    names = draw(st.lists(st.sampled_from(fields), unique=True)) if fields else []
    value = json_values | st.lists(st.text(max_size=30), max_size=3)
    params = {name: draw(value) for name in names}
    params.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    return method, params


class TestEveryMethodsParams:
    @fuzz_settings(80)
    @given(call=method_params(), rid=request_ids)
    def test_answered_with_a_result_or_a_known_error(
        self,
        served: tuple[BurrowEnv, DaemonProcess],
        sandbox: Path,
        call: tuple[str, JSON],
        rid: int | str,
    ) -> None:
        env, daemon = served
        method, params = call
        with env.connect() as client:
            client.sock.settimeout(READ_TIMEOUT)
            reply = client.request(method, sandboxed(method, params, sandbox), rid=rid)
        check_reply(reply)
        assert daemon.proc.poll() is None, daemon.stderr()

    def test_still_serving_after_the_fuzzing(self, served: tuple[BurrowEnv, DaemonProcess]) -> None:
        env, daemon = served
        assert status_ok(env, daemon)["pid"] == daemon.pid


class TestLimits:
    @pytest.mark.parametrize("lsp", [False, True], ids=["ndjson", "lsp"])
    def test_an_oversized_message_gets_32600_then_close(
        self, served: tuple[BurrowEnv, DaemonProcess], lsp: bool
    ) -> None:
        env, daemon = served
        body = b'{"jsonrpc": "2.0", "id": 1, "method": "status", "params": {"x": "'
        body += b"x" * MAX_MESSAGE + b'"}}'
        stream = b"Content-Length: %d\r\n\r\n%s" % (len(body), body) if lsp else body + b"\n"
        (reply,) = split_replies(exchange(env.socket, stream))
        assert reply["id"] is None
        assert reply["error"]["code"] == ErrorCode.INVALID_REQUEST
        assert f"exceeds the limit of {MAX_MESSAGE}" in reply["error"]["message"]
        status_ok(env, daemon)

    def test_a_sync_of_twenty_thousand_hashed_pins_fits(
        self, served: tuple[BurrowEnv, DaemonProcess], sandbox: Path
    ) -> None:
        env, daemon = served
        pins = "".join(
            f"package-{i}==1.0.{i} \\\n    --hash=sha256:{i:064x}\n" for i in range(20_000)
        )
        params = sandboxed("sync", {"requirement_files": ["-"], "stdin": pins}, sandbox)
        message = {"jsonrpc": "2.0", "id": 7, "method": "sync", "params": params}
        body = json.dumps(message).encode()
        assert 2 * 1024 * 1024 < len(body) < MAX_MESSAGE
        with env.connect() as client:
            client.sock.settimeout(30.0)
            client.send(body + b"\n")
            reply = client.read_reply(7)
        check_reply(reply)
        # Read and understood: it fails only on the sandbox's missing interpreter.
        assert reply["error"]["code"] == ErrorCode.INTERPRETER_NOT_FOUND, reply
        status_ok(env, daemon)

    @pytest.mark.parametrize("depth", [900, 100_000])
    @pytest.mark.parametrize(
        "opener", [b"[", b'{"a":', b'{"jsonrpc":"2.0","id":1,"method":"status","params":{"a":']
    )
    def test_deep_nesting_is_a_parse_error_and_the_connection_goes_on(
        self, served: tuple[BurrowEnv, DaemonProcess], depth: int, opener: bytes
    ) -> None:
        env, daemon = served
        closer = b"]" if opener == b"[" else b"}"
        body = opener * depth + b"1" + closer * depth
        if opener.startswith(b'{"jsonrpc"'):
            body += b"}"
        with env.connect() as client:
            client.send(body + b"\n")
            reply = client.read()
            check_reply(reply)
            if isinstance(reply, list):  # a batch of one member, itself nested
                (reply,) = reply
            assert reply["error"]["code"] in (
                ErrorCode.PARSE_ERROR,
                ErrorCode.INVALID_REQUEST,
                ErrorCode.INVALID_PARAMS,
            )
            assert client.call("status")["pid"] == daemon.pid

    @pytest.mark.parametrize(
        "body",
        [
            pytest.param(b'{"jsonrpc": "2.0", "id": 1, "method": "sta\xfftus"}', id="method"),
            pytest.param(b'{"jsonrpc": "2.0", "id": "\xc3", "method": "status"}', id="id"),
            pytest.param(b"\xff\xfe{}", id="bom"),
            pytest.param(b'{"jsonrpc": "2.0", "id": 1, "method": "\xed\xa0\x80"}', id="surrogate"),
        ],
    )
    def test_invalid_utf8_is_a_parse_error(
        self, served: tuple[BurrowEnv, DaemonProcess], body: bytes
    ) -> None:
        env, daemon = served
        with env.connect() as client:
            client.send(body + b"\n")
            reply = client.read()
            assert reply["error"]["code"] == ErrorCode.PARSE_ERROR, reply
            assert client.call("status")["pid"] == daemon.pid

    def test_a_batch_over_the_limit_is_refused(
        self, served: tuple[BurrowEnv, DaemonProcess]
    ) -> None:
        env, _ = served
        batch = [{"jsonrpc": "2.0", "id": i, "method": "cache.dir"} for i in range(1001)]
        with env.connect() as client:
            client.send_json(batch)
            reply = client.read()
            assert reply["error"]["code"] == ErrorCode.INVALID_REQUEST
            assert "exceeds the limit of 1000" in reply["error"]["message"]
            assert len(client.request("cache.dir", rid="ok")) == 3


class TestHalfClosed:
    @pytest.mark.parametrize("lsp", [False, True], ids=["ndjson", "lsp"])
    def test_answered_then_closed(self, served: tuple[BurrowEnv, DaemonProcess], lsp: bool) -> None:
        env, daemon = served
        calls: list[JSON] = [{"jsonrpc": "2.0", "id": i, "method": "status"} for i in (1, 2)]
        calls.append([{"jsonrpc": "2.0", "id": 3, "method": "cache.dir"}])
        bodies = [json.dumps(c).encode() for c in calls]
        if lsp:
            stream = b"".join(b"Content-Length: %d\r\n\r\n%s" % (len(b), b) for b in bodies)
        else:
            stream = b"".join(b + b"\n" for b in bodies)
        replies = split_replies(exchange(env.socket, stream))
        ids = sorted(r["id"] if isinstance(r, dict) else r[0]["id"] for r in replies)
        assert ids == [1, 2, 3], replies
        assert all(r[0]["result"] if isinstance(r, list) else r["result"] for r in replies)
        status_ok(env, daemon)


class TestFlood:
    def test_five_hundred_idle_connections_and_a_storm(
        self, served: tuple[BurrowEnv, DaemonProcess]
    ) -> None:
        env, daemon = served
        idle: list[socket.socket] = []
        storm_done = threading.Event()
        storm_count = [0]

        def storm() -> None:
            while not storm_done.is_set():
                with (
                    socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s,
                    contextlib.suppress(OSError),
                ):
                    s.connect(os.fspath(env.socket))
                storm_count[0] += 1

        stormer = threading.Thread(target=storm)
        try:
            for _ in range(500):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                idle.append(s)
                s.connect(os.fspath(env.socket))
            stormer.start()
            slowest = 0.0
            for _ in range(20):
                started = time.monotonic()
                status = status_ok(env, daemon)
                slowest = max(slowest, time.monotonic() - started)
                assert status["connections"] <= MAX_CONNECTIONS
            assert slowest < 2.0, slowest
        finally:
            storm_done.set()
            if stormer.is_alive():
                stormer.join()
            for s in idle:
                s.close()
        assert storm_count[0] > 0
        # Idle connections over the limit were displaced, with a reason.
        assert wait_until(lambda: status_ok(env, daemon)["connections"] <= 2, 5.0)

    def test_a_client_that_never_reads_is_not_read_either(
        self, served: tuple[BurrowEnv, DaemonProcess]
    ) -> None:
        env, daemon = served
        before = rss_kib(daemon.pid)
        request = b'{"jsonrpc": "2.0", "id": 1, "method": "status"}\n' * 1000
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(os.fspath(env.socket))
            s.setblocking(False)
            sent = 0
            deadline = time.monotonic() + 3.0
            with contextlib.suppress(BlockingIOError):
                while time.monotonic() < deadline:
                    sent += s.send(request)
            # The socket buffers filled up: the daemon stopped reading instead of queueing
            # megabytes of replies nobody takes.
            assert sent < 64 * 1024 * 1024
            status_ok(env, daemon)
        assert rss_kib(daemon.pid) - before < 64 * 1024


# -- timeouts and limits of the connection, in process ------------------------------------------


@pytest.fixture
async def small_server() -> AsyncIterator[tuple[RpcServer, Path]]:
    """Return an RpcServer with small limits on a fresh socket, and the socket's path."""

    async def cache_dir(params: Any, ctx: RequestContext) -> msgspec.Struct:
        from burrowd.protocol.messages import CacheDirResult  # noqa: PLC0415

        return CacheDirResult(path="/nowhere")

    directory = Path(tempfile.mkdtemp(prefix="bw", dir="/tmp"))
    rpc = RpcServer({"cache.dir": cache_dir}, max_connections=3, message_timeout=0.3)
    server = await asyncio.start_unix_server(rpc.handle_stream, path=os.fspath(directory / "s"))
    try:
        yield rpc, directory / "s"
    finally:
        server.close()
        for conn in list(rpc.connections):
            conn.close()
        await server.wait_closed()
        shutil.rmtree(directory, ignore_errors=True)


async def _read_all(reader: asyncio.StreamReader) -> list[JSON]:
    async with asyncio.timeout(5.0):
        data = await reader.read()
    return split_replies(data)


CACHE_DIR: Final = b'{"jsonrpc": "2.0", "id": 1, "method": "cache.dir"}\n'


class TestConnectionLimits:
    async def test_a_silent_connection_is_closed_with_a_reason(
        self, small_server: tuple[RpcServer, Path]
    ) -> None:
        _, path = small_server
        reader, writer = await asyncio.open_unix_connection(os.fspath(path))
        started = time.monotonic()
        (reply,) = await _read_all(reader)
        assert time.monotonic() - started >= 0.25
        assert reply["error"]["code"] == ErrorCode.INVALID_REQUEST
        assert "no message within 0.3s" in reply["error"]["message"]
        writer.close()

    async def test_a_message_begun_must_be_finished(
        self, small_server: tuple[RpcServer, Path]
    ) -> None:
        _, path = small_server
        reader, writer = await asyncio.open_unix_connection(os.fspath(path))
        writer.write(CACHE_DIR + b'{"jsonrpc": "2.0", "id": 2, "meth')
        replies = await _read_all(reader)
        assert replies[0]["id"] == 1
        assert "no complete message within 0.3s" in replies[1]["error"]["message"]
        writer.close()

    async def test_a_connection_that_spoke_may_idle(
        self, small_server: tuple[RpcServer, Path]
    ) -> None:
        _, path = small_server
        reader, writer = await asyncio.open_unix_connection(os.fspath(path))
        writer.write(CACHE_DIR)
        assert json.loads(await reader.readline())["id"] == 1
        await asyncio.sleep(0.6)
        writer.write(CACHE_DIR.replace(b'"id": 1', b'"id": 2'))
        assert json.loads(await reader.readline())["id"] == 2
        writer.close()

    async def test_a_silent_connection_makes_room_for_a_new_one(
        self, small_server: tuple[RpcServer, Path]
    ) -> None:
        rpc, path = small_server
        silent = await asyncio.open_unix_connection(os.fspath(path))
        await asyncio.sleep(0.02)
        talkers = []
        for _ in range(3):
            reader, writer = await asyncio.open_unix_connection(os.fspath(path))
            writer.write(CACHE_DIR)
            assert json.loads(await reader.readline())["result"]
            talkers.append((reader, writer))
        (reply,) = await _read_all(silent[0])
        assert "3 connections are open and this one sent nothing" in reply["error"]["message"]
        assert len(rpc.connections) == 3
        # Everyone left has spoken: a fourth is refused, with a reason.
        reader, writer = await asyncio.open_unix_connection(os.fspath(path))
        (refusal,) = await _read_all(reader)
        assert "at most 3 connections" in refusal["error"]["message"]
        for _, w in talkers:
            w.close()
        writer.close()
        silent[1].close()


# -- memory ------------------------------------------------------------------------------------

#: Rounds of hostile traffic between the two RSS measurements (``make reliability``: more).
RSS_ROUNDS: Final = max(8, _FUZZ_ENV // 20)
#: Growth of the daemon's RSS allowed over those rounds, in KiB: generous, since the
#: allocator keeps some freed memory; a leak of one oversized message a round exceeds it.
RSS_BOUND_KIB: Final = 48 * 1024


def hostile_round(env: BurrowEnv) -> None:
    """Send one round of every kind of hostile traffic to the daemon of ``env``."""
    oversized = b'{"jsonrpc": "2.0", "id": 1, "params": "' + b"x" * (MAX_MESSAGE + 10) + b'"}\n'
    exchange(env.socket, oversized)
    exchange(env.socket, b"Content-Length: %d\r\n\r\n" % (MAX_MESSAGE - 1) + b"[" * 100_000)
    exchange(env.socket, b"[" * 100_000 + b"\n" + b'{"a": "\xff"}\n')
    batch = [{"jsonrpc": "2.0", "id": i, "method": "cache.dir"} for i in range(1000)]
    exchange(env.socket, json.dumps(batch).encode() + b"\n")
    status = b'{"jsonrpc": "2.0", "id": 1, "method": "status"}\n'
    exchange(env.socket, status * 200)
    for _ in range(50):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(os.fspath(env.socket))
            s.sendall(b'{"jsonrpc": "2.0", "id": 1, "meth')
    idle = []
    for _ in range(300):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(os.fspath(env.socket))
        idle.append(s)
    for s in idle:
        s.close()


class TestMemory:
    def test_rss_stays_within_a_bound(self, capsys: pytest.CaptureFixture[str]) -> None:
        with burrow_env() as env:
            daemon = env.start_daemon()
            # Warm up: decoders, allocator arenas, the first big buffers.
            for _ in range(2):
                hostile_round(env)
            status_ok(env, daemon)
            before = rss_kib(daemon.pid)
            started = time.monotonic()
            for _ in range(RSS_ROUNDS):
                hostile_round(env)
            assert wait_until(lambda: status_ok(env, daemon)["connections"] <= 1, 5.0)
            after = rss_kib(daemon.pid)
            with capsys.disabled():
                print(
                    f"\ndaemon RSS {before} KiB -> {after} KiB after {RSS_ROUNDS} hostile rounds "
                    f"({time.monotonic() - started:.1f}s); bound +{RSS_BOUND_KIB} KiB"
                )
            assert after - before < RSS_BOUND_KIB, (before, after)
            assert daemon.proc.poll() is None
