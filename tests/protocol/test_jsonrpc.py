"""Envelopes, the method table and the shared encoder and decoders."""

from __future__ import annotations

import inspect
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from burrowd.protocol import jsonrpc
from burrowd.protocol import messages as m
from burrowd.protocol.errors import ErrorObject

ids = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.text(max_size=20))


class TestEncode:
    def test_request_without_params_omits_them(self) -> None:
        encoded = jsonrpc.encode(jsonrpc.Request(method="status", id=1))
        assert msgspec.json.decode(encoded) == {"method": "status", "id": 1, "jsonrpc": "2.0"}

    def test_notification_has_no_id(self) -> None:
        note = jsonrpc.Notification(method=jsonrpc.CANCEL, params=m.CancelParams(id="x"))
        assert msgspec.json.decode(jsonrpc.encode(note)) == {
            "method": "$/cancelRequest",
            "params": {"id": "x"},
            "jsonrpc": "2.0",
        }

    def test_batch(self) -> None:
        batch = [jsonrpc.Response(id=1, result=m.ShutdownResult(pid=2))]
        assert jsonrpc.encode(batch) == b'[{"id":1,"result":{"pid":2},"jsonrpc":"2.0"}]'


class TestDecode:
    @given(rid=ids, method=st.text(min_size=1, max_size=30))
    def test_request_round_trip(self, rid: int | str, method: str) -> None:
        wire = jsonrpc.encode(jsonrpc.Request(method=method, id=rid, params=m.StatusParams()))
        env = jsonrpc.decode_envelope(wire)
        assert isinstance(env, jsonrpc.Envelope)
        assert (env.jsonrpc, env.id, env.method) == ("2.0", rid, method)
        assert env.is_request
        assert not env.is_notification
        assert bytes(env.params) == b"{}"

    @given(rid=ids)
    def test_error_response_round_trip(self, rid: int | str) -> None:
        error = ErrorObject(code=-32010, message="no", data={"k": [1]})
        env = jsonrpc.decode_single(jsonrpc.encode(jsonrpc.ErrorResponse(id=rid, error=error)))
        assert env.id == rid
        assert env.error == error
        assert not env.is_request

    def test_notification(self) -> None:
        env = jsonrpc.decode_single(b'{"jsonrpc": "2.0", "method": "$/progress"}')
        assert env.is_notification
        assert env.id is msgspec.UNSET

    def test_null_id_is_not_a_notification(self) -> None:
        env = jsonrpc.decode_single(b'{"jsonrpc": "2.0", "id": null, "method": "status"}')
        assert env.id is None
        assert not env.is_notification

    def test_batch_members_stay_raw(self) -> None:
        batch = jsonrpc.decode_envelope(b'[{"jsonrpc": "2.0"}, 1, "x"]')
        assert isinstance(batch, list)
        assert [bytes(raw) for raw in batch] == [b'{"jsonrpc": "2.0"}', b"1", b'"x"']

    @pytest.mark.parametrize(
        ("data", "error"),
        [
            pytest.param(b"{", msgspec.DecodeError, id="truncated"),
            pytest.param(b"", msgspec.DecodeError, id="empty"),
            pytest.param(b"12", msgspec.ValidationError, id="scalar"),
            pytest.param(b'{"id": 1.5}', msgspec.ValidationError, id="float-id"),
            pytest.param(b'{"method": null}', msgspec.ValidationError, id="null-method"),
        ],
    )
    def test_invalid(self, data: bytes, error: type[Exception]) -> None:
        with pytest.raises(error):
            jsonrpc.decode_envelope(data)

    def test_validation_error_is_a_decode_error(self) -> None:
        # The daemon tells -32600 from -32700 by catching ValidationError first.
        assert issubclass(msgspec.ValidationError, msgspec.DecodeError)

    @pytest.mark.parametrize("data", [b"", msgspec.Raw(b"")], ids=["bytes", "raw"])
    def test_decode_as_treats_empty_params_as_an_empty_object(self, data: Any) -> None:
        assert jsonrpc.decode_as(data, m.StatusParams) == m.StatusParams()

    def test_decode_as_names_the_field(self) -> None:
        with pytest.raises(msgspec.ValidationError, match=r"\$\.protocol_version"):
            jsonrpc.decode_as(
                b'{"protocol_version": "1", "client_version": "", "client_build": ""}',
                m.InitializeParams,
            )


class TestMethodTable:
    def test_lifecycle_methods(self) -> None:
        assert {"initialize", "status", "shutdown"} <= set(jsonrpc.METHODS)
        assert jsonrpc.METHODS["initialize"].params is m.InitializeParams
        assert jsonrpc.METHODS["initialize"].result is m.InitializeResult
        assert jsonrpc.METHODS["status"].result is m.StatusResult

    @pytest.mark.parametrize("method", sorted(jsonrpc.METHODS))
    def test_every_method_has_struct_types(self, method: str) -> None:
        spec = jsonrpc.METHODS[method]
        for typ in (spec.params, spec.result):
            assert issubclass(typ, m.Message)
            assert typ.__struct_config__.frozen
            assert not typ.__struct_config__.forbid_unknown_fields
            kinds = {p.kind for p in inspect.signature(typ).parameters.values()}
            assert kinds <= {inspect.Parameter.KEYWORD_ONLY}

    def test_unknown_fields_are_ignored(self) -> None:
        result = jsonrpc.decode_as(
            b'{"protocol_version": 1, "server_version": "v", "server_build": "b", "pid": 1,'
            b' "from_the_future": true}',
            m.InitializeResult,
        )
        assert result.pid == 1
