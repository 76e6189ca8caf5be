"""The tools under test, the clean environment they run in, and the machine they run on.

Fairness rules every suite follows:

* ``burrow``, ``uv`` and ``pip-compile`` all come from the project's venv (``sys.prefix``), and
  pip-compile runs on that venv's CPython: the same interpreter ``burrow`` uses.
* Every tool sees only the public index. pip on this machine reads ``/etc/xdg/pip/pip.conf`` and
  ``PIP_*`` variables that add ``file://`` indexes and a constraints file, so each tool gets the
  caller's environment without any ``PIP_*``, ``UV_*`` or ``BURROW_*`` variable, plus
  ``PIP_CONFIG_FILE=/dev/null`` (pip loads no config file at all then); uv also gets
  ``--no-config``.
* uv and burrow resolve for ``--python-version`` the venv interpreter's exact version (3.11.7
  here), the interpreter pip-compile runs on: a bare ``3.11`` means 3.11.0 to both, which drops
  releases that require ``>=3.11.5`` (soupsieve 4.x) that pip-compile on 3.11.7 picks. In compile
  benchmarks they also get ``--exclude-newer`` :data:`EXCLUDE_NEWER`, so a release published
  during the run cannot change the graph; pip-compile has no such option.
* Each tool gets its own cache directory under one temporary root that is removed at the end.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SETS_DIR = REPO.parent / "shared" / "bench" / "sets"
DEFAULT_OUT_DIR = REPO / "bench" / "results"

EXCLUDE_NEWER = "2026-11-25T00:00:00Z"
#: The daemon's heuristic freshness lifetime for index pages (``BURROW_INDEX_TTL`` default).
BURROW_INDEX_TTL = 600.0
#: ``sun_path`` holds 108 bytes including the terminating NUL.
SOCKET_PATH_MAX = 107

_STRIPPED_PREFIXES = ("PIP_", "UV_", "BURROW_")
# PYTHONDONTWRITEBYTECODE (set on these machines) would make every burrow and pip-compile
# start compile its sources again: an installed package never runs that way.
_STRIPPED_NAMES = ("VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE")


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return this process's environment without tool configuration, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(_STRIPPED_PREFIXES) and key not in _STRIPPED_NAMES
    }
    env["PIP_CONFIG_FILE"] = os.devnull
    if extra:
        env.update(extra)
    return env


def compile_bytecode() -> None:
    """Write the ``.pyc`` files of burrowd, as an installation from a wheel has them."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *(str(REPO / d) for d in PACKAGES)],
        check=True,
        stdout=subprocess.DEVNULL,
        env=clean_env(),
    )


PACKAGES = ("protocol", "client", "daemon")


def _venv_bin() -> Path:
    """Return the ``bin`` folder of the venv this benchmark runs in (else the repo's)."""
    candidate = Path(sys.prefix) / "bin"
    if (candidate / "burrow").exists():
        return candidate
    return REPO / ".venv" / "bin"


def _system_python() -> Path | None:
    """Return the distribution's ``python3``, else the real binary behind ``python3`` on PATH.

    ``python3`` on PATH may be a pyenv shim (a bash script that execs the interpreter); timing
    the shim would measure bash, so resolve it to the interpreter it runs.
    """
    if Path("/usr/bin/python3").exists():
        return Path("/usr/bin/python3")
    found = shutil.which("python3")
    if found is None:
        return None
    out = subprocess.run(
        [found, "-c", "import sys; print(sys.executable)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def _version(argv: list[str]) -> str:
    """Return the first line a ``--version`` style command prints, or why it failed."""
    try:
        out = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=60, env=clean_env()
        )
    except OSError as exc:
        return f"unavailable ({exc})"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else f"exit {out.returncode}"


class MissingTool(RuntimeError):
    """A tool the selected suites need is not installed."""


@dataclass(frozen=True)
class Tools:
    """Absolute paths of everything the suites run."""

    bin: Path
    python: Path
    burrow: Path
    uv: Path | None
    pip_compile: Path | None
    system_python: Path | None
    hyperfine: Path | None
    python_version: str

    @classmethod
    def discover(cls) -> Tools:
        """Find the tools in the venv and on the machine."""
        bin_dir = _venv_bin()

        def opt(name: str) -> Path | None:
            path = bin_dir / name
            return path if path.exists() else None

        hyperfine = shutil.which("hyperfine")
        python = bin_dir / "python"
        version = subprocess.run(
            [python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return cls(
            bin=bin_dir,
            python=python,
            burrow=bin_dir / "burrow",
            uv=opt("uv"),
            pip_compile=opt("pip-compile"),
            system_python=_system_python(),
            hyperfine=Path(hyperfine) if hyperfine else None,
            python_version=version,
        )

    def require_resolvers(self) -> tuple[Path, Path]:
        """Return ``(uv, pip-compile)`` or explain how to install them."""
        if self.uv is None or self.pip_compile is None:
            raise MissingTool(
                f"uv and pip-compile must be installed in {self.bin.parent}: run `make bench` "
                f"or `{self.bin / 'pip'} install uv pip-tools`"
            )
        return self.uv, self.pip_compile

    def versions(self) -> dict[str, str]:
        """Return a printable version string per tool."""
        found: dict[str, str] = {
            "burrow": _version([str(self.burrow), "--version"]),
            "python (venv)": _version([str(self.python), "--version"])
            + f" ({self.python.resolve()})",
        }
        if self.uv:
            found["uv"] = _version([str(self.uv), "--version"])
        if self.pip_compile:
            found["pip-compile"] = _version([str(self.pip_compile), "--version"])
            found["pip"] = _version([str(self.python), "-m", "pip", "--version"]).split(" from ")[0]
        if self.system_python:
            found["python3 (system)"] = (
                _version([str(self.system_python), "--version"]) + f" ({self.system_python})"
            )
        if self.hyperfine:
            found["hyperfine"] = _version([str(self.hyperfine), "--version"])
        return found


@dataclass(frozen=True)
class Machine:
    """What the report says about the machine: CPUs, load, platform, code revision."""

    nproc: int
    cpu_count: int
    platform: str
    revision: str

    @classmethod
    def describe(cls) -> Machine:
        """Snapshot the machine's static facts."""
        rev = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        revision = (rev or "unknown") + (" (with uncommitted changes)" if dirty else "")
        return cls(
            nproc=len(os.sched_getaffinity(0)),
            cpu_count=os.cpu_count() or 0,
            platform=f"{platform.system()} {platform.release()} {platform.machine()}",
            revision=revision,
        )


def load_average() -> tuple[float, float, float]:
    """Return the 1, 5 and 15 minute load averages."""
    return os.getloadavg()


def format_load(load: tuple[float, float, float]) -> str:
    """Format a load average triple the way ``uptime`` does."""
    return ", ".join(f"{value:.2f}" for value in load)


def make_temp_root() -> Path:
    """Create the run's temporary root, short enough for the daemons' socket paths."""
    base = tempfile.gettempdir()
    # Sockets live at <root>/<suite>/<round>/burrow/s.sock: keep the root well under the limit.
    if len(base) > 40:
        base = "/tmp"
    return Path(tempfile.mkdtemp(prefix="burrow-bench-", dir=base))


def _git(*args: str) -> str:
    """Return the stripped output of ``git ARGS`` in this repository ('' if it fails)."""
    done = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()
