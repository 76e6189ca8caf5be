"""Laying out and installing one unpacked wheel into a real virtual environment."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from burrowd.daemon.cache.archive import unpack_wheel
from burrowd.daemon.cache.layout import Bucket
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.errors import InvalidDistribution
from burrowd.daemon.installer.environment import Environment
from burrowd.daemon.installer.installed import ArchiveInfo, DirectUrl
from burrowd.daemon.installer.wheel import (
    Linker,
    LinkMode,
    install_layout,
    layout,
    record_hash,
    shebang,
)
from tests.daemon.installer.harness import (
    PY_MAJOR_MINOR,
    environment,
    install_wheel,
    installed_record,
    make_venv,
    raw_wheel,
    record_mismatches,
    run,
    sha256_of,
    site_packages,
    snapshot,
    unpack,
)
from tests.support.dists import ABSOLUTE_MEMBER, ZIP_SLIP_MEMBER, Breakage, DistSpec, read_record
from tests.support.plugin import DistFactory

TOOL = b"""import sys


def main():
    print("console", sys.argv[1:])
    return 3


def gui():
    print("gui", sys.argv[0].rsplit("/", 1)[-1])


class App:
    @staticmethod
    def run():
        print("nested")
"""


X_HASH = record_hash(b"x")


def tool_spec(**fields: Any) -> DistSpec:
    """Return the ``tool`` distribution: a package with callables for entry points."""
    return DistSpec("tool", "1.0", files={"tool/__init__.py": TOOL}, **fields)


def pip_launcher(python: str, module: str, name: str, func: str) -> bytes:
    """Return what pip 26 writes for a console entry point (its ``distlib`` template).

    The ``#!`` line is distlib's for ``python`` (:func:`shebang`, tested on its own: a long
    temporary path gets the ``/bin/sh`` form).
    """
    return (
        shebang(python)
        + (
            "import sys\n"
            f"from {module} import {name}\n"
            "if __name__ == '__main__':\n"
            "    sys.argv[0] = sys.argv[0].removesuffix('.exe')\n"
            f"    sys.exit({func}())\n"
        ).encode()
    )


def leftovers(site: Path) -> list[str]:
    """Return the staging directories an install left in ``site``."""
    return sorted(n for n in os.listdir(site) if n.startswith(".burrow-"))


class TestPlacement:
    async def test_a_pure_wheel_is_linked_into_purelib_with_its_metadata(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        wheel = dist_factory.wheel(
            "tool", "1.0", files={"tool/__init__.py": TOOL, "tool/data/table.csv": b"a,b\n"}
        )
        lay = install_wheel(cache, env, wheel)
        site = site_packages(env.prefix)
        assert env.purelib == site
        assert lay.root == str(site)
        assert lay.missing == []
        assert (site / "tool" / "data" / "table.csv").read_bytes() == b"a,b\n"
        info = site / "tool-1.0.dist-info"
        assert sorted(os.listdir(info)) == [
            "INSTALLER",
            "METADATA",
            "RECORD",
            "REQUESTED",
            "WHEEL",
        ]
        assert (info / "INSTALLER").read_bytes() == b"burrowd\n"
        assert (info / "REQUESTED").read_bytes() == b""
        assert record_mismatches(info) == []
        # Hard links from the cache: the environment's file is the archive's.
        archive = unpack(cache, wheel)
        linked = (site / "tool" / "__init__.py").stat()
        assert linked.st_ino == (archive / "tool" / "__init__.py").stat().st_ino
        assert leftovers(site) == []
        done = run(env.python, "-I", "-c", "import tool; tool.App.run()")
        assert done.stdout == "nested\n", done.stderr

    async def test_not_requested_means_no_requested_file(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        install_wheel(cache, env, dist_factory.wheel("dep", "2.0"), requested=False)
        info = env.purelib / "dep-2.0.dist-info"
        assert not (info / "REQUESTED").exists()
        assert record_mismatches(info) == []

    @pytest.mark.parametrize(
        ("tag", "root"),
        [
            pytest.param("py3-none-any", "purelib", id="root-is-purelib"),
            pytest.param("cp311-cp311-linux_x86_64", "platlib", id="root-is-platlib"),
        ],
    )
    async def test_the_root_goes_where_root_is_purelib_says(
        self, tmp_path: Path, cache: Cache, env: Environment, tag: str, root: str
    ) -> None:
        # The venv's purelib and platlib are one directory: give platlib its own.
        split = msgspec.structs.replace(env, platlib=tmp_path / "platlib")
        wheel = raw_wheel(
            tmp_path / "wheels",
            "mixed",
            "1.0",
            [
                ("mixed/__init__.py", b""),
                ("mixed-1.0.data/purelib/mixed_pure.py", b""),
                ("mixed-1.0.data/platlib/mixed_plat.py", b""),
            ],
            tag=tag,
        )
        lay = layout(unpack(cache, wheel), split)
        base = split.purelib if root == "purelib" else split.platlib
        assert lay.root == str(base)
        assert lay.dist_info_dest == str(base / "mixed-1.0.dist-info")
        dests = {p.record: p.dest for p in lay.files}
        assert dests["mixed/__init__.py"] == str(base / "mixed" / "__init__.py")
        pure = os.path.relpath(split.purelib / "mixed_pure.py", base)
        plat = os.path.relpath(split.platlib / "mixed_plat.py", base)
        assert dests[pure] == str(split.purelib / "mixed_pure.py")
        assert dests[plat] == str(split.platlib / "mixed_plat.py")

    async def test_an_incomplete_archive_is_refused(self, tmp_path: Path, env: Environment) -> None:
        with pytest.raises(InvalidDistribution, match="incomplete"):
            layout(tmp_path / "not-an-archive", env)

    async def test_installing_the_same_version_again_replaces_its_metadata(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        wheel = dist_factory.wheel(tool_spec())
        install_wheel(cache, env, wheel, requested=True)
        install_wheel(cache, env, wheel, requested=False)
        info = env.purelib / "tool-1.0.dist-info"
        assert not (info / "REQUESTED").exists()
        assert record_mismatches(info) == []
        assert leftovers(env.purelib) == []


class TestLinkModes:
    @pytest.mark.parametrize("mode", ["hardlink", "copy", "symlink"])
    async def test_each_mode_places_the_archive_file(
        self, cache: Cache, env: Environment, dist_factory: DistFactory, mode: LinkMode
    ) -> None:
        wheel = dist_factory.wheel(tool_spec())
        install_wheel(cache, env, wheel, mode=mode)
        source = unpack(cache, wheel) / "tool" / "__init__.py"
        placed = env.purelib / "tool" / "__init__.py"
        assert placed.read_bytes() == TOOL
        same_inode = placed.stat().st_ino == source.stat().st_ino
        if mode == "hardlink":
            assert same_inode
            assert not placed.is_symlink()
        elif mode == "copy":
            assert not same_inode
            assert not placed.is_symlink()
        else:
            assert placed.is_symlink()
            assert os.readlink(placed) == str(source)
        assert record_mismatches(env.purelib / "tool-1.0.dist-info") == []

    @pytest.mark.parametrize("mode", ["hardlink", "copy", "symlink"])
    async def test_a_stray_file_is_replaced(
        self, cache: Cache, env: Environment, dist_factory: DistFactory, mode: LinkMode
    ) -> None:
        stray = env.purelib / "tool" / "__init__.py"
        stray.parent.mkdir()
        stray.write_bytes(b"stray = True\n")
        install_wheel(cache, env, dist_factory.wheel(tool_spec()), mode=mode)
        assert stray.read_bytes() == TOOL

    async def test_hard_links_across_devices_fall_back_to_copies(
        self, tmp_path: Path, venv: Path, dist_factory: DistFactory
    ) -> None:
        with _other_device(tmp_path) as elsewhere:
            cache = Cache(elsewhere / "cache", lock_timeout=10.0)
            env = await environment(cache, venv)
            lay = layout(unpack(cache, dist_factory.wheel(tool_spec())), env)
            linker = Linker("hardlink")
            install_layout(lay, linker)
            assert linker.fell_back
            assert linker.mode == "copy"
            placed = env.purelib / "tool" / "__init__.py"
            assert placed.read_bytes() == TOOL
            assert not placed.is_symlink()
            assert record_mismatches(env.purelib / "tool-1.0.dist-info") == []


@contextlib.contextmanager
def _other_device(tmp_path: Path) -> Iterator[Path]:
    """Yield a temporary directory on another file system than ``tmp_path``, or skip."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no /dev/shm to put the cache on another file system")
    if shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("/dev/shm is on the same file system as the test's directory")
    path = Path(tempfile.mkdtemp(prefix="burrow-test-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class TestEntryPoints:
    async def test_console_and_gui_launchers_are_pips_and_run(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        spec = tool_spec(
            entry_points={
                "console_scripts": {"tool-cli": "tool:main"},
                "gui_scripts": {"tool-gui": "tool:gui"},
            }
        )
        install_wheel(cache, env, dist_factory.wheel(spec))
        cli, gui = env.scripts / "tool-cli", env.scripts / "tool-gui"
        python = str(env.prefix / "bin" / "python")
        assert env.python == python
        assert cli.read_bytes() == pip_launcher(python, "tool", "main", "main")
        assert gui.read_bytes() == pip_launcher(python, "tool", "gui", "gui")
        for script in (cli, gui):
            assert stat.S_IMODE(script.stat().st_mode) == 0o755
        done = run(cli, "a", "b c")  # through its shebang
        assert (done.returncode, done.stdout) == (3, "console ['a', 'b c']\n"), done.stderr
        done = run(python, gui)
        assert (done.returncode, done.stdout) == (0, "gui tool-gui\n"), done.stderr
        rows = {
            path: (digest, size)
            for path, digest, size in installed_record(env.purelib / "tool-1.0.dist-info")
        }
        content = cli.read_bytes()
        assert rows["../../../bin/tool-cli"] == (record_hash(content), str(len(content)))
        assert "../../../bin/tool-gui" in rows

    async def test_a_nested_callable_with_extras(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        spec = tool_spec(entry_points={"console_scripts": {"tool-app": "tool:App.run [fancy]"}})
        install_wheel(cache, env, dist_factory.wheel(spec))
        script = env.scripts / "tool-app"
        assert script.read_bytes() == pip_launcher(env.python, "tool", "App", "App.run")
        done = run(script)
        assert (done.returncode, done.stdout) == (0, "nested\n"), done.stderr

    async def test_a_launcher_runs_from_a_path_with_a_space(
        self, tmp_path: Path, cache: Cache, dist_factory: DistFactory
    ) -> None:
        venv = make_venv(tmp_path / "with space" / "venv")
        env = await environment(cache, venv)
        spec = tool_spec(entry_points={"console_scripts": {"tool-cli": "tool:main"}})
        install_wheel(cache, env, dist_factory.wheel(spec))
        script = env.scripts / "tool-cli"
        assert script.read_bytes().startswith(b"#!/bin/sh\n")
        done = run(script, "x")
        assert (done.returncode, done.stdout) == (3, "console ['x']\n"), done.stderr

    @pytest.mark.parametrize(
        ("python", "expected"),
        [
            pytest.param("/usr/bin/python3", b"#!/usr/bin/python3\n", id="plain"),
            pytest.param(
                "/a b/python",
                b"#!/bin/sh\n'''exec' \"/a b/python\" \"$0\" \"$@\"\n' '''\n",
                id="space",
            ),
            pytest.param(
                "/" + "x" * 130 + "/python",
                b"#!/bin/sh\n'''exec' /" + b"x" * 130 + b"/python \"$0\" \"$@\"\n' '''\n",
                id="too-long",
            ),
        ],
    )
    def test_shebang(self, python: str, expected: bytes) -> None:
        assert shebang(python) == expected

    async def test_pip_gets_its_versioned_names(
        self, tmp_path: Path, cache: Cache, env: Environment
    ) -> None:
        wheel = raw_wheel(
            tmp_path / "wheels",
            "pip",
            "99.0",
            [("pip/__init__.py", b"def main():\n    return 0\n")],
            entry_points=(
                "[console_scripts]\npip = pip:main\npip3 = pip:main\npip3.8 = pip:main\n"
                "easy_install = pip:main\neasy_install-3.8 = pip:main\n"
            ),
        )
        lay = layout(unpack(cache, wheel), env)
        assert sorted(os.path.basename(s.dest) for s in lay.scripts) == sorted(
            [
                "pip",
                "pip3",
                f"pip{PY_MAJOR_MINOR}",
                "easy_install",
                f"easy_install-{PY_MAJOR_MINOR}",
            ]
        )

    async def test_an_old_target_gets_the_classic_launcher(
        self, tmp_path: Path, cache: Cache, env: Environment
    ) -> None:
        old = msgspec.structs.replace(env, info=msgspec.structs.replace(env.info, version="3.8.18"))
        wheel = raw_wheel(
            tmp_path / "wheels",
            "pip",
            "99.0",
            [("pip/__init__.py", b"")],
            entry_points="[console_scripts]\npip = pip:main\n",
        )
        lay = layout(unpack(cache, wheel), old)
        scripts = {os.path.basename(s.dest): s.content for s in lay.scripts}
        assert sorted(scripts) == ["pip", "pip3", "pip3.8"]
        assert b"removesuffix" not in scripts["pip"]
        assert b"re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])" in scripts["pip"]

    @pytest.mark.parametrize(
        ("entry", "match"),
        [
            pytest.param("python = tool:main", "interpreter", id="python"),
            pytest.param("python3 = tool:main", "interpreter", id="python3"),
            pytest.param(f"python{PY_MAJOR_MINOR} = tool:main", "interpreter", id="python3.x"),
            pytest.param("pythonw = tool:main", "interpreter", id="pythonw"),
            pytest.param("tool = tool", "module:callable", id="no-callable"),
            pytest.param("tool = tool:", "module:callable", id="empty-callable"),
            pytest.param("tool = not a module:main", "module:callable", id="bad-module"),
            pytest.param("a/b = tool:main", "plain file name", id="slash"),
        ],
    )
    async def test_bad_entry_points_are_refused(
        self, tmp_path: Path, cache: Cache, env: Environment, entry: str, match: str
    ) -> None:
        wheel = raw_wheel(
            tmp_path / "wheels",
            "tool",
            "1.0",
            [("tool/__init__.py", TOOL)],
            entry_points=f"[console_scripts]\n{entry}\n",
        )
        before = snapshot(env.prefix)
        with pytest.raises(InvalidDistribution, match=match):
            layout(unpack(cache, wheel), env)
        assert snapshot(env.prefix) == before

    async def test_setuptools_wrappers_give_way_to_the_launcher(
        self, tmp_path: Path, cache: Cache, env: Environment
    ) -> None:
        wrapper = b"#!python\nprint('wrapper')\n"
        wheel = raw_wheel(
            tmp_path / "wheels",
            "tool",
            "1.0",
            [
                ("tool/__init__.py", TOOL),
                ("tool-1.0.data/scripts/tool-cli", wrapper),
                ("tool-1.0.data/scripts/tool-cli-script.py", wrapper),
                ("tool-1.0.data/scripts/tool-cli.exe", b"MZ"),
                ("tool-1.0.data/scripts/other", b"#!python\nprint('other')\n"),
            ],
            entry_points="[console_scripts]\ntool-cli = tool:main\n",
        )
        install_wheel(cache, env, wheel)
        assert (env.scripts / "tool-cli").read_bytes() == pip_launcher(
            env.python, "tool", "main", "main"
        )
        assert not (env.scripts / "tool-cli-script.py").exists()
        assert not (env.scripts / "tool-cli.exe").exists()
        assert (env.scripts / "other").read_bytes() == shebang(env.python) + b"print('other')\n"
        paths = [p for p, _, _ in installed_record(env.purelib / "tool-1.0.dist-info")]
        assert "../../../bin/tool-cli-script.py" not in paths
        assert paths.count("../../../bin/tool-cli") == 1


class TestDataSchemes:
    async def test_every_scheme_lands_in_its_directory(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        spec = tool_spec(
            data={
                "data/share/tool/readme.txt": b"readme\n",
                "headers/tool.h": b"#define TOOL 1\n",
                "purelib/tool_extra.py": b"EXTRA = 1\n",
                "platlib/tool_plat.py": b"PLAT = 2\n",
                "scripts/tool-sh": b"#!/bin/sh\necho sh-script\n",
                "scripts/tool-py": (
                    b"#!python\nimport tool_extra\nprint('py-script', tool_extra.EXTRA)\n"
                ),
            }
        )
        install_wheel(cache, env, dist_factory.wheel(spec))
        prefix, site = env.prefix, env.purelib
        assert (prefix / "share" / "tool" / "readme.txt").read_bytes() == b"readme\n"
        header = prefix / "include" / "site" / f"python{PY_MAJOR_MINOR}" / "tool" / "tool.h"
        assert header.read_bytes() == b"#define TOOL 1\n"
        assert (site / "tool_extra.py").read_bytes() == b"EXTRA = 1\n"
        assert (site / "tool_plat.py").read_bytes() == b"PLAT = 2\n"
        assert not (site / "tool-1.0.data").exists()

        sh, py = env.scripts / "tool-sh", env.scripts / "tool-py"
        assert sh.read_bytes() == b"#!/bin/sh\necho sh-script\n"
        assert py.read_bytes() == shebang(env.python) + (
            b"import tool_extra\nprint('py-script', tool_extra.EXTRA)\n"
        )
        for script in (sh, py):
            assert stat.S_IMODE(script.stat().st_mode) & 0o111 == 0o111, script
        assert run(sh).stdout == "sh-script\n"
        done = run(py)
        assert done.stdout == "py-script 1\n", done.stderr

        info = site / "tool-1.0.dist-info"
        paths = {p for p, _, _ in installed_record(info)}
        major_minor = PY_MAJOR_MINOR
        assert {
            "../../../share/tool/readme.txt",
            f"../../../include/site/python{major_minor}/tool/tool.h",
            "tool_extra.py",
            "tool_plat.py",
            "../../../bin/tool-sh",
            "../../../bin/tool-py",
        } <= paths
        assert not any(".data/" in p for p in paths)
        assert record_mismatches(info) == []

    @pytest.mark.parametrize(
        ("member", "match"),
        [
            pytest.param("tool-1.0.data/nope/x.txt", "unknown scheme 'nope'", id="unknown"),
            pytest.param("tool-1.0.data/x.txt", "subdirectory", id="no-scheme-dir"),
        ],
    )
    async def test_a_bad_data_path_is_refused(
        self, tmp_path: Path, cache: Cache, env: Environment, member: str, match: str
    ) -> None:
        wheel = raw_wheel(
            tmp_path / "w", "tool", "1.0", [("tool/__init__.py", b""), (member, b"x")]
        )
        with pytest.raises(InvalidDistribution, match=match):
            layout(unpack(cache, wheel), env)

    @pytest.mark.parametrize(
        "name", ["python", "python3", f"python{PY_MAJOR_MINOR}", "pythonw", "python3.13t"]
    )
    async def test_a_script_named_like_the_interpreter_is_refused(
        self, tmp_path: Path, cache: Cache, env: Environment, name: str
    ) -> None:
        wheel = raw_wheel(
            tmp_path / "w",
            "tool",
            "1.0",
            [("tool/__init__.py", b""), (f"tool-1.0.data/scripts/{name}", b"#!/bin/sh\n")],
        )
        before = snapshot(env.prefix)
        with pytest.raises(InvalidDistribution, match="interpreter"):
            layout(unpack(cache, wheel), env)
        assert snapshot(env.prefix) == before


class TestNamespacePackages:
    async def test_two_distributions_share_one_namespace_directory(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        a = dist_factory.wheel("ns-a", "1.0", files={"ns/a/__init__.py": b"NAME = 'a'\n"})
        b = dist_factory.wheel("ns-b", "1.0", files={"ns/b/__init__.py": b"NAME = 'b'\n"})
        install_wheel(cache, env, a)
        install_wheel(cache, env, b)
        assert sorted(os.listdir(env.purelib / "ns")) == ["a", "b"]
        done = run(env.python, "-I", "-c", "import ns.a, ns.b; print(ns.a.NAME, ns.b.NAME)")
        assert done.stdout == "a b\n", done.stderr
        for info in ("ns_a-1.0.dist-info", "ns_b-1.0.dist-info"):
            assert record_mismatches(env.purelib / info) == []


class TestRecord:
    async def test_the_record_written_is_pips(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        spec = tool_spec(
            entry_points={"console_scripts": {"tool-cli": "tool:main"}},
            data={"data/share/tool.txt": b"t\n"},
        )
        wheel = dist_factory.wheel(spec)
        digest = sha256_of(wheel)
        url = DirectUrl(
            url=wheel.as_uri(),
            archive_info=ArchiveInfo(hash=f"sha256={digest}", hashes={"sha256": digest}),
        )
        install_wheel(cache, env, wheel, direct_url=url, requested=True)
        info = env.purelib / "tool-1.0.dist-info"

        rows = []
        for member, digest_, size in read_record(wheel):
            if member.endswith(".dist-info/RECORD"):
                continue
            path = member.replace("tool-1.0.data/data/", "../../../")
            rows.append((path, digest_, size))
        launcher = (env.scripts / "tool-cli").read_bytes()
        url_json = (info / "direct_url.json").read_bytes()
        rows += [
            ("../../../bin/tool-cli", record_hash(launcher), str(len(launcher))),
            ("tool-1.0.dist-info/INSTALLER", record_hash(b"burrowd\n"), "8"),
            ("tool-1.0.dist-info/REQUESTED", record_hash(b""), "0"),
            ("tool-1.0.dist-info/direct_url.json", record_hash(url_json), str(len(url_json))),
            ("tool-1.0.dist-info/RECORD", "", ""),
        ]
        expected = "".join(f"{p},{h},{s}\r\n" for p, h, s in sorted(rows)).encode()
        assert (info / "RECORD").read_bytes() == expected
        assert msgspec.json.decode(url_json) == {
            "archive_info": {"hash": f"sha256={digest}", "hashes": {"sha256": digest}},
            "url": wheel.as_uri(),
        }
        assert record_mismatches(info) == []

    async def test_a_wheels_own_installer_files_are_not_installed(
        self, tmp_path: Path, cache: Cache, env: Environment
    ) -> None:
        wheel = raw_wheel(
            tmp_path / "w",
            "tool",
            "1.0",
            [
                ("tool/__init__.py", b""),
                ("tool-1.0.dist-info/INSTALLER", b"pip\n"),
                ("tool-1.0.dist-info/REQUESTED", b""),
                ("tool-1.0.dist-info/direct_url.json", b'{"url": "https://elsewhere/"}'),
            ],
        )
        install_wheel(cache, env, wheel, requested=False)
        info = env.purelib / "tool-1.0.dist-info"
        assert (info / "INSTALLER").read_bytes() == b"burrowd\n"
        assert not (info / "REQUESTED").exists()
        assert not (info / "direct_url.json").exists()
        paths = [p for p, _, _ in installed_record(info)]
        assert paths.count("tool-1.0.dist-info/INSTALLER") == 1
        assert "tool-1.0.dist-info/direct_url.json" not in paths
        assert record_mismatches(info) == []


class TestLyingWheels:
    def test_a_damaged_member_is_refused_at_unpack(
        self, cache: Cache, dist_factory: DistFactory
    ) -> None:
        wheel = dist_factory.wheel(tool_spec(), broken=Breakage.BAD_CRC)
        with pytest.raises(InvalidDistribution, match="is corrupt"):
            unpack(cache, wheel)
        assert not cache.path(Bucket.ARCHIVE, sha256_of(wheel)).exists()

    def test_a_wrong_record_hash_installs_as_with_pip_and_uv(
        self, cache: Cache, env: Environment, dist_factory: DistFactory
    ) -> None:
        # Its RECORD row is wrong, its bytes are not: pip and uv install it (some torch
        # releases are such wheels), and the installed RECORD keeps the wheel's rows.
        wheel = dist_factory.wheel(tool_spec(), broken=Breakage.RECORD_WRONG_HASH)
        install_wheel(cache, env, wheel)
        assert (env.purelib / "tool" / "__init__.py").read_bytes() == TOOL
        rows = installed_record(env.purelib / "tool-1.0.dist-info")
        assert [r[0] for r in rows if r[0] == "tool/__init__.py"] == ["tool/__init__.py"]

    @pytest.mark.parametrize(
        ("ghost", "signed"),
        [
            pytest.param("tool/ghost.py", False, id="root"),
            pytest.param("tool-1.0.data/data/share/ghost.txt", False, id="data"),
            pytest.param("tool-1.0.data/scripts/ghost", False, id="script"),
            # A signature file (RECORD.jws) is a member RECORD's own rows do not count.
            pytest.param("tool/ghost.py", True, id="root-signed-wheel"),
        ],
    )
    async def test_a_record_row_for_a_file_the_wheel_lacks_is_dropped(
        self, tmp_path: Path, cache: Cache, env: Environment, ghost: str, signed: bool
    ) -> None:
        signature = [("tool-1.0.dist-info/RECORD.jws", b"{}")] if signed else []
        wheel = raw_wheel(
            tmp_path / "w",
            "tool",
            "1.0",
            [("tool/__init__.py", TOOL), *signature],
            extra_rows=[f"{ghost},{record_hash(b'boo')},3"],
        )
        lay = install_wheel(cache, env, wheel)
        assert lay.missing == [ghost]
        info = env.purelib / "tool-1.0.dist-info"
        paths = [p for p, _, _ in installed_record(info)]
        assert not any("ghost" in p for p in paths)
        assert record_mismatches(info) == []
        assert not [p for p in snapshot(env.prefix) if "ghost" in p]
        assert (env.purelib / "tool" / "__init__.py").read_bytes() == TOOL

    @pytest.mark.parametrize(
        "row",
        [
            pytest.param(f"../../../../outside.py,{X_HASH},1", id="dotdot"),
            pytest.param(f"tool/../../../../outside.py,{X_HASH},1", id="inner-dotdot"),
            pytest.param(f"/tmp/burrow-test-outside.py,{X_HASH},1", id="absolute"),
            pytest.param(f"tool-1.0.data/data/../../../../out.py,{X_HASH},1", id="data-dotdot"),
            pytest.param(f"tool\\..\\..\\outside.py,{X_HASH},1", id="backslash"),
            pytest.param(f"C:/outside.py,{X_HASH},1", id="drive"),
            pytest.param(f"./tool/x.py,{X_HASH},1", id="dot"),
            pytest.param(f'"tool/../../../../out,side.py",{X_HASH},1', id="quoted"),
            pytest.param("../../../../outside.py", id="dotdot-bare"),
            # Rows without hash and size (as RECORD lists itself) that end in ``..`` or ``.``.
            pytest.param("tool/..", id="trailing-dotdot-bare"),
            pytest.param("..", id="dotdot-only-bare"),
            pytest.param("tool-1.0.data/data/..", id="data-dotdot-bare"),
            pytest.param("tool/.", id="trailing-dot-bare"),
        ],
    )
    async def test_an_unsafe_record_path_is_refused(
        self, tmp_path: Path, cache: Cache, env: Environment, row: str
    ) -> None:
        files = [("tool/__init__.py", b""), ("tool-1.0.data/data/share/tool.txt", b"")]
        wheel = raw_wheel(tmp_path / "w", "tool", "1.0", files, extra_rows=[row])
        with pytest.raises(InvalidDistribution, match="its RECORD lists"):
            unpack(cache, wheel)
        assert not cache.path(Bucket.ARCHIVE, sha256_of(wheel)).exists()
        # The layout refuses it too: an archive unpacked before the unpack checked rows.
        archive = unpack(cache, raw_wheel(tmp_path / "good", "tool", "1.0", files))
        record = archive / "tool-1.0.dist-info" / "RECORD"
        record.write_bytes(record.read_bytes() + f"{row}\n".encode())
        before = snapshot(tmp_path)
        with pytest.raises(InvalidDistribution, match="its RECORD lists"):
            layout(archive, env)
        assert snapshot(tmp_path) == before

    def test_a_record_that_is_not_csv_is_refused_at_unpack(
        self, tmp_path: Path, cache: Cache
    ) -> None:
        # A carriage return inside a row: the csv module gives up on the whole file.
        wheel = raw_wheel(
            tmp_path / "w",
            "tool",
            "1.0",
            [("tool/__init__.py", b"")],
            extra_rows=[f"tool/ghost.py\r../../evil.py,{X_HASH},1"],
        )
        with pytest.raises(InvalidDistribution, match="RECORD"):
            unpack(cache, wheel)
        assert not cache.path(Bucket.ARCHIVE, sha256_of(wheel)).exists()

    @pytest.mark.parametrize(
        "broken", [Breakage.ZIP_SLIP, Breakage.ABSOLUTE_PATH], ids=["zip-slip", "absolute"]
    )
    def test_members_outside_the_wheel_are_refused_at_unpack(
        self, tmp_path: Path, cache: Cache, dist_factory: DistFactory, broken: Breakage
    ) -> None:
        absolute_before = os.path.lexists(ABSOLUTE_MEMBER)
        wheel = dist_factory.wheel(tool_spec(), broken=broken)
        with pytest.raises(InvalidDistribution, match="member"):
            unpack_wheel(cache, wheel, filename=wheel.name, sha256=sha256_of(wheel))
        assert not cache.path(Bucket.ARCHIVE, sha256_of(wheel)).exists()
        landed = [p for p in snapshot(tmp_path) if Path(p).name == Path(ZIP_SLIP_MEMBER).name]
        assert landed == []
        assert os.path.lexists(ABSOLUTE_MEMBER) == absolute_before
        assert os.listdir(cache.tmp) == []
