"""The journal: a change a killed process left half done is finished by the next one.

A kill is simulated where it matters: the link (or removal) step is replaced by one that
does part of the work and then stops the change with an error, which leaves the
environment and the journal exactly as a process killed at that point would (the journal
is only ever deleted when the change is whole). Then the next change, or the next start of
the services (the daemon's start), must finish it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from burrowd.daemon.installer import journal
from burrowd.daemon.installer.installed import scan
from burrowd.daemon.installer.journal import JOURNAL_FILE, Journal
from burrowd.daemon.installer.uninstall import remove_dist
from burrowd.daemon.installer.wheel import WheelLayout, install_layout
from burrowd.daemon.locks import FileLock
from tests.daemon.installer.harness import (
    Installer,
    environment,
    install_wheel,
    open_installer,
    record_mismatches,
    site_packages,
    snapshot,
)
from tests.support.plugin import DistFactory


def dist_infos(venv: Path) -> dict[str, str]:
    """Return ``{name: version}`` from the ``.dist-info`` directory names."""
    out = {}
    for name in os.listdir(site_packages(venv)):
        if name.endswith(".dist-info"):
            dist, version = name[: -len(".dist-info")].rsplit("-", 1)
            out[dist] = version
    return out


def owned_everywhere(venv: Path) -> list[str]:
    """Return the problems of ``venv``: RECORD rows that do not match, files nobody owns."""
    site = site_packages(venv)
    problems: list[str] = []
    owned: set[str] = set()
    for name in os.listdir(site):
        if name.endswith(".dist-info"):
            info = site / name
            problems += [f"{name}: {p}" for p in record_mismatches(info)]
            for line in (info / "RECORD").read_text().splitlines():
                owned.add(os.path.normpath(site / line.split(",")[0]))
    for root, dirs, files in os.walk(site):
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".burrow-")]
        for f in files:
            path = os.path.normpath(os.path.join(root, f))
            if path not in owned and not f.startswith(".burrow-"):
                problems.append(f"unowned: {os.path.relpath(path, site)}")
    return problems


def big(factory: DistFactory, name: str, version: str, modules: int = 40) -> Path:
    files = {f"{name}/m{i}.py": f"VERSION = {version!r}\n".encode() for i in range(modules)}
    files[f"{name}/__init__.py"] = f"VERSION = {version!r}\n".encode()
    return factory.wheel(name, version, files=files)


#: Where the changer finds the function that links one wheel.
LINK = "burrowd.daemon.installer.apply.install_layout"


class Killed(Exception):
    """Stands for the kill: the change stops here, nothing after it runs."""


def link_half_of(name: str) -> Callable[..., Any]:
    """Return an ``install_layout`` that links half of ``name``'s files, then is "killed"."""
    real = install_layout

    def partial(lay: WheelLayout, linker: Any, **kwargs: Any) -> int:
        if lay.name != name:
            return real(lay, linker, **kwargs)
        half = WheelLayout(
            name=lay.name,
            version=lay.version,
            filename=lay.filename,
            archive=lay.archive,
            dist_info=lay.dist_info,
            root=lay.root,
            files=[p for p in lay.files if not p.record.startswith(lay.dist_info)][::2],
        )
        for p in half.files:
            linker.ensure_dir(os.path.dirname(p.dest))
            linker.place(p.src, p.dest)
        raise Killed(f"killed while linking {name}")

    return partial


async def sync_killed_linking(
    installer: Installer, monkeypatch: pytest.MonkeyPatch, *wheels: Path, **options: Any
) -> None:
    """Sync ``wheels``, "killed" halfway through linking alpha; the patch is undone after."""
    monkeypatch.setattr(LINK, link_half_of("alpha"))
    with pytest.raises(Killed):
        await installer.sync(*wheels, **options)
    monkeypatch.undo()


def stop_after_first(*args: Any, **kwargs: Any) -> Any:
    """A ``remove_dist`` that removes one distribution, then is "killed"."""
    remove_dist(*args, **kwargs)
    raise Killed("killed after the first removal")


def journal_of(venv: Path) -> Journal:
    got = journal.read(venv / JOURNAL_FILE)
    assert got is not None
    return got


class TestInterruptedSync:
    async def test_the_next_sync_finishes_an_upgrade_killed_while_linking(
        self, installer: Installer, dist_factory: DistFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        old = [big(dist_factory, "alpha", "1.0"), big(dist_factory, "beta", "1.0")]
        new = [big(dist_factory, "alpha", "2.0"), big(dist_factory, "beta", "1.0")]
        await installer.sync(*old)
        await sync_killed_linking(installer, monkeypatch, *new)
        # As a kill leaves it: alpha 1.0 is gone, half of alpha 2.0 is there, unowned.
        assert dist_infos(installer.venv) == {"beta": "1.0"}
        assert any(p.startswith("unowned: alpha/") for p in owned_everywhere(installer.venv))
        kept = journal_of(installer.venv)
        assert [i.name for i in kept.installs] == ["alpha"]
        assert kept.removals == []  # the removals were done and the journal says so

        # A sync of anything (here: nothing new) finishes the change first.
        result = await installer.sync(*new)
        assert result.installed == []  # the replay did it: nothing left to do
        assert result.warnings == [
            f"finished a change that an interrupted process (pid {os.getpid()}) left half "
            "done: installed alpha 2.0"
        ]
        assert dist_infos(installer.venv) == {"alpha": "2.0", "beta": "1.0"}
        assert owned_everywhere(installer.venv) == []
        assert not (installer.venv / JOURNAL_FILE).exists()
        assert not os.listdir(installer.services.journals.root)

    async def test_a_removal_killed_halfway_is_finished(
        self, installer: Installer, dist_factory: DistFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await installer.sync(big(dist_factory, "alpha", "1.0"), big(dist_factory, "beta", "1.0"))
        monkeypatch.setattr("burrowd.daemon.installer.apply.remove_dist", stop_after_first)
        with pytest.raises(Killed):
            await installer.sync(big(dist_factory, "gamma", "1.0"))
        assert len(journal_of(installer.venv).removals) == 2
        monkeypatch.undo()
        await installer.sync(big(dist_factory, "gamma", "1.0"))
        assert dist_infos(installer.venv) == {"gamma": "1.0"}
        assert owned_everywhere(installer.venv) == []

    async def test_a_reinstall_of_the_same_version_killed_while_linking(
        self, installer: Installer, dist_factory: DistFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        wheel = big(dist_factory, "alpha", "1.0")
        await installer.sync(wheel)
        await sync_killed_linking(installer, monkeypatch, wheel, reinstall=True)
        await installer.sync(wheel)
        assert dist_infos(installer.venv) == {"alpha": "1.0"}
        assert owned_everywhere(installer.venv) == []

    async def test_the_daemon_finishes_it_when_it_starts(
        self, tmp_path: Path, dist_factory: DistFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        old = big(dist_factory, "alpha", "1.0")
        new = big(dist_factory, "alpha", "2.0")
        async with open_installer(tmp_path) as first:
            await first.sync(old)
            await sync_killed_linking(first, monkeypatch, new)
            venv = first.venv
            registry = first.services.journals.root
            assert len(os.listdir(registry)) == 1
        # New services on the same state directory (a daemon started after the kill):
        # the environment is whole before any request.
        async with open_installer(tmp_path / "again", state=tmp_path / "state") as second:
            assert dist_infos(venv) == {"alpha": "2.0"}
            assert owned_everywhere(venv) == []
            assert not (venv / JOURNAL_FILE).exists()
            assert os.listdir(registry) == []
            assert list(second.services.errors) == []

    async def test_an_interrupted_uninstall_is_finished(
        self, installer: Installer, dist_factory: DistFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await installer.sync(big(dist_factory, "alpha", "1.0"), big(dist_factory, "beta", "1.0"))
        monkeypatch.setattr("burrowd.daemon.installer.service.remove_dist", stop_after_first)
        with pytest.raises(Killed):
            await installer.uninstall("alpha", "beta")
        monkeypatch.undo()
        await installer.sync(big(dist_factory, "gamma", "1.0"))
        assert dist_infos(installer.venv) == {"gamma": "1.0"}
        assert owned_everywhere(installer.venv) == []


class TestReplayProblems:
    async def test_an_install_whose_wheel_left_the_cache_is_left_out(
        self, installer: Installer, dist_factory: DistFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        alpha = big(dist_factory, "alpha", "1.0")
        await sync_killed_linking(installer, monkeypatch, alpha)
        archive = Path(journal_of(installer.venv).installs[0].archive)
        (archive / ".burrow-archive").unlink()  # no longer a whole cache entry
        # The environment is not stuck: the change is finished without it, and says so.
        result = await installer.sync(alpha, big(dist_factory, "beta", "1.0"))
        assert any(
            "left out alpha 1.0: its unpacked wheel is no longer in the cache" in w
            for w in result.warnings
        ), result.warnings
        assert not (installer.venv / JOURNAL_FILE).exists()
        # The sync that wants alpha installs it whole (over what the killed run linked).
        assert dist_infos(installer.venv) == {"alpha": "1.0", "beta": "1.0"}
        assert owned_everywhere(installer.venv) == []

    async def test_a_project_another_tool_changed_meanwhile_is_left_alone(
        self, installer: Installer, dist_factory: DistFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        old, new = big(dist_factory, "alpha", "1.0"), big(dist_factory, "alpha", "2.0")
        await installer.sync(old)
        real = remove_dist

        def killed_before_removing(*args: Any, **kwargs: Any) -> Any:
            raise Killed("killed before the removal")

        monkeypatch.setattr("burrowd.daemon.installer.apply.remove_dist", killed_before_removing)
        with pytest.raises(Killed):
            await installer.sync(new)
        monkeypatch.undo()
        assert real is remove_dist
        # Another tool (uv, pip) upgrades alpha by itself, not knowing the journal...
        env = await environment(installer.services.cache, installer.venv)
        for dist in scan(env.site_dirs).get(canonicalize_name("alpha")):
            remove_dist(dist, env)
        install_wheel(installer.services.cache, env, big(dist_factory, "alpha", "3.0"))
        # ...then burrow replays the journal: 1.0's paths are 3.0's now, and 2.0 is not
        # wanted over 3.0. Nothing of 3.0 is lost.
        result = await installer.uninstall("not-installed")  # any change replays first
        assert any(
            "left out alpha 2.0: alpha 3.0 was installed meanwhile" in w for w in result.warnings
        ), result.warnings
        assert dist_infos(installer.venv) == {"alpha": "3.0"}
        assert owned_everywhere(installer.venv) == []  # every file of 3.0 is there

    async def test_a_file_two_distributions_record_stays_with_the_one_that_stays(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        shared = {"ns/__init__.py": b"# shared\n"}
        bee = dist_factory.wheel("bee", "1.0", files={**shared, "ns/bee.py": b"B = 1\n"})
        wasp = dist_factory.wheel("wasp", "1.0", files={**shared, "ns/wasp.py": b"W = 1\n"})
        await installer.sync(bee, wasp)
        await installer.uninstall("wasp")
        assert dist_infos(installer.venv) == {"bee": "1.0"}
        assert owned_everywhere(installer.venv) == []
        await installer.sync(bee)
        assert owned_everywhere(installer.venv) == []

    async def test_a_dry_run_says_a_change_waits_and_changes_nothing(
        self, installer: Installer, dist_factory: DistFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        alpha = big(dist_factory, "alpha", "1.0")
        await sync_killed_linking(installer, monkeypatch, alpha)
        before = snapshot(installer.venv)
        result = await installer.sync(alpha, dry_run=True)
        assert any("waits to be finished" in w for w in result.warnings), result.warnings
        assert snapshot(installer.venv) == before

    async def test_an_unreadable_journal_is_set_aside(
        self, installer: Installer, dist_factory: DistFactory, caplog: pytest.LogCaptureFixture
    ) -> None:
        (installer.venv / JOURNAL_FILE).write_bytes(b'{"truncated": ')
        await installer.sync(big(dist_factory, "alpha", "1.0"))
        assert dist_infos(installer.venv) == {"alpha": "1.0"}
        assert not (installer.venv / JOURNAL_FILE).exists()
        aside = [n for n in os.listdir(installer.venv) if n.startswith(f"{JOURNAL_FILE}.unread")]
        assert len(aside) == 1
        assert "does not read" in caplog.text

    async def test_a_change_leaves_no_journal(
        self, installer: Installer, dist_factory: DistFactory
    ) -> None:
        await installer.sync(big(dist_factory, "alpha", "1.0"))
        await installer.sync(big(dist_factory, "alpha", "2.0"))
        await installer.uninstall("alpha")
        assert not (installer.venv / JOURNAL_FILE).exists()
        assert os.listdir(installer.services.journals.root) == []


async def killed_install(
    root: Path, dist_factory: DistFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Install alpha into a venv under ``root`` and "kill" it halfway; return the venv."""
    async with open_installer(root) as first:
        await sync_killed_linking(first, monkeypatch, big(dist_factory, "alpha", "1.0"))
        return first.venv


class TestStart:
    async def test_a_start_never_waits_for_a_busy_environment(
        self, tmp_path: Path, dist_factory: DistFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        venv = await killed_install(tmp_path, dist_factory, monkeypatch)
        # Another process (uv, a --no-daemon client) holds the environment now.
        other = FileLock(venv / ".lock", "the environment")
        assert other.try_acquire()
        try:
            started = time.monotonic()
            async with open_installer(tmp_path / "again", state=tmp_path / "state") as second:
                assert time.monotonic() - started < 30  # not the 300 s lock timeout
                assert (venv / JOURNAL_FILE).exists()  # left for whoever holds the lock
                assert list(second.services.errors) == []
        finally:
            other.release()

    async def test_a_no_daemon_command_leaves_other_environments_alone(
        self, tmp_path: Path, dist_factory: DistFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        venv = await killed_install(tmp_path, dist_factory, monkeypatch)
        # ``--no-daemon`` runs the services for one command: it finishes only the changes
        # of the environment it changes, when it changes it.
        async with open_installer(
            tmp_path / "again", state=tmp_path / "state", replay_at_start=False
        ):
            assert (venv / JOURNAL_FILE).exists()

    async def test_a_broken_registry_entry_does_not_stop_a_start(self, tmp_path: Path) -> None:
        registry = tmp_path / "state" / "burrowd" / "journals"
        registry.mkdir(parents=True)
        not_a_dir = tmp_path / "a-file"
        not_a_dir.write_text("")
        (registry / ("0" * 24)).write_bytes(os.fsencode(not_a_dir))
        (registry / ("1" * 24)).write_bytes(os.fsencode(tmp_path / "gone"))
        async with open_installer(tmp_path / "w", state=tmp_path / "state") as inst:
            assert list(inst.services.errors) == []
        assert os.listdir(registry) == []  # forgotten: no journal is there
