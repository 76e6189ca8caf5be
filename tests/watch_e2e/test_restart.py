"""Watches outlive the daemon: ``watches.json`` brings them back, and they warm again."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.watch_e2e.support import EventStream, Project, package


def _stored(p: Project) -> Any:
    path = Path(p.env.env["XDG_STATE_HOME"]) / "burrowd" / "watches.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return json.loads(path.read_text())


def _restart(p: Project) -> None:
    """Stop the daemon with ``burrow daemon stop`` and start a new one."""
    p.close()
    p.burrow.ok("daemon", "stop")
    assert p.env.daemons[-1].wait() == 0
    p.env.start_daemon()


def test_restart_restores_watches(private: Callable[..., Project]) -> None:
    p = private()
    p.index.add_many([package("keep"), package("more")])
    path = p.write("requirements.in", "keep")
    wid = p.add_one("requirements.in")
    before = p.until_watch(wid, lambda w: w["state"] == "warm")
    (kept,) = _stored(p)["watches"]
    assert (kept["id"], kept["pins"]) == (wid, {"keep": "1.0"})

    _restart(p)
    (listed,) = p.burrow.json("watch", "list")["watches"]
    assert (listed["id"], listed["path"], listed["added_at"]) == (
        wid,
        str(path),
        before["added_at"],
    )
    again = p.until_watch(wid, lambda w: w["state"] == "warm" and w["runs"] >= 1)
    assert (again["packages"], again["kind"]) == (1, "resolve")
    with EventStream(p.env) as events:
        p.write("requirements.in", "keep", "more")
        # The pins of before the restart were kept: the change is reported against them.
        changed = events.next("resolution-changed", watch=wid)
        assert changed["changes"] == [{"name": "more", "old": None, "new": "1.0"}]
        assert events.next("prefetch-done", watch=wid)["packages"] == 2
    # Ids go on where they stopped.
    p.write("other.in", "more")
    assert p.add_one("other.in") == wid + 1


def test_only_the_variables_the_file_names_are_kept(private: Callable[..., Project]) -> None:
    p = private()
    p.index.add(package("secretive"))
    p.write("requirements.in", "--index-url ${WATCH_INDEX}", "secretive")
    variables = {"WATCH_INDEX": p.url, "UNRELATED_SECRET": "hunter2"}
    (added,) = p.burrow.json("watch", "add", "requirements.in", env=variables)["watches"]
    wid = added["id"]
    p.until_watch(wid, lambda w: w["state"] == "warm")
    (kept,) = _stored(p)["watches"]
    assert kept["params"]["env"]["variables"] == {"WATCH_INDEX": p.url}
    # The new daemon has no WATCH_INDEX of its own: the stored one is used.
    _restart(p)
    warm = p.until_watch(wid, lambda w: w["runs"] >= 1 and w["state"] in ("warm", "failed"))
    assert (warm["state"], warm["packages"]) == ("warm", 1), warm


def test_variables_of_included_files_are_kept(private: Callable[..., Project]) -> None:
    p = private()
    p.index.add_many([package("inner"), package("outer")])
    p.write("base.in", "--index-url ${WATCH_INDEX}", "inner")
    p.write("requirements.in", "-r base.in", "outer")
    variables = {"WATCH_INDEX": p.url}
    (added,) = p.burrow.json("watch", "add", "requirements.in", env=variables)["watches"]
    wid = added["id"]
    first = p.until_watch(wid, lambda w: w["state"] in ("warm", "failed"))
    assert (first["state"], first["packages"]) == ("warm", 2), first
    _restart(p)
    again = p.until_watch(wid, lambda w: w["runs"] >= 1 and w["state"] in ("warm", "failed"))
    assert (again["state"], again["error"]) == ("warm", None), again
