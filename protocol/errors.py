"""JSON-RPC error codes and the exception that carries one across the wire.

Transport faults use the JSON-RPC 2.0 codes; cancellation uses LSP's -32800. Every kind
of application failure has one code of its own, from -32010 down, clear of the range LSP
reserves. :class:`RpcError` converts to and from the wire error object; the daemon's
domain exceptions (``burrowd.daemon.errors``) subclass it and carry the objects involved.
"""

from __future__ import annotations

import enum
from typing import Any, Final

import msgspec

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "ErrorCode",
    "ErrorObject",
    "RpcError",
]


class ErrorCode(enum.IntEnum):
    """Every code a burrowd reply can carry."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    REQUEST_CANCELLED = -32800

    RESOLUTION_IMPOSSIBLE = -32010
    PACKAGE_NOT_FOUND = -32011
    HASH_MISMATCH = -32012
    BUILD_FAILED = -32013
    INTERPRETER_NOT_FOUND = -32014
    INVALID_REQUIREMENT = -32015
    NETWORK_ERROR = -32016
    LOCK_TIMEOUT = -32017
    INVALID_DISTRIBUTION = -32018
    OFFLINE_MISS = -32019
    CACHE_ERROR = -32020
    SHUTTING_DOWN = -32021
    ENVIRONMENT_ERROR = -32022
    INSTALL_CONFLICT = -32023
    WATCH_ERROR = -32024


#: Exit status of the ``burrow`` client: success.
EXIT_OK: Final = 0
#: Exit status when the daemon answered with any error (the operation failed).
EXIT_FAILED: Final = 1
#: Exit status for a usage error on the command line (argparse uses it too).
EXIT_USAGE: Final = 2


class ErrorObject(msgspec.Struct, frozen=True, omit_defaults=True):
    """The ``error`` member of a JSON-RPC response."""

    code: int
    message: str
    data: Any = None


class RpcError(Exception):
    """An error that travels as a JSON-RPC error object.

    Subclasses set :attr:`code`. A client that receives an error object rebuilds it with
    :meth:`from_error`, so ``code``, ``message`` and ``data`` survive the round trip.
    """

    code: int = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, data: Any = None, *, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
        if code is not None:
            self.code = code

    def to_error(self) -> ErrorObject:
        """Return the wire form of this error."""
        return ErrorObject(code=int(self.code), message=self.message, data=self.data)

    @classmethod
    def from_error(cls, error: ErrorObject) -> RpcError:
        """Rebuild an error received from the wire."""
        return RpcError(error.message, error.data, code=error.code)

    @property
    def kind(self) -> str:
        """Return the symbolic name of the code (``"LOCK_TIMEOUT"``), or the number."""
        try:
            return ErrorCode(self.code).name
        except ValueError:
            return str(self.code)

    def __str__(self) -> str:
        return self.message
