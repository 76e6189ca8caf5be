"""The ``sync``, ``install``, ``uninstall``, ``list`` and ``venv`` methods, in this process.

The daemon's services run on a fresh cache; the target is a real ``python -m venv``
environment; wheels are local files or come from a fake index on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from burrowd.daemon.cache.layout import Bucket, digest
from burrowd.daemon.cache.store import Cache
from burrowd.daemon.errors import (
    EnvironmentRefused,
    HashMismatch,
    InstallConflict,
    InvalidDistribution,
    InvalidRequirement,
    ResolutionImpossible,
)
from burrowd.daemon.installer import service
from burrowd.daemon.installer.apply import settle
from burrowd.daemon.installer.uninstall import TRASH_DIR
from burrowd.daemon.interpreters import Interpreters
from burrowd.protocol import __version__
from burrowd.protocol import messages as m
from burrowd.protocol.errors import ErrorCode
from tests.daemon.installer.harness import (
    PY_MAJOR_MINOR,
    Installer,
    environment,
    make_venv,
    open_installer,
    raw_wheel,
    record_mismatches,
    run,
    sha256_of,
    site_packages,
    snapshot,
)
from tests.support.dists import ABSOLUTE_MEMBER, ZIP_SLIP_MEMBER, Breakage, DistSpec
from tests.support.index import FakeIndex
from tests.support.plugin import DistFactory


@pytest.fixture
async def indexed(tmp_path: Path, fake_index_async: FakeIndex) -> AsyncIterator[Installer]:
    """Return the services using the fake index, and a fresh venv."""
    async with open_installer(tmp_path, fake_index_async) as inst:
        yield inst


def tree(venv: Path) -> dict[str, str]:
    """Return a snapshot of ``venv`` without its lock file (which a sync creates)."""
    return {k: v for k, v in snapshot(venv).items() if k != ".lock"}


def names(changes: list[m.PackageChange]) -> list[tuple[str, str, str]]:
    return sorted((c.name, c.version, c.reason) for c in changes)


def installed(venv: Path) -> dict[str, str]:
    """Return ``{name: version}`` of what the venv holds, read by the venv's own python."""
    code = (
        "import importlib.metadata as md\n"
        "for d in md.distributions(): print(d.metadata['Name'], d.version)\n"
    )
    done = run(venv / "bin" / "python", "-I", "-c", code)
    assert done.returncode == 0, done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines())


def file_hits(index: FakeIndex) -> dict[str, int]:
    """Return how often each file (not page) of the index was downloaded."""
    return {path: n for path, n in index.hits.items() if path.startswith("/files/")}


TOOL = b"import sys\ndef main():\n    print('tool says', *sys.argv[1:])\n"


class TestSyncLocalWheels:
    async def test_installs_a_wheel_whose_launcher_runs_and_leaves_the_file(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        wheel = dist_factory.wheel(
            "tool",
            "1.0",
            files={"tool/__init__.py": TOOL},
            entry_points={"console_scripts": {"tool": "tool:main"}},
        )
        digest = sha256_of(wheel)
        result = await installer.sync(wheel)
        assert result.environment == str(installer.venv)
        assert result.python == str(installer.venv / "bin" / "python")
        assert not result.dry_run
        (change,) = result.installed
        assert (change.name, change.version, change.reason) == ("tool", "1.0", "missing")
        assert change.previous is None
        assert change.url == wheel.as_uri()
        assert result.removed == []
        assert result.warnings == []
        assert sha256_of(wheel) == digest
        done = run(installer.venv / "bin" / "tool", "hi")
        assert done.stdout == "tool says hi\n", done.stderr
        info = site_packages(installer.venv) / "tool-1.0.dist-info"
        assert msgspec.json.decode((info / "direct_url.json").read_bytes()) == {
            "url": wheel.as_uri(),
            "archive_info": {"hash": f"sha256={digest}", "hashes": {"sha256": digest}},
        }
        assert (info / "INSTALLER").read_text() == "burrowd\n"
        assert (info / "REQUESTED").exists()
        assert record_mismatches(info) == []
        assert installed(installer.venv) == {"tool": "1.0"}
        assert {"checking", "installing"} <= set(installer.progress.phases)

    async def test_an_unchanged_wheel_is_kept(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        wheel = dist_factory.wheel("tool", "1.0")
        await installer.sync(wheel)
        before = tree(installer.venv)
        result = await installer.sync(wheel)
        assert (result.installed, result.removed, result.unchanged) == ([], [], 1)
        assert tree(installer.venv) == before
        assert wheel.is_file()

    async def test_a_wheel_rebuilt_at_the_same_path_is_reinstalled(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        first = dist_factory.wheel("tool", "1.0", files={"tool/__init__.py": b"V = 1\n"})
        await installer.sync(first)
        second = dist_factory.wheel(
            "tool", "1.0", files={"tool/__init__.py": b"V = 2  # rebuilt, longer\n"}
        )
        assert second == first
        digest = sha256_of(second)
        result = await installer.sync(second)
        assert names(result.installed) == [("tool", "1.0", "source")]
        assert result.installed[0].previous == "1.0"
        assert names(result.removed) == [("tool", "1.0", "source")]
        site = site_packages(installer.venv)
        assert (site / "tool" / "__init__.py").read_bytes() == b"V = 2  # rebuilt, longer\n"
        url = msgspec.json.decode((site / "tool-1.0.dist-info" / "direct_url.json").read_bytes())
        assert url["archive_info"]["hashes"] == {"sha256": digest}
        assert second.is_file()
        assert sha256_of(second) == digest

    async def test_reinstall_reinstalls_an_unchanged_wheel(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        wheel = dist_factory.wheel("tool", "1.0")
        await installer.sync(wheel)
        result = await installer.sync(wheel, reinstall=True)
        assert names(result.installed) == [("tool", "1.0", "reinstall")]
        assert record_mismatches(site_packages(installer.venv) / "tool-1.0.dist-info") == []

    async def test_dry_run_changes_nothing(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        old = dist_factory.wheel("old", "1.0")
        await installer.sync(old)
        before = tree(installer.venv)
        result = await installer.sync(dist_factory.wheel("tool", "2.0"), dry_run=True)
        assert result.dry_run
        assert names(result.installed) == [("tool", "2.0", "missing")]
        assert names(result.removed) == [("old", "1.0", "extraneous")]
        assert result.downloaded == 0
        assert tree(installer.venv) == before

    async def test_sync_removes_what_is_not_wanted(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        await installer.sync(dist_factory.wheel("old", "1.0"), dist_factory.wheel("keep", "1.0"))
        result = await installer.sync(dist_factory.wheel("keep", "1.0"))
        assert names(result.removed) == [("old", "1.0", "extraneous")]
        assert result.unchanged == 1
        assert installed(installer.venv) == {"keep": "1.0"}
        assert not (site_packages(installer.venv) / "old").exists()

    async def test_one_pin_per_package(self, installer: Installer) -> None:
        with pytest.raises(InvalidRequirement, match="required twice"):
            await installer.sync("tool==1.0", "tool==2.0")
        assert installed(installer.venv) == {}

    async def test_no_requirements_is_refused_unless_allowed(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        await installer.sync(dist_factory.wheel("old", "1.0"))
        with pytest.raises(InvalidRequirement, match="allow-empty"):
            await installer.sync()
        assert installed(installer.venv) == {"old": "1.0"}
        result = await installer.sync(allow_empty=True)
        assert names(result.removed) == [("old", "1.0", "extraneous")]
        assert installed(installer.venv) == {}
        assert os.listdir(site_packages(installer.venv)) == []


class TestSyncOptions:
    async def test_compiled_bytecode_goes_with_its_distribution(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        before = tree(installer.venv)
        wheel = dist_factory.wheel("tool", "1.0", files={"tool/__init__.py": b"", "tool/m.py": b""})
        result = await installer.sync(wheel, compile_bytecode=True)
        assert "compile" in result.timings
        pycache = site_packages(installer.venv) / "tool" / "__pycache__"
        tag = f"cpython-{PY_MAJOR_MINOR.replace('.', '')}"
        assert sorted(os.listdir(pycache)) == [f"__init__.{tag}.pyc", f"m.{tag}.pyc"]
        await installer.uninstall("tool")
        assert tree(installer.venv) == before

    @pytest.mark.parametrize("mode", ["copy", "symlink"])
    async def test_link_modes(
        self, installer: Installer, dist_factory: DistFactory, mode: str
    ) -> None:
        wheel = dist_factory.wheel("tool", "1.0", files={"tool/__init__.py": b"V = 1\n"})
        await installer.sync(wheel, link_mode=mode)
        placed = site_packages(installer.venv) / "tool" / "__init__.py"
        assert placed.is_symlink() is (mode == "symlink")
        done = run(installer.venv / "bin" / "python", "-I", "-c", "import tool; print(tool.V)")
        assert done.stdout == "1\n", done.stderr

    async def test_concurrent_syncs_of_one_environment_take_turns(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        a = dist_factory.wheel("a", "1.0", files={f"a/m{i}.py": b"" for i in range(50)})
        b = dist_factory.wheel("b", "1.0", files={f"b/m{i}.py": b"" for i in range(50)})
        done = await asyncio.gather(installer.sync(a), installer.sync(b))
        results = dict(zip("ab", done, strict=True))
        assert names(results["a"].installed) == [("a", "1.0", "missing")]
        assert names(results["b"].installed) == [("b", "1.0", "missing")]
        # Whichever went second waited, then found the other installed and removed it
        # (sync is exact): never a mix of the two.
        first, last = ("a", "b") if results["b"].removed else ("b", "a")
        assert results[first].removed == []
        assert names(results[last].removed) == [(first, "1.0", "extraneous")]
        assert installed(installer.venv) == {last: "1.0"}
        assert not (site_packages(installer.venv) / first).exists()
        assert any(phase.startswith("waiting for the lock") for phase in installer.progress.phases)

    async def test_an_extraneous_distribution_without_record_refuses_the_sync(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        info = site_packages(installer.venv) / "norecord-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: norecord\nVersion: 1.0\n")
        before = tree(installer.venv)
        with pytest.raises(EnvironmentRefused, match="has no RECORD"):
            await installer.sync(dist_factory.wheel("tool", "1.0"))
        assert tree(installer.venv) == before


class TestSeeds:
    async def seed(self, installer: Installer, dist_factory: DistFactory, venv: Path) -> None:
        seeds = [
            dist_factory.wheel("pip", "99.0"),
            dist_factory.wheel("setuptools", "99.0"),
            dist_factory.wheel("wheel", "99.0"),
        ]
        await installer.sync(*seeds, venv=venv)

    async def test_seeds_stay_in_a_venv_burrowd_did_not_make(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        await self.seed(installer, dist_factory, installer.venv)
        result = await installer.sync(dist_factory.wheel("tool", "1.0"))
        assert result.removed == []
        assert installed(installer.venv) == {
            "pip": "99.0",
            "setuptools": "99.0",
            "wheel": "99.0",
            "tool": "1.0",
        }

    async def test_seeds_go_from_a_venv_burrowd_made(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        made = await installer.create_venv("made")
        venv = Path(made.path)
        assert f"burrowd = {__version__}" in (venv / "pyvenv.cfg").read_text()
        await self.seed(installer, dist_factory, venv)
        result = await installer.sync(dist_factory.wheel("tool", "1.0"), venv=venv)
        assert result.environment == str(venv)
        assert names(result.removed) == [
            ("pip", "99.0", "extraneous"),
            ("setuptools", "99.0", "extraneous"),
            ("wheel", "99.0", "extraneous"),
        ]
        assert installed(venv) == {"tool": "1.0"}


class TestConflicts:
    async def test_two_new_wheels_claiming_one_file_change_nothing(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        await installer.sync(dist_factory.wheel("base", "1.0"))
        a = dist_factory.wheel("a", "1.0", files={"shared/x.py": b"A = 1\n"})
        b = dist_factory.wheel("b", "1.0", files={"shared/x.py": b"B = 2\n"})
        before = tree(installer.venv)
        with pytest.raises(InstallConflict) as caught:
            await installer.sync(a, b)
        assert caught.value.path == str(site_packages(installer.venv) / "shared" / "x.py")
        assert {caught.value.wanted_by, caught.value.owner} == {"a==1.0", "b==1.0"}
        assert caught.value.code == ErrorCode.INSTALL_CONFLICT
        assert int(caught.value.code) == -32023
        assert "nothing was changed" in caught.value.message
        # base would have been removed by the sync: the whole plan was refused first.
        assert tree(installer.venv) == before

    async def test_a_file_of_a_kept_distribution_is_not_overwritten(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        a = dist_factory.wheel("a", "1.0", files={"shared/x.py": b"A = 1\n"})
        await installer.sync(a)
        before = tree(installer.venv)
        b = dist_factory.wheel("b", "1.0", files={"shared/x.py": b"B = 2\n"})
        with pytest.raises(InstallConflict) as caught:
            await installer.sync(a, b)
        assert (caught.value.wanted_by, caught.value.owner) == ("b==1.0", "a==1.0")
        assert tree(installer.venv) == before

    async def test_identical_files_are_shared_with_a_warning(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        a = dist_factory.wheel("a", "1.0", files={"a/__init__.py": b"", "shared/x.py": b"S\n"})
        b = dist_factory.wheel("b", "1.0", files={"b/__init__.py": b"", "shared/x.py": b"S\n"})
        await installer.sync(a)
        result = await installer.sync(a, b)
        assert names(result.installed) == [("b", "1.0", "missing")]
        target = site_packages(installer.venv) / "shared" / "x.py"
        assert result.warnings == [f"b==1.0 and a==1.0 both install {target} (identical)"]
        assert target.read_bytes() == b"S\n"

    async def test_a_stray_file_nobody_owns_is_overwritten(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        stray = site_packages(installer.venv) / "tool" / "__init__.py"
        stray.parent.mkdir()
        stray.write_bytes(b"left by an interrupted install\n")
        result = await installer.sync(
            dist_factory.wheel("tool", "1.0", files={"tool/__init__.py": b"T = 1\n"})
        )
        assert result.warnings == []
        assert stray.read_bytes() == b"T = 1\n"

    async def test_a_directory_where_a_file_goes_is_a_conflict(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        (site_packages(installer.venv) / "tool" / "__init__.py").mkdir(parents=True)
        before = tree(installer.venv)
        with pytest.raises(InstallConflict, match="an existing directory"):
            await installer.sync(dist_factory.wheel("tool", "1.0"))
        assert tree(installer.venv) == before

    async def test_a_file_where_a_directory_goes_is_a_conflict(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        # The plan also removes ``old``: refusing after that would leave a half-done sync.
        await installer.sync(dist_factory.wheel("old", "1.0"))
        (site_packages(installer.venv) / "tool").write_text("a stray file, not a package")
        before = tree(installer.venv)
        with pytest.raises(InstallConflict) as caught:
            await installer.sync(dist_factory.wheel("tool", "1.0"))
        assert caught.value.path.startswith(str(site_packages(installer.venv) / "tool"))
        assert tree(installer.venv) == before

    async def test_a_directory_of_a_replaced_version_may_become_a_file(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        await installer.sync(
            dist_factory.wheel("a", "1.0", files={"a/__init__.py": b"", "a/notes/x.txt": b"x"})
        )
        result = await installer.sync(
            dist_factory.wheel("a", "2.0", files={"a/__init__.py": b"", "a/notes": b"a file now"})
        )
        assert names(result.installed) == [("a", "2.0", "version")]
        assert (site_packages(installer.venv) / "a" / "notes").read_bytes() == b"a file now"

    async def test_files_of_a_replaced_version_are_free(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        await installer.sync(dist_factory.wheel("a", "1.0", files={"shared/x.py": b"A1\n"}))
        result = await installer.sync(
            dist_factory.wheel("a", "2.0", files={"a2.py": b""}),
            dist_factory.wheel("b", "1.0", files={"shared/x.py": b"B1\n"}),
        )
        assert names(result.installed) == [("a", "2.0", "version"), ("b", "1.0", "missing")]
        assert (site_packages(installer.venv) / "shared" / "x.py").read_bytes() == b"B1\n"
        assert installed(installer.venv) == {"a": "2.0", "b": "1.0"}


class TestDuplicates:
    async def test_two_installed_versions_are_both_replaced(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        await installer.sync(dist_factory.wheel("tool", "1.0"))
        # A second version's metadata next to the first, as a botched manual copy leaves it.
        first = site_packages(installer.venv) / "tool-1.0.dist-info"
        second = site_packages(installer.venv) / "tool-2.0.dist-info"
        second.mkdir()
        for name in ("METADATA", "WHEEL", "RECORD", "INSTALLER"):
            (second / name).write_bytes((first / name).read_bytes().replace(b"1.0", b"2.0"))
        result = await installer.sync(dist_factory.wheel("tool", "1.0"))
        assert names(result.installed) == [("tool", "1.0", "duplicate")]
        assert names(result.removed) == [("tool", "1.0", "duplicate"), ("tool", "2.0", "duplicate")]
        assert installed(installer.venv) == {"tool": "1.0"}
        assert record_mismatches(first) == []
        assert not second.exists()


class TestBadWheels:
    async def test_a_record_row_for_a_missing_file_is_a_warning(
        self, tmp_path: Path, installer: Installer
    ) -> None:
        wheel = raw_wheel(
            tmp_path / "wheels",
            "tool",
            "1.0",
            [("tool/__init__.py", b"")],
            extra_rows=["tool/ghost.py,sha256=AAAA,4"],
        )
        result = await installer.sync(wheel)
        assert names(result.installed) == [("tool", "1.0", "missing")]
        assert result.warnings == [
            f"{wheel.name}: its RECORD lists 1 file(s) the wheel lacks (tool/ghost.py); "
            "installed without them"
        ]
        info = site_packages(installer.venv) / "tool-1.0.dist-info"
        assert record_mismatches(info) == []

    async def test_a_signed_wheel_whose_record_lies_is_installed_with_a_warning(
        self, tmp_path: Path, installer: Installer, dist_factory: DistFactory
    ) -> None:
        await installer.sync(dist_factory.wheel("old", "1.0"))
        wheel = raw_wheel(
            tmp_path / "wheels",
            "tool",
            "1.0",
            [("tool/__init__.py", b""), ("tool-1.0.dist-info/RECORD.jws", b"{}")],
            extra_rows=["tool/ghost.py,sha256=AAAA,4"],
        )
        result = await installer.sync(wheel)
        assert names(result.installed) == [("tool", "1.0", "missing")]
        assert len(result.warnings) == 1
        assert "tool/ghost.py" in result.warnings[0]
        assert installed(installer.venv) == {"tool": "1.0"}

    @pytest.mark.parametrize(
        "broken",
        [Breakage.BAD_CRC, Breakage.ZIP_SLIP, Breakage.ABSOLUTE_PATH],
        ids=["bad-crc", "zip-slip", "absolute"],
    )
    async def test_a_broken_wheel_is_refused_and_nothing_lands(
        self, tmp_path: Path, installer: Installer, dist_factory: DistFactory, broken: Breakage
    ) -> None:
        good = dist_factory.wheel("good", "1.0")
        bad = dist_factory.wheel("bad", "1.0", broken=broken)
        absolute_before = os.path.lexists(ABSOLUTE_MEMBER)
        before = tree(installer.venv)
        with pytest.raises(InvalidDistribution) as caught:
            await installer.sync(good, bad)
        assert caught.value.source == bad.name
        assert tree(installer.venv) == before
        evil = Path(ZIP_SLIP_MEMBER).name
        assert [p for p in snapshot(tmp_path) if Path(p).name == evil] == []
        assert os.path.lexists(ABSOLUTE_MEMBER) == absolute_before
        assert bad.is_file()

    async def test_a_script_named_python_refuses_the_whole_plan(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        good = dist_factory.wheel("good", "1.0")
        bad = dist_factory.wheel("bad", "1.0", data={"scripts/python": b"#!/bin/sh\necho no\n"})
        before = tree(installer.venv)
        with pytest.raises(InvalidDistribution, match="interpreter"):
            await installer.sync(good, bad)
        assert tree(installer.venv) == before
        done = run(installer.venv / "bin" / "python", "-I", "-c", "print('still python')")
        assert done.stdout == "still python\n"


class TestHashesAndStrict:
    async def test_require_hashes_refuses_an_unhashed_requirement(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        with pytest.raises(InvalidRequirement, match="has no --hash"):
            await installer.sync("tool==1.0", require_hashes=True)
        with pytest.raises(InvalidRequirement, match="has no --hash"):
            await installer.sync(dist_factory.wheel("tool", "1.0"), require_hashes=True)
        assert installed(installer.venv) == {}

    async def test_one_hash_in_a_file_requires_them_all(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        a = dist_factory.wheel("a", "1.0")
        b = dist_factory.wheel("b", "1.0")
        reqs = installer.write("requirements.txt", f"{a} --hash=sha256:{sha256_of(a)}\n{b}\n")
        with pytest.raises(InvalidRequirement, match="b has no --hash"):
            await installer.sync(files=[reqs])
        assert installed(installer.venv) == {}

    async def test_hashes_are_checked(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        a = dist_factory.wheel("a", "1.0")
        good = installer.write("good.txt", f"{a} --hash=sha256:{sha256_of(a)}\n")
        result = await installer.sync(files=[good], require_hashes=True)
        assert names(result.installed) == [("a", "1.0", "missing")]
        bad = installer.write("bad.txt", f"{a} --hash=sha256:{'0' * 64}\n")
        with pytest.raises(HashMismatch):
            await installer.sync(files=[bad], reinstall=True)
        assert installed(installer.venv) == {"a": "1.0"}

    async def test_strict_reports_missing_and_wrong_dependencies(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        app = dist_factory.wheel(
            "app", "1.0", requires_dist=["lib>=1", "other; python_version<'3'"]
        )
        result = await installer.sync(app, strict=True)
        assert result.problems == ["app==1.0 requires lib>=1, but lib is not installed"]
        lib = dist_factory.wheel("lib", "0.5")
        result = await installer.sync(app, lib, strict=True)
        assert result.problems == ["app==1.0 requires lib>=1, but lib==0.5 is installed"]
        result = await installer.sync(app, dist_factory.wheel("lib", "1.0"), strict=True)
        assert result.problems == []
        result = await installer.sync(app)
        assert result.problems == []
        future = dist_factory.wheel("future", "1.0", requires_python=">=4")
        result = await installer.sync(future, strict=True)
        assert len(result.problems) == 1
        assert result.problems[0].startswith("future==1.0 requires Python >=4")


class TestInstall:
    async def test_installs_what_the_resolver_picks_and_keeps_it_unless_upgraded(
        self, indexed: Installer, fake_index_async: FakeIndex
    ) -> None:
        index = fake_index_async
        # Pages are revalidated on every request, so each one sees the versions added since.
        index.cache_control = "max-age=0"
        index.add(DistSpec("lib", "1.0"))
        index.add(DistSpec("app", "1.0", requires_dist=["lib>=1"]))
        result = await indexed.install("app")
        assert result.resolved == 2
        assert names(result.installed) == [("app", "1.0", "missing"), ("lib", "1.0", "missing")]
        site = site_packages(indexed.venv)
        assert (site / "app-1.0.dist-info" / "REQUESTED").exists()
        assert not (site / "lib-1.0.dist-info" / "REQUESTED").exists()
        assert not (site / "lib-1.0.dist-info" / "direct_url.json").exists()

        index.add(DistSpec("lib", "2.0"))
        result = await indexed.install("app")
        assert (result.installed, result.removed, result.unchanged) == ([], [], 2)
        assert installed(indexed.venv) == {"app": "1.0", "lib": "1.0"}

        result = await indexed.install("app", upgrade=True)
        assert names(result.installed) == [("lib", "2.0", "version")]
        assert result.installed[0].previous == "1.0"
        assert names(result.removed) == [("lib", "1.0", "version")]
        assert installed(indexed.venv) == {"app": "1.0", "lib": "2.0"}
        assert record_mismatches(site / "lib-2.0.dist-info") == []

    async def test_a_local_wheel_with_dependencies_from_the_index(
        self, indexed: Installer, fake_index_async: FakeIndex, dist_factory: DistFactory
    ) -> None:
        fake_index_async.add(DistSpec("lib", "1.0"))
        wheel = dist_factory.wheel("tool", "1.0", requires_dist=["lib"])
        result = await indexed.install(wheel)
        assert names(result.installed) == [("lib", "1.0", "missing"), ("tool", "1.0", "missing")]
        site = site_packages(indexed.venv)
        url = msgspec.json.decode((site / "tool-1.0.dist-info" / "direct_url.json").read_bytes())
        assert url["url"] == wheel.as_uri()
        assert url["archive_info"]["hashes"] == {"sha256": sha256_of(wheel)}
        again = await indexed.install(wheel)
        assert (again.installed, again.removed, again.unchanged) == ([], [], 2)
        assert wheel.is_file()

    async def test_install_removes_nothing(
        self, indexed: Installer, fake_index_async: FakeIndex, dist_factory: DistFactory
    ) -> None:
        fake_index_async.add(DistSpec("lib", "1.0"))
        await indexed.sync(dist_factory.wheel("other", "1.0"))
        result = await indexed.install("lib")
        assert result.removed == []
        assert installed(indexed.venv) == {"other": "1.0", "lib": "1.0"}

    async def test_install_with_require_hashes_refuses_unhashed_pins(
        self, indexed: Installer, fake_index_async: FakeIndex
    ) -> None:
        fake_index_async.add(DistSpec("lib", "1.0"))
        with pytest.raises(InvalidRequirement, match="has no --hash"):
            await indexed.install("lib==1.0", require_hashes=True)
        assert installed(indexed.venv) == {}

    async def test_sync_takes_registry_pins_from_the_index(
        self, indexed: Installer, fake_index_async: FakeIndex
    ) -> None:
        fake_index_async.add(DistSpec("lib", "1.0"))
        fake_index_async.add(DistSpec("lib", "2.0"))
        result = await indexed.sync("lib==1.0")
        assert names(result.installed) == [("lib", "1.0", "missing")]
        assert result.installed[0].url == ""
        result = await indexed.sync("lib==2.0")
        assert names(result.installed) == [("lib", "2.0", "version")]
        assert installed(indexed.venv) == {"lib": "2.0"}


class TestUninstall:
    async def test_removes_the_named_and_warns_about_the_rest(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        before = tree(installer.venv)
        spec = DistSpec("tool", "1.0", entry_points={"console_scripts": {"tool": "tool:x"}})
        await installer.sync(dist_factory.wheel(spec), dist_factory.wheel("keep", "1.0"))
        result = await installer.uninstall("Tool", "missing", dry_run=True)
        assert names(result.removed) == [("tool", "1.0", "requested")]
        assert installed(installer.venv) == {"tool": "1.0", "keep": "1.0"}
        result = await installer.uninstall("Tool", "missing")
        assert names(result.removed) == [("tool", "1.0", "requested")]
        assert result.warnings == ["Skipping missing as it is not installed"]
        assert installed(installer.venv) == {"keep": "1.0"}
        await installer.uninstall("keep")
        assert tree(installer.venv) == before

    async def test_recorded_files_outside_the_environment_are_left_with_a_warning(
        self, tmp_path: Path, installer: Installer, dist_factory: DistFactory
    ) -> None:
        await installer.sync(dist_factory.wheel("tool", "1.0"))
        outside = tmp_path / "outside.txt"
        outside.write_text("precious")
        info = site_packages(installer.venv) / "tool-1.0.dist-info"
        rel = os.path.relpath(outside, info.parent)
        record = info / "RECORD"
        record.write_bytes(record.read_bytes() + f"{rel},,\r\n".encode())
        result = await installer.uninstall("tool")
        assert result.warnings == [
            f"left 1 file(s) of tool==1.0 outside the environment alone: {outside}"
        ]
        assert outside.read_text() == "precious"
        assert installed(installer.venv) == {}

    async def test_nothing_to_uninstall(self, installer: Installer) -> None:
        result = await installer.uninstall("missing")
        assert result.removed == []
        assert result.warnings == [
            "Skipping missing as it is not installed",
            "No packages to uninstall",
        ]
        with pytest.raises(InvalidRequirement):
            await installer.uninstall()
        with pytest.raises(InvalidRequirement, match="not a package name"):
            await installer.uninstall("../etc")

    @pytest.mark.parametrize("method", ["uninstall", "sync"])
    async def test_a_change_deletes_what_an_interrupted_one_left_aside(
        self, installer: Installer, dist_factory: DistFactory, method: str
    ) -> None:
        left = installer.venv / TRASH_DIR / "0123abcd" / "pkg" / "__init__.py"
        left.parent.mkdir(parents=True)
        left.write_text("")
        if method == "uninstall":
            await installer.uninstall("missing")
        else:
            await installer.sync(dist_factory.wheel("tool", "1.0"))
        assert not (installer.venv / TRASH_DIR).exists()

    async def test_a_distribution_without_record_is_refused(self, installer: Installer) -> None:
        info = site_packages(installer.venv) / "norecord-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: norecord\nVersion: 1.0\n")
        before = tree(installer.venv)
        with pytest.raises(EnvironmentRefused, match="has no RECORD") as caught:
            await installer.uninstall("norecord")
        assert caught.value.code == ErrorCode.ENVIRONMENT_ERROR
        assert int(caught.value.code) == -32022
        assert tree(installer.venv) == before


class TestList:
    async def test_lists_what_the_environment_holds(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        wheel = dist_factory.wheel("Tool", "1.0")
        await installer.sync(wheel)
        legacy = site_packages(installer.venv) / "legacy-0.1.egg-info"
        legacy.mkdir()
        (legacy / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: legacy\nVersion: 0.1\n")
        result = await installer.list()
        assert result.environment == str(installer.venv)
        assert result.python == str(installer.venv / "bin" / "python")
        site = site_packages(installer.venv)
        assert result.packages == [
            m.InstalledPackage(name="legacy", version="0.1", path=str(legacy)),
            m.InstalledPackage(
                name="tool",
                version="1.0",
                path=str(site / "tool-1.0.dist-info"),
                installer="burrowd",
                requested=True,
                url=wheel.as_uri(),
            ),
        ]

    async def test_listing_a_base_interpreter_needs_no_consent(self, installer: Installer) -> None:
        base = Path(sys.base_prefix) / "bin" / f"python{PY_MAJOR_MINOR}"
        if sys.base_prefix == sys.prefix or not base.exists():
            pytest.skip("no base interpreter outside a virtual environment")
        params = m.ListParams(env=installer.client_env(), python=m.PythonOptions(python=str(base)))
        result = await service.list_packages(installer.services, params)
        assert result.environment == sys.base_prefix
        # Changing it does need consent (a dry run, should the refusal ever fail).
        sync = m.SyncParams(
            env=installer.client_env(),
            requirements=["anything==1.0"],
            python=m.PythonOptions(python=str(base)),
            index=installer.index_options(),
            options=m.InstallOptions(dry_run=True),
        )
        with pytest.raises(EnvironmentRefused, match="not in a virtual environment"):
            await service.sync(installer.services, sync, installer.progress)


class TestVenv:
    async def test_creates_a_marked_venv(self, installer: Installer) -> None:
        result = await installer.create_venv("new-env", prompt="hello")
        venv = installer.cwd / "new-env"
        assert result.path == str(venv)
        assert result.python == str(venv / "bin" / "python")
        assert result.version.startswith(PY_MAJOR_MINOR)
        assert result.seeded == []
        cfg = (venv / "pyvenv.cfg").read_text()
        assert f"burrowd = {__version__}\n" in cfg
        assert "prompt = 'hello'" in cfg
        assert (venv / ".gitignore").read_text() == "*\n"
        done = run(venv / "bin" / "python", "-I", "-c", "import sys; print(sys.prefix)")
        assert done.stdout == f"{venv}\n"

    async def test_an_existing_venv_needs_clear(self, installer: Installer) -> None:
        await installer.create_venv("env")
        marker = installer.cwd / "env" / "lib" / "marker"
        marker.write_text("")
        with pytest.raises(EnvironmentRefused, match="--clear"):
            await installer.create_venv("env")
        assert marker.exists()
        await installer.create_venv("env", clear=True)
        assert not marker.exists()
        assert (installer.cwd / "env" / "pyvenv.cfg").is_file()

    async def test_a_directory_that_is_no_venv_is_never_cleared(self, installer: Installer) -> None:
        precious = installer.cwd / "src" / "main.py"
        precious.parent.mkdir()
        precious.write_text("print('mine')\n")
        with pytest.raises(EnvironmentRefused, match="not a virtual environment"):
            await installer.create_venv("src", clear=True)
        assert precious.read_text() == "print('mine')\n"

    async def test_an_empty_directory_is_used(self, installer: Installer) -> None:
        (installer.cwd / "empty").mkdir()
        result = await installer.create_venv("empty")
        assert Path(result.python).exists()


class TestCancellation:
    """A cancelled request finishes changing the environment before it gives the lock up."""

    async def test_cancelled_while_installing_leaves_every_wheel_whole(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        wheels = [
            dist_factory.wheel(
                f"pkg{i}",
                "1.0",
                files={f"pkg{i}/m{j}.py": f"N = {j}\n".encode() for j in range(40)},
            )
            for i in range(6)
        ]
        task: asyncio.Task[m.SyncResult] | None = None

        def cancel_when_installing(phase: str, *args: object, **kwargs: object) -> None:
            if phase == "installing" and task is not None and not task.cancelling():
                task.cancel()

        params = m.SyncParams(
            env=installer.client_env(),
            requirements=[str(w) for w in wheels],
            index=installer.index_options(),
        )
        task = asyncio.ensure_future(
            service.sync(installer.services, params, cancel_when_installing)
        )
        with pytest.raises(asyncio.CancelledError):
            await task
        await installer.services.janitor.drain()
        site = site_packages(installer.venv)
        for i in range(6):
            dist_info = site / f"pkg{i}-1.0.dist-info"
            assert dist_info.is_dir(), f"pkg{i} was left half installed"
            assert record_mismatches(dist_info) == []
            assert len(list((site / f"pkg{i}").glob("m*.py"))) == 40
        # The environment lock was held to the end: the next sync finds nothing to do.
        again = await installer.sync(*(str(w) for w in wheels))
        assert again.installed == []
        assert again.unchanged == 6


class TestSettle:
    """``settle`` waits for every awaitable before it raises the first failure."""

    async def test_siblings_finish_before_the_error(self) -> None:
        finished: list[str] = []

        async def slow() -> str:
            await asyncio.sleep(0.05)
            finished.append("slow")
            return "slow"

        async def broken() -> str:
            raise ValueError("broken")

        with pytest.raises(ValueError, match="broken"):
            await settle(broken(), slow())
        assert finished == ["slow"]

    async def test_results_in_order(self) -> None:
        async def value(v: int) -> int:
            await asyncio.sleep(0.001 * (3 - v))
            return v

        assert await settle(value(1), value(2), value(3)) == [1, 2, 3]


# -- what the review of the installer found ----------------------------------------------


async def with_platlib_in_lib64(installer: Installer) -> None:
    """Make the services see the venv's interpreter report ``<venv>/lib64/...`` as platlib.

    ``python -m venv`` makes ``lib64 -> lib`` on 64-bit Linux, and Fedora's interpreters
    report the ``lib64`` path as platlib: this is what the daemon learns from one.
    """
    venv = installer.venv
    lib64 = venv / "lib64"
    if not lib64.is_symlink():
        lib64.symlink_to("lib", target_is_directory=True)
    python = venv / "bin" / "python"
    real = await Interpreters(Cache(installer.root / "probe", lock_timeout=10.0)).query(python)
    platlib = lib64 / f"python{PY_MAJOR_MINOR}" / "site-packages"
    assert platlib.is_dir()
    info = msgspec.structs.replace(real, paths={**real.paths, "platlib": str(platlib)})
    st = os.stat(python)
    cache = installer.services.cache
    entry = {"mtime_ns": st.st_mtime_ns, "size": st.st_size, "info": msgspec.to_builtins(info)}
    target = cache.path(Bucket.INTERPRETER, f"{digest(os.path.abspath(python))}.msgpack")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(msgspec.msgpack.encode(entry))


class TestLib64Platlib:
    async def test_a_second_sync_keeps_everything(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        await with_platlib_in_lib64(installer)
        wheels = [dist_factory.wheel("a", "1.0"), dist_factory.wheel("b", "1.0")]
        first = await installer.sync(*wheels)
        assert names(first.installed) == [("a", "1.0", "missing"), ("b", "1.0", "missing")]
        before = tree(installer.venv)
        again = await installer.sync(*wheels)
        assert (again.installed, again.removed, again.unchanged) == ([], [], 2)
        assert tree(installer.venv) == before
        listing = await installer.list()
        assert [p.name for p in listing.packages] == ["a", "b"]


class TestCompileManyFiles:
    """More than 200 sources go to a process pool in the target interpreter."""

    @pytest.mark.parametrize("start_method", [None, "spawn"], ids=["default", "spawn"])
    async def test_every_module_gets_its_bytecode(
        self, installer: Installer, dist_factory: DistFactory, start_method: str | None
    ) -> None:
        if start_method is not None:
            # What macOS, and Linux from Python 3.14, start pool workers with by default.
            (site_packages(installer.venv) / "sitecustomize.py").write_text(
                f"import multiprocessing\nmultiprocessing.set_start_method({start_method!r})\n"
            )
        modules = {f"many/m{i:03}.py": f"N = {i}\n".encode() for i in range(250)}
        wheel = dist_factory.wheel("many", "1.0", files={"many/__init__.py": b"", **modules})
        result = await installer.sync(wheel, compile_bytecode=True)
        assert names(result.installed) == [("many", "1.0", "missing")]
        pycache = site_packages(installer.venv) / "many" / "__pycache__"
        tag = f"cpython-{PY_MAJOR_MINOR.replace('.', '')}"
        expected = {f"m{i:03}.{tag}.pyc" for i in range(250)} | {f"__init__.{tag}.pyc"}
        assert set(os.listdir(pycache)) == expected


class TestInstalledSource:
    """A registry requirement is met by the installed version, whatever its source."""

    async def test_sync_keeps_a_local_wheel_install_of_the_pinned_version(
        self, indexed: Installer, fake_index_async: FakeIndex, dist_factory: DistFactory
    ) -> None:
        fake_index_async.add(DistSpec("foo", "1.0"))
        wheel = dist_factory.wheel("foo", "1.0", files={"foo/__init__.py": b"LOCAL = 1\n"})
        await indexed.sync(wheel)
        before = tree(indexed.venv)
        fake_index_async.reset_hits()
        result = await indexed.sync("foo==1.0")
        assert (result.installed, result.removed, result.unchanged) == ([], [], 1)
        assert tree(indexed.venv) == before
        assert file_hits(fake_index_async) == {}
        site = site_packages(indexed.venv)
        assert (site / "foo" / "__init__.py").read_bytes() == b"LOCAL = 1\n"
        assert (site / "foo-1.0.dist-info" / "direct_url.json").is_file()

    async def test_sync_keeps_an_editable_install_of_the_pinned_version(
        self, indexed: Installer, fake_index_async: FakeIndex
    ) -> None:
        fake_index_async.add(DistSpec("foo", "1.0"))
        info = site_packages(indexed.venv) / "foo-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: foo\nVersion: 1.0\n")
        (info / "direct_url.json").write_text(
            '{"url": "file:///src/foo", "dir_info": {"editable": true}}'
        )
        (info / "RECORD").write_text(
            "foo-1.0.dist-info/METADATA,,\r\nfoo-1.0.dist-info/direct_url.json,,\r\n"
            "foo-1.0.dist-info/RECORD,,\r\n"
        )
        before = tree(indexed.venv)
        result = await indexed.sync("foo==1.0")
        assert (result.installed, result.removed, result.unchanged) == ([], [], 1)
        assert tree(indexed.venv) == before

    async def test_a_changed_pin_still_replaces_a_local_wheel_install(
        self, indexed: Installer, fake_index_async: FakeIndex, dist_factory: DistFactory
    ) -> None:
        fake_index_async.add(DistSpec("foo", "2.0"))
        await indexed.sync(dist_factory.wheel("foo", "1.0"))
        result = await indexed.sync("foo==2.0")
        assert names(result.installed) == [("foo", "2.0", "version")]
        assert installed(indexed.venv) == {"foo": "2.0"}

    async def test_install_prefers_a_local_wheel_install_of_a_fitting_version(
        self, indexed: Installer, fake_index_async: FakeIndex, dist_factory: DistFactory
    ) -> None:
        index = fake_index_async
        index.add(DistSpec("foo", "1.0"))
        index.add(DistSpec("foo", "2.0"))
        index.add(DistSpec("bar", "1.0", requires_dist=["foo>=1"]))
        await indexed.sync(dist_factory.wheel("foo", "1.0", files={"foo/__init__.py": b"L\n"}))
        before = tree(indexed.venv)
        result = await indexed.install("foo")
        assert (result.installed, result.removed, result.unchanged) == ([], [], 1)
        assert tree(indexed.venv) == before
        result = await indexed.install("bar")
        assert names(result.installed) == [("bar", "1.0", "missing")]
        assert result.removed == []
        assert installed(indexed.venv) == {"foo": "1.0", "bar": "1.0"}
        assert (site_packages(indexed.venv) / "foo" / "__init__.py").read_bytes() == b"L\n"
        result = await indexed.install("foo", upgrade=True)
        assert names(result.installed) == [("foo", "2.0", "version")]


class TestKeptSdistOnly:
    async def test_a_kept_dependency_with_only_an_sdist_needs_no_build(
        self, indexed: Installer, fake_index_async: FakeIndex, dist_factory: DistFactory
    ) -> None:
        index = fake_index_async
        index.add(DistSpec("lib", "1.0"), wheel=False, sdist=True)
        index.add(DistSpec("app", "1.0", requires_dist=["lib"]))
        # Without lib installed, install would have to build it: with --no-build there is
        # no version of lib to use, and nothing changes.
        before = tree(indexed.venv)
        with pytest.raises(ResolutionImpossible, match="--no-build forbids building one"):
            await indexed.install("app", build=m.BuildOptions(no_build=True))
        assert tree(indexed.venv) == before
        await indexed.install(dist_factory.wheel("lib", "1.0"))
        result = await indexed.install("app", build=m.BuildOptions(no_build=True))
        assert names(result.installed) == [("app", "1.0", "missing")]
        assert result.unchanged == 1
        assert installed(indexed.venv) == {"app": "1.0", "lib": "1.0"}


class TestVenvSafety:
    async def test_burrowds_own_prefix_is_refused_even_with_clear(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, installer: Installer
    ) -> None:
        # Stands in for the environment burrowd runs in (the real one is never offered).
        own = make_venv(tmp_path / "own")
        (own / "lib" / "marker").write_text("")
        before = snapshot(own)
        monkeypatch.setattr(sys, "prefix", str(own))
        with pytest.raises(EnvironmentRefused, match="burrowd itself runs in this environment"):
            await installer.create_venv(str(own), clear=True)
        # Through another spelling of the same directory too.
        link = tmp_path / "link-to-own"
        link.symlink_to(own, target_is_directory=True)
        with pytest.raises(EnvironmentRefused, match="burrowd itself runs in this environment"):
            await installer.create_venv(str(link), clear=True)
        monkeypatch.undo()
        assert snapshot(own) == before

    async def test_clear_replaces_a_venv_it_did_not_make(self, installer: Installer) -> None:
        marker = installer.venv / "lib" / "marker"
        marker.write_text("")
        result = await installer.create_venv(str(installer.venv), clear=True)
        assert result.path == str(installer.venv)
        assert not marker.exists()
        assert f"burrowd = {__version__}" in (installer.venv / "pyvenv.cfg").read_text()
        done = run(installer.venv / "bin" / "python", "-I", "-c", "import sys; print(sys.prefix)")
        assert done.stdout == f"{installer.venv}\n"

    async def test_clear_waits_for_a_change_of_the_environment(self, installer: Installer) -> None:
        env = await environment(installer.services.cache, installer.venv)
        marker = installer.venv / "lib" / "marker"
        marker.write_text("")
        async with installer.services.environments.hold(env, lambda message: None):
            task = asyncio.ensure_future(installer.create_venv(str(installer.venv), clear=True))
            for _ in range(500):
                if any(p.startswith("waiting for the lock") for p in installer.progress.phases):
                    break
                await asyncio.sleep(0.01)
            assert f"waiting for the lock on {installer.venv}" in installer.progress.phases
            assert not task.done()
            assert marker.exists()
        await task
        assert not marker.exists()
        assert (installer.venv / "pyvenv.cfg").is_file()


class TestUnreadableRecords:
    async def test_a_kept_distribution_whose_record_is_not_csv(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        keep = dist_factory.wheel("keep", "1.0")
        await installer.sync(keep)
        record = site_packages(installer.venv) / "keep-1.0.dist-info" / "RECORD"
        # A field longer than the csv module's limit: csv.Error, in every Python version.
        record.write_bytes(record.read_bytes() + b"keep/" + b"x" * 200_000 + b".py,,\r\n")
        stray = site_packages(installer.venv) / "tool" / "__init__.py"
        stray.parent.mkdir()
        stray.write_bytes(b"left by an interrupted install\n")
        result = await installer.sync(
            keep, dist_factory.wheel("tool", "1.0", files={"tool/__init__.py": b"T = 1\n"})
        )
        assert names(result.installed) == [("tool", "1.0", "missing")]
        assert result.unchanged == 1
        assert stray.read_bytes() == b"T = 1\n"
        assert installed(installer.venv) == {"keep": "1.0", "tool": "1.0"}


class TestOutsideTheEnvironment:
    async def test_an_unowned_file_through_a_link_out_is_not_replaced(
        self, tmp_path: Path, installer: Installer, dist_factory: DistFactory
    ) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        victim = outside / "__init__.py"
        victim.write_bytes(b"precious\n")
        site = site_packages(installer.venv)
        (site / "tool").symlink_to(outside, target_is_directory=True)
        await installer.sync(dist_factory.wheel("old", "1.0"))
        before = tree(installer.venv)
        outside_before = snapshot(outside)
        wheel = dist_factory.wheel("tool", "1.0", files={"tool/__init__.py": b"T = 1\n"})
        with pytest.raises(InstallConflict, match="a file outside the environment") as caught:
            await installer.sync(wheel)
        assert caught.value.path == str(site / "tool" / "__init__.py")
        assert caught.value.wanted_by == "tool==1.0"
        assert victim.read_bytes() == b"precious\n"
        assert snapshot(outside) == outside_before
        assert tree(installer.venv) == before

    async def test_no_new_file_is_written_through_a_link_out(
        self, tmp_path: Path, installer: Installer, dist_factory: DistFactory
    ) -> None:
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        site = site_packages(installer.venv)
        (site / "tool").symlink_to(outside, target_is_directory=True)
        before = tree(installer.venv)
        wheel = dist_factory.wheel("tool", "1.0", files={"tool/fresh.py": b"F = 1\n"})
        with pytest.raises(InstallConflict, match="outside the environment") as caught:
            await installer.sync(wheel)
        assert caught.value.path == str(site / "tool" / "fresh.py")
        assert list(outside.iterdir()) == []
        assert tree(installer.venv) == before

    @pytest.mark.parametrize(
        ("member", "refusal"),
        [
            pytest.param("data/bin/python3", "interpreter", id="bin-python3"),
            pytest.param("data/bin/python", "interpreter", id="bin-python"),
            pytest.param(f"data/bin/python{PY_MAJOR_MINOR}", "interpreter", id="bin-pythonX.Y"),
            pytest.param("data/pyvenv.cfg", "pyvenv.cfg", id="pyvenv-cfg"),
            pytest.param("data/.lock", ".lock", id="lock"),
        ],
    )
    async def test_data_files_cannot_replace_the_environments_own(
        self, installer: Installer, dist_factory: DistFactory, member: str, refusal: str
    ) -> None:
        good = dist_factory.wheel("good", "1.0")
        bad = dist_factory.wheel("bad", "1.0", data={member: b"#!/bin/sh\necho no\n"})
        (installer.venv / ".lock").write_text("")
        before = tree(installer.venv)
        lock_before = (installer.venv / ".lock").read_bytes()
        with pytest.raises(InvalidDistribution, match=re.escape(refusal)) as caught:
            await installer.sync(good, bad)
        assert caught.value.source == bad.name
        assert tree(installer.venv) == before
        assert (installer.venv / ".lock").read_bytes() == lock_before
        done = run(installer.venv / "bin" / "python", "-I", "-c", "print('still python')")
        assert done.stdout == "still python\n"

    async def test_other_data_files_under_bin_are_fine(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        wheel = dist_factory.wheel("tool", "1.0", data={"data/bin/tool-helper": b"#!/bin/sh\n"})
        result = await installer.sync(wheel)
        assert names(result.installed) == [("tool", "1.0", "missing")]
        assert (installer.venv / "bin" / "tool-helper").read_bytes() == b"#!/bin/sh\n"


class TestUrlFragmentHashes:
    """``--require-hashes`` counts a direct URL's ``#sha256=`` as the requirement's hash."""

    async def test_sync_takes_a_url_with_its_sha256(
        self, indexed: Installer, fake_index_async: FakeIndex
    ) -> None:
        (entry,) = fake_index_async.add(DistSpec("foo", "1.0"))
        url = fake_index_async.url_for(entry)
        result = await indexed.sync(f"foo @ {url}#sha256={entry.sha256}", require_hashes=True)
        assert names(result.installed) == [("foo", "1.0", "missing")]
        info = site_packages(indexed.venv) / "foo-1.0.dist-info"
        recorded = msgspec.json.decode((info / "direct_url.json").read_bytes())
        assert recorded["archive_info"]["hashes"] == {"sha256": entry.sha256}

    async def test_install_takes_a_url_with_its_sha256(
        self, indexed: Installer, fake_index_async: FakeIndex
    ) -> None:
        (entry,) = fake_index_async.add(DistSpec("foo", "1.0"))
        url = fake_index_async.url_for(entry)
        result = await indexed.install(f"foo @ {url}#sha256={entry.sha256}", require_hashes=True)
        assert names(result.installed) == [("foo", "1.0", "missing")]

    async def test_a_wrong_sha256_in_the_url_is_a_mismatch(
        self, indexed: Installer, fake_index_async: FakeIndex
    ) -> None:
        (entry,) = fake_index_async.add(DistSpec("foo", "1.0"))
        url = fake_index_async.url_for(entry)
        before = tree(indexed.venv)
        with pytest.raises(HashMismatch):
            await indexed.sync(f"foo @ {url}#sha256={'0' * 64}", require_hashes=True)
        assert tree(indexed.venv) == before

    async def test_a_url_without_a_hash_is_still_refused(
        self, indexed: Installer, fake_index_async: FakeIndex
    ) -> None:
        (entry,) = fake_index_async.add(DistSpec("foo", "1.0"))
        url = fake_index_async.url_for(entry)
        with pytest.raises(InvalidRequirement, match="has no --hash"):
            await indexed.sync(f"foo @ {url}", require_hashes=True)
        assert installed(indexed.venv) == {}


SPECIFIC_TAG = f"py{PY_MAJOR_MINOR.replace('.', '')}-none-any"


class TestHashPinsAndTheCache:
    """sync takes a cached wheel of an exact pin without the page, unless --hash says no."""

    async def test_a_cached_wheel_the_pins_reject_is_not_used(
        self, indexed: Installer, fake_index_async: FakeIndex
    ) -> None:
        index = fake_index_async
        index.cache_control = "max-age=0"
        index.add(DistSpec("foo", "1.0", files={"foo/__init__.py": b"GENERIC = 1\n"}))
        await indexed.sync("foo==1.0")  # the py3-none-any wheel is cached now
        await indexed.sync(allow_empty=True)
        (specific,) = index.add(
            DistSpec("foo", "1.0", tag=SPECIFIC_TAG, files={"foo/__init__.py": b"SPECIFIC = 1\n"})
        )
        reqs = indexed.write("r.txt", f"foo==1.0 --hash=sha256:{specific.sha256}\n")
        result = await indexed.sync(files=[reqs])
        assert names(result.installed) == [("foo", "1.0", "missing")]
        init = site_packages(indexed.venv) / "foo" / "__init__.py"
        assert init.read_bytes() == b"SPECIFIC = 1\n"
        assert index.hits[specific.url_path] == 1

    async def test_a_cached_wheel_the_pins_allow_is_used(
        self, indexed: Installer, fake_index_async: FakeIndex
    ) -> None:
        index = fake_index_async
        (generic,) = index.add(DistSpec("foo", "1.0", files={"foo/__init__.py": b"G = 1\n"}))
        await indexed.sync("foo==1.0")
        await indexed.sync(allow_empty=True)
        index.reset_hits()
        reqs = indexed.write("r.txt", f"foo==1.0 --hash=sha256:{generic.sha256}\n")
        result = await indexed.sync(files=[reqs])
        assert names(result.installed) == [("foo", "1.0", "missing")]
        assert dict(index.hits) == {}

    async def test_the_listed_file_the_pins_name_is_taken(
        self, indexed: Installer, fake_index_async: FakeIndex
    ) -> None:
        index = fake_index_async
        (generic,) = index.add(DistSpec("foo", "1.0", files={"foo/__init__.py": b"G = 1\n"}))
        index.add(DistSpec("foo", "1.0", tag=SPECIFIC_TAG, files={"foo/__init__.py": b"S = 1\n"}))
        reqs = indexed.write("r.txt", f"foo==1.0 --hash=sha256:{generic.sha256}\n")
        result = await indexed.sync(files=[reqs])
        assert names(result.installed) == [("foo", "1.0", "missing")]
        assert (site_packages(indexed.venv) / "foo" / "__init__.py").read_bytes() == b"G = 1\n"

    async def test_no_listed_file_matching_the_pins_is_a_mismatch(
        self, indexed: Installer, fake_index_async: FakeIndex
    ) -> None:
        index = fake_index_async
        index.add(DistSpec("foo", "1.0"))
        await indexed.sync("foo==1.0")
        before = tree(indexed.venv)
        reqs = indexed.write("r.txt", f"foo==1.0 --hash=sha256:{'0' * 64}\n")
        with pytest.raises(HashMismatch):
            await indexed.sync(files=[reqs], reinstall=True)
        assert tree(indexed.venv) == before


class TestProgress:
    async def test_install_reports_every_download(
        self, indexed: Installer, fake_index_async: FakeIndex
    ) -> None:
        fake_index_async.add(DistSpec("lib", "1.0"))
        fake_index_async.add(DistSpec("app", "1.0", requires_dist=["lib"]))
        await indexed.install("app")
        downloads = [(c, t) for phase, c, t in indexed.progress.calls if phase == "downloading"]
        assert downloads[0] == (0, 2)
        assert downloads[-1] == (2, 2)
        assert sorted({c for c, _ in downloads}) == [0, 1, 2]

    async def test_sync_reports_every_download(
        self, indexed: Installer, fake_index_async: FakeIndex, dist_factory: DistFactory
    ) -> None:
        fake_index_async.add(DistSpec("lib", "1.0"))
        fake_index_async.add(DistSpec("app", "1.0"))
        await indexed.sync("lib==1.0", "app==1.0", dist_factory.wheel("tool", "1.0"))
        downloads = [(c, t) for phase, c, t in indexed.progress.calls if phase == "downloading"]
        assert downloads[-1] == (2, 2)


class TestHalfwayFailure:
    """A change that fails after every check passed says the environment is partly changed."""

    async def stop_halfway(
        self, installer: Installer, dist_factory: DistFactory
    ) -> tuple[EnvironmentRefused, Path, Path]:
        """Sync ``tool`` over ``old`` while a directory appears where a file of tool goes.

        Return the refusal, the obstacle and the wheel.
        """
        await installer.sync(dist_factory.wheel("old", "1.0"))
        wheel = dist_factory.wheel("tool", "1.0", files={"tool/__init__.py": b"T = 1\n"})
        obstacle = site_packages(installer.venv) / "tool" / "__init__.py"

        def block_after_the_check(phase: str, *args: object, **kwargs: object) -> None:
            # After every check passed, something else makes a directory where a file goes.
            if phase == "installing" and not obstacle.exists():
                obstacle.mkdir(parents=True)

        params = m.SyncParams(
            env=installer.client_env(),
            requirements=[str(wheel)],
            index=installer.index_options(),
        )
        with pytest.raises(EnvironmentRefused) as caught:
            await installer.settled(service.sync(installer.services, params, block_after_the_check))
        return caught.value, obstacle, wheel

    async def test_it_says_so_and_the_same_command_finishes_it(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        refused, obstacle, wheel = await self.stop_halfway(installer, dist_factory)
        assert refused.reason.startswith("changing the environment stopped halfway: ")
        assert "partly changed" in refused.hint
        assert "run the same command again" in refused.hint
        assert "nothing was changed" not in refused.message
        assert refused.environment == str(installer.venv)
        assert refused.code == ErrorCode.ENVIRONMENT_ERROR
        assert installed(installer.venv) == {}  # old went; tool did not come
        obstacle.rmdir()
        result = await installer.sync(wheel)
        # The stopped change's journal finishes it first (and says so); nothing is left.
        assert result.installed == []
        assert any("left half done: installed tool 1.0" in w for w in result.warnings), (
            result.warnings
        )
        assert obstacle.read_bytes() == b"T = 1\n"
        assert installed(installer.venv) == {"tool": "1.0"}

    async def test_it_names_the_path_in_the_environment_that_failed(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        refused, obstacle, _ = await self.stop_halfway(installer, dist_factory)
        # The cause to fix is the directory in the way, not the cache's file linked from.
        assert str(obstacle) in refused.reason
