"""Call a PEP 517 build backend through ``pyproject-hooks``, with its output captured.

``pyproject-hooks`` runs each hook in a subprocess of the build environment's interpreter;
the runner here captures that subprocess's output into a :class:`BuildLog` (the tail of
which a failed build reports) and moves the backend's warnings into the log too, instead
of letting ``pyproject-hooks`` re-emit them through the ``warnings`` module of the daemon,
whose filters are process-wide. These functions block; the daemon runs them in worker
threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pyproject_hooks
from msgspec import Struct, field

from burrowd.daemon.errors import BuildFailed, InvalidDistribution
from burrowd.protocol.process import dies_with_parent

__all__ = ["LEGACY_BACKEND", "Backend", "BuildLog", "call_hook", "read_backend"]

#: What a ``[build-system]`` without ``build-backend``, or a project without
#: ``pyproject.toml``, is built with (PEP 517's fallback, as pip and uv apply it).
LEGACY_BACKEND: Final = "setuptools.build_meta:__legacy__"
LEGACY_REQUIRES: Final = ("setuptools>=40.8.0",)
HOOK_TIMEOUT: Final = 3600.0
#: Seconds to collect the output of a hook whose session was killed.
KILLED_GRACE: Final = 5.0
_TAIL_LINES: Final = 40


class Backend(Struct, frozen=True):
    """How a source tree is built."""

    name: str
    path: tuple[str, ...] | None
    requires: tuple[str, ...]


def read_backend(tree: Path, source: str) -> Backend:
    """Return the build backend of the source tree at ``tree`` (PEP 517 and 518)."""
    pyproject = tree / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if not (tree / "setup.py").exists():
            raise InvalidDistribution(
                source, "it has neither pyproject.toml nor setup.py: nothing says how to build it"
            ) from None
        return Backend(LEGACY_BACKEND, None, LEGACY_REQUIRES)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidDistribution(source, f"its pyproject.toml does not parse ({exc})") from None
    system = data.get("build-system")
    if system is None:
        return Backend(LEGACY_BACKEND, None, LEGACY_REQUIRES)
    if not isinstance(system, dict):
        raise InvalidDistribution(source, "its [build-system] is not a table")
    requires = system.get("requires")
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise InvalidDistribution(
            source, "its [build-system] has no requires list (PEP 518 makes it mandatory)"
        )
    backend = system.get("build-backend") or LEGACY_BACKEND
    if not isinstance(backend, str):
        raise InvalidDistribution(source, "its build-backend is not a string")
    path = system.get("backend-path")
    if path is not None:
        if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
            raise InvalidDistribution(source, "its backend-path is not a list of strings")
        for entry in path:
            resolved = os.path.realpath(tree / entry)
            root = os.path.realpath(tree)
            if resolved != root and not resolved.startswith(root + os.sep):
                raise InvalidDistribution(source, f"its backend-path {entry!r} leaves the tree")
    return Backend(backend, tuple(path) if path is not None else None, tuple(requires))


class BuildLog(Struct):
    """Everything the backends of one build printed."""

    lines: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        """Append output."""
        self.lines.extend(text.splitlines())

    def tail(self, n: int = _TAIL_LINES) -> str:
        """Return the last ``n`` lines."""
        return "\n".join(self.lines[-n:])


class _HookFailed(Exception):
    def __init__(self, returncode: int) -> None:
        super().__init__(f"the hook exited with status {returncode}")
        self.returncode = returncode


def _runner(log: BuildLog, environ: Mapping[str, str], timeout: float) -> Any:
    def run(
        cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None
    ) -> None:
        env = {**environ, **(extra_environ or {})}
        try:
            returncode, printed = _run_in_own_session(dies_with_parent(cmd), cwd, env, timeout)
        except subprocess.TimeoutExpired as exc:
            log.add((exc.output or b"").decode("utf-8", "replace"))
            raise _HookFailed(-1) from exc
        log.add(printed.decode("utf-8", "replace"))
        # pyproject-hooks would re-emit the backend's warnings in this process: they go to
        # the log instead (the last argument is the hook's exchange directory).
        output = Path(cmd[-1]) / "output.json"
        try:
            data = json.loads(output.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("warnings"):
            for w in data.pop("warnings"):
                if isinstance(w, dict):
                    log.add(f"warning: {w.get('message', '')}")
            output.write_text(json.dumps(data), encoding="utf-8")
        if returncode != 0:
            raise _HookFailed(returncode)

    return run


def _run_in_own_session(
    cmd: Sequence[str], cwd: str | None, env: Mapping[str, str], timeout: float
) -> tuple[int, bytes]:
    """Run ``cmd``; return its status and output. Past ``timeout`` (or on any error while
    waiting) kill its whole session, not only the hook: the compilers and tools a backend
    started would otherwise go on, holding the output pipe open and the build's files.
    """
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        # What it printed goes to the build log. A process that left the session may still
        # hold the pipe: do not wait for it long.
        with contextlib.suppress(subprocess.TimeoutExpired):
            printed, _ = proc.communicate(timeout=KILLED_GRACE)
            if isinstance(exc, subprocess.TimeoutExpired):
                exc.output = printed
        proc.kill()
        proc.wait()
        raise
    return proc.returncode, out


def hook_environment(
    bin_dir: str | None, variables: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Return the variables a backend runs with: the requesting client's (``variables``;
    the daemon's own without one), with no user site and the build env first on PATH."""
    env = {
        k: v
        for k, v in (os.environ if variables is None else variables).items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")
        and not k.startswith(("PIP_", "BURROW_"))
    }
    env["PYTHONNOUSERSITE"] = "1"
    if bin_dir is not None:
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", os.defpath)
        env["VIRTUAL_ENV"] = os.path.dirname(bin_dir)
    return env


def call_hook(
    *,
    python: str,
    bin_dir: str | None,
    tree: Path,
    backend: Backend,
    hook: str,
    log: BuildLog,
    source: str,
    timeout: float = HOOK_TIMEOUT,
    variables: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> Any:
    """Call ``hook`` of the backend of ``tree`` with ``python``; return its result.

    Raise :class:`BuildFailed` (with the log's tail) when the backend cannot be imported or
    the hook fails; ``pyproject_hooks.HookMissing`` passes through for the caller to handle.
    """
    caller = pyproject_hooks.BuildBackendHookCaller(
        str(tree),
        backend.name,
        list(backend.path) if backend.path is not None else None,
        runner=_runner(log, hook_environment(bin_dir, variables), timeout),
        python_executable=python,
    )
    try:
        return getattr(caller, hook)(**kwargs)
    except pyproject_hooks.BackendUnavailable as exc:
        log.add(exc.traceback or "")
        raise BuildFailed(
            source,
            f"the build backend {backend.name!r} could not be imported; check "
            "[build-system] requires and build-backend",
            backend=backend.name,
            hook=hook,
            log_tail=log.tail(),
        ) from None
    except _HookFailed as exc:
        what = "timed out" if exc.returncode == -1 else f"exited with status {exc.returncode}"
        raise BuildFailed(
            source,
            f"the backend's {hook} {what}",
            backend=backend.name,
            hook=hook,
            log_tail=log.tail(),
        ) from None
