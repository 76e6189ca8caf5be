"""Watched requirement files: the stored watch list, and change reports from the kernel.

The :class:`FileWatcher` tests watch real directories under ``tmp_path`` through inotify.
The kernel watch starts in a task some time after ``watch()``, and reports come a ``step``
after the last change, so the tests never sleep for a fixed time: they write a watched
*probe* file until it is reported (the watch is then live), and since the kernel reports the
changes of one directory in order, a probe written after a change and then reported shows
that the change has been seen, reported or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from burrowd.daemon import watcher as watcher_module
from burrowd.daemon.watcher import (
    FileWatcher,
    StoredWatch,
    WatchFile,
    WatchList,
    referenced_variables,
)
from burrowd.protocol.messages import ClientEnv, IndexOptions, WatchAddParams

#: Longest wait for an expected report: generous, as xdist workers share the machine.
REPORT_TIMEOUT = 5.0
#: ``MISSING_POLL`` in these tests, to look for missing directories often.
FAST_POLL = 0.1


class TestReferencedVariables:
    @pytest.mark.parametrize(
        ("texts", "expected"),
        [
            pytest.param(
                ["--index-url https://${USER}:${TOKEN}@pypi.example/simple"],
                {"USER": "me", "TOKEN": "s3cret"},
                id="index-url",
            ),
            pytest.param(["-r ${BASE}/base.txt", "--extra-index-url ${EXTRA}"], {}, id="unset"),
            pytest.param(["$TOKEN and $(TOKEN) and {TOKEN}"], {}, id="not-braced"),
            pytest.param(["${TOKEN-x} ${ TOKEN }"], {}, id="not-a-name"),
            pytest.param(
                ["a ${USER}", "b ${TOKEN}"], {"USER": "me", "TOKEN": "s3cret"}, id="texts"
            ),
            # pip expands only upper-case names, so the parser never reads ${lower_1}: it is
            # not stored with the watch.
            pytest.param(["b ${lower_1} ${USER}"], {"USER": "me"}, id="lower-case-unused"),
            pytest.param([], {}, id="no-texts"),
        ],
    )
    def test_keeps_only_the_variables_named(
        self, texts: list[str], expected: dict[str, str]
    ) -> None:
        variables = {"USER": "me", "TOKEN": "s3cret", "HOME": "/root", "lower_1": "x"}
        assert referenced_variables(texts, variables) == expected


def stored(tmp_path: Path, id: int, name: str, **pins: str) -> StoredWatch:
    """Return a watch of ``tmp_path/name`` as ``watch.add`` would store it."""
    params = WatchAddParams(
        env=ClientEnv(cwd=str(tmp_path), variables={"TOKEN": "s3cret"}),
        requirement_files=[str(tmp_path / name)],
        index=IndexOptions(index_url="https://${TOKEN}@pypi.example/simple"),
        extras=["cli"],
    )
    return StoredWatch(id=id, added_at=1_700_000_000.5 + id, params=params, pins=dict(pins))


@pytest.fixture
def watch_list(tmp_path: Path) -> WatchList:
    """Return a watch list in a state directory that does not exist yet."""
    return WatchList(tmp_path / "state" / "burrowd" / "watches.json")


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """Clear the umask, so only modes asked for explicitly keep others out."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


class TestWatchList:
    def test_save_then_load_round_trips(self, tmp_path: Path, watch_list: WatchList) -> None:
        contents = WatchFile(
            next_id=3,
            watches=[
                stored(tmp_path, 1, "requirements.in", attrs="24.2.0", idna="3.10"),
                stored(tmp_path, 2, "pyproject.toml"),
            ],
        )
        watch_list.save(contents)
        assert watch_list.load() == contents
        assert WatchList(watch_list.path).load() == contents  # as a restarted daemon reads it

    def test_a_second_save_replaces_the_first(self, tmp_path: Path, watch_list: WatchList) -> None:
        watch_list.save(WatchFile(next_id=2, watches=[stored(tmp_path, 1, "a.in")]))
        watch_list.save(WatchFile(next_id=3, watches=[stored(tmp_path, 2, "b.in")]))
        assert [w.id for w in watch_list.load().watches] == [2]
        assert os.listdir(watch_list.path.parent) == ["watches.json"]  # no temporary file

    @pytest.mark.usefixtures("permissive_umask")
    def test_readable_by_this_user_only(self, tmp_path: Path, watch_list: WatchList) -> None:
        # It holds the variables the files name: index tokens.
        watch_list.save(WatchFile(watches=[stored(tmp_path, 1, "requirements.in")]))
        assert stat.S_IMODE(watch_list.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(watch_list.path.parent.stat().st_mode) == 0o700

    def test_a_missing_file_is_an_empty_list(self, watch_list: WatchList) -> None:
        assert watch_list.load() == WatchFile()
        assert not watch_list.path.parent.exists()  # loading creates nothing

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(b'{"version": 1, "watches": [', id="truncated"),
            pytest.param(b"\x00\x00\x00", id="binary"),
            pytest.param(b'{"version": 1, "next_id": 1, "watches": [], "wathces": []}', id="typo"),
            pytest.param(b'{"watches": {"1": "requirements.in"}}', id="wrong-type"),
            pytest.param(b"", id="empty"),
        ],
    )
    def test_an_unreadable_file_is_set_aside_and_loads_empty(
        self, watch_list: WatchList, data: bytes, caplog: pytest.LogCaptureFixture
    ) -> None:
        watch_list.path.parent.mkdir(parents=True)
        watch_list.path.write_bytes(data)
        with caplog.at_level(logging.WARNING, logger="burrowd.daemon.watcher"):
            assert watch_list.load() == WatchFile()
        aside = watch_list.path.with_name("watches.json.unreadable")
        assert aside.read_bytes() == data  # kept for the user to look at
        assert not watch_list.path.exists()
        assert str(aside) in caplog.text
        # The next save starts afresh and leaves the set-aside file alone.
        watch_list.save(WatchFile(next_id=5))
        assert watch_list.load().next_id == 5
        assert aside.read_bytes() == data

    def test_a_file_that_cannot_be_read_loads_empty(
        self, watch_list: WatchList, caplog: pytest.LogCaptureFixture
    ) -> None:
        # Reading fails (not decoding): the daemon still starts.
        watch_list.path.mkdir(parents=True)
        with caplog.at_level(logging.WARNING, logger="burrowd.daemon.watcher"):
            assert watch_list.load() == WatchFile()
        assert "cannot read the watch list" in caplog.text

    def test_a_failed_write_keeps_the_old_file(
        self, tmp_path: Path, watch_list: WatchList, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        if not os.path.exists("/dev/full"):
            pytest.skip("needs /dev/full, where every write fails with ENOSPC")
        old = WatchFile(next_id=2, watches=[stored(tmp_path, 1, "requirements.in")])
        watch_list.save(old)
        before = watch_list.path.read_bytes()
        # The temporary file the next save writes leads to a full disk.
        real_mkstemp = tempfile.mkstemp

        def full_mkstemp(**kwargs: Any) -> tuple[int, str]:
            fd, name = real_mkstemp(**kwargs)
            os.close(fd)
            os.unlink(name)
            os.symlink("/dev/full", name)
            return os.open(name, os.O_WRONLY), name

        monkeypatch.setattr("burrowd.daemon.watcher.tempfile.mkstemp", full_mkstemp)
        with pytest.raises(OSError):  # ENOSPC, from whichever call reports it
            watch_list.save(WatchFile(next_id=9))
        assert watch_list.path.read_bytes() == before
        assert watch_list.load() == old
        assert os.listdir(watch_list.path.parent) == ["watches.json"]

    def test_a_failed_rename_leaves_no_temporary_file(self, watch_list: WatchList) -> None:
        # A directory in the way: the data is written, the rename fails.
        (watch_list.path / "in the way").mkdir(parents=True)
        with pytest.raises(OSError):  # EISDIR or ENOTEMPTY
            watch_list.save(WatchFile())
        assert os.listdir(watch_list.path.parent) == ["watches.json"]
        assert os.listdir(watch_list.path) == ["in the way"]


class Reports:
    """The callback of a :class:`FileWatcher`: keeps every set of paths it is given."""

    def __init__(self) -> None:
        self.calls: list[set[Path]] = []

    def __call__(self, changed: set[Path]) -> None:
        self.calls.append(changed)

    def count(self, path: Path, since: int = 0) -> int:
        """Return how many reports after the first ``since`` name ``path``."""
        return sum(path in changed for changed in self.calls[since:])

    async def wait_for(self, path: Path, since: int = 0, timeout: float = REPORT_TIMEOUT) -> None:
        """Wait until a report after the first ``since`` names ``path``."""
        async with asyncio.timeout(timeout):
            while not self.count(path, since):  # noqa: ASYNC110 - polled with a timeout
                await asyncio.sleep(0.01)

    async def write_until_reported(self, path: Path, every: float = 0.1) -> None:
        """Write ``path`` every ``every`` seconds until it is reported: the watch is then live.

        ``every`` must exceed the watcher's step: writes closer together are one burst,
        reported only once they stop.
        """
        since = len(self.calls)
        async with asyncio.timeout(REPORT_TIMEOUT):
            while not self.count(path, since):
                path.write_text(f"probe {time.monotonic()}\n")
                with contextlib.suppress(TimeoutError):
                    await self.wait_for(path, since, timeout=every)

    async def settle(self, probe: Path) -> None:
        """Wait until the changes made so far in the probe's directory have been seen."""
        since = len(self.calls)
        probe.write_text(f"settle {time.monotonic()}\n")
        await self.wait_for(probe, since)


@pytest.fixture
def reports() -> Reports:
    """Return the reports of the ``file_watcher`` fixture."""
    return Reports()


@pytest.fixture
async def file_watcher(reports: Reports) -> AsyncIterator[FileWatcher]:
    """Return a watcher reporting to ``reports``, closed after the test."""
    watcher = FileWatcher(reports, step=0.05)
    yield watcher
    await watcher.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Return a project directory holding ``requirements.in`` and a probe file."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "requirements.in").write_text("attrs\n")
    (root / "probe.txt").write_text("")
    return root


@pytest.fixture
def fast_poll(monkeypatch: pytest.MonkeyPatch) -> float:
    """Look for missing directories every :data:`FAST_POLL` seconds."""
    monkeypatch.setattr(watcher_module, "MISSING_POLL", FAST_POLL)
    return FAST_POLL


async def watching(watcher: FileWatcher, reports: Reports, files: list[Path], probe: Path) -> int:
    """Watch ``files`` and ``probe``; return once the watch is live, with the reports so far."""
    watcher.watch([*files, probe])
    await reports.write_until_reported(probe, every=max(0.1, 3 * watcher.step_ms / 1000))
    return len(reports.calls)


class TestFileWatcher:
    async def test_a_write_is_reported(
        self, file_watcher: FileWatcher, reports: Reports, project: Path
    ) -> None:
        target = project / "requirements.in"
        since = await watching(file_watcher, reports, [target], project / "probe.txt")
        assert file_watcher.directories == {project}
        target.write_text("attrs>=24\n")
        await reports.wait_for(target, since)
        assert all(isinstance(p, Path) for changed in reports.calls for p in changed)

    async def test_an_editor_save_is_reported(
        self, file_watcher: FileWatcher, reports: Reports, project: Path
    ) -> None:
        # Editors write a new file and rename it over the old one: a watch on the old
        # file's inode would see nothing.
        target = project / "requirements.in"
        since = await watching(file_watcher, reports, [target], project / "probe.txt")
        (project / "requirements.in.tmp").write_text("attrs>=24\n")
        os.replace(project / "requirements.in.tmp", target)
        await reports.wait_for(target, since)
        assert not reports.count(project / "requirements.in.tmp")

    async def test_other_files_in_the_directory_are_not_reported(
        self, file_watcher: FileWatcher, reports: Reports, project: Path
    ) -> None:
        target, other = project / "requirements.in", project / "requirements.txt"
        probe = project / "probe.txt"
        since = await watching(file_watcher, reports, [target], probe)
        other.write_text("attrs==24.2.0\n")
        (project / "notes.md").write_text("")
        await reports.settle(probe)
        assert all(changed <= {target, probe} for changed in reports.calls)
        assert not reports.count(target, since)  # not written, so not reported

    async def test_a_burst_of_writes_comes_as_few_reports(
        self, reports: Reports, project: Path
    ) -> None:
        # A step long enough that the burst surely fits in it, even on a busy machine.
        watcher = FileWatcher(reports, step=0.2)
        try:
            target, probe = project / "requirements.in", project / "probe.txt"
            since = await watching(watcher, reports, [target], probe)
            for n in range(20):
                target.write_text(f"attrs>={n}\n")
            await reports.wait_for(target, since)
            await reports.settle(probe)
            assert 1 <= reports.count(target, since) <= 2
        finally:
            await watcher.close()

    async def test_removing_the_file_is_reported(
        self, file_watcher: FileWatcher, reports: Reports, project: Path
    ) -> None:
        target = project / "requirements.in"
        since = await watching(file_watcher, reports, [target], project / "probe.txt")
        target.unlink()
        await reports.wait_for(target, since)

    @pytest.mark.usefixtures("fast_poll")
    async def test_a_file_in_a_directory_made_later_is_reported(
        self, file_watcher: FileWatcher, reports: Reports, tmp_path: Path
    ) -> None:
        later = tmp_path / "requirements"
        target = later / "base.in"
        file_watcher.watch([target])
        assert file_watcher.directories == frozenset()
        later.mkdir()
        target.write_text("attrs\n")
        made = time.monotonic()
        await reports.wait_for(target, timeout=FAST_POLL + REPORT_TIMEOUT)
        assert time.monotonic() - made < FAST_POLL + 2.0
        assert file_watcher.directories == {later}
        # From now on the kernel reports it.
        await reports.write_until_reported(target)

    async def test_watching_other_files_switches_directories(
        self, file_watcher: FileWatcher, reports: Reports, tmp_path: Path
    ) -> None:
        first, second = tmp_path / "first", tmp_path / "second"
        for root in (first, second):
            root.mkdir()
            (root / "requirements.in").write_text("attrs\n")
        await watching(file_watcher, reports, [first / "requirements.in"], first / "probe.txt")
        assert file_watcher.directories == {first}
        since = await watching(
            file_watcher, reports, [second / "requirements.in"], second / "probe.txt"
        )
        assert file_watcher.directories == {second}
        (first / "requirements.in").write_text("idna\n")
        (second / "requirements.in").write_text("idna\n")
        await reports.wait_for(second / "requirements.in", since)
        assert not reports.count(first / "requirements.in")
        file_watcher.watch([first / "requirements.in", second / "requirements.in"])
        assert file_watcher.directories == {first, second}
        file_watcher.watch([])
        assert file_watcher.directories == frozenset()

    async def test_close_stops_reporting(
        self, file_watcher: FileWatcher, reports: Reports, project: Path
    ) -> None:
        # A second watcher of the same file shows when the closed one would have reported.
        target, probe = project / "requirements.in", project / "probe.txt"
        witness = Reports()
        other = FileWatcher(witness, step=0.05)
        try:
            await watching(file_watcher, reports, [target], probe)
            await watching(other, witness, [target], probe)
            await file_watcher.close()
            since = len(reports.calls)
            target.write_text("idna\n")
            await witness.wait_for(target)
            await witness.settle(probe)
            assert len(reports.calls) == since
        finally:
            await other.close()

    @pytest.mark.usefixtures("fast_poll")
    async def test_close_stops_looking_for_a_missing_directory(
        self, file_watcher: FileWatcher, reports: Reports, tmp_path: Path
    ) -> None:
        target = tmp_path / "later" / "requirements.in"
        witness = Reports()
        other = FileWatcher(witness, step=0.05)
        try:
            file_watcher.watch([target])
            other.watch([target])
            await file_watcher.close()
            target.parent.mkdir()
            target.write_text("attrs\n")
            await witness.wait_for(target)
            assert reports.calls == []
        finally:
            await other.close()

    @pytest.mark.usefixtures("fast_poll")
    async def test_a_new_missing_directory_is_looked_for(
        self, file_watcher: FileWatcher, reports: Reports, tmp_path: Path
    ) -> None:
        # watch() while a poll runs leaves it running, still looking for the directories
        # of the files watched before.
        old, new = tmp_path / "old" / "requirements.in", tmp_path / "new" / "requirements.in"
        file_watcher.watch([old])
        file_watcher.watch([new])
        new.parent.mkdir()
        new.write_text("attrs\n")
        await reports.wait_for(new, timeout=FAST_POLL + 1.5)

    @pytest.mark.usefixtures("fast_poll")
    async def test_a_directory_removed_and_made_again_is_watched_again(
        self, file_watcher: FileWatcher, reports: Reports, project: Path
    ) -> None:
        # A branch switch removes the directory and brings it back. The kernel watch ends
        # with the directory, silently: watchfiles reports the removal and raises nothing.
        target = project / "requirements.in"
        since = await watching(file_watcher, reports, [target], project / "probe.txt")
        shutil.rmtree(project)
        await reports.wait_for(target, since)
        since = len(reports.calls)
        project.mkdir()
        target.write_text("attrs\n")
        await reports.wait_for(target, since, timeout=FAST_POLL + 1.5)
