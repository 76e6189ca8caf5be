"""Params and result types of every method: the one contract of the wire.

One ``<Method>Params``/``<Method>Result`` pair per method, all frozen, keyword-only
``msgspec.Struct``s. Fields added later get defaults so old and new peers can talk; unknown
fields are ignored on the wire, never forbidden.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "CancelParams",
    "Empty",
    "InitializeParams",
    "InitializeResult",
    "ProgressParams",
    "RequestInfo",
    "ShutdownParams",
    "ShutdownResult",
    "StatusParams",
    "StatusResult",
]


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every params and result struct."""


class Empty(Message, frozen=True, kw_only=True):
    """Params of a method that takes none."""


# -- lifecycle ---------------------------------------------------------------------------


class InitializeParams(Message, frozen=True, kw_only=True):
    """What the client tells the daemon about itself first."""

    protocol_version: int
    client_version: str
    client_build: str
    client_name: str = "burrow"


class InitializeResult(Message, frozen=True, kw_only=True):
    """What the daemon answers; the client restarts a daemon whose build differs."""

    protocol_version: int
    server_version: str
    server_build: str
    pid: int


class StatusParams(Message, frozen=True, kw_only=True):
    """Params of ``status``."""


class RequestInfo(Message, frozen=True, kw_only=True):
    """One request being served."""

    id: int | str | None
    method: str
    elapsed: float
    phase: str = ""


class StatusResult(Message, frozen=True, kw_only=True):
    """A snapshot of the daemon."""

    pid: int
    version: str
    build: str
    started_at: float
    uptime: float
    socket: str
    cache_dir: str
    log_file: str
    connections: int
    requests: list[RequestInfo]
    idle_timeout: float
    idle_for: float


class ShutdownParams(Message, frozen=True, kw_only=True):
    """Params of ``shutdown``."""


class ShutdownResult(Message, frozen=True, kw_only=True):
    """The daemon has stopped listening; it exits once its requests are done."""

    pid: int


# -- notifications ------------------------------------------------------------------------


class ProgressParams(Message, frozen=True, kw_only=True):
    """``$/progress``: how far a long request has come (token = the request id)."""

    token: int | str
    phase: str
    current: int = 0
    total: int | None = None
    bytes: int = 0
    message: str = ""


class CancelParams(Message, frozen=True, kw_only=True):
    """``$/cancelRequest``: cancel the request with this id, and only that one."""

    id: int | str
