"""Where the daemon's socket, lock, cache and log live.

Client and daemon must agree on these paths without the client importing platformdirs (its
start-up is on the hot path of every command), so the Linux/XDG rules of platformdirs'
``user_runtime_dir``, ``user_cache_dir`` and ``user_state_dir`` are mirrored here with the
standard library, and paths are plain strings (``pathlib`` alone costs the client a few
milliseconds of start-up); a test checks both agree with platformdirs. Environment
overrides: ``BURROW_SOCKET``, ``BURROW_CACHE_DIR``, ``BURROW_LOG_FILE``.
"""

from __future__ import annotations

import os
import stat
import sys

# ``burrow`` reads these paths before it loads anything else, to start the daemon early
# (burrowd.client.launch): ``typing`` (and the ``re`` it imports) would come first.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Final

__all__ = [
    "APP",
    "SOCKET_PATH_MAX",
    "SocketPathError",
    "cache_dir",
    "lock_path",
    "log_file",
    "runtime_dir",
    "socket_path",
    "state_dir",
]

APP: Final = "burrowd"
#: ``sun_path`` holds 108 bytes on Linux, including the terminating NUL.
SOCKET_PATH_MAX: Final = 107


class SocketPathError(ValueError):
    """The socket path cannot be used (too long for ``sun_path``, or an unsafe directory)."""


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _private_dir_ok(path: str) -> bool:
    """Return whether ``path`` is a real directory owned by us with mode 0700 (as XDG says)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o700
    )


def _base_runtime_dir(env: Mapping[str, str]) -> str:
    xdg = env.get("XDG_RUNTIME_DIR", "")
    if xdg and os.path.isabs(xdg) and _private_dir_ok(xdg):
        return xdg
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Caches/TemporaryItems")
    run_user = f"/run/user/{os.geteuid()}"
    if _private_dir_ok(run_user):
        return run_user
    import tempfile  # noqa: PLC0415 - the last fallback; tempfile is slow to import

    return os.path.join(tempfile.gettempdir(), f"runtime-{os.geteuid()}")


def runtime_dir(env: Mapping[str, str] | None = None) -> str:
    """Return the per-user runtime directory of burrowd (not created here)."""
    return os.path.join(_base_runtime_dir(_env(env)), APP)


def socket_path(env: Mapping[str, str] | None = None) -> str:
    """Return the daemon's socket path, honouring ``BURROW_SOCKET``.

    Raise :class:`SocketPathError` when the path does not fit ``sun_path``.
    """
    e = _env(env)
    override = e.get("BURROW_SOCKET")
    path = os.path.abspath(override) if override else os.path.join(runtime_dir(e), "burrowd.sock")
    if len(os.fsencode(path)) > SOCKET_PATH_MAX:
        raise SocketPathError(
            f"socket path {path} is {len(os.fsencode(path))} bytes long; a Unix socket path "
            f"holds at most {SOCKET_PATH_MAX}. Set BURROW_SOCKET to a shorter path"
        )
    return path


def lock_path(sock: str | os.PathLike[str]) -> str:
    """Return the instance lock that guards ``sock`` (``burrowd.lock`` beside the default)."""
    head, tail = os.path.split(os.fspath(sock))
    stem, ext = os.path.splitext(tail)
    return os.path.join(head, (stem if ext else tail) + ".lock")


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def cache_dir(env: Mapping[str, str] | None = None) -> str:
    """Return the cache root, honouring ``BURROW_CACHE_DIR``."""
    e = _env(env)
    override = e.get("BURROW_CACHE_DIR")
    if override:
        return _absolute(override)
    if sys.platform == "darwin":
        return os.path.expanduser(f"~/Library/Caches/{APP}")
    xdg = e.get("XDG_CACHE_HOME", "").strip()
    base = xdg if xdg and os.path.isabs(xdg) else os.path.expanduser("~/.cache")
    return os.path.join(base, APP)


def state_dir(env: Mapping[str, str] | None = None) -> str:
    """Return the per-user state directory (logs, the watch list)."""
    e = _env(env)
    if sys.platform == "darwin":
        return os.path.expanduser(f"~/Library/Application Support/{APP}")
    xdg = e.get("XDG_STATE_HOME", "").strip()
    base = xdg if xdg and os.path.isabs(xdg) else os.path.expanduser("~/.local/state")
    return os.path.join(base, APP)


def log_file(env: Mapping[str, str] | None = None) -> str:
    """Return the daemon's log file, honouring ``BURROW_LOG_FILE``."""
    e = _env(env)
    override = e.get("BURROW_LOG_FILE")
    if override:
        return _absolute(override)
    return os.path.join(state_dir(e), "log", "burrowd.log")
