"""JSON-RPC 2.0 envelopes, the method table and the shared encoder and decoders.

A message is first decoded as an :class:`Envelope` whose ``params``/``result`` stay raw
JSON; the receiver then decodes them with the type the method table names, so bad params
are reported against the method's own fields (``$.requirements[2]``).
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple, TypeVar

import msgspec

from burrowd.protocol import messages as m
from burrowd.protocol.errors import ErrorCode, ErrorObject

__all__ = [
    "CANCEL",
    "JSONRPC",
    "METHODS",
    "NOTIFICATIONS",
    "PROGRESS",
    "PROTOCOL_VERSION",
    "WATCH_EVENT",
    "Envelope",
    "ErrorResponse",
    "MethodSpec",
    "Notification",
    "Request",
    "Response",
    "decode_envelope",
    "encode",
]

JSONRPC: Final = "2.0"
#: Bumped on any incompatible change of the wire format or of a method's types.
PROTOCOL_VERSION: Final = 1

PROGRESS: Final = "$/progress"
CANCEL: Final = "$/cancelRequest"
WATCH_EVENT: Final = "watch.event"

RequestId = int | str
T = TypeVar("T")


class Request(msgspec.Struct, frozen=True):
    """A call that expects a response."""

    method: str
    id: RequestId
    params: Any = msgspec.UNSET
    jsonrpc: str = JSONRPC


class Notification(msgspec.Struct, frozen=True):
    """A call without an id: nobody answers it."""

    method: str
    params: Any = msgspec.UNSET
    jsonrpc: str = JSONRPC


class Response(msgspec.Struct, frozen=True):
    """A successful response."""

    id: RequestId
    result: Any
    jsonrpc: str = JSONRPC


class ErrorResponse(msgspec.Struct, frozen=True):
    """A failed response; ``id`` is null when the request's id could not be read."""

    id: RequestId | None
    error: ErrorObject
    jsonrpc: str = JSONRPC


class Envelope(msgspec.Struct, frozen=True):
    """Any single message, with params, result and error left undecoded."""

    jsonrpc: str | msgspec.UnsetType = msgspec.UNSET
    id: RequestId | msgspec.UnsetType | None = msgspec.UNSET
    method: str | msgspec.UnsetType = msgspec.UNSET
    params: msgspec.Raw = msgspec.Raw()
    result: msgspec.Raw = msgspec.Raw()
    error: ErrorObject | msgspec.UnsetType = msgspec.UNSET

    @property
    def is_request(self) -> bool:
        """Return whether this is a call (request or notification)."""
        return self.method is not msgspec.UNSET

    @property
    def is_notification(self) -> bool:
        """Return whether this is a call without an id."""
        return self.is_request and self.id is msgspec.UNSET


class MethodSpec(NamedTuple):
    """The types of one method (a NamedTuple: ``dataclasses`` costs the client 10 ms)."""

    params: type[msgspec.Struct]
    result: type[msgspec.Struct]
    #: The method sends ``$/progress`` notifications and may be cancelled halfway.
    long_running: bool = False
    #: Application errors it may answer, besides the transport's (for the API reference).
    errors: tuple[ErrorCode, ...] = ()


_E = ErrorCode
#: Errors of every method that reads requirements and talks to indexes.
_PACKAGES: Final = (
    _E.INVALID_REQUIREMENT,
    _E.PACKAGE_NOT_FOUND,
    _E.RESOLUTION_IMPOSSIBLE,
    _E.INTERPRETER_NOT_FOUND,
    _E.NETWORK_ERROR,
    _E.OFFLINE_MISS,
    _E.HASH_MISMATCH,
    _E.INVALID_DISTRIBUTION,
    _E.BUILD_FAILED,
    _E.LOCK_TIMEOUT,
    _E.CACHE_ERROR,
    _E.SHUTTING_DOWN,
)
_ENVIRONMENTS: Final = (*_PACKAGES, _E.ENVIRONMENT_ERROR, _E.INSTALL_CONFLICT)
_CACHE: Final = (_E.LOCK_TIMEOUT, _E.CACHE_ERROR, _E.SHUTTING_DOWN)

#: Every method the daemon serves. A method absent here answers -32601.
METHODS: Final[dict[str, MethodSpec]] = {
    "initialize": MethodSpec(m.InitializeParams, m.InitializeResult),
    "status": MethodSpec(m.StatusParams, m.StatusResult),
    "shutdown": MethodSpec(m.ShutdownParams, m.ShutdownResult),
    "cache.dir": MethodSpec(m.CacheDirParams, m.CacheDirResult, errors=_CACHE),
    "cache.stats": MethodSpec(m.CacheStatsParams, m.CacheStatsResult, errors=_CACHE),
    "cache.clean": MethodSpec(
        m.CacheCleanParams, m.CacheCleanResult, long_running=True, errors=_CACHE
    ),
    "cache.prune": MethodSpec(
        m.CachePruneParams, m.CachePruneResult, long_running=True, errors=_CACHE
    ),
    "prefetch": MethodSpec(m.PrefetchParams, m.PrefetchResult, long_running=True, errors=_PACKAGES),
    "resolve": MethodSpec(m.ResolveParams, m.ResolveResult, long_running=True, errors=_PACKAGES),
    "sync": MethodSpec(m.SyncParams, m.SyncResult, long_running=True, errors=_ENVIRONMENTS),
    "install": MethodSpec(
        m.InstallParams, m.InstallResult, long_running=True, errors=_ENVIRONMENTS
    ),
    "uninstall": MethodSpec(
        m.UninstallParams,
        m.UninstallResult,
        long_running=True,
        errors=(
            _E.INVALID_REQUIREMENT,
            _E.INTERPRETER_NOT_FOUND,
            _E.ENVIRONMENT_ERROR,
            _E.INSTALL_CONFLICT,
            _E.LOCK_TIMEOUT,
            _E.SHUTTING_DOWN,
        ),
    ),
    "list": MethodSpec(
        m.ListParams, m.ListResult, errors=(_E.INTERPRETER_NOT_FOUND, _E.ENVIRONMENT_ERROR)
    ),
    "venv": MethodSpec(m.VenvParams, m.VenvResult, long_running=True, errors=_ENVIRONMENTS),
    "watch.add": MethodSpec(
        m.WatchAddParams,
        m.WatchAddResult,
        errors=(_E.WATCH_ERROR, _E.INVALID_REQUIREMENT, _E.SHUTTING_DOWN),
    ),
    "watch.remove": MethodSpec(m.WatchRemoveParams, m.WatchRemoveResult, errors=(_E.WATCH_ERROR,)),
    "watch.list": MethodSpec(m.WatchListParams, m.WatchListResult),
    "watch.events": MethodSpec(m.WatchEventsParams, m.WatchEventsResult),
}

#: Notifications and their params: from the daemon (``$/progress``, ``watch.event``) and
#: from a client (``$/cancelRequest``).
NOTIFICATIONS: Final[dict[str, type[msgspec.Struct]]] = {
    PROGRESS: m.ProgressParams,
    CANCEL: m.CancelParams,
    WATCH_EVENT: m.WatchEvent,
}

_encoder: Final = msgspec.json.Encoder()
_envelope_decoder: Final = msgspec.json.Decoder(Envelope | list[msgspec.Raw])
_single_decoder: Final = msgspec.json.Decoder(Envelope)
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


def encode(message: Any) -> bytes:
    """Encode one message (or a batch list) to JSON bytes."""
    return _encoder.encode(message)


def decode_envelope(data: bytes) -> Envelope | list[msgspec.Raw]:
    """Decode a message or a batch.

    Raise :class:`msgspec.DecodeError` for invalid JSON and
    :class:`msgspec.ValidationError` for JSON that is not a JSON-RPC message.
    """
    decoded: Envelope | list[msgspec.Raw] = _envelope_decoder.decode(data)
    return decoded


def decode_single(data: bytes | msgspec.Raw) -> Envelope:
    """Decode one member of a batch."""
    return _single_decoder.decode(data)


def decode_as(data: bytes | msgspec.Raw, typ: type[T]) -> T:
    """Decode ``data`` as ``typ`` with a cached decoder; empty data decodes as ``{}``."""
    dec = _decoders.get(typ)
    if dec is None:
        dec = _decoders[typ] = msgspec.json.Decoder(typ)
    if not data:
        data = b"{}"
    return dec.decode(data)  # type: ignore[no-any-return]
