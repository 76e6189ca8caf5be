"""A warming stops when its watch goes or its file changes again; shared work still serves.

A big wheel on a throttled index keeps a warming's download in flight long enough to act
while it runs; each test has a daemon of its own, as it reads ``status.jobs`` and the cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from burrowd.daemon.cache.store import TMP_DIR
from tests.e2e.helpers import wait_until
from tests.install_e2e.support import finish, make_venv, reaped
from tests.support.index import IndexedFile
from tests.watch_e2e.support import EventStream, Project, dist_infos, package, watch_info

#: Seconds the big wheel takes to download.
SLOW_DOWNLOAD = 2.0
BLOB = 32_000


def _big_download(status: Any, name: str = "big") -> Any:
    """Return the job downloading the wheel of ``name`` (``None`` if none runs)."""
    prefix = name.replace("-", "_") + "-"
    for job in status["jobs"]:
        if job["kind"] == "wheel" and job["what"].startswith(prefix):
            return job
    return None


def _watch_labels(job: Any, wid: int) -> list[str]:
    return [w for w in job["waiters"] if w.startswith(f"watch {wid} ")]


def _leftovers(cache: Path) -> list[str]:
    tmp = cache / TMP_DIR
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def test_removing_a_watch_cancels_its_warming(private: Callable[..., Project]) -> None:
    p = private()
    entries = p.index.add_many([package("big", blob=BLOB), package("small")])
    p.index.bandwidth = BLOB / SLOW_DOWNLOAD
    p.write("requirements.in", "big", "small")
    with EventStream(p.env) as events:
        wid = p.add_one("requirements.in")
        job = _big_download(p.until(lambda s: _big_download(s) is not None))
        assert job["background"] is True, job
        assert _watch_labels(job, wid) == [f"watch {wid} (requirements.in)"], job
        assert p.info(wid)["state"] == "warming"

        removed = p.burrow.json("watch", "remove", "requirements.in")
        after = p.status()
        assert [w["id"] for w in removed["removed"]] == [wid]
        assert watch_info(after, wid) is None
        assert watch_info(p.burrow.json("watch", "list"), wid) is None
        # It answered without waiting for the download the warming had started, and
        # nothing waits for that download on the watch's behalf any more.
        job = _big_download(after)
        assert job is not None, after["jobs"]
        assert _watch_labels(job, wid) == [], job

        idle = p.until(lambda s: s["jobs"] == [])
        assert not [w for w in idle["watches"] if w["id"] == wid]
        assert idle["errors"] == []
        # The cancelled warming reports nothing.
        assert events.quiet(0.5), events.seen
        assert events.seen == []
    # No half entry: the shared download finished into the cache, or left nothing behind.
    assert wait_until(lambda: _leftovers(p.env.cache) == [], 10), _leftovers(p.env.cache)
    big_wheel = next(e for e in entries if e.project == "big")
    assert p.index.hits[big_wheel.url_path] == 1


def test_an_edit_during_a_warming_supersedes_it(private: Callable[..., Project]) -> None:
    p = private()
    p.index.add_many(
        [package("base"), package("old-a", blob=BLOB), package("new-b"), package("new-c")]
    )
    p.index.bandwidth = BLOB / SLOW_DOWNLOAD
    p.write("requirements.in", "base")
    with EventStream(p.env) as events:
        wid = p.add_one("requirements.in")
        assert events.next("prefetch-done", watch=wid)["packages"] == 1
        p.write("requirements.in", "base", "old-a")
        p.until(lambda s: _big_download(s, "old-a") is not None)
        assert p.info(wid)["state"] == "warming"
        p.write("requirements.in", "base", "new-b", "new-c")
        changed = events.next("resolution-changed", watch=wid)
        assert changed["changes"] == [
            {"name": "new-b", "old": None, "new": "1.0"},
            {"name": "new-c", "old": None, "new": "1.0"},
        ]
        done = events.next("prefetch-done", watch=wid)
        assert done["packages"] == 3
        # The download the superseded warming started ends in the background, unreported.
        p.until(lambda s: s["jobs"] == [])
        assert events.quiet(0.3)
    kinds = [(e["event"], e.get("packages")) for e in events.seen]
    assert kinds == [("prefetch-done", 1), ("resolution-changed", 0), ("prefetch-done", 3)]
    info = watch_info(p.burrow.json("watch", "list"), wid)
    assert (info["state"], info["packages"], info["error"]) == ("warm", 3, None)
    stored = json.loads(
        (Path(p.env.env["XDG_STATE_HOME"]) / "burrowd" / "watches.json").read_text()
    )
    (kept,) = stored["watches"]
    assert kept["pins"] == {"base": "1.0", "new-b": "1.0", "new-c": "1.0"}


def _warming_a_slow_download(p: Project) -> tuple[IndexedFile, int]:
    """Watch a requirements.in of one big, slowly served wheel; return once it downloads."""
    (entry,) = p.index.add(package("big", blob=BLOB))
    p.index.bandwidth = BLOB / SLOW_DOWNLOAD
    p.write("requirements.in", "big")
    wid = p.add_one("requirements.in")
    p.until(lambda s: _big_download(s) is not None)
    return entry, wid


def test_a_sync_joins_a_download_the_warming_started(
    private: Callable[..., Project], tmp_path: Path
) -> None:
    p = private()
    p.write("pins.txt", "big==1.0")
    venv = make_venv(tmp_path / "venv")
    entry, wid = _warming_a_slow_download(p)
    sync = p.burrow.popen("--json", "sync", "pins.txt", "--python", venv, "-i", p.url)
    with reaped(sync):
        # The request waits for the warming's download, which now counts as foreground.
        job = _big_download(
            p.until(
                lambda s: (
                    (j := _big_download(s)) is not None
                    and any(w.startswith("request ") for w in j["waiters"])
                )
            )
        )
        assert job["background"] is False, job
        p.burrow.ok("watch", "remove", "--id", str(wid))
        code, out, err = finish(sync)
    assert code == 0, err
    assert [c["name"] for c in json.loads(out)["installed"]] == ["big"]
    assert p.index.hits[entry.url_path] == 1
    assert dist_infos(venv) == {"big": "1.0"}
    assert p.status()["watches"] == []


def test_cleaning_the_cache_during_a_warming_warms_it_again(
    private: Callable[..., Project], tmp_path: Path
) -> None:
    p = private()
    entry, wid = _warming_a_slow_download(p)
    # The warming stops for the clean, and starts again once the cache is empty.
    cleaned = p.burrow.json("cache", "clean")
    assert cleaned["entries"] > 0
    warm = p.until_watch(wid, lambda w: w["state"] == "warm")
    assert (warm["packages"], warm["downloaded"]) == (1, 1)
    assert p.status()["errors"] == []
    # What the second warming fetched is in the cache: a sync downloads nothing more.
    downloads = p.index.hits[entry.url_path]
    venv = make_venv(tmp_path / "venv")
    p.write("pins.txt", "big==1.0")
    p.burrow.ok("sync", "pins.txt", "--python", venv, "-i", p.url)
    assert p.index.hits[entry.url_path] == downloads
    assert dist_infos(venv) == {"big": "1.0"}
