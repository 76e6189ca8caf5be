"""Wheels and environments that try to lead the installer astray (found in review).

A wheel's files are data: nothing it ships may make burrowd delete or write outside the
environment, jam the environment for later commands, or change the shared cache.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import msgspec
import pytest

from burrowd.daemon.errors import DaemonError, InstallConflict, InvalidDistribution
from burrowd.daemon.installer import journal
from burrowd.daemon.installer.installed import scan
from burrowd.daemon.installer.journal import JOURNAL_FILE, Journal, JournalRemoval
from tests.daemon.installer.harness import Installer, environment, raw_wheel, run, site_packages


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "home" / "alice" / ".ssh"
    victim.mkdir(parents=True)
    (victim / "id_ed25519").write_text("key")
    return victim


class TestJournals:
    async def test_a_journal_naming_a_directory_elsewhere_is_not_replayed(
        self, installer: Installer, tmp_path: Path
    ) -> None:
        # A journal is a file in the venv: a copy of a venv, or a hand, may have put it there.
        victim = _victim(tmp_path)
        env = await environment(installer.services.cache, installer.venv)
        removal = JournalRemoval(
            name="x",
            version="1",
            meta=str(victim),
            site=str(site_packages(installer.venv)),
            files=[],
        )
        planted = Journal(info=env.info, pid=1, started=time.time(), removals=[removal])
        journal.write(installer.venv / JOURNAL_FILE, planted)
        await installer.sync(raw_wheel(tmp_path / "w", "tool", "1.0", [("tool/__init__.py", b"")]))
        assert (victim / "id_ed25519").exists()
        assert not (installer.venv / JOURNAL_FILE).exists()

    async def test_a_wheel_cannot_plant_a_journal(
        self, installer: Installer, tmp_path: Path
    ) -> None:
        victim = _victim(tmp_path)
        env = await environment(installer.services.cache, installer.venv)
        removal = JournalRemoval(name="x", version="1", meta=str(victim), site="/x", files=[])
        planted = msgspec.json.encode(
            Journal(info=env.info, pid=1, started=time.time(), removals=[removal])
        )
        evil = raw_wheel(
            tmp_path / "w",
            "evil",
            "1.0",
            [("evil/__init__.py", b""), ("evil-1.0.data/data/.burrow-journal", planted)],
        )
        with pytest.raises(DaemonError, match="would replace the environment's own"):
            await installer.sync(evil)
        assert not (installer.venv / JOURNAL_FILE).exists()
        await installer.sync(raw_wheel(tmp_path / "w", "ok", "1.0", [("ok/__init__.py", b"")]))
        assert (victim / "id_ed25519").exists()

    async def test_a_copied_venv_replays_only_its_own_change(
        self, installer: Installer, tmp_path: Path
    ) -> None:
        # A crash leaves a journal, then the venv is copied (cp -a, rsync, a container layer):
        # the replay in the copy must not remove the original's files.
        await installer.sync(raw_wheel(tmp_path / "w", "tool", "1.0", [("tool/__init__.py", b"")]))
        env = await environment(installer.services.cache, installer.venv)
        (dist,) = scan(env.site_dirs).get("tool")
        pending = Journal(
            info=env.info,
            pid=1,
            started=time.time(),
            removals=journal.journal_removals([dist], [dist.files() or []]),
        )
        journal.write(installer.venv / JOURNAL_FILE, pending)
        copy = tmp_path / "copy"
        shutil.copytree(installer.venv, copy, symlinks=True)
        newer = raw_wheel(tmp_path / "w", "tool", "2.0", [("tool/__init__.py", b"")])
        await installer.sync(newer, venv=copy)
        assert (site_packages(installer.venv) / "tool-1.0.dist-info").exists()


class TestOddWheels:
    async def test_a_record_row_naming_a_directory_is_passed_over(
        self, installer: Installer, tmp_path: Path
    ) -> None:
        # pip and uv install it; linking the directory as a file failed halfway and left a
        # journal every later command replayed and failed on.
        wheel = raw_wheel(
            tmp_path / "w",
            "dirrow",
            "1.0",
            [("dirrow/__init__.py", b"X = 1\n"), ("dirrow/sub/m.py", b"")],
            extra_rows=["dirrow/sub,,"],
        )
        await installer.sync(wheel)
        done = run(installer.venv / "bin/python", "-c", "import dirrow; print(dirrow.X)")
        assert done.stdout == "1\n", done.stderr
        assert not (installer.venv / JOURNAL_FILE).exists()

    async def test_generated_metadata_is_never_written_into_the_cache(
        self, installer: Installer, tmp_path: Path
    ) -> None:
        # The wheel ships its own INSTALLER under .data: placed as a hard link to the cache,
        # writing burrowd's over it changed the cache (and every venv linked to it).
        wheel = raw_wheel(
            tmp_path / "w",
            "meta",
            "1.0",
            [
                ("meta/__init__.py", b""),
                ("meta-1.0.data/purelib/meta-1.0.dist-info/INSTALLER", b"original\n"),
            ],
        )
        await installer.sync(wheel)
        [cached] = (installer.root / "cache").rglob(
            "meta-1.0.data/purelib/meta-1.0.dist-info/INSTALLER"
        )
        assert cached.read_bytes() == b"original\n"
        installed = site_packages(installer.venv) / "meta-1.0.dist-info"
        assert (installed / "INSTALLER").read_bytes() == b"burrowd\n"
        rows = [line.split(",")[0] for line in (installed / "RECORD").read_text().splitlines()]
        assert len(rows) == len(set(rows))

    async def test_nothing_is_written_through_a_link_out_of_the_environment(
        self, installer: Installer, tmp_path: Path
    ) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (site_packages(installer.venv) / "google").symlink_to(outside, target_is_directory=True)
        wheel = raw_wheel(
            tmp_path / "w", "gcs", "1.0", [("google/cloud/storage/__init__.py", b"x = 1\n")]
        )
        with pytest.raises(InstallConflict, match="outside the environment"):
            await installer.sync(wheel)
        assert list(outside.iterdir()) == []

    async def test_a_wheel_for_another_platform_is_refused(
        self, installer: Installer, tmp_path: Path
    ) -> None:
        # pip: "not a supported wheel on this platform"; uv refuses it too.
        wheel = raw_wheel(
            tmp_path / "w", "winonly", "1.0", [("winonly/__init__.py", b"")], tag="cp27-cp27m-win32"
        )
        with pytest.raises(InvalidDistribution, match="built for cp27-cp27m-win32"):
            await installer.sync(wheel)
        with pytest.raises(InvalidDistribution, match="built for cp27-cp27m-win32"):
            await installer.install(wheel)

    async def test_a_file_where_another_wheel_needs_a_directory_is_refused_first(
        self, installer: Installer, tmp_path: Path
    ) -> None:
        # Found halfway through linking, it left a journal every later command failed on.
        a = raw_wheel(tmp_path / "w", "clash-a", "1.0", [("clash/a", b"file\n")])
        b = raw_wheel(tmp_path / "w", "clash-b", "1.0", [("clash/a/b.py", b"")])
        with pytest.raises(InstallConflict, match="where this needs a directory"):
            await installer.sync(a, b)
        assert not (installer.venv / JOURNAL_FILE).exists()
        assert not (site_packages(installer.venv) / "clash").exists()
        await installer.sync(a)  # the environment is not stuck
