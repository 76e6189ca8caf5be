"""The tools under test, the clean environment they run in, and the machine they run on.

Fairness rules every suite follows:

* ``burrow`` is measured as users get it: :func:`prepare_burrow` builds a wheel of the working
  tree and installs it with compiled ``.pyc`` files and the project venv's versions of its
  dependencies into a fresh venv on the project venv's interpreter (``--install editable``: the
  project venv's editable install instead). ``uv`` and ``pip-compile`` come from the project's
  venv (``sys.prefix``), and pip-compile runs on that venv's CPython: the same interpreter binary
  ``burrow`` uses.
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

import dataclasses
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
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
#: What building the wheel reads from the checkout: pyproject.toml names the readme and maps
#: ``burrowd.<package>`` to each top-level folder.
BUILD_INPUTS = ("pyproject.toml", "README.md", *PACKAGES)
#: ``--install`` choices; the first is the default.
INSTALLS = ("wheel", "editable")
#: Per install step; uv installs from its warm cache in about a second.
_STEP_TIMEOUT = 600.0
_OUTPUT_TAIL = 3000


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
    #: The interpreter ``burrow`` runs on (its script's venv): the daemon it spawns runs on it too.
    burrow_python: Path
    #: How burrow was installed, a sentence for the report (:func:`prepare_burrow` sets it).
    install: str
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
            burrow_python=python,
            install=f"the editable install in {bin_dir.parent}",
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
        if self.burrow_python != self.python:
            found["python (burrow's venv)"] = _version([str(self.burrow_python), "--version"]) + (
                f" ({self.burrow_python.resolve()})"
            )
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


class InstallError(RuntimeError):
    """Installing burrow from a wheel failed: the message names the step and the fix."""


def _step(number: int, what: str, argv: Sequence[str | Path], fix: str) -> str:
    """Run one install step quietly; return its stdout or raise :class:`InstallError`."""
    command = shlex.join(str(arg) for arg in argv)
    try:
        done = subprocess.run(
            [str(arg) for arg in argv],
            capture_output=True,
            text=True,
            check=False,
            env=clean_env(),
            timeout=_STEP_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _install_error(number, what, command, str(exc), fix) from exc
    if done.returncode != 0:
        output = (done.stderr.strip() or done.stdout.strip())[-_OUTPUT_TAIL:]
        raise _install_error(number, what, command, f"exit {done.returncode}:\n{output}", fix)
    return done.stdout


def _install_error(number: int, what: str, command: str, why: str, fix: str) -> InstallError:
    return InstallError(
        f"installing burrow from a wheel failed at step {number} ({what}):\n  {command}\n{why}\n"
        f"Fix: {fix}. Or measure the editable checkout: `python -m bench --install editable`."
    )


def _install_wheel(tools: Tools, dest: Path, revision: str) -> Tools:
    """Build a wheel of the working tree and install it into a fresh venv under ``dest``.

    The build runs on a copy of :data:`BUILD_INPUTS`: setuptools builds in the source tree and
    reuses its ``build/lib``, where a module deleted from the checkout would survive into the
    wheel; the copy also keeps the checkout free of build output.
    """
    src, wheels, venv = dest / "src", dest / "wheel", dest / "venv"
    constraints = dest / "constraints.txt"
    try:
        src.mkdir(parents=True)
        for name in BUILD_INPUTS:
            path = REPO / name
            if path.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
                shutil.copytree(path, src / name, ignore=ignore)
            else:
                shutil.copy2(path, src / name)
    except OSError as exc:
        raise _install_error(
            1,
            "copy the checkout",
            f"copy {', '.join(BUILD_INPUTS)} to {src}",
            str(exc),
            f"{REPO} must hold {', '.join(BUILD_INPUTS)} and the temp root {dest.parent} be "
            "writable",
        ) from exc
    _step(
        2,
        "build the wheel",
        [
            tools.python,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            wheels,
            src,
        ],
        f"the build runs without isolation, on the setuptools and wheel of {tools.bin.parent}: "
        f"`{tools.python} -m pip install setuptools wheel`",
    )
    built = sorted(wheels.glob("burrowd-*.whl"))
    if len(built) != 1:
        raise _install_error(
            2,
            "build the wheel",
            f"ls {wheels}",
            f"expected one burrowd wheel, found {built}",
            "see the build's output with `pip wheel -v`",
        )
    wheel = built[0]
    if tools.uv is None:
        raise _install_error(
            3,
            "create the venv",
            "uv venv",
            f"uv is not installed in {tools.bin.parent}",
            f"`make bench` or `{tools.python} -m pip install uv`",
        )
    _step(
        3,
        "create the venv",
        [tools.uv, "venv", "-q", "--no-config", "--python", tools.python, venv],
        f"uv must create a venv on {tools.python} (`{tools.uv} venv --python {tools.python} "
        "/tmp/x` shows why not)",
    )
    freeze = _step(
        4,
        "pin the dependencies",
        [tools.python, "-m", "pip", "freeze", "--exclude-editable"],
        f"`{tools.python} -m pip freeze` must list {tools.bin.parent}'s packages (`make bench` "
        "repairs the venv)",
    )
    constraints.write_text(freeze)
    _step(
        5,
        "install the wheel",
        [
            tools.uv,
            "pip",
            "install",
            "-q",
            "--no-config",
            "--compile-bytecode",
            "--python",
            venv / "bin" / "python",
            "-c",
            constraints,
            wheel,
        ],
        "uv installs burrowd's dependencies at the versions of "
        f"{tools.bin.parent} ({constraints.name}) from PyPI or its own cache: check the "
        "network, and that those versions are on PyPI",
    )
    python = venv / "bin" / "python"
    where = _step(
        6,
        "check the install",
        [python, "-c", "import burrowd.client.cli as m; print(m.__file__)"],
        "the wheel must hold burrowd.client (pyproject.toml's packages)",
    ).strip()
    if not Path(where).is_relative_to(venv) or not (venv / "bin" / "burrow").exists():
        raise _install_error(
            6,
            "check the install",
            f"{python} -c 'import burrowd.client.cli'",
            f"burrowd.client.cli comes from {where}, or {venv}/bin/burrow is missing",
            "the wheel venv must import burrowd from its own site-packages, not the checkout",
        )
    return dataclasses.replace(
        tools,
        burrow=venv / "bin" / "burrow",
        burrow_python=python,
        install=(
            f"the wheel `{wheel.name}`, built by `pip wheel --no-deps --no-build-isolation` "
            f"from a copy of the working tree at {revision}, installed with `uv pip install "
            "--compile-bytecode` into a fresh venv on the same interpreter, its dependencies at "
            f"the versions of {tools.bin.parent} (`pip freeze` as constraints)"
        ),
    )


def prepare_burrow(tools: Tools, install: str, root: Path, revision: str) -> Tools:
    """Make the burrow under test ready and return the tools that run it.

    ``wheel``: build and install a wheel under ``root`` (:func:`_install_wheel`); ``editable``:
    the venv's editable install, with its ``.pyc`` files written first.
    """
    if install == "wheel":
        return _install_wheel(tools, root / "install", revision)
    compile_bytecode()
    return dataclasses.replace(
        tools,
        install=(
            f"the editable install in {tools.bin.parent} of the checkout at {revision}; "
            "setuptools' editable finder is imported at every interpreter start; `.pyc` files "
            "written by `compileall` first"
        ),
    )


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
