"""RECORD-driven removal: files, bytecode and emptied directories, never outside the env."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

import msgspec.structs
import pytest

from burrowd.daemon.cache.store import Cache
from burrowd.daemon.errors import EnvironmentRefused
from burrowd.daemon.installer.environment import Environment
from burrowd.daemon.installer.installed import InstalledDist, scan
from burrowd.daemon.installer.uninstall import (
    TRASH_DIR,
    Janitor,
    Removal,
    Trash,
    check_removable,
    remove_dist,
)
from tests.daemon.installer.harness import PY_MAJOR_MINOR, install_wheel, run, snapshot
from tests.support.dists import DistSpec
from tests.support.plugin import DistFactory

P = ParamSpec("P")
T = TypeVar("T")

CACHE_TAG = f"cpython-{PY_MAJOR_MINOR.replace('.', '')}"


def the_dist(env: Environment, name: str) -> InstalledDist:
    (dist,) = scan(env.site_dirs).get(name)
    return dist


def compile_all(env: Environment, *paths: Path) -> None:
    """Compile ``paths`` with the environment's interpreter, unoptimized and ``-O``."""
    subprocess.run(
        [env.python, "-m", "compileall", "-q", "-o", "0", "-o", "1", *map(str, paths)],
        check=True,
        capture_output=True,
        timeout=60,
    )


def add_record_rows(dist_info: Path, *rows: str) -> None:
    with open(dist_info / "RECORD", "a", encoding="utf-8", newline="") as f:
        f.writelines(f"{row},,\r\n" for row in rows)


class TestRemoval:
    async def test_files_bytecode_and_emptied_directories_go(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        before = snapshot(env.prefix)
        spec = DistSpec(
            "tool",
            "1.0",
            files={"tool/__init__.py": b"", "tool/sub/mod.py": b"X = 1\n"},
            data={"data/share/tool/readme.txt": b"r\n", "headers/tool.h": b"\n"},
            entry_points={"console_scripts": {"tool-cli": "tool:main"}},
        )
        install_wheel(cache, env, dist_factory.wheel(spec))
        compile_all(env, env.purelib / "tool")
        pycache = env.purelib / "tool" / "sub" / "__pycache__"
        assert sorted(os.listdir(pycache)) == [
            f"mod.{CACHE_TAG}.opt-1.pyc",
            f"mod.{CACHE_TAG}.pyc",
        ]
        removal = remove_dist(the_dist(env, "tool"), env)
        # 5 recorded files (2 modules, data, header, launcher) and 2 x 2 compiled files.
        assert removal.files == 9
        assert removal.outside == []
        after = snapshot(env.prefix)
        # The headers scheme directory stays, as every scheme directory does.
        include = os.path.join("include", "site", f"python{PY_MAJOR_MINOR}")
        assert after == {
            **before,
            os.path.join("include", "site"): "dir",
            include: "dir",
        }
        assert os.listdir(env.prefix / include) == []
        assert os.listdir(env.purelib) == []
        assert len(scan(env.site_dirs)) == 0

    async def test_scheme_directories_stay_even_when_emptied(
        self, tmp_path: Path, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        scripts = tmp_path / "scripts"
        scripts.mkdir()
        split = msgspec.structs.replace(env, scripts=scripts)
        spec = DistSpec("tool", "1.0", entry_points={"console_scripts": {"tool-cli": "tool:x"}})
        install_wheel(cache, split, dist_factory.wheel(spec))
        assert os.listdir(scripts) == ["tool-cli"]
        remove_dist(the_dist(split, "tool"), split)
        assert scripts.is_dir()
        assert os.listdir(scripts) == []
        assert env.purelib.is_dir()
        assert os.listdir(env.purelib) == []

    async def test_only_the_bytecode_of_removed_modules_goes(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        a = dist_factory.wheel("a", "1.0", files={"pkg/a.py": b"A = 1\n"})
        b = dist_factory.wheel("b", "1.0", files={"pkg/b.py": b"", "pkg/a_b.py": b""})
        install_wheel(cache, env, a)
        install_wheel(cache, env, b)
        compile_all(env, env.purelib / "pkg")
        remove_dist(the_dist(env, "a"), env)
        assert sorted(os.listdir(env.purelib / "pkg")) == ["__pycache__", "a_b.py", "b.py"]
        assert sorted(os.listdir(env.purelib / "pkg" / "__pycache__")) == [
            f"a_b.{CACHE_TAG}.opt-1.pyc",
            f"a_b.{CACHE_TAG}.pyc",
            f"b.{CACHE_TAG}.opt-1.pyc",
            f"b.{CACHE_TAG}.pyc",
        ]

    async def test_a_namespace_shared_with_another_distribution_keeps_its_files(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        a = dist_factory.wheel("ns-a", "1.0", files={"ns/a/__init__.py": b"NAME = 'a'\n"})
        b = dist_factory.wheel("ns-b", "1.0", files={"ns/b/__init__.py": b"NAME = 'b'\n"})
        install_wheel(cache, env, a)
        install_wheel(cache, env, b)
        remove_dist(the_dist(env, "ns-a"), env)
        assert os.listdir(env.purelib / "ns") == ["b"]
        assert (env.purelib / "ns" / "b" / "__init__.py").read_bytes() == b"NAME = 'b'\n"
        done = run(env.python, "-I", "-c", "import ns.b; print(ns.b.NAME)")
        assert done.stdout == "b\n", done.stderr
        remove_dist(the_dist(env, "ns-b"), env)
        assert not (env.purelib / "ns").exists()

    async def test_files_already_gone_are_not_counted(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        wheel = dist_factory.wheel("tool", "1.0", files={"tool/a.py": b"", "tool/b.py": b""})
        install_wheel(cache, env, wheel)
        (env.purelib / "tool" / "a.py").unlink()
        removal = remove_dist(the_dist(env, "tool"), env)
        assert removal.files == 1
        assert not (env.purelib / "tool").exists()


async def remove_and_empty_trash(
    dist: InstalledDist, env: Environment, *, with_trash: bool
) -> Removal:
    """Remove ``dist``, through a trash emptied afterwards when ``with_trash``."""
    trash = Trash(env) if with_trash else None
    removal = remove_dist(dist, env, trash=trash)
    if trash is not None:
        janitor = Janitor()
        janitor.discard(trash.items)
        await janitor.drain()
    return removal


@pytest.mark.parametrize("with_trash", [False, True], ids=["unlink", "trash"])
class TestOutside:
    async def test_recorded_paths_outside_the_environment_survive(
        self,
        tmp_path: Path,
        cache: Cache,
        env: Environment,
        dist_factory: DistFactory,
        with_trash: bool,
    ) -> None:
        install_wheel(cache, env, dist_factory.wheel("tool", "1.0"))
        info = env.purelib / "tool-1.0.dist-info"
        outside = tmp_path / "outside.txt"
        outside.write_text("precious")
        absolute = tmp_path / "absolute.txt"
        absolute.write_text("precious too")
        relative = os.path.relpath(outside, env.purelib)
        assert relative.startswith("../../../../")
        add_record_rows(info, relative, str(absolute))
        dist = the_dist(env, "tool")
        removal = await remove_and_empty_trash(dist, env, with_trash=with_trash)
        assert outside.read_text() == "precious"
        assert absolute.read_text() == "precious too"
        assert sorted(removal.outside) == sorted([str(outside), str(absolute)])
        assert not info.exists()
        assert not (env.purelib / "tool").exists()

    async def test_a_symlinked_directory_leading_outside_is_not_followed(
        self,
        tmp_path: Path,
        cache: Cache,
        env: Environment,
        dist_factory: DistFactory,
        with_trash: bool,
    ) -> None:
        install_wheel(cache, env, dist_factory.wheel("tool", "1.0"))
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        victim = elsewhere / "victim.txt"
        victim.write_text("precious")
        (env.purelib / "linked").symlink_to(elsewhere, target_is_directory=True)
        add_record_rows(env.purelib / "tool-1.0.dist-info", "linked/victim.txt")
        dist = the_dist(env, "tool")
        removal = await remove_and_empty_trash(dist, env, with_trash=with_trash)
        assert victim.read_text() == "precious"
        assert removal.outside == [str(env.purelib / "linked" / "victim.txt")]

    async def test_a_symlinked_directory_inside_a_package_is_not_followed(
        self,
        tmp_path: Path,
        cache: Cache,
        env: Environment,
        dist_factory: DistFactory,
        with_trash: bool,
    ) -> None:
        wheel = dist_factory.wheel("tool", "1.0", files={"tool/__init__.py": b""})
        install_wheel(cache, env, wheel)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        victim = elsewhere / "victim.txt"
        victim.write_text("precious")
        (env.purelib / "tool" / "sub").symlink_to(elsewhere, target_is_directory=True)
        add_record_rows(env.purelib / "tool-1.0.dist-info", "tool/sub/victim.txt")
        dist = the_dist(env, "tool")
        removal = await remove_and_empty_trash(dist, env, with_trash=with_trash)
        assert victim.read_text() == "precious"
        assert removal.outside == [str(env.purelib / "tool" / "sub" / "victim.txt")]
        assert not (env.purelib / "tool" / "__init__.py").exists()


class TestLegacy:
    async def test_an_egg_info_is_removed_by_its_installed_files_txt(
        self, env: Environment
    ) -> None:
        before = snapshot(env.prefix)
        site = env.purelib
        egg = site / f"legacy-1.0-py{PY_MAJOR_MINOR}.egg-info"
        egg.mkdir()
        (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: legacy\nVersion: 1.0\n")
        (egg / "top_level.txt").write_text("legacy\n")
        (site / "legacy").mkdir()
        (site / "legacy" / "__init__.py").write_text("")
        (site / "legacy" / "__pycache__").mkdir()
        pyc = f"__init__.{CACHE_TAG}.pyc"
        (site / "legacy" / "__pycache__" / pyc).write_bytes(b"")
        script = env.scripts / "legacy-script"
        script.write_text("#!/bin/sh\n")
        (egg / "installed-files.txt").write_text(
            "../legacy/__init__.py\n"
            f"../legacy/__pycache__/{pyc}\n"
            f"{os.path.relpath(script, egg)}\n"
            "./\nPKG-INFO\ntop_level.txt\n"
        )
        dist = the_dist(env, "legacy")
        assert (dist.kind, dist.version) == ("egg-info", "1.0")
        removal = remove_dist(dist, env)
        assert removal.files == 3
        assert snapshot(env.prefix) == before

    @pytest.mark.parametrize(
        ("make", "missing"),
        [
            pytest.param("dist-info", "RECORD", id="dist-info-without-record"),
            pytest.param("egg-info", "installed-files.txt", id="egg-info-without-list"),
            pytest.param("egg-info-file", "installed-files.txt", id="egg-info-file"),
        ],
    )
    async def test_a_distribution_without_a_record_is_refused(
        self, env: Environment, make: str, missing: str
    ) -> None:
        site = env.purelib
        (site / "tool").mkdir()
        (site / "tool" / "__init__.py").write_text("")
        meta = "Metadata-Version: 2.1\nName: tool\nVersion: 1.0\n"
        if make == "dist-info":
            (site / "tool-1.0.dist-info").mkdir()
            (site / "tool-1.0.dist-info" / "METADATA").write_text(meta)
        elif make == "egg-info":
            (site / "tool-1.0.egg-info").mkdir()
            (site / "tool-1.0.egg-info" / "PKG-INFO").write_text(meta)
        else:
            (site / "tool-1.0.egg-info").write_text(meta)
        before = snapshot(env.prefix)
        dist = the_dist(env, "tool")
        with pytest.raises(EnvironmentRefused, match=f"has no {missing}") as caught:
            check_removable(dist, env)
        assert caught.value.environment == str(env.prefix)
        with pytest.raises(EnvironmentRefused):
            remove_dist(dist, env)
        assert snapshot(env.prefix) == before


class TestTrash:
    """With a trash, owned directories are renamed aside whole and deleted afterwards."""

    async def test_owned_directories_go_aside_then_away(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        before = snapshot(env.prefix)
        spec = DistSpec(
            "tool",
            "1.0",
            files={"tool/__init__.py": b"", "tool/sub/mod.py": b"X = 1\n"},
            data={"data/share/tool/readme.txt": b"r\n"},
            entry_points={"console_scripts": {"tool-cli": "tool:main"}},
        )
        install_wheel(cache, env, dist_factory.wheel(spec))
        compile_all(env, env.purelib / "tool")
        trash = Trash(env)
        removal = remove_dist(the_dist(env, "tool"), env, trash=trash)
        assert removal.outside == []
        # The metadata directory and the package, one rename each.
        assert len(trash.items) == 2
        assert {p.parent for p in trash.items} == {env.prefix / TRASH_DIR}
        assert os.listdir(env.purelib) == []
        assert not (env.scripts / "tool-cli").exists()
        assert not (env.prefix / "share").exists()
        janitor = Janitor()
        janitor.discard(trash.items)
        await janitor.drain()
        assert snapshot(env.prefix) == before

    async def test_a_namespace_shared_with_another_distribution_keeps_its_files(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        a = dist_factory.wheel("ns-a", "1.0", files={"ns/a/__init__.py": b"NAME = 'a'\n"})
        b = dist_factory.wheel("ns-b", "1.0", files={"ns/b/__init__.py": b"NAME = 'b'\n"})
        install_wheel(cache, env, a)
        install_wheel(cache, env, b)
        compile_all(env, env.purelib / "ns")
        trash = Trash(env)
        remove_dist(the_dist(env, "ns-a"), env, trash=trash)
        assert os.listdir(env.purelib / "ns") == ["b"]
        assert (env.purelib / "ns" / "b" / "__init__.py").read_bytes() == b"NAME = 'b'\n"
        done = run(env.python, "-I", "-c", "import ns.b; print(ns.b.NAME)")
        assert done.stdout == "b\n", done.stderr
        janitor = Janitor()
        janitor.discard(trash.items)
        await janitor.drain()
        assert not (env.prefix / TRASH_DIR).exists()

    async def test_a_file_nobody_recorded_keeps_its_directory(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        wheel = dist_factory.wheel("tool", "1.0", files={"tool/__init__.py": b"", "tool/a.py": b""})
        install_wheel(cache, env, wheel)
        mine = env.purelib / "tool" / "settings.local"
        mine.write_text("the user's own")
        trash = Trash(env)
        remove_dist(the_dist(env, "tool"), env, trash=trash)
        assert os.listdir(env.purelib / "tool") == ["settings.local"]
        assert mine.read_text() == "the user's own"

    @pytest.mark.parametrize("with_trash", [False, True], ids=["unlink", "trash"])
    async def test_a_recorded_symlink_goes_but_not_what_it_points_to(
        self,
        tmp_path: Path,
        cache: Cache,
        env: Environment,
        dist_factory: DistFactory,
        with_trash: bool,
    ) -> None:
        install_wheel(cache, env, dist_factory.wheel("tool", "1.0"))
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        (secrets / "key").write_text("precious")
        (env.purelib / "tool" / "file-link").symlink_to(secrets / "key")
        (env.purelib / "tool" / "dir-link").symlink_to(secrets, target_is_directory=True)
        add_record_rows(env.purelib / "tool-1.0.dist-info", "tool/file-link")
        trash = Trash(env) if with_trash else None
        remove_dist(the_dist(env, "tool"), env, trash=trash)
        if trash is not None:
            janitor = Janitor()
            janitor.discard(trash.items)
            await janitor.drain()
        assert (secrets / "key").read_text() == "precious"
        assert not (env.purelib / "tool" / "file-link").is_symlink()
        # The unrecorded link stays, and with it its directory.
        assert (env.purelib / "tool" / "dir-link").is_symlink()

    def test_leftovers_and_what_cannot_be_taken(self, tmp_path: Path, env: Environment) -> None:
        trash = Trash(env)
        assert trash.leftovers() == []
        assert not trash.take(str(tmp_path / "missing"))
        assert trash.items == []
        left = env.prefix / TRASH_DIR / "from-an-interrupted-request"
        left.mkdir(parents=True)
        assert trash.leftovers() == [left]


class CountingExecutor(ThreadPoolExecutor):
    """The event loop's default executor, counting the jobs ``asyncio.to_thread`` submits."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.jobs = 0

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


def trash_item(prefix: Path, name: str) -> Path:
    """Return a directory in the trash of the environment at ``prefix``, with a file in it."""
    item = prefix / TRASH_DIR / name
    (item / "pkg").mkdir(parents=True)
    (item / "pkg" / "__init__.py").write_text("")
    return item


class TestJanitor:
    async def test_paths_being_deleted_are_not_handed_out_again(self, tmp_path: Path) -> None:
        executor = CountingExecutor()
        asyncio.get_running_loop().set_default_executor(executor)
        first, second = trash_item(tmp_path, "first"), trash_item(tmp_path, "second")
        janitor = Janitor()
        janitor.discard([first])
        # A sweep that finds the same item while it is being deleted: only ``second`` is new.
        janitor.discard([first, second])
        janitor.discard([first, second])
        await janitor.drain()
        assert executor.jobs == 2
        assert not first.exists()
        assert not second.exists()
        assert not (tmp_path / TRASH_DIR).exists()

    async def test_a_path_deleted_before_may_be_discarded_again(self, tmp_path: Path) -> None:
        janitor = Janitor()
        for _ in range(2):
            item = trash_item(tmp_path, "item")
            janitor.discard([item])
            await janitor.drain()
            assert not item.exists()


class TestTrashRace:
    def test_a_trash_removed_before_the_rename_is_made_again(
        self, monkeypatch: pytest.MonkeyPatch, env: Environment
    ) -> None:
        victim = env.purelib / "tool"
        victim.mkdir()
        (victim / "__init__.py").write_text("")
        trash = Trash(env)
        real_rename = os.rename
        renames: list[str] = []

        def janitor_empties_the_trash_first(src: str, dst: str) -> None:
            # What the janitor's thread does between ``take``'s mkdir and its rename.
            if not renames:
                os.rmdir(trash.root)
            renames.append(src)
            real_rename(src, dst)

        monkeypatch.setattr(os, "rename", janitor_empties_the_trash_first)
        assert trash.take(str(victim))
        monkeypatch.undo()
        assert renames == [str(victim), str(victim)]
        assert not victim.exists()
        (item,) = trash.items
        assert item.parent == trash.root
        assert (item / "__init__.py").is_file()

    def test_a_path_gone_with_the_trash_is_not_taken(
        self, monkeypatch: pytest.MonkeyPatch, env: Environment
    ) -> None:
        victim = env.purelib / "tool"
        victim.mkdir()
        trash = Trash(env)
        real_rename = os.rename

        def both_vanish(src: str, dst: str) -> None:
            os.rmdir(trash.root)
            os.rmdir(src)
            real_rename(src, dst)

        monkeypatch.setattr(os, "rename", both_vanish)
        assert not trash.take(str(victim))
        monkeypatch.undo()
        assert trash.items == []
