"""``resolve`` over a raw socket: progress notifications and cancellation."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from burrowd.protocol.errors import ErrorCode
from tests.e2e.helpers import BurrowEnv, DaemonProcess, RawClient
from tests.resolve_e2e.harness import release
from tests.support.index import FakeIndex


def resolve_params(project: Path, index: FakeIndex, *requirements: str) -> dict[str, Any]:
    return {
        "env": {"cwd": str(project), "virtual_env": sys.prefix},
        "requirements": list(requirements),
        "index": {"index_url": index.simple_url},
    }


def send(client: RawClient, method: str, params: dict[str, Any], rid: int) -> None:
    client.send_json({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})


class TestProgress:
    def test_notifications_carry_the_request_id_and_come_before_the_result(
        self, env: BurrowEnv, daemon: DaemonProcess, project: Path, fake_index: FakeIndex
    ) -> None:
        release(fake_index, "app==1.0", "lib", "other")
        release(fake_index, "lib==1.0")
        release(fake_index, "other==1.0")
        with env.connect() as client:
            client.initialize()
            send(client, "resolve", resolve_params(project, fake_index, "app"), rid=7)
            progress: list[dict[str, Any]] = []
            while True:
                message = client.read()
                if message.get("method") == "$/progress":
                    progress.append(message["params"])
                    continue
                assert message["id"] == 7, message
                break
        assert "error" not in message, message
        assert [p["name"] for p in message["result"]["packages"]] == ["app", "lib", "other"]
        assert progress, "no $/progress before the result"
        assert {p["token"] for p in progress} == {7}
        phases = [p["phase"] for p in progress]
        assert phases[0] == "reading inputs"
        assert "resolving" in phases
        # The last step of a phase is always sent.
        done = [p for p in progress if p["phase"] == "resolving" and p["current"] >= p["total"]]
        assert done


class TestCancellation:
    def test_cancel_a_slow_resolve_and_keep_serving(
        self, env: BurrowEnv, daemon: DaemonProcess, project: Path, fake_index: FakeIndex
    ) -> None:
        release(fake_index, "app==1.0", "lib")
        release(fake_index, "lib==1.0")
        fake_index.latency = 3.0
        with env.connect() as client:
            client.initialize()
            send(client, "resolve", resolve_params(project, fake_index, "app"), rid=41)
            first = client.read()
            assert first["method"] == "$/progress"
            assert first["params"]["token"] == 41
            start = time.monotonic()
            client.send_json({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 41}})
            reply = client.read_reply(41)
            assert time.monotonic() - start < 2.5, "the cancel waited for the index"
            assert reply["error"]["code"] == ErrorCode.REQUEST_CANCELLED
            assert reply["error"]["code"] == -32800

            # Only that request: the same connection and daemon go on serving.
            status = client.call("status")
            assert status["pid"] == daemon.pid
            assert [r for r in status["requests"] if r["method"] == "resolve"] == []
            fake_index.latency = 0.0
            send(client, "resolve", resolve_params(project, fake_index, "app"), rid=42)
            again = client.read_reply(42)
        assert "error" not in again, again
        assert [p["version"] for p in again["result"]["packages"]] == ["1.0", "1.0"]

    def test_cancel_one_of_two_concurrent_resolves(
        self, env: BurrowEnv, daemon: DaemonProcess, project: Path, fake_index: FakeIndex
    ) -> None:
        release(fake_index, "app==1.0")
        fake_index.latency = 1.0
        with env.connect() as client:
            send(client, "resolve", resolve_params(project, fake_index, "app"), rid=1)
            send(client, "resolve", resolve_params(project, fake_index, "app"), rid=2)
            client.send_json({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}})
            replies = {rid: client.read_reply(rid) for rid in (1, 2)}
        assert replies[1]["error"]["code"] == ErrorCode.REQUEST_CANCELLED
        assert "error" not in replies[2], replies[2]
        assert replies[2]["result"]["packages"][0]["name"] == "app"
