"""Environments: scheme paths from the interpreter, consent to change one, and its lock."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import msgspec
import pytest

from burrowd.daemon.cache.layout import Bucket, digest
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.errors import EnvironmentRefused, LockTimeout
from burrowd.daemon.installer.environment import (
    Environment,
    EnvironmentLocks,
    find_environment,
    is_interpreter_name,
)
from burrowd.daemon.installer.installed import scan
from burrowd.daemon.interpreters import InterpreterInfo, Interpreters
from burrowd.daemon.locks import FileLock
from burrowd.protocol.messages import ClientEnv, EnvironmentOptions, PythonOptions
from tests.daemon.installer.harness import (
    PY_MAJOR_MINOR,
    environment,
    make_venv,
    site_packages,
)


class TestFromInfo:
    async def test_a_venv(self, env: Environment, venv: Path) -> None:
        assert env.is_venv
        assert env.prefix == venv
        assert env.python == str(venv / "bin" / "python")
        assert env.purelib == site_packages(venv)
        assert env.platlib == site_packages(venv)
        assert env.site_dirs == [site_packages(venv)]
        assert env.scripts == venv / "bin"
        assert env.data == venv
        assert env.include == venv / "include" / "site" / f"python{PY_MAJOR_MINOR}"
        assert not env.created_by_burrowd
        assert env.lock_path == venv / ".lock"
        assert env.describe() == str(venv)

    async def test_the_pyvenv_cfg_marker_says_burrowd_made_it(
        self, cache: Cache, venv: Path
    ) -> None:
        cfg = venv / "pyvenv.cfg"
        cfg.write_text(cfg.read_text() + "burrowd = 0.1.0\n")
        env = await environment(cache, venv)
        assert env.created_by_burrowd

    async def test_scheme_paths_and_containment(self, tmp_path: Path, env: Environment) -> None:
        assert env.scheme_path("purelib", "x") == env.purelib
        assert env.scheme_path("platlib", "x") == env.platlib
        assert env.scheme_path("scripts", "x") == env.scripts
        assert env.scheme_path("data", "x") == env.data
        assert env.scheme_path("headers", "tool") == env.include / "tool"
        assert env.scheme_path("nope", "x") is None
        assert env.contains(str(env.purelib / "anything.py"))
        assert env.contains(str(env.prefix / "share" / "x"))
        assert not env.contains(str(tmp_path / "outside"))
        assert not env.contains(str(env.prefix) + "-sibling/x")
        (env.purelib / "out").symlink_to(tmp_path)
        assert not env.contains(str(env.purelib / "out" / "x"))

    async def test_the_base_interpreter_is_no_venv(self, cache: Cache) -> None:
        base = _base_python()
        info = await Interpreters(cache).query(base)
        env = Environment.from_info(info)
        assert not env.is_venv
        assert not env.created_by_burrowd
        assert env.python == info.executable
        assert env.include == Path(info.paths["include"])
        assert env.describe().endswith(" (system)")


def _base_python() -> Path:
    """Return the interpreter the test run's venv is based on, or skip."""
    base = Path(sys.base_prefix) / "bin" / f"python{PY_MAJOR_MINOR}"
    if sys.base_prefix == sys.prefix and not base.exists():
        pytest.skip("no base interpreter outside a virtual environment")
    if not base.exists():
        pytest.skip(f"{base} does not exist")
    return base


@pytest.mark.parametrize(
    ("name", "shadows"),
    [
        ("python", True),
        ("python3", True),
        (f"python{PY_MAJOR_MINOR}", True),
        ("python3.13t", True),
        ("pythonw", True),
        ("python3w", True),
        ("python.exe", True),
        ("Python3", True),
        ("python-config", False),
        ("python3-config", False),
        ("ipython", False),
        ("pythonista", False),
        ("py", False),
        ("python3.11.1", False),
    ],
)
def test_is_interpreter_name(name: str, shadows: bool) -> None:
    assert is_interpreter_name(name) is shadows


def fake_interpreter(
    cache: Cache, path: Path, *, prefix: str, base_prefix: str, managed: bool
) -> Path:
    """Put an interpreter's answer in the cache for the file at ``path`` (never run).

    The daemon trusts a cached answer while the executable's mtime and size are unchanged,
    so this is what it would have learned from an interpreter that reports these values.
    """
    path.write_text("#!/bin/sh\nexit 1\n")
    st = os.stat(path)
    paths = {
        "purelib": f"{prefix}/lib/python3.11/site-packages",
        "platlib": f"{prefix}/lib/python3.11/site-packages",
        "scripts": f"{prefix}/bin",
        "data": prefix,
        "include": f"{base_prefix}/include/python3.11",
    }
    info = InterpreterInfo(
        executable=str(path),
        prefix=prefix,
        base_prefix=base_prefix,
        version="3.11.7",
        implementation="cpython",
        implementation_version="3.11.7",
        abiflags="",
        soabi="cpython-311-x86_64-linux-gnu",
        platform="linux-x86_64",
        libc="glibc 2.36",
        pointer_bits=64,
        gil_disabled=False,
        externally_managed=managed,
        paths=paths,
        markers={},
    )
    entry = {"mtime_ns": st.st_mtime_ns, "size": st.st_size, "info": msgspec.to_builtins(info)}
    target = cache.path(Bucket.INTERPRETER, f"{digest(str(path))}.msgpack")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(msgspec.msgpack.encode(entry))
    return path


class TestConsent:
    def client(self, tmp_path: Path, virtual_env: Path | None = None) -> ClientEnv:
        empty = tmp_path / "empty-path"
        empty.mkdir(exist_ok=True)
        return ClientEnv(
            cwd=str(tmp_path),
            virtual_env=str(virtual_env) if virtual_env is not None else None,
            path=str(empty),
        )

    async def test_an_active_venv_may_be_changed(
        self, tmp_path: Path, cache: Cache, venv: Path
    ) -> None:
        env = await find_environment(
            Interpreters(cache),
            self.client(tmp_path, venv),
            PythonOptions(),
            EnvironmentOptions(),
            write=True,
        )
        assert env.prefix == venv

    async def test_no_venv_found_is_refused_with_a_hint(self, tmp_path: Path, cache: Cache) -> None:
        project = tmp_path / "project"
        project.mkdir()
        with pytest.raises(EnvironmentRefused, match="no virtual environment found") as caught:
            await find_environment(
                Interpreters(cache),
                self.client(project),
                PythonOptions(),
                EnvironmentOptions(),
                write=True,
            )
        assert "burrow venv" in caught.value.hint

    async def test_the_base_interpreter_needs_system(self, tmp_path: Path, cache: Cache) -> None:
        base = _base_python()
        interpreters = Interpreters(cache)
        python = PythonOptions(python=str(base))
        with pytest.raises(EnvironmentRefused, match="not in a virtual environment"):
            await find_environment(
                interpreters, self.client(tmp_path), python, EnvironmentOptions(), write=True
            )
        # Reading it (``list``) needs no consent.
        env = await find_environment(
            interpreters, self.client(tmp_path), python, EnvironmentOptions(), write=False
        )
        assert not env.is_venv
        if env.info.externally_managed:
            pytest.skip("the base interpreter is externally managed")
        env = await find_environment(
            interpreters,
            self.client(tmp_path),
            python,
            EnvironmentOptions(system=True),
            write=True,
        )
        assert not env.is_venv

    @pytest.mark.parametrize(
        ("options", "refused"),
        [
            pytest.param(EnvironmentOptions(), "not in a virtual environment", id="no-consent"),
            pytest.param(EnvironmentOptions(system=True), "externally managed", id="system"),
            pytest.param(
                EnvironmentOptions(break_system_packages=True),
                "not in a virtual environment",
                id="break-without-system",
            ),
            pytest.param(
                EnvironmentOptions(system=True, break_system_packages=True), None, id="both"
            ),
        ],
    )
    async def test_an_externally_managed_interpreter(
        self, tmp_path: Path, cache: Cache, options: EnvironmentOptions, refused: str | None
    ) -> None:
        python = fake_interpreter(
            cache, tmp_path / "python3", prefix="/usr", base_prefix="/usr", managed=True
        )
        find = find_environment(
            Interpreters(cache),
            self.client(tmp_path),
            PythonOptions(python=str(python)),
            options,
            write=True,
        )
        if refused is None:
            env = await find
            assert env.prefix == Path("/usr")
            assert not env.is_venv
        else:
            with pytest.raises(EnvironmentRefused, match=refused):
                await find

    async def test_a_venv_of_an_externally_managed_interpreter_is_not_managed(
        self, tmp_path: Path, cache: Cache
    ) -> None:
        python = fake_interpreter(
            cache, tmp_path / "python3", prefix=str(tmp_path), base_prefix="/usr", managed=True
        )
        env = await find_environment(
            Interpreters(cache),
            self.client(tmp_path),
            PythonOptions(python=str(python)),
            EnvironmentOptions(),
            write=True,
        )
        assert env.is_venv


class TestLocks:
    async def test_one_change_per_environment_at_a_time(self, env: Environment) -> None:
        locks = EnvironmentLocks(timeout=10.0)
        told: list[str] = []
        order: list[str] = []
        first_in = asyncio.Event()
        release = asyncio.Event()

        async def first() -> None:
            async with locks.hold(env, told.append):
                order.append("first in")
                first_in.set()
                await release.wait()
                order.append("first out")

        async def second() -> None:
            await first_in.wait()
            async with locks.hold(env, told.append):
                order.append("second in")

        tasks = [asyncio.ensure_future(first()), asyncio.ensure_future(second())]
        await first_in.wait()
        await asyncio.sleep(0.05)
        assert locks.busy() == [os.path.realpath(env.prefix)]
        release.set()
        await asyncio.gather(*tasks)
        assert order == ["first in", "first out", "second in"]
        assert told == [f"waiting for the lock on {env.prefix}"]
        assert locks.busy() == []

    async def test_another_process_holding_the_lock_file_is_waited_for(
        self, env: Environment
    ) -> None:
        locks = EnvironmentLocks(timeout=0.2)
        told: list[str] = []
        with FileLock(env.lock_path, "the test's other process"), pytest.raises(LockTimeout):
            async with locks.hold(env, told.append):
                pytest.fail("the lock was taken twice")
        assert told == [f"waiting for the lock on {env.prefix} (another process)"]
        async with locks.hold(env, told.append):
            pass

    async def test_different_environments_do_not_wait(
        self, tmp_path: Path, cache: Cache, env: Environment
    ) -> None:
        other = await environment(cache, make_venv(tmp_path / "other"))
        locks = EnvironmentLocks(timeout=0.2)
        told: list[str] = []
        async with locks.hold(env, told.append), locks.hold(other, told.append):
            assert sorted(locks.busy()) == sorted(
                [os.path.realpath(env.prefix), os.path.realpath(other.prefix)]
            )
        assert told == []


def venv_info(prefix: Path, *, purelib: Path, platlib: Path) -> InterpreterInfo:
    """Return what a venv's interpreter at ``prefix`` would report, with these site dirs."""
    return InterpreterInfo(
        executable=str(prefix / "bin" / "python3"),
        prefix=str(prefix),
        base_prefix="/usr",
        version="3.11.7",
        implementation="cpython",
        implementation_version="3.11.7",
        abiflags="",
        soabi="cpython-311-x86_64-linux-gnu",
        platform="linux-x86_64",
        libc="glibc 2.36",
        pointer_bits=64,
        gil_disabled=False,
        externally_managed=False,
        paths={
            "purelib": str(purelib),
            "platlib": str(platlib),
            "scripts": str(prefix / "bin"),
            "data": str(prefix),
            "include": "/usr/include/python3.11",
        },
        markers={},
    )


def add_dist_info(site: Path, name: str, version: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{info.name}/METADATA,,\r\n{info.name}/RECORD,,\r\n")


class TestLib64:
    """A platlib under ``lib64``, a link to ``lib`` (Fedora's venvs): one directory, read once."""

    def test_a_platlib_linked_to_purelib_is_one_site_directory(self, tmp_path: Path) -> None:
        prefix = tmp_path / "venv"
        purelib = prefix / "lib" / "python3.11" / "site-packages"
        purelib.mkdir(parents=True)
        (prefix / "lib64").symlink_to("lib", target_is_directory=True)
        platlib = prefix / "lib64" / "python3.11" / "site-packages"
        assert platlib.is_dir()
        add_dist_info(purelib, "alpha", "1.0")
        add_dist_info(purelib, "beta", "2.0")

        env = Environment.from_info(venv_info(prefix, purelib=purelib, platlib=platlib))
        assert env.purelib == purelib
        assert env.platlib == purelib
        assert env.site_dirs == [purelib]
        assert env.scheme_path("platlib", "x") == purelib
        site = scan(env.site_dirs)
        assert sorted((d.name, d.version) for d in site) == [("alpha", "1.0"), ("beta", "2.0")]
        assert len(site.get("alpha")) == 1
        assert len(site.get("beta")) == 1

    def test_a_separate_platlib_stays_a_second_site_directory(self, tmp_path: Path) -> None:
        prefix = tmp_path / "venv"
        purelib = prefix / "lib" / "python3.11" / "site-packages"
        platlib = prefix / "lib64" / "python3.11" / "site-packages"
        purelib.mkdir(parents=True)
        platlib.mkdir(parents=True)
        add_dist_info(purelib, "alpha", "1.0")
        add_dist_info(platlib, "native", "1.0")

        env = Environment.from_info(venv_info(prefix, purelib=purelib, platlib=platlib))
        assert env.site_dirs == [purelib, platlib]
        assert sorted(d.name for d in scan(env.site_dirs)) == ["alpha", "native"]
