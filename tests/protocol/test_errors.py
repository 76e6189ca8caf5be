"""Error codes and the exception that carries one across the wire."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from burrowd.daemon.errors import LockTimeout, ShuttingDown
from burrowd.protocol import jsonrpc
from burrowd.protocol.errors import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    ErrorCode,
    ErrorObject,
    RpcError,
)

TRANSPORT_CODES = {-32700, -32600, -32601, -32602, -32603}


class TestErrorCode:
    def test_codes_are_unique(self) -> None:
        values = [code.value for code in ErrorCode]
        assert len(values) == len(set(values))

    def test_transport_and_cancellation_codes(self) -> None:
        assert {c.value for c in ErrorCode if c.value <= -32600} >= TRANSPORT_CODES
        assert ErrorCode.REQUEST_CANCELLED.value == -32800

    def test_application_codes_are_clear_of_reserved_ranges(self) -> None:
        app = [c for c in ErrorCode if c.value not in TRANSPORT_CODES | {-32800}]
        assert app
        for code in app:
            # From -32010 down, inside JSON-RPC's server-error range, outside LSP's.
            assert -32099 <= code.value <= -32010, code

    def test_exit_statuses(self) -> None:
        assert (EXIT_OK, EXIT_FAILED, EXIT_USAGE) == (0, 1, 2)


class TestRpcError:
    @pytest.mark.parametrize(
        ("code", "message", "data"),
        [
            pytest.param(ErrorCode.PACKAGE_NOT_FOUND, "no such project", {"name": "x"}, id="app"),
            pytest.param(ErrorCode.INVALID_PARAMS, "bad", None, id="no-data"),
            pytest.param(-31999, "from a newer daemon", [1, "two"], id="unknown-code"),
            pytest.param(ErrorCode.INTERNAL_ERROR, "ünïcode ✓", "text", id="unicode"),
        ],
    )
    def test_round_trip_through_the_wire(self, code: int, message: str, data: Any) -> None:
        error = RpcError(message, data, code=code)
        wire = jsonrpc.encode(jsonrpc.ErrorResponse(id=3, error=error.to_error()))
        env = jsonrpc.decode_single(wire)
        assert isinstance(env.error, ErrorObject)
        back = RpcError.from_error(env.error)
        assert (back.code, back.message, back.data) == (code, message, data)
        assert str(back) == message

    def test_data_is_omitted_when_absent(self) -> None:
        encoded = msgspec.json.encode(RpcError("m", code=-32010).to_error())
        assert msgspec.json.decode(encoded) == {"code": -32010, "message": "m"}

    def test_default_code_is_internal_error(self) -> None:
        assert RpcError("x").code == ErrorCode.INTERNAL_ERROR

    @pytest.mark.parametrize(
        ("code", "kind"),
        [
            pytest.param(ErrorCode.LOCK_TIMEOUT, "LOCK_TIMEOUT", id="known"),
            pytest.param(-32800, "REQUEST_CANCELLED", id="int-of-known"),
            pytest.param(-1, "-1", id="unknown"),
        ],
    )
    def test_kind(self, code: int, kind: str) -> None:
        assert RpcError("x", code=code).kind == kind

    def test_daemon_errors_survive_the_trip(self) -> None:
        original = LockTimeout("the cache", Path("/c/.lock"), 3.0, "pid 1")
        back = RpcError.from_error(
            msgspec.json.decode(msgspec.json.encode(original.to_error()), type=ErrorObject)
        )
        assert back.code == ErrorCode.LOCK_TIMEOUT
        assert back.kind == "LOCK_TIMEOUT"
        assert back.message == original.message
        assert back.data == {
            "resource": "the cache",
            "path": "/c/.lock",
            "timeout": 3.0,
            "holder": "pid 1",
        }
        assert ShuttingDown().to_error().code == ErrorCode.SHUTTING_DOWN
