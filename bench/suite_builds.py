"""builds (issue 14): a second compile of sources that need builds builds nothing.

The input: two sdist-only projects from the public index whose metadata only a build can tell
(``docopt==0.6.2`` and ``pyperclip==1.9.0``, both a bare ``setup.py``: setuptools' legacy
backend) and one git dependency, a local repository (``git+file://``, so only the package
index is on the network) holding a ``setup.py`` project, required at a tag.

Per round, interleaved with the order rotating: burrow gets a fresh cache and daemon, uv a
fresh ``--cache-dir``; each compiles once untimed-for-the-target (the first compile builds),
then again, timed. Between burrow's two compiles ``burrow --json daemon status`` is read:
its ``builds`` and ``git_fetches`` must not grow during the second compile. Both tools
resolve for the same ``--python-version`` and must pin the same versions and commit.

Target (issue 14): the second compile builds nothing and fetches nothing (counted).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.context import Context
from bench.report import RatioColumn, Row, SuiteResult, Table, fmt_seconds
from bench.timing import Series, rotated, run_timed
from bench.tools import clean_env, load_average

NAME = "builds"
TIMEOUT = 900.0
BURROW = "burrow"
UV = "uv"

SDISTS = ("docopt==0.6.2", "pyperclip==1.9.0")
SETUP_PY = """\
from setuptools import setup

setup(name="localgit", version="0.4", py_modules=["localgit"], install_requires=["six"])
"""


@dataclass
class _State:
    first: dict[str, Series] = field(default_factory=lambda: {BURROW: Series(), UV: Series()})
    second: dict[str, Series] = field(default_factory=lambda: {BURROW: Series(), UV: Series()})
    builds_first: list[int] = field(default_factory=list)
    builds_second: list[int] = field(default_factory=list)
    fetches_second: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def make_repository(root: Path) -> str:
    """Create the local git dependency; return its requirement (at tag ``v1``)."""
    repo = root / "localgit-repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "setup.py").write_text(SETUP_PY)
    (repo / "pkg" / "localgit.py").write_text("VALUE = 4\n")
    env = {**clean_env(), "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.invalid"}
    env |= {"GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.invalid"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "v1"], ["tag", "v1"]):
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)
    return f"localgit @ git+{repo.as_uri()}@v1#subdirectory=pkg"


def _pins(text: str) -> list[str]:
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    return sorted(re.sub(r"\s+", " ", line) for line in lines if line and not line.startswith("-"))


def _round(ctx: Context, r: int, requirements: Path, st: _State) -> None:
    home = ctx.root / f"builds{r}"
    home.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, str] = {}
    for tool in rotated([BURROW, UV], r):
        if tool == BURROW:
            daemon = ctx.started_daemon(home / "burrow", st.problems)
            if daemon is None:
                continue
            argv: list[str | Path] = ["compile", requirements]
            argv += ["--python-version", ctx.options.python_version]
            first = daemon.run(*argv, "-o", home / "burrow-1.txt", timeout=TIMEOUT)
            if not st.first[BURROW].record(first):
                st.problems.append(f"burrow's first compile failed:\n\n{first.describe()}")
                ctx.release(daemon)
                continue
            before = daemon.status()
            st.builds_first.append(int(before.get("builds", 0)))
            second = daemon.run(*argv, "-o", home / "burrow-2.txt", timeout=TIMEOUT)
            after = daemon.status()
            if st.second[BURROW].record(second):
                outputs[BURROW] = (home / "burrow-2.txt").read_text()
            else:
                st.problems.append(f"burrow's second compile failed:\n\n{second.describe()}")
            st.builds_second.append(int(after.get("builds", 0)) - int(before.get("builds", 0)))
            st.fetches_second.append(
                int(after.get("git_fetches", 0)) - int(before.get("git_fetches", 0))
            )
            ctx.release(daemon)
        else:
            uv = ctx.tools.uv
            assert uv is not None
            uv_argv: list[str | Path] = [uv, "pip", "compile", "--no-config", "-q"]
            uv_argv += ["--cache-dir", home / "uv-cache"]
            uv_argv += ["--python-version", ctx.options.python_version, requirements]
            env = clean_env()
            first = run_timed(
                [*uv_argv, "-o", home / "uv-1.txt"], env=env, cwd=home, timeout=TIMEOUT
            )
            if not st.first[UV].record(first):
                st.problems.append(f"uv's first compile failed:\n\n{first.describe()}")
                continue
            second = run_timed(
                [*uv_argv, "-o", home / "uv-2.txt"], env=env, cwd=home, timeout=TIMEOUT
            )
            if st.second[UV].record(second):
                outputs[UV] = (home / "uv-2.txt").read_text()
            else:
                st.problems.append(f"uv's second compile failed:\n\n{second.describe()}")
    if len(outputs) == 2 and _pins(outputs[BURROW]) != _pins(outputs[UV]):
        st.problems.append(
            "burrow and uv pinned differently:\n\n"
            f"```\nburrow: {_pins(outputs[BURROW])}\nuv:     {_pins(outputs[UV])}\n```"
        )
    shutil.rmtree(home, ignore_errors=True)


def run(ctx: Context) -> SuiteResult:
    """Run the suite."""
    result = SuiteResult(NAME, "builds: a second compile of sdists and a git dependency (issue 14)")
    result.load_start = load_average()
    started = time.monotonic()
    requirements = ctx.root / "builds.in"
    git_requirement = make_repository(ctx.root)
    requirements.write_text("\n".join([*SDISTS, git_requirement]) + "\n")
    runs = ctx.options.build_runs
    result.method = [
        f"Input: {', '.join(f'`{s}`' for s in SDISTS)} (sdist-only, setup.py: built with "
        "setuptools' legacy backend) and a local git repository required as "
        "`localgit @ git+file:///...@v1#subdirectory=pkg` (a setup.py project).",
        f"{runs} round(s), burrow and uv interleaved with the order rotating; each tool starts "
        "from an empty cache (burrow: a fresh daemon), compiles once, then again (timed as "
        "'second').",
        "burrow's `builds` and `git_fetches` (from `burrow --json daemon status`) are read "
        "around its second compile; the target is that neither grows. Both tools must pin the "
        "same versions and commit.",
    ]
    st = _State()
    for r in range(runs):
        ctx.log(f"{NAME}: round {r + 1}/{runs}")
        _round(ctx, r, requirements, st)
    table = Table(
        "Compile of sources that need builds", [BURROW, UV], [RatioColumn("burrow/uv", BURROW, UV)]
    )
    table.rows.append(
        Row("first compile (builds)", st.first, note=f"burrow ran {st.builds_first} backend hooks")
    )
    nothing = (
        bool(st.builds_second)
        and all(n == 0 for n in st.builds_second)
        and all(n == 0 for n in st.fetches_second)
    )
    table.rows.append(
        Row(
            "second compile",
            st.second,
            target="no build and no git fetch",
            verdict=nothing if st.builds_second else None,
            note=f"builds during it: {st.builds_second}, git fetches: {st.fetches_second}",
        )
    )
    result.tables.append(table)
    result.problems += st.problems
    result.load_end = load_average()
    result.seconds = time.monotonic() - started
    ctx.log(f"{NAME}: done in {fmt_seconds(result.seconds)}")
    return result
