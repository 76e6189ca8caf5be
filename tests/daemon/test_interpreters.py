"""Target interpreters: discovery, the cached query, ``--python-version``/``--python-platform``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.tags import Tag
from packaging.version import Version

from burrowd.daemon import pyquery
from burrowd.daemon.cache.layout import Bucket, digest
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.errors import InterpreterNotFound
from burrowd.daemon.interpreters import (
    InterpreterInfo,
    Interpreters,
    Platform,
    PythonRequest,
    Target,
    parse_python_platform,
    parse_python_version,
)
from tests.daemon.cache.harness import host_interpreter
from tests.e2e.helpers import process_gone, wait_until

HOST_VERSION = "{}.{}".format(*sys.version_info[:2])


@pytest.fixture
async def host() -> InterpreterInfo:
    return await host_interpreter()


def _wrapper(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


class TestQuery:
    async def test_reports_this_interpreter(self, host: InterpreterInfo) -> None:
        assert host.executable == sys.executable
        assert host.prefix == sys.prefix
        assert host.is_venv == (sys.prefix != sys.base_prefix)
        assert host.implementation == sys.implementation.name
        assert host.version.startswith(HOST_VERSION + ".")
        assert host.markers["python_version"] == HOST_VERSION
        assert host.markers["sys_platform"] == sys.platform
        assert host.paths["purelib"]

    async def test_cached_by_path_and_revalidated_by_mtime(self, tmp_path: Path) -> None:
        runs = tmp_path / "runs"
        python = _wrapper(
            tmp_path / "python", f'echo run >> "{runs}"\nexec "{sys.executable}" "$@"'
        )
        cache = Cache(tmp_path / "cache")
        interpreters = Interpreters(cache)
        info = await interpreters.query(python)
        assert info.executable == sys.executable
        assert await interpreters.query(python) is info  # memory
        assert runs.read_text().count("run") == 1
        stored = cache.path(Bucket.INTERPRETER, f"{digest(str(python))}.msgpack")
        assert stored.is_file()

        restarted = Interpreters(cache)
        assert await restarted.query(python) == info  # disk
        assert runs.read_text().count("run") == 1

        later = python.stat().st_mtime + 10
        os.utime(python, (later, later))
        assert await restarted.query(python) == info
        assert runs.read_text().count("run") == 2
        assert await Interpreters(cache).query(python) == info
        assert runs.read_text().count("run") == 2  # the new mtime was stored

    async def test_a_changed_size_is_queried_again(self, tmp_path: Path) -> None:
        runs = tmp_path / "runs"
        python = _wrapper(
            tmp_path / "python", f'echo run >> "{runs}"\nexec "{sys.executable}" "$@"'
        )
        st = python.stat()
        interpreters = Interpreters(Cache(tmp_path / "cache"))
        await interpreters.query(python)
        with python.open("a") as f:
            f.write("# grown\n")
        os.utime(python, ns=(st.st_atime_ns, st.st_mtime_ns))
        await interpreters.query(python)
        assert runs.read_text().count("run") == 2

    async def test_an_unreadable_cache_entry_is_queried_again(self, tmp_path: Path) -> None:
        cache = Cache(tmp_path / "cache")
        python = Path(sys.executable)
        info = await Interpreters(cache).query(python)
        stored = cache.path(Bucket.INTERPRETER, f"{digest(os.path.abspath(python))}.msgpack")
        stored.write_bytes(b"\xc1 garbage")
        assert await Interpreters(cache).query(python) == info

    @pytest.mark.parametrize(
        ("body", "match"),
        [
            pytest.param("echo broken >&2; exit 3", "the query failed: broken", id="fails"),
            pytest.param("echo 'not json'", "unexpected answer", id="junk"),
            pytest.param("echo '{\"executable\": 1}'", "unexpected answer", id="wrong-shape"),
        ],
    )
    async def test_a_bad_interpreter(self, tmp_path: Path, body: str, match: str) -> None:
        python = _wrapper(tmp_path / "python", body)
        with pytest.raises(InterpreterNotFound, match=match) as info:
            await Interpreters(Cache(tmp_path / "cache")).query(python)
        assert str(python) in str(info.value)
        assert not Cache(tmp_path / "cache").bucket(Bucket.INTERPRETER).exists()

    async def test_missing_executable(self, tmp_path: Path) -> None:
        with pytest.raises(InterpreterNotFound, match="No such file"):
            await Interpreters(Cache(tmp_path)).query(tmp_path / "nope")


class TestFind:
    async def test_by_path_and_by_version(self, tmp_path: Path, host: InterpreterInfo) -> None:
        interpreters = Interpreters(Cache(tmp_path))
        by_path = await interpreters.find(PythonRequest(python=sys.executable))
        assert by_path.executable == sys.executable
        bindir = tmp_path / "bin"
        bindir.mkdir()
        (bindir / f"python{HOST_VERSION}").symlink_to(sys.executable)
        by_version = await interpreters.find(
            PythonRequest(python=HOST_VERSION, path=str(bindir), cwd=str(tmp_path))
        )
        assert by_version.version == host.version

    async def test_a_version_that_is_not_there(self, tmp_path: Path) -> None:
        bindir = tmp_path / "bin"
        bindir.mkdir()
        (bindir / "python3").symlink_to(sys.executable)
        with pytest.raises(InterpreterNotFound) as info:
            await Interpreters(Cache(tmp_path)).find(
                PythonRequest(python="3.1", path=str(bindir), cwd=str(tmp_path))
            )
        assert "(is " in str(info.value)
        assert "--python PATH" in str(info.value)

    async def test_a_broken_shim_does_not_hide_a_working_interpreter(
        self, tmp_path: Path, host: InterpreterInfo
    ) -> None:
        shims, real = tmp_path / "shims", tmp_path / "real"
        shims.mkdir()
        real.mkdir()
        (real / f"python{HOST_VERSION}").symlink_to(sys.executable)
        shim = _wrapper(
            shims / f"python{HOST_VERSION}",
            f"echo 'pyenv: python{HOST_VERSION}: command not found' >&2; echo >&2; "
            "echo 'The command exists in these Python versions:' >&2; exit 127",
        )
        interpreters = Interpreters(Cache(tmp_path / "c"))
        found = await interpreters.find(
            PythonRequest(python=HOST_VERSION, path=f"{shims}:{real}", cwd=str(tmp_path))
        )
        assert found.version == host.version
        assert found.executable in (str(real / f"python{HOST_VERSION}"), sys.executable)
        # Alone, the shim fails with the line that says why, not pyenv's advice after it.
        with pytest.raises(InterpreterNotFound) as info:
            await interpreters.find(
                PythonRequest(python=HOST_VERSION, path=str(shims), cwd=str(tmp_path))
            )
        assert f"{shim} (the query failed: pyenv: python{HOST_VERSION}: command not found)" in (
            str(info.value)
        )

    async def test_virtual_env_comes_first(self, tmp_path: Path) -> None:
        venv = tmp_path / "venv"
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(sys.executable)
        found = await Interpreters(Cache(tmp_path / "c")).find(
            PythonRequest(virtual_env=str(venv), cwd=str(tmp_path), path="/nonexistent")
        )
        assert found.executable == str(venv / "bin" / "python")

    async def test_nothing_found(self, tmp_path: Path) -> None:
        with pytest.raises(InterpreterNotFound, match="nothing suitable on PATH"):
            await Interpreters(Cache(tmp_path)).find(
                PythonRequest(cwd=str(tmp_path), path=str(tmp_path))
            )


class TestPythonVersion:
    @pytest.mark.parametrize(
        ("text", "python_version", "full"),
        [
            pytest.param("3.7", "3.7", "3.7.0", id="minor"),
            pytest.param("3.7.9", "3.7", "3.7.9", id="micro"),
            pytest.param(" 3.12 ", "3.12", "3.12.0", id="spaces"),
        ],
    )
    async def test_accepted(
        self, host: InterpreterInfo, text: str, python_version: str, full: str
    ) -> None:
        target = Target.build(host, python_version=text)
        assert target.markers["python_version"] == python_version
        assert target.markers["python_full_version"] == full
        assert target.python_version == Version(full)
        assert target.marker_env("x")["extra"] == "x"
        assert target.allows_python(f">={python_version}")
        assert not target.allows_python(f">{full}")

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param("3", id="major-only"),
            pytest.param("three", id="word"),
            pytest.param("3.7.9.1", id="four-parts"),
            pytest.param("1.5", id="not-python"),
            pytest.param("3.7+local", id="local"),
            pytest.param("3.x", id="letters"),
        ],
    )
    async def test_rejected(self, host: InterpreterInfo, text: str) -> None:
        with pytest.raises(InterpreterNotFound) as info:
            Target.build(host, python_version=text)
        assert f"--python-version {text}" in str(info.value)
        with pytest.raises(InterpreterNotFound):
            parse_python_version(text)

    async def test_old_python_gets_its_abi(self, host: InterpreterInfo) -> None:
        if host.implementation != "cpython":
            pytest.skip("CPython tags")
        target = Target.build(host, python_version="3.7", python_platform="x86_64-manylinux_2_17")
        priorities = target.tag_priorities
        assert Tag("cp37", "cp37m", "manylinux2014_x86_64") in priorities
        assert Tag("cp37", "abi3", "manylinux_2_17_x86_64") in priorities
        assert Tag("cp311", "cp311", "manylinux_2_17_x86_64") not in priorities
        assert Tag("py3", "none", "any") in priorities

    async def test_default_is_the_interpreter(self, host: InterpreterInfo) -> None:
        target = Target.build(host)
        assert target.markers == host.markers
        assert str(target.python_version) == host.markers["python_full_version"]
        assert target.describe().startswith(
            {"cpython": "CPython", "pypy": "PyPy"}.get(host.implementation, "")
        )

    async def test_targets_are_memoized(self, tmp_path: Path, host: InterpreterInfo) -> None:
        interpreters = Interpreters(Cache(tmp_path))
        a = interpreters.target(host, python_version="3.9")
        assert interpreters.target(host, python_version="3.9") is a
        assert interpreters.target(host, python_version="3.10") is not a


class TestPythonPlatform:
    @pytest.mark.parametrize(
        ("text", "platform", "first_tags", "markers"),
        [
            pytest.param(
                "linux",
                Platform("linux", "x86_64", "gnu", (2, 17)),
                ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_16_x86_64"],
                {"sys_platform": "linux", "platform_machine": "x86_64", "os_name": "posix"},
                id="linux",
            ),
            pytest.param(
                "x86_64-manylinux_2_28",
                Platform("linux", "x86_64", "gnu", (2, 28)),
                ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64"],
                {"platform_system": "Linux"},
                id="manylinux-2-28",
            ),
            pytest.param(
                "aarch64-manylinux2014",
                Platform("linux", "aarch64", "gnu", (2, 17)),
                ["manylinux_2_17_aarch64", "manylinux2014_aarch64"],
                {"platform_machine": "aarch64"},
                id="manylinux2014-aarch64",
            ),
            pytest.param(
                "x86_64-unknown-linux-musl",
                Platform("linux", "x86_64", "musl", (1, 2)),
                ["musllinux_1_2_x86_64", "musllinux_1_1_x86_64"],
                {"sys_platform": "linux"},
                id="musl",
            ),
            pytest.param(
                "aarch64-apple-darwin",
                Platform("macos", "aarch64", "", (11, 0)),
                ["macosx_11_0_arm64", "macosx_11_0_universal2"],
                {
                    "sys_platform": "darwin",
                    "platform_machine": "arm64",
                    "platform_system": "Darwin",
                },
                id="macos-arm",
            ),
            pytest.param(
                "x86_64-pc-windows-msvc",
                Platform("windows", "x86_64", ""),
                ["win_amd64"],
                {"sys_platform": "win32", "platform_machine": "AMD64", "os_name": "nt"},
                id="windows",
            ),
            pytest.param(
                " Windows ",
                Platform("windows", "x86_64", ""),
                ["win_amd64"],
                {"platform_system": "Windows"},
                id="windows-alias",
            ),
        ],
    )
    async def test_parsed(
        self,
        host: InterpreterInfo,
        text: str,
        platform: Platform,
        first_tags: list[str],
        markers: dict[str, str],
    ) -> None:
        parsed = parse_python_platform(text)
        assert parsed == platform
        assert parsed.platform_tags()[: len(first_tags)] == first_tags
        target = Target.build(host, python_platform=text)
        assert target.platform == platform
        assert {k: target.markers[k] for k in markers} == markers
        assert target.markers["python_version"] == host.markers["python_version"]

    @pytest.mark.parametrize(
        "text",
        [
            pytest.param("garbage", id="garbage"),
            pytest.param("x86_64-manylinux_2", id="half-manylinux"),
            pytest.param("x86_64-unknown-linux-uclibc", id="uclibc"),
            pytest.param("x86_64-apple-ios", id="ios"),
        ],
    )
    async def test_rejected(self, host: InterpreterInfo, text: str) -> None:
        with pytest.raises(InterpreterNotFound, match="unknown platform"):
            parse_python_platform(text)
        with pytest.raises(InterpreterNotFound, match=f"--python-platform {text}"):
            Target.build(host, python_platform=text)

    def test_plain_linux_tag_is_the_last_resort(self) -> None:
        tags = Platform("linux", "x86_64", "gnu", (2, 17)).platform_tags()
        assert tags[-1] == "linux_x86_64"
        musl = Platform("linux", "x86_64", "musl", (1, 2)).platform_tags()
        assert musl[-1] == "linux_x86_64"

    async def test_describe(self, host: InterpreterInfo) -> None:
        target = Target.build(host, python_version="3.9.1", python_platform="x86_64-manylinux_2_28")
        if host.implementation == "cpython":
            assert target.describe() == "CPython 3.9.1 on linux x86_64 (glibc 2.28)"
        musl = Target.build(host, python_platform="x86_64-unknown-linux-musl")
        assert musl.describe().endswith("on linux x86_64 (musl 1.2)")


class TestEarlyQuery:
    """``burrowd`` starts the default interpreter's query before its own imports."""

    @pytest.fixture(autouse=True)
    def _no_leftovers(self) -> Iterator[None]:
        yield
        pyquery.discard_early()

    def _shim(self, tmp_path: Path, body: str) -> tuple[Path, Path]:
        runs = tmp_path / "runs"
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        _wrapper(bin_dir / "python3", f'echo run >> "{runs}"\n{body}')
        return bin_dir, runs

    async def test_the_request_reads_the_early_answer_and_runs_nothing_again(
        self, tmp_path: Path
    ) -> None:
        bin_dir, runs = self._shim(tmp_path, f'exec "{sys.executable}" "$@"')
        cache = Cache(tmp_path / "cache")
        env = {"PATH": str(bin_dir)}
        exe = pyquery.start_early(cache.root, env, cwd=str(tmp_path))
        assert exe == str(bin_dir / "python3")
        request = PythonRequest(cwd=str(tmp_path), path=str(bin_dir))
        info = await Interpreters(cache).find(request)
        assert info.executable == sys.executable
        assert runs.read_text().count("run") == 1
        st = os.stat(exe)
        assert pyquery.take_early(exe, st.st_mtime_ns, st.st_size) is None  # taken once
        # Stored as any answer is: the next daemon starts no early query at all.
        assert pyquery.start_early(cache.root, env, cwd=str(tmp_path)) is None
        assert await Interpreters(cache).find(request) == info
        assert runs.read_text().count("run") == 1

    async def test_an_early_failure_is_reported_by_the_request(self, tmp_path: Path) -> None:
        bin_dir, runs = self._shim(
            tmp_path, 'echo "pyenv: python3: command not found" >&2\nexit 127'
        )
        cache = Cache(tmp_path / "cache")
        assert pyquery.start_early(cache.root, {"PATH": str(bin_dir)}, cwd=str(tmp_path))
        with pytest.raises(InterpreterNotFound, match="command not found"):
            await Interpreters(cache).query(bin_dir / "python3")
        assert runs.read_text().count("run") == 1

    def test_the_same_candidate_as_a_request_without_python(self, tmp_path: Path) -> None:
        # A .venv above the working directory comes before PATH, as for the request.
        project = tmp_path / "project" / "sub"
        project.mkdir(parents=True)
        (tmp_path / "project" / ".venv" / "bin").mkdir(parents=True)
        venv_python = _wrapper(tmp_path / "project" / ".venv" / "bin" / "python", "exit 0")
        bin_dir, _ = self._shim(tmp_path, "exit 0")
        env = {"PATH": str(bin_dir)}
        exe = pyquery.start_early(tmp_path / "cache", env, cwd=str(project))
        assert exe == str(venv_python)
        candidates = Interpreters._all_candidates(
            PythonRequest(cwd=str(project), path=str(bin_dir))
        )
        assert next(candidates) == venv_python
        env["VIRTUAL_ENV"] = str(tmp_path / "active")
        pyquery.discard_early()
        assert pyquery.start_early(tmp_path / "cache", env, cwd=str(project)) == str(venv_python)

    async def test_an_interpreter_replaced_meanwhile_is_queried_again(self, tmp_path: Path) -> None:
        # An upgrade between the early start and the request: the old answer is not used.
        bin_dir, _ = self._shim(tmp_path, "echo 'the old interpreter'")
        python = bin_dir / "python3"
        cache = Cache(tmp_path / "cache")
        assert pyquery.start_early(cache.root, {"PATH": str(bin_dir)}, cwd=str(tmp_path))
        _wrapper(python, f'exec "{sys.executable}" "$@"')  # a new file: size and mtime
        info = await Interpreters(cache).query(python)
        assert info.executable == sys.executable
        stored = cache.path(Bucket.INTERPRETER, f"{digest(str(python))}.msgpack")
        assert stored.is_file()

    async def test_a_cancelled_query_stops_the_early_process_and_what_it_started(
        self, tmp_path: Path
    ) -> None:
        # A shim that never answers, with a child of its own (as pyenv's bash has). A
        # stopping daemon cancels the queries still running after its grace period.
        pids = tmp_path / "pids"
        bin_dir, _ = self._shim(tmp_path, f'sleep 600 &\necho $! >> "{pids}"\nsleep 600')
        python = bin_dir / "python3"
        cache = Cache(tmp_path / "cache")
        assert pyquery.start_early(cache.root, {"PATH": str(bin_dir)}, cwd=str(tmp_path))
        proc = pyquery._early[str(python)].proc
        interpreters = Interpreters(cache)
        query = asyncio.ensure_future(interpreters.query(python))
        await asyncio.to_thread(_started_child, pids)
        await interpreters._queries.wait_all(0.1)
        with pytest.raises(asyncio.CancelledError):
            await query
        assert await asyncio.to_thread(proc.wait, 10) == -signal.SIGKILL
        child = int(pids.read_text())
        assert await asyncio.to_thread(_gone, child)  # went with its process group

    async def test_a_query_not_started_early_is_stopped_whole_too(self, tmp_path: Path) -> None:
        # The same process group and the same stop for a query the request starts itself.
        pids = tmp_path / "pids"
        bin_dir, _ = self._shim(tmp_path, f'sleep 600 &\necho $! >> "{pids}"\nsleep 600')
        interpreters = Interpreters(Cache(tmp_path / "cache"))
        query = asyncio.ensure_future(interpreters.query(bin_dir / "python3"))
        await asyncio.to_thread(_started_child, pids)
        await interpreters._queries.wait_all(0.1)
        with pytest.raises(asyncio.CancelledError):
            await query
        child = int(pids.read_text())
        assert await asyncio.to_thread(_gone, child)  # went with its process group

    def test_discarding_reaps_an_untaken_query_and_its_children(self, tmp_path: Path) -> None:
        pids = tmp_path / "pids"
        bin_dir, _ = self._shim(tmp_path, f'sleep 600 &\necho $! >> "{pids}"\nsleep 600')
        cache = Cache(tmp_path / "cache")
        exe = pyquery.start_early(cache.root, {"PATH": str(bin_dir)}, cwd=str(tmp_path))
        assert exe is not None
        proc = pyquery._early[exe].proc
        _started_child(pids)
        pyquery.discard_early()
        assert proc.returncode == -signal.SIGKILL  # reaped: no zombie left
        assert not pyquery._early
        assert not pyquery._killed
        child = int(pids.read_text())
        assert _gone(child)


def _started_child(pids: Path) -> None:
    """Wait until the shim has written its child's pid."""
    for _ in range(200):
        if pids.exists() and pids.read_text().strip():
            return
        time.sleep(0.05)
    raise AssertionError("the shim never started its child")


def _gone(pid: int) -> bool:
    """Wait up to 5 s for ``pid`` to end; return whether it did."""
    return wait_until(lambda: process_gone(pid), 5.0)
