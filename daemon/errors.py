"""Domain exceptions of the daemon, each mapped onto one wire code.

Every exception carries the objects involved (the lock's path, both digests, the file and
line) and builds its own human message from them, naming the thing and the fix. Where a
caller expects a standard exception, the stdlib base is mixed in (``LockTimeout`` is a
``TimeoutError``, ``InvalidRequirement`` a ``ValueError``).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, Final

from burrowd.protocol.errors import ErrorCode, RpcError

__all__ = [
    "BuildFailed",
    "BuildRequired",
    "CacheError",
    "DaemonError",
    "EnvironmentRefused",
    "HashMismatch",
    "InstallConflict",
    "InterpreterNotFound",
    "InvalidDistribution",
    "InvalidParams",
    "InvalidRequirement",
    "LockTimeout",
    "NetworkError",
    "OfflineMiss",
    "PackageNotFound",
    "RequestCancelled",
    "ResolutionImpossible",
    "ShuttingDown",
    "WatchRefused",
]


class DaemonError(RpcError):
    """Root of every error the daemon reports to a client on purpose."""

    code: int = ErrorCode.INTERNAL_ERROR


class InvalidParams(DaemonError, ValueError):
    """The params of a request do not fit the method's type."""

    code = ErrorCode.INVALID_PARAMS


class RequestCancelled(DaemonError):
    """The client cancelled the request (``$/cancelRequest``)."""

    code = ErrorCode.REQUEST_CANCELLED

    def __init__(self, message: str = "request cancelled") -> None:
        super().__init__(message)


class ShuttingDown(DaemonError):
    """The daemon is stopping and takes no new work."""

    code = ErrorCode.SHUTTING_DOWN

    def __init__(self) -> None:
        super().__init__("burrowd is shutting down; run the command again to start a new one")


class ResolutionImpossible(DaemonError):
    """No set of versions satisfies the requirements.

    ``explanation`` is the human derivation ("Because ... we can conclude that ...");
    ``tree`` is the same derivation as structured data.
    """

    code = ErrorCode.RESOLUTION_IMPOSSIBLE

    def __init__(self, explanation: str, tree: Any = None) -> None:
        self.explanation = explanation
        self.tree = tree
        super().__init__(
            f"No solution found when resolving dependencies:\n{explanation}",
            {"explanation": explanation, "tree": tree},
        )


class PackageNotFound(DaemonError, LookupError):
    """A project is on none of the configured indexes."""

    code = ErrorCode.PACKAGE_NOT_FOUND

    def __init__(self, name: str, indexes: list[str], hint: str = "") -> None:
        self.name = name
        self.indexes = indexes
        where = ", ".join(indexes) if indexes else "no index (--no-index and no --find-links)"
        msg = f"package {name!r} was not found on {where}"
        if hint:
            msg += f"; {hint}"
        else:
            msg += "; check the spelling, or add the index that has it with --extra-index-url"
        super().__init__(msg, {"name": name, "indexes": indexes})


class HashMismatch(DaemonError, ValueError):
    """A downloaded file's digest differs from the index's or from a ``--hash`` pin."""

    code = ErrorCode.HASH_MISMATCH

    def __init__(
        self, what: str, url: str, algorithm: str, expected: list[str], actual: str
    ) -> None:
        self.what = what
        self.url = url
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual
        wanted = " or ".join(f"{algorithm}:{h}" for h in expected)
        super().__init__(
            f"hash mismatch for {what} ({url}): expected {wanted}, got {algorithm}:{actual}; "
            "nothing was stored. If the file changed on purpose, update the --hash pin",
            {
                "file": what,
                "url": url,
                "algorithm": algorithm,
                "expected": expected,
                "actual": actual,
            },
        )


class BuildRequired(DaemonError):
    """Metadata or a wheel can only come from building a source distribution."""

    code = ErrorCode.BUILD_FAILED

    def __init__(self, name: str, version: str, source: str, reason: str) -> None:
        self.name = name
        self.version = version
        what = name if version == "?" else f"{name}=={version}"
        super().__init__(
            f"{what} needs a build from {source}: {reason}",
            {"name": name, "version": version, "source": source, "reason": reason},
        )


class BuildFailed(DaemonError):
    """A build backend failed (or could not be imported); ``data`` holds its log's tail."""

    code = ErrorCode.BUILD_FAILED

    def __init__(
        self, source: str, reason: str, *, backend: str = "", hook: str = "", log_tail: str = ""
    ) -> None:
        self.source = source
        self.reason = reason
        self.backend = backend
        self.log_tail = log_tail
        by = f" (backend {backend}, {hook})" if backend and hook else ""
        super().__init__(
            f"building {source} failed{by}: {reason}",
            {
                "source": source,
                "reason": reason,
                "backend": backend,
                "hook": hook,
                "log_tail": log_tail,
            },
        )


class InterpreterNotFound(DaemonError, LookupError):
    """The target Python could not be found or queried."""

    code = ErrorCode.INTERPRETER_NOT_FOUND

    def __init__(self, request: str, reason: str) -> None:
        self.request = request
        self.reason = reason
        super().__init__(
            f"no Python interpreter for {request!r}: {reason}",
            {"python": request, "reason": reason},
        )


class InvalidRequirement(DaemonError, ValueError):
    """A requirement, a requirements file line or a project table is malformed."""

    code = ErrorCode.INVALID_REQUIREMENT

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        text: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.text = text
        where = ""
        if self.file is not None:
            where = f"{self.file}:{line}: " if line is not None else f"{self.file}: "
        shown = f" (in {text.strip()!r})" if text and text.strip() else ""
        super().__init__(
            f"{where}{message}{shown}",
            {"file": self.file, "line": line, "text": text, "reason": message},
        )
        self.reason = message


class NetworkError(DaemonError, OSError):
    """An index or file server could not be reached or answered with an error."""

    code = ErrorCode.NETWORK_ERROR

    def __init__(self, url: str, reason: str, *, status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(
            f"request to {url} failed: {reason}",
            {"url": url, "reason": reason, "status": status},
        )


class LockTimeout(DaemonError, TimeoutError):
    """A file lock was not granted in time."""

    code = ErrorCode.LOCK_TIMEOUT

    def __init__(self, resource: str, path: Path, timeout: float, holder: str = "") -> None:
        self.resource = resource
        self.path = path
        self.timeout = timeout
        held = f" (held by {holder})" if holder else ""
        super().__init__(
            f"timed out after {timeout:g}s waiting for the lock on {resource} ({path}){held}; "
            "another burrowd or uv may be using it. Raise BURROW_LOCK_TIMEOUT to wait longer",
            {"resource": resource, "path": str(path), "timeout": timeout, "holder": holder},
        )


class InvalidDistribution(DaemonError, ValueError):
    """A wheel, sdist or metadata file is broken or lies about itself."""

    code = ErrorCode.INVALID_DISTRIBUTION

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(
            f"invalid distribution {source}: {reason}",
            {"source": source, "reason": reason},
        )


class OfflineMiss(DaemonError, LookupError):
    """``--offline`` was given and the cache does not hold what is needed."""

    code = ErrorCode.OFFLINE_MISS

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(
            f"{what} is not in the cache and --offline forbids the network; "
            "run once without --offline to fill the cache",
            {"what": what},
        )


class CacheError(DaemonError, OSError):
    """The cache directory could not be read or written."""

    code = ErrorCode.CACHE_ERROR

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(f"cache error at {path}: {reason}", {"path": str(path), "reason": reason})


#: A full file system, or the user's quota: ``errno`` -> what to say.
NO_SPACE: Final = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


class DiskFull(CacheError):
    """The file system is full (or the user's quota is) while writing ``path``.

    A :class:`CacheError` (code ``CACHE_ERROR``) whose ``errno`` is the one the write got;
    the hint says how to go on (for the cache: free space or move it).
    """

    def __init__(
        self,
        path: Path | None,
        code: int = errno.ENOSPC,
        hint: str = "free space or move the cache with BURROW_CACHE_DIR",
    ) -> None:
        self.path = path  # type: ignore[assignment]
        reason = NO_SPACE.get(code, os.strerror(code))
        where = f" while writing {path}" if path is not None else ""
        DaemonError.__init__(
            self,
            f"{reason}{where}: {hint}",
            {
                "path": str(path) if path is not None else None,
                "reason": reason,
                "errno": errno.errorcode.get(code, str(code)),
            },
        )
        self.errno = code
        self.strerror = reason


class EnvironmentRefused(DaemonError):
    """An environment cannot be changed as asked (not a venv, externally managed, ...).

    ``environment`` is its prefix (or what was looked for); ``hint`` says how to go on.
    """

    code = ErrorCode.ENVIRONMENT_ERROR

    def __init__(self, environment: str, reason: str, hint: str = "") -> None:
        self.environment = environment
        self.reason = reason
        self.hint = hint
        message = f"{reason} ({environment})" if environment else reason
        if hint:
            message += f"; {hint}"
        super().__init__(message, {"environment": environment, "reason": reason, "hint": hint})


class InstallConflict(DaemonError):
    """A file a wheel would write is taken; nothing in the environment was changed.

    ``owner`` is the distribution that owns the file, or, with ``obstacle``, what else is in
    the way (``obstacle`` then says it in words, and ``fix`` how to clear it).
    """

    code = ErrorCode.INSTALL_CONFLICT

    def __init__(
        self,
        path: str,
        wanted_by: str,
        owner: str,
        environment: str,
        *,
        obstacle: str = "",
        fix: str = "",
    ) -> None:
        self.path = path
        self.wanted_by = wanted_by
        self.owner = owner
        if obstacle:
            message = (
                f"{wanted_by} would write {path}, but {obstacle}; nothing was changed in "
                f"{environment}. {fix or 'Remove what is in the way and run the command again'}"
            )
        else:
            message = (
                f"{wanted_by} would overwrite {path}, which belongs to {owner}; nothing was "
                f"changed in {environment}. Remove one of the two from the requirements, or "
                f"uninstall {owner} first"
            )
        super().__init__(
            message,
            {"path": path, "wanted_by": wanted_by, "owner": owner, "environment": environment},
        )


class WatchRefused(DaemonError):
    """A watch cannot be added or removed as asked; ``path`` names the file (or the id)."""

    code = ErrorCode.WATCH_ERROR

    def __init__(self, path: str, reason: str, hint: str = "") -> None:
        self.path = path
        self.reason = reason
        self.hint = hint
        message = f"cannot watch {path}: {reason}" if path else reason
        if hint:
            message += f"; {hint}"
        super().__init__(message, {"path": path, "reason": reason, "hint": hint})
