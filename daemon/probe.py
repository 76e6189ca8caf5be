"""Interpreter discovery and the query script: the standard library only.

The daemon starts the query of its default interpreter here before it imports the rest of
itself (:func:`start_early`): behind a pyenv shim the query takes about 100 ms, which then
runs beside the daemon's own start-up instead of after it, on a first compile's critical
path. :class:`~burrowd.daemon.interpreters.Interpreters` takes the answer (:func:`take_early`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "QUERY",
    "PythonRequest",
    "candidates",
    "discard_early",
    "inherited_environment_request",
    "on_path",
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


@dataclass(frozen=True, slots=True)
class PythonRequest:
    """Which interpreter the client means, and the client's environment to look in."""

    python: str | None = None
    cwd: str = "."
    virtual_env: str | None = None
    path: str = ""
    #: Look past virtual environments (``--system``): only interpreters on ``PATH``.
    system: bool = False


def candidates(req: PythonRequest) -> Iterator[Path]:
    """Yield the executables ``req`` could mean, best first (repeats possible)."""
    if req.python:
        value = req.python
        if os.sep in value or value.startswith(".") or Path(req.cwd, value).is_dir():
            p = Path(req.cwd, value).expanduser()
            if p.is_dir():
                yield from (p / "bin" / "python3", p / "bin" / "python")
            else:
                yield p
            return
        if re.fullmatch(r"\d+(\.\d+){0,2}", value):
            names = [f"python{value}", f"python{'.'.join(value.split('.')[:2])}", "python3"]
        else:
            names = [value]
        for name in names:
            yield from on_path(name, req.path, req.cwd)
        return
    if req.virtual_env and not req.system:
        yield Path(req.virtual_env) / "bin" / "python"
    here = Path(req.cwd)
    for d in () if req.system else (here, *here.parents):
        venv = d / ".venv" / "bin" / "python"
        if venv.exists():
            yield venv
            break
    for name in ("python3", "python"):
        yield from on_path(name, req.path, req.cwd)


def on_path(name: str, path: str, cwd: str) -> Iterator[Path]:
    """Yield every executable called ``name`` on ``path`` (the process's PATH if empty).

    Every one, not only the first as ``which`` gives: the first may be a shim that fails.
    An empty or relative entry is the client's working directory, as for its shell.
    """
    for directory in (path or os.environ.get("PATH", os.defpath)).split(os.pathsep):
        hit = shutil.which(name, path=os.path.join(cwd, directory))
        if hit is not None:
            yield Path(hit)


def inherited_environment_request() -> PythonRequest:
    """Return a request for the default interpreter of the environment this process got.

    A daemon started by ``burrow`` inherits that client's working directory, ``PATH`` and
    ``VIRTUAL_ENV``: the environment its first request will most likely describe.
    """
    return PythonRequest(
        cwd=os.getcwd(),
        virtual_env=os.environ.get("VIRTUAL_ENV") or None,
        path=os.environ.get("PATH", ""),
    )


#: Queries started before the event loop, by absolute executable path.
_early: dict[str, subprocess.Popen[bytes]] = {}


def start_early(req: PythonRequest) -> None:
    """Start querying the first existing candidate of ``req`` now, without waiting for it."""
    for candidate in candidates(req):
        if candidate.exists():
            exe = os.path.abspath(candidate)
            # A failure to start is left to the query proper, which says why.
            with contextlib.suppress(OSError):
                _early[exe] = subprocess.Popen(
                    [exe, "-I", "-c", QUERY],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            return


def take_early(exe: str) -> subprocess.Popen[bytes] | None:
    """Return (and forget) the query started early for ``exe``, if there is one."""
    return _early.pop(exe, None)


def discard_early(exe: str | None = None) -> None:
    """Stop and reap the early query of ``exe`` (every one when ``None``): unneeded."""
    for key in [exe] if exe is not None else list(_early):
        proc = _early.pop(key, None)
        if proc is not None:
            proc.kill()
            proc.communicate()  # reaps it and closes its pipes
