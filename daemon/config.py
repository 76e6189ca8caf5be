"""Daemon settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from msgspec import Struct
from msgspec.structs import replace

from burrowd.protocol import paths

__all__ = ["Config", "ConfigError", "UnpackLimits"]

DEFAULT_IDLE_TIMEOUT = 900.0
DEFAULT_LOCK_TIMEOUT = 300.0
DEFAULT_INDEX_TTL = 600.0
DEFAULT_WATCH_DEBOUNCE = 0.1
#: The largest archive unpacked: torch's CUDA wheels unpack to about 2.5 GiB, so 8 GiB
#: leaves room for the largest real wheels while a zip bomb still stops early.
DEFAULT_MAX_UNPACKED_SIZE = 8 * 1024**3
#: The most members an archive may have (the largest real wheels have some tens of
#: thousands).
DEFAULT_MAX_ARCHIVE_FILES = 200_000
#: Retries after the first attempt (``BURROW_RETRIES``): three attempts in all by default.
DEFAULT_RETRIES: Final = 2
#: The first pause between attempts (``BURROW_RETRY_BACKOFF``); each next one doubles.
DEFAULT_RETRY_BACKOFF: Final = 0.5
#: No retry starts once this many seconds have passed since the first attempt
#: (``BURROW_RETRY_BUDGET``).
DEFAULT_RETRY_BUDGET: Final = 60.0
#: Seconds without a byte (to connect or while reading) before an attempt is given up
#: (``BURROW_HTTP_TIMEOUT``); connecting never waits longer than the HTTP client's
#: ``CONNECT_TIMEOUT``.
DEFAULT_HTTP_TIMEOUT: Final = 60.0

_SIZE_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class ConfigError(ValueError):
    """An environment variable holds a value that cannot be used."""


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise ConfigError(f"{name}={raw!r} must not be negative")
    return value


def _lenient_number(env: Mapping[str, str], name: str, default: float, *, integer: bool) -> float:
    """Read a non-negative number, as the retry settings are: anything else is ignored with
    a warning, and ``default`` used (the daemon still starts)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    value: float
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        # Imported here: the daemon's start-up reads its configuration before it loads
        # logging (about 6 ms), and a bad value is rare.
        import logging  # noqa: PLC0415

        logging.getLogger(__name__).warning(
            "ignoring %s=%r: not a non-negative number; using %g", name, raw, default
        )
        return default
    return value


def _size(env: Mapping[str, str], name: str, default: int) -> int:
    """Read a byte count: digits, optionally followed by K, M, G or T (powers of 1024)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    text = raw.upper().removesuffix("IB").removesuffix("B")
    digits = text.rstrip("KMGT")
    suffix = text[len(digits) :]
    if not (digits.isascii() and digits.isdigit()) or suffix not in _SIZE_SUFFIXES:
        raise ConfigError(
            f"{name}={raw!r} is not a number of bytes (such as 8589934592 or 8G); 0 = no limit"
        )
    return int(digits) * _SIZE_SUFFIXES[suffix]


def _count(env: Mapping[str, str], name: str, default: int, zero: str = "no limit") -> int:
    raw = env.get(name, "").strip().replace("_", "")
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise ConfigError(f"{name}={env[name]!r} is not a whole number; 0 = {zero}")
    return int(raw)


class UnpackLimits(Struct, frozen=True, kw_only=True):
    """How much one wheel or sdist may unpack to; 0 means no limit.

    Both are checked against what the archive declares before anything is written, and
    against the bytes actually written, since a header may lie.
    """

    #: Total bytes of all members (``BURROW_MAX_UNPACKED_SIZE``).
    max_size: int = DEFAULT_MAX_UNPACKED_SIZE
    #: Number of members (``BURROW_MAX_ARCHIVE_FILES``).
    max_files: int = DEFAULT_MAX_ARCHIVE_FILES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> UnpackLimits:
        """Read ``BURROW_MAX_UNPACKED_SIZE`` and ``BURROW_MAX_ARCHIVE_FILES``."""
        e = os.environ if env is None else env
        return cls(
            max_size=_size(e, "BURROW_MAX_UNPACKED_SIZE", DEFAULT_MAX_UNPACKED_SIZE),
            max_files=_count(e, "BURROW_MAX_ARCHIVE_FILES", DEFAULT_MAX_ARCHIVE_FILES),
        )


class Config(Struct, frozen=True, kw_only=True):
    """Everything the daemon needs to know before it serves."""

    socket_path: Path
    lock_path: Path
    cache_dir: Path
    log_file: Path
    #: Where the watch list (``watches.json``) lives.
    state_dir: Path
    #: Exit after this many seconds without connections, requests or watches; 0 = never.
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    #: How long to wait for a file lock before failing with ``LockTimeout``.
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT
    #: Freshness lifetime of an index page that carries no caching headers.
    index_ttl: float = DEFAULT_INDEX_TTL
    #: Log to stderr instead of the rotating file (systemd, ``--foreground``).
    log_to_stderr: bool = False
    #: How often the daemon checks that it still owns its socket and lock.
    ownership_check_interval: float = 60.0
    #: Quiet seconds after a change of a watched file before warming starts (a save is
    #: often several writes).
    watch_debounce: float = DEFAULT_WATCH_DEBOUNCE
    #: How much one wheel or sdist may unpack to (zip bombs).
    unpack_limits: UnpackLimits = UnpackLimits()
    #: Worker processes that unpack large wheels (``BURROW_UNPACK_PROCESSES``, one per CPU
    #: by default); 0 unpacks in the daemon's threads.
    unpack_processes: int = 0
    #: Retries of a failing HTTP request after its first attempt (``BURROW_RETRIES``).
    retries: int = DEFAULT_RETRIES
    #: Seconds of the first pause between HTTP attempts (``BURROW_RETRY_BACKOFF``).
    retry_backoff: float = DEFAULT_RETRY_BACKOFF
    #: Seconds after a request's first attempt past which no retry starts
    #: (``BURROW_RETRY_BUDGET``).
    retry_budget: float = DEFAULT_RETRY_BUDGET
    #: Seconds without a byte before an HTTP attempt fails (``BURROW_HTTP_TIMEOUT``; 0 is
    #: taken as the default).
    http_timeout: float = DEFAULT_HTTP_TIMEOUT

    @property
    def watch_file(self) -> Path:
        """Return the file the watch list is kept in."""
        return self.state_dir / "watches.json"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        """Build the configuration from ``BURROW_*`` variables and the XDG defaults."""
        e = os.environ if env is None else env
        sock = paths.socket_path(e)
        under_systemd = bool(e.get("INVOCATION_ID") or e.get("JOURNAL_STREAM"))
        return cls(
            socket_path=Path(sock),
            lock_path=Path(paths.lock_path(sock)),
            cache_dir=Path(paths.cache_dir(e)),
            log_file=Path(paths.log_file(e)),
            state_dir=Path(paths.state_dir(e)),
            idle_timeout=_seconds(e, "BURROW_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT),
            lock_timeout=_seconds(e, "BURROW_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT),
            index_ttl=_seconds(e, "BURROW_INDEX_TTL", DEFAULT_INDEX_TTL),
            watch_debounce=_seconds(e, "BURROW_WATCH_DEBOUNCE", DEFAULT_WATCH_DEBOUNCE),
            log_to_stderr=under_systemd,
            unpack_limits=UnpackLimits.from_env(e),
            unpack_processes=_count(
                e, "BURROW_UNPACK_PROCESSES", os.cpu_count() or 1, zero="unpack in threads"
            ),
            retries=int(_lenient_number(e, "BURROW_RETRIES", DEFAULT_RETRIES, integer=True)),
            retry_backoff=_lenient_number(
                e, "BURROW_RETRY_BACKOFF", DEFAULT_RETRY_BACKOFF, integer=False
            ),
            retry_budget=_lenient_number(
                e, "BURROW_RETRY_BUDGET", DEFAULT_RETRY_BUDGET, integer=False
            ),
            http_timeout=_lenient_number(
                e, "BURROW_HTTP_TIMEOUT", DEFAULT_HTTP_TIMEOUT, integer=False
            )
            or DEFAULT_HTTP_TIMEOUT,
        )

    def with_changes(self, **changes: object) -> Config:
        """Return a copy with some fields replaced."""
        return replace(self, **changes)
