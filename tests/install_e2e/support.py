"""Helpers of the install end-to-end tests: the CLI run safely, venvs, snapshots, pip, status.

Every ``burrow`` run here has an explicit working directory and no inherited
``VIRTUAL_ENV``: a command that falls back to environment discovery must never find the
checkout's own ``.venv`` (a sync there would remove the test runner's packages).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from tests.e2e.helpers import BurrowEnv, RawClient, wait_until

__all__ = [
    "PYTHON_DIR",
    "TRASH_DIR",
    "Burrow",
    "Entry",
    "StatusWatch",
    "execute",
    "finish",
    "make_venv",
    "pip",
    "reaped",
    "record_rows",
    "requirements",
    "rows_without_installer",
    "site_packages",
    "tree",
    "without_installer",
]

#: ``pythonX.Y``: the directory under ``<venv>/lib`` of venvs made with the test's Python.
PYTHON_DIR: Final = f"python{sys.version_info[0]}.{sys.version_info[1]}"

#: Variables that would change which environment or index a command uses.
_SCRUBBED: Final = (
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "BURROW_PYTHON",
    "BURROW_INDEX_URL",
    "BURROW_EXTRA_INDEX_URL",
    "BURROW_FIND_LINKS",
    "BURROW_OFFLINE",
)

#: Where burrowd moves removed directories before deleting them (in a venv's prefix).
TRASH_DIR: Final = ".burrow-trash"
#: Seconds the deletion of removed directories may take after a request answered.
SETTLE: Final = 10.0

#: A file or directory of a snapshot: (kind, permission bits, content or link target).
Entry = tuple[str, int, bytes]


def execute(*argv: str | Path, cwd: Path | str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a program (an installed script, a venv's python) and return what it did."""
    return subprocess.run(
        [os.fspath(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def make_venv(path: Path) -> Path:
    """Create a venv with ``python -m venv --without-pip`` (not burrowd's); return ``path``."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", os.fspath(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path


def site_packages(venv: Path) -> Path:
    """Return the site-packages directory of a venv made with the test's Python."""
    return venv / "lib" / PYTHON_DIR / "site-packages"


def requirements(path: Path, *lines: str | Path) -> Path:
    """Write a requirements file of ``lines`` and return its path."""
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def tree(root: Path, *, skip: Iterable[str] = (".lock",)) -> dict[str, Entry]:
    """Return every path under ``root`` with its kind, permission bits and content.

    Directories end with ``/``; symbolic links are not followed (their target is the
    content). ``skip`` names paths relative to ``root`` left out.

    The daemon deletes the directories a request removed just after answering, from
    ``<prefix>/.burrow-trash``: the snapshot first waits for that (and fails if the trash
    is still there after :data:`SETTLE` seconds).
    """
    trash = root / TRASH_DIR
    assert wait_until(lambda: not trash.exists(), SETTLE), f"{trash} was never emptied"
    skipped = set(skip)
    out: dict[str, Entry] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel in skipped:
            continue
        st = path.lstat()
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", 0, os.readlink(path).encode())
        elif stat.S_ISDIR(st.st_mode):
            out[rel + "/"] = ("dir", mode, b"")
        else:
            out[rel] = ("file", mode, path.read_bytes())
    return out


def record_rows(site: Path) -> dict[str, set[tuple[str, str, str]]]:
    """Return the RECORD rows (path, hash, size) of every ``.dist-info`` in ``site``."""
    out: dict[str, set[tuple[str, str, str]]] = {}
    for dist_info in sorted(site.glob("*.dist-info")):
        text = (dist_info / "RECORD").read_text(encoding="utf-8")
        rows = {
            (row[0], row[1], row[2])
            for row in csv.reader(io.StringIO(text))
            if row  # every row has three fields: a short one fails the test here
        }
        out[dist_info.name] = rows
    return out


def without_installer(snapshot: dict[str, Entry]) -> dict[str, Entry]:
    """Return a snapshot without INSTALLER and RECORD files (RECORD is compared by rows)."""
    return {
        path: entry
        for path, entry in snapshot.items()
        if not path.endswith((".dist-info/INSTALLER", ".dist-info/RECORD"))
    }


def rows_without_installer(
    rows: dict[str, set[tuple[str, str, str]]],
) -> dict[str, set[tuple[str, str, str]]]:
    """Return RECORD rows without those of INSTALLER (``pip`` here, ``burrowd`` there)."""
    return {
        dist: {row for row in dist_rows if not row[0].endswith(".dist-info/INSTALLER")}
        for dist, dist_rows in rows.items()
    }


def pip(venv: Path, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run the test runner's pip against ``venv`` (``pip --python``); require success.

    pip's configuration files and ``PIP_*`` variables are ignored, so only the index (or
    files) on the command line is used.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", os.fspath(venv / "bin" / "python"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


@dataclass(eq=False)
class Burrow:
    """The real ``burrow`` CLI of one :class:`BurrowEnv`, run from a directory of the test's."""

    env: BurrowEnv
    cwd: Path

    def environ(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Return the client's environment: the env's, scrubbed, plus ``extra``."""
        environ = self.env.environ()
        for name in _SCRUBBED:
            environ.pop(name, None)
        environ.update(extra or {})
        return environ

    def command(self, *args: str | Path) -> list[str]:
        """Return the argv of ``burrow ARGS``."""
        return [sys.executable, "-m", "burrowd.client", *(os.fspath(a) for a in args)]

    def run(
        self,
        *args: str | Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``burrow ARGS`` and return what it did."""
        return subprocess.run(
            self.command(*args),
            env=self.environ(env),
            cwd=cwd or self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def ok(
        self, *args: str | Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> str:
        """Run ``burrow ARGS``, require exit status 0 and no error; return stdout."""
        done = self.run(*args, env=env, cwd=cwd)
        assert done.returncode == 0, (done.stdout, done.stderr, self.env.log_text()[-3000:])
        assert "Traceback" not in done.stderr, done.stderr
        return done.stdout

    def fails(
        self, *args: str | Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> str:
        """Run ``burrow ARGS``, require exit status 1 and a plain ``error:``; return stderr."""
        done = self.run(*args, env=env, cwd=cwd)
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert done.stderr.startswith("error: "), done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        return done.stderr

    def json(
        self, *args: str | Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> dict[str, Any]:
        """Run ``burrow --json ARGS``, require success and return the parsed result."""
        out = self.ok("--json", *args, env=env, cwd=cwd)
        result: dict[str, Any] = json.loads(out)
        return result

    def json_error(self, *args: str | Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Run ``burrow --json ARGS``, require failure and return the error object."""
        done = self.run("--json", *args, env=env)
        assert done.returncode == 1, (done.stdout, done.stderr)
        error: dict[str, Any] = json.loads(done.stderr)["error"]
        return error

    def popen(
        self, *args: str | Path, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """Start ``burrow ARGS`` without waiting; the caller collects it."""
        return subprocess.Popen(
            self.command(*args),
            env=self.environ(env),
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    def names(self, venv: Path) -> dict[str, str]:
        """Return ``burrow list``'s view of ``venv``: name -> version."""
        result = self.json("list", "-p", venv)
        return {p["name"]: p["version"] for p in result["packages"]}


def finish(proc: subprocess.Popen[str], timeout: float = 60.0) -> tuple[int, str, str]:
    """Wait for a process started by :meth:`Burrow.popen`; return (status, stdout, stderr)."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


@contextlib.contextmanager
def reaped(*procs: subprocess.Popen[str]) -> Iterator[None]:
    """Kill whatever of ``procs`` still runs when the block ends, and close their pipes."""
    try:
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


@dataclass(eq=False)
class StatusWatch:
    """Poll the daemon's ``status`` and keep what the watched requests were doing when.

    ``samples`` holds (seconds since the start, sorted phases of the requests in flight
    whose method is in ``methods``) for every poll. Requests are not told apart: each
    client numbers its own, so two ``burrow`` processes send the same ids.
    """

    client: RawClient
    methods: tuple[str, ...] = ("sync",)
    started: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, list[str]]] = field(default_factory=list)

    def poll(self) -> list[str]:
        """Ask once; record and return the phases of the watched requests."""
        status = self.client.call("status")
        now = time.monotonic() - self.started
        phases = sorted(str(r["phase"]) for r in status["requests"] if r["method"] in self.methods)
        self.samples.append((now, phases))
        return phases

    def until(
        self, predicate: Callable[[list[str]], bool], timeout: float = 30.0, interval: float = 0.01
    ) -> bool:
        """Poll until ``predicate(phases)`` holds; return whether it did in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.poll()):
                return True
            time.sleep(interval)
        return False

    def history(self) -> list[tuple[float, list[str]]]:
        """Return the samples where the phases changed (for failure messages)."""
        out: list[tuple[float, list[str]]] = []
        for moment, phases in self.samples:
            if not out or out[-1][1] != phases:
                out.append((round(moment, 3), phases))
        return out

    def phases(self) -> set[str]:
        """Return every phase seen."""
        return {phase for _, phases in self.samples for phase in phases}
