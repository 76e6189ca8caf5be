"""Asking an interpreter about itself, and asking early: the standard library only.

Querying an interpreter runs it. Behind a pyenv shim that is a dozen bash processes before
Python starts (about 150 ms here), and a new daemon's first request needs exactly the
default interpreter of the environment it was started from. So ``burrowd`` starts that
query (:func:`start_early`) before it imports the rest of the daemon (about 120 ms on one
core); the query runs on another core meanwhile, and ``Interpreters`` reads its answer
(:func:`take_early`) instead of running it again. Hence this module imports only the
standard library and the cache layout (for the cache entry that makes the query needless).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

from burrowd.daemon.cache.layout import Bucket, digest

__all__ = [
    "QUERY",
    "cache_entry",
    "default_candidates",
    "discard_early",
    "kill_query",
    "on_path",
    "spawn_query",
    "start_early",
    "take_early",
]

# Runs inside the target interpreter (any CPython 3.7+ or PyPy): standard library only.
QUERY: Final = r"""
import json, os, platform, sys, sysconfig
def fmt(info):
    v = "%d.%d.%d" % (info.major, info.minor, info.micro)
    if info.releaselevel != "final":
        v += info.releaselevel[0] + str(info.serial)
    return v
libc = None
if hasattr(os, "confstr"):
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        libc = None
managed = False
try:
    managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
except Exception:
    pass
print(json.dumps({
    "executable": sys.executable,
    "prefix": sys.prefix,
    "base_prefix": getattr(sys, "base_prefix", sys.prefix),
    "version": fmt(sys.version_info),
    "implementation": sys.implementation.name,
    "implementation_version": fmt(sys.implementation.version),
    "abiflags": getattr(sys, "abiflags", ""),
    "soabi": sysconfig.get_config_var("SOABI") or "",
    "platform": sysconfig.get_platform(),
    "libc": libc,
    "pointer_bits": 64 if sys.maxsize > 2**32 else 32,
    "gil_disabled": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "externally_managed": managed,
    "paths": sysconfig.get_paths(),
    "markers": {
        "implementation_name": sys.implementation.name,
        "implementation_version": fmt(sys.implementation.version),
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    },
}))
"""

#: How long :func:`discard_early` waits for a killed query to be gone.
REAP_TIMEOUT: Final = 1.0


class _Early:
    """A query started before the daemon could ask, and the executable's stat then."""

    __slots__ = ("proc", "stat")

    def __init__(self, proc: subprocess.Popen[bytes], stat: tuple[int, int]) -> None:
        self.proc = proc
        self.stat = stat


#: Queries started before the daemon could ask, by absolute executable path.
_early: dict[str, _Early] = {}
#: Early queries killed unread, still to be reaped.
_killed: list[subprocess.Popen[bytes]] = []


def on_path(name: str, path: str, cwd: str) -> Iterator[Path]:
    """Yield every executable called ``name`` on ``path`` (the process's PATH if empty).

    Every one, not only the first as ``which`` gives: the first may be a shim that fails.
    An empty or relative entry is the client's working directory, as for its shell.
    """
    for directory in (path or os.environ.get("PATH", os.defpath)).split(os.pathsep):
        hit = shutil.which(name, path=os.path.join(cwd, directory))
        if hit is not None:
            yield Path(hit)


def default_candidates(
    cwd: str, virtual_env: str | None, path: str, *, system: bool = False
) -> Iterator[Path]:
    """Yield the interpreters a request that names none may mean, best first.

    The active virtual environment, then a ``.venv`` in the working directory or above it,
    then ``python3`` and ``python`` on ``PATH`` (with ``system``, only those).
    """
    if virtual_env and not system:
        yield Path(virtual_env) / "bin" / "python"
    here = Path(cwd)
    for d in () if system else (here, *here.parents):
        venv = d / ".venv" / "bin" / "python"
        if venv.exists():
            yield venv
            break
    for name in ("python3", "python"):
        yield from on_path(name, path, cwd)


def cache_entry(cache_dir: Path, executable: str) -> Path:
    """Return the cache file of what ``executable`` (an absolute path) reported."""
    return cache_dir / Bucket.INTERPRETER.value / f"{digest(executable)}.msgpack"


def start_early(
    cache_dir: Path, environ: Mapping[str, str] | None = None, cwd: str | None = None
) -> str | None:
    """Start querying the default interpreter of this process's environment (or of
    ``environ`` and ``cwd``), unless the cache knows it.

    Return the executable being queried. Any failure here is left to the request that
    needs the interpreter: it runs the query itself and reports what went wrong.
    """
    env = os.environ if environ is None else environ
    try:
        for candidate in default_candidates(
            cwd or os.getcwd(), env.get("VIRTUAL_ENV") or None, env.get("PATH", "")
        ):
            if candidate.exists():
                break
        else:
            return None
        exe = os.path.abspath(candidate)
        if cache_entry(cache_dir, exe).exists():
            return None  # the daemon validates that entry by the executable's mtime
        st = os.stat(exe)
        _early[exe] = _Early(spawn_query(exe), (st.st_mtime_ns, st.st_size))
    except OSError:
        return None
    return exe


def spawn_query(executable: str) -> subprocess.Popen[bytes]:
    """Start querying ``executable`` (early or not); raise :class:`OSError` if it cannot run.

    In a process group of its own: a shim's children are stopped with it (:func:`kill_query`).
    The caller reads the answer with ``communicate()`` in a worker thread.
    """
    return subprocess.Popen(
        [executable, "-I", "-c", QUERY],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def take_early(executable: str, mtime_ns: int, size: int) -> subprocess.Popen[bytes] | None:
    """Return (once) the early query of ``executable``, running or done, if one was started
    on the same file: one replaced since (an upgrade) is stopped and ``None`` returned."""
    early = _early.pop(executable, None)
    if early is None:
        return None
    if early.stat != (mtime_ns, size):
        kill_query(early.proc)
        _killed.append(early.proc)
        return None
    return early.proc


def kill_query(proc: subprocess.Popen[bytes]) -> None:
    """Stop a query and whatever it started (a shim's subprocesses); never blocks."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def discard_early() -> None:
    """Stop and reap the early queries nobody took (blocking: run it in a worker thread)."""
    while _early:
        _, early = _early.popitem()
        kill_query(early.proc)
        _killed.append(early.proc)
    while _killed:
        with contextlib.suppress(subprocess.TimeoutExpired):
            _killed.pop().communicate(timeout=REAP_TIMEOUT)
