"""Watched requirement files: the persistent watch list, and change notifications.

:class:`WatchList` keeps what ``watch.add`` asked for in the user state directory
(``watches.json``), so a restarted daemon watches the same files. It is rewritten
atomically (temporary file, fsync, rename) with mode 0600: it holds the requirement options
and the environment variables the files name (``${TOKEN}`` in an index URL).

:class:`FileWatcher` asks the kernel (watchfiles: inotify on Linux) for changes of the
*directories* holding the watched files, not the files themselves: editors save by writing
a new file and renaming it over the old one, which a watch on the old inode would miss. A
directory that does not exist yet is looked for again every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Final

import msgspec

if TYPE_CHECKING:
    import watchfiles

from burrowd.daemon.inputs.requirements_txt import variable_names
from burrowd.protocol.messages import WatchAddParams

__all__ = ["FileWatcher", "StoredWatch", "WatchList", "referenced_variables"]

log = logging.getLogger(__name__)

#: Seconds between two looks for a watched directory that does not exist.
MISSING_POLL: Final = 2.0
#: Longest wait, in ms, for a burst of changes to end before they are reported anyway.
MAX_BURST_MS: Final = 1600
#: Seconds after a restart by which the new watcher has surely started (then files are
#: compared with their last reported state once more).
RESTART_SETTLE: Final = 0.2


class StoredWatch(msgspec.Struct, kw_only=True):
    """One watch as kept on disk."""

    id: int
    added_at: float
    #: The params of ``watch.add`` for this one file (``requirement_files`` holds it alone).
    params: WatchAddParams
    #: The pins of the last warming, ``name -> version``: a restart still notices a change.
    pins: dict[str, str] = {}


class WatchFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The contents of ``watches.json``."""

    version: int = 1
    next_id: int = 1
    watches: list[StoredWatch] = []


_decoder: Final = msgspec.json.Decoder(WatchFile)


def referenced_variables(texts: Iterable[str], variables: dict[str, str]) -> dict[str, str]:
    """Return the variables of ``variables`` that ``${NAME}`` references in ``texts`` name.

    Only those the requirements parser expands (``${UPPER_CASE}``, as pip does): the watch
    list stores nothing else of the client's environment.
    """
    names = {name for text in texts for name in variable_names(text)}
    return {k: v for k, v in variables.items() if k in names}


class WatchList:
    """The watch list in ``watches.json``: loaded once, written after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> WatchFile:
        """Return the stored watches; a file that does not decode is set aside, not fatal.

        A file that cannot be read at all (permissions) is left where it is: the next save
        tells the user the same thing, and nothing is lost meanwhile.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return WatchFile()
        except OSError as exc:
            log.warning("cannot read the watch list %s: %s", self.path, exc)
            return WatchFile()
        try:
            return _decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            aside = self.path.with_name(self.path.name + ".unreadable")
            log.warning("the watch list %s cannot be read (%s); moved to %s", self.path, exc, aside)
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            return WatchFile()

    def save(self, contents: WatchFile) -> None:
        """Write the watch list atomically, readable by this user only (blocking)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = msgspec.json.format(msgspec.json.encode(contents), indent=2)
        # A unique name (mode 0600): a save cancelled on the loop may still be writing.
        fd, name = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data + b"\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise


OnChanges = Callable[[set[Path]], None]
#: What tells a file's change apart without reading it: mtime (ns), size, inode.
_FileState = tuple[int, int, int]


def _state(path: Path) -> _FileState | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class FileWatcher:
    """Report changes (written, created, removed, renamed over) of a set of files.

    One watchfiles watcher covers every directory, so a new set of directories restarts it.
    What the stopped watcher was still debouncing is not lost: each file's last reported
    state (mtime, size, inode) is kept, and files that differ from it are reported when the
    watcher restarts, and again once the new one has surely started.

    :param on_changes: called on the event loop with the watched paths that changed.
    :param step: seconds without a further change after which a burst of changes is
        reported (an editor's save is several events).
    """

    def __init__(self, on_changes: OnChanges, *, step: float = 0.05) -> None:
        self.on_changes = on_changes
        self.step_ms = max(1, int(step * 1000))
        self._files: frozenset[Path] = frozenset()
        self._dirs: frozenset[Path] = frozenset()
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._poll: asyncio.Task[None] | None = None
        #: Each file's state when last reported (or first watched); ``None``: missing.
        self._seen: dict[Path, _FileState | None] = {}
        self._recheck: asyncio.TimerHandle | None = None

    @property
    def directories(self) -> frozenset[Path]:
        """Return the directories watched now."""
        return self._dirs

    def watch(self, files: Iterable[Path]) -> None:
        """Watch exactly ``files`` (absolute paths) from now on."""
        self._files = frozenset(files)
        self._seen = {f: self._seen[f] if f in self._seen else _state(f) for f in self._files}
        wanted = frozenset(p.parent for p in self._files)
        existing = frozenset(d for d in wanted if d.is_dir())
        if existing != self._dirs or (self._task is None and existing):
            restarting = self._task is not None
            self._restart(existing)
            if restarting:
                self._report_unseen()
                if self._recheck is not None:
                    self._recheck.cancel()
                delay = self.step_ms / 1000 + RESTART_SETTLE
                self._recheck = asyncio.get_running_loop().call_later(delay, self._report_unseen)
        missing = wanted - existing
        if missing and self._poll is None:
            self._poll = asyncio.ensure_future(self._look_for())
        elif not missing and self._poll is not None:
            self._poll.cancel()
            self._poll = None

    def _report(self, paths: set[Path]) -> None:
        """Report changed watched files, noting the state each was reported in."""
        for path in paths:
            self._seen[path] = _state(path)
        self.on_changes(paths)

    def _report_unseen(self) -> None:
        """Report the watched files whose state differs from the one last reported."""
        changed = {f for f in self._files if _state(f) != self._seen.get(f)}
        if changed:
            self._report(changed)

    def _restart(self, dirs: frozenset[Path]) -> None:
        self._stop_task()
        self._dirs = dirs
        if not dirs:
            return
        self._stop = asyncio.Event()
        self._task = asyncio.ensure_future(self._run(dirs, self._stop))

    async def _run(self, dirs: frozenset[Path], stop: asyncio.Event) -> None:
        files = self._files

        def wanted(_change: watchfiles.Change, path: str) -> bool:
            # A watched directory's own event too: its removal ends its kernel watch.
            return Path(path) in self._files or Path(path) in dirs

        import watchfiles  # noqa: PLC0415  (only a daemon with watches pays its import)

        try:
            batches = watchfiles.awatch(
                *sorted(dirs),
                watch_filter=wanted,
                step=self.step_ms,
                debounce=max(MAX_BURST_MS, self.step_ms),
                stop_event=stop,
                recursive=False,
                ignore_permission_denied=True,
            )
            async with contextlib.aclosing(batches):
                async for changes in batches:
                    paths = {Path(path) for _, path in changes}
                    changed = paths & self._files
                    if changed:
                        self._report(changed)
                    if paths & dirs:
                        # watchfiles keeps waiting on a removed directory's dead watch.
                        removed = ", ".join(map(str, sorted(paths & dirs)))
                        raise FileNotFoundError(f"{removed} removed or moved")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A watched directory removed under the watcher ends it: look for it again.
            log.info("watching %s stopped: %s", ", ".join(map(str, sorted(dirs))), exc)
            if self._task is asyncio.current_task():
                self._task = None
                self._dirs = frozenset()
                gone = {f for f in files if not f.exists()}
                if gone:
                    self._report(gone)
                self.watch(self._files)

    async def _look_for(self) -> None:
        try:
            while True:
                await asyncio.sleep(MISSING_POLL)
                # The files watched now, not when the poll started: watch() may have changed them.
                missing = frozenset(f.parent for f in self._files) - self._dirs
                found = frozenset(d for d in missing if d.is_dir())
                if found:
                    self._poll = None
                    self.watch(self._files)
                    # A file created with its directory came before the watch did.
                    changed = {f for f in self._files if f.parent in found}
                    if changed:
                        self._report(changed)
                    return
        except asyncio.CancelledError:
            pass

    def _stop_task(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._task is not None:
            self._task.cancel()
        self._task = None
        self._stop = None

    async def close(self) -> None:
        """Stop watching."""
        task = self._task
        self._stop_task()
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
