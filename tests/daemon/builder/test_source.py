"""Local sources: project directories (plain and editable), sdist files and wheel files.

A directory's revision is the mtimes of its ``pyproject.toml``, ``setup.py`` and
``setup.cfg``: an edit of one of them makes the next sync build and reinstall it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec

from burrowd.daemon.cache.layout import Bucket
from burrowd.protocol import messages as m
from tests.daemon.builder.harness import Stack, installed, project_tree, retarget
from tests.daemon.installer.harness import record_mismatches, run, sha256_of, site_packages
from tests.support.dists import DistSpec
from tests.support.plugin import DistFactory


def changes(items: list[m.PackageChange]) -> list[tuple[str, str, str]]:
    """Return ``(name, version, reason)`` of package changes, sorted."""
    return sorted((c.name, c.version, c.reason) for c in items)


class TestProjectDirectories:
    async def test_an_edited_directory_is_rebuilt_and_reinstalled_an_unedited_one_is_kept(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        edited = project_tree(DistSpec("edited", "1.0"), tmp_path)
        kept = project_tree(DistSpec("kept", "1.0"), tmp_path)
        requirements = (f"edited @ {edited.as_uri()}", f"kept @ {kept.as_uri()}")
        first = await stack.sync(*requirements)
        assert changes(first.installed) == [
            ("edited", "1.0", "missing"),
            ("kept", "1.0", "missing"),
        ]
        assert stack.builds == 2
        info = site_packages(stack.venv) / "edited-1.0.dist-info"
        assert msgspec.json.decode((info / "direct_url.json").read_bytes()) == {
            "url": edited.as_uri(),
            "dir_info": {},
        }
        assert "revision" in json.loads((info / "burrow_source.json").read_text())
        assert record_mismatches(info) == []

        second = await stack.sync(*requirements)
        assert (second.installed, second.removed, second.unchanged) == ([], [], 2)
        assert stack.builds == 2

        kept_info = site_packages(stack.venv) / "kept-1.0.dist-info"
        kept_inode = (kept_info / "METADATA").stat().st_ino
        retarget(edited, DistSpec("edited", "2.0", requires_dist=["kept"]))
        third = await stack.sync(*requirements)
        assert changes(third.installed) == [("edited", "2.0", "source")]
        assert third.installed[0].previous == "1.0"
        assert changes(third.removed) == [("edited", "1.0", "source")]
        assert third.unchanged == 1
        assert stack.builds == 3
        assert installed(stack.venv) == {"edited": "2.0", "kept": "1.0"}
        assert (kept_info / "METADATA").stat().st_ino == kept_inode
        # Each revision has a directory of its own; the old one is left for cache.prune.
        assert len(stack.built()) == 3

    async def test_a_touched_pyproject_is_a_new_revision(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        tree = project_tree(DistSpec("touched", "1.0"), tmp_path)
        await stack.sync(f"touched @ {tree.as_uri()}")
        pyproject = tree / "pyproject.toml"
        later = pyproject.stat().st_mtime_ns + 10**9
        os.utime(pyproject, ns=(later, later))
        result = await stack.sync(f"touched @ {tree.as_uri()}")
        assert changes(result.installed) == [("touched", "1.0", "source")]
        assert stack.builds == 2


class TestEditable:
    async def test_an_edit_is_visible_without_a_reinstall(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        spec = DistSpec("edpkg", "1.0", files={"edpkg/__init__.py": b"VALUE = 1\n"})
        tree = project_tree(spec, stack.installer.cwd)
        requirements = stack.installer.write("requirements.txt", f"-e ./{tree.name}\n")
        result = await stack.sync(files=[requirements])
        (change,) = result.installed
        assert (change.name, change.version, change.editable) == ("edpkg", "1.0", True)
        python = stack.venv / "bin" / "python"
        code = "import edpkg; print(edpkg.VALUE, edpkg.__file__)"
        done = run(python, "-c", code)
        assert done.stdout.split() == ["1", str(tree / "edpkg" / "__init__.py")], done.stderr
        info = site_packages(stack.venv) / "edpkg-1.0.dist-info"
        assert msgspec.json.decode((info / "direct_url.json").read_bytes()) == {
            "url": tree.as_uri(),
            "dir_info": {"editable": True},
        }
        assert not (site_packages(stack.venv) / "edpkg").exists()

        (tree / "edpkg" / "__init__.py").write_text("VALUE = 2\n")
        assert run(python, "-c", code).stdout.split()[0] == "2"
        again = await stack.sync(files=[requirements])
        assert (again.installed, again.unchanged) == ([], 1)
        assert stack.builds == 1


class TestLocalFiles:
    async def test_a_wheel_file_is_unpacked_into_the_cache_and_left_where_it_was(
        self, stack: Stack, dist_factory: DistFactory
    ) -> None:
        wheel = dist_factory.wheel("plain", "1.0")
        digest, stat = sha256_of(wheel), wheel.stat()
        result = await stack.sync(wheel)
        assert changes(result.installed) == [("plain", "1.0", "missing")]
        assert sha256_of(wheel) == digest
        assert (wheel.stat().st_ino, wheel.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
        unpacked = list(stack.bucket(Bucket.ARCHIVE).glob("*/plain/__init__.py"))
        assert len(unpacked) == 1
        assert stack.builds == 0
        assert not stack.bucket(Bucket.BUILT_WHEELS).exists()

    async def test_an_sdist_file_is_built_and_left_where_it_was(
        self, stack: Stack, dist_factory: DistFactory
    ) -> None:
        sdist = dist_factory.sdist("local", "1.0", static_metadata=False)
        digest = sha256_of(sdist)
        result = await stack.sync(sdist)
        assert changes(result.installed) == [("local", "1.0", "missing")]
        assert sha256_of(sdist) == digest
        (wheel,) = stack.built()
        assert wheel.relative_to(stack.bucket(Bucket.BUILT_WHEELS)).parts[0] == "path"
        info = site_packages(stack.venv) / "local-1.0.dist-info"
        assert msgspec.json.decode((info / "direct_url.json").read_bytes())["url"] == (
            sdist.as_uri()
        )
        assert record_mismatches(info) == []
        assert stack.builds == 1
