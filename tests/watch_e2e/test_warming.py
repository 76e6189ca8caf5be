"""Watched requirement files warm the cache: what a later compile and sync then find.

Each test has its own fake index and removes its watches; they share the module's daemon.
What a warming did is read from the ``watch.event`` stream and from ``status``.
"""

from __future__ import annotations

from pathlib import Path

from tests.install_e2e.support import make_venv, reaped
from tests.watch_e2e.support import (
    SETTLE,
    EventStream,
    Project,
    dist_infos,
    json_documents,
    package,
    watch_info,
)


def test_an_edit_is_warmed_so_compile_and_sync_need_no_index(
    project: Project, tmp_path: Path
) -> None:
    index = project.index
    index.add_many(
        [
            package("app", "1.0", "lib>=1"),
            package("lib", "1.0"),
            package("lib", "2.0"),
            package("extra", "1.0", "lib"),
        ]
    )
    project.write("requirements.in", "app")
    with EventStream(project.env) as events:
        wid = project.add_one("requirements.in")
        assert events.next("prefetch-done", watch=wid)["packages"] == 2
        # Watched by `burrow watch events` too, as a person would follow it.
        follower = project.burrow.popen(
            "--json", "watch", "events", "--count", "2", "--timeout", str(SETTLE)
        )
        with reaped(follower):
            project.until(lambda s: s["subscribers"] == 2)
            project.write("requirements.in", "app", "extra")
            out, err = follower.communicate(timeout=SETTLE)
        assert follower.returncode == 0, err
        changed, done = json_documents(out)
        assert changed["event"] == "resolution-changed", changed
        assert changed["changes"] == [{"name": "extra", "old": None, "new": "1.0"}]
        assert (done["event"], done["packages"], done["downloaded"]) == ("prefetch-done", 3, 1)
        assert events.next("prefetch-done", watch=wid) == done
    listed = watch_info(project.burrow.json("watch", "list"), wid)
    assert (listed["state"], listed["runs"], listed["packages"]) == ("warm", 2, 3)
    assert listed["kind"] == "resolve"

    index.reset_hits()
    project.burrow.ok(
        "compile", "requirements.in", "-o", "requirements.txt", "-i", project.url, "-q"
    )
    venv = make_venv(tmp_path / "venv")
    project.burrow.ok("sync", "requirements.txt", "--python", venv, "-i", project.url)
    assert dict(index.hits) == {}
    assert dist_infos(venv) == {"app": "1.0", "lib": "2.0", "extra": "1.0"}


def test_a_watched_lock_file_is_prefetched_and_its_yanked_pins_reported(
    project: Project, tmp_path: Path
) -> None:
    index = project.index
    index.add_many([package("alpha"), package("beta", "2.0", "alpha")])
    index.add(package("gamma", "1.0"), yanked="broken build")
    index.add(package("gamma", "1.1"))
    project.write("requirements.txt", "alpha==1.0", "beta==2.0")
    with EventStream(project.env) as events:
        wid = project.add_one("requirements.txt")
        done = events.next("prefetch-done", watch=wid)
        assert (done["packages"], done["downloaded"]) == (2, 2)
        info = project.info(wid)
        assert (info["kind"], info["state"], info["packages"]) == ("pins", "warm", 2)

        index.reset_hits()
        venv = make_venv(tmp_path / "venv")
        project.burrow.ok("sync", "requirements.txt", "--python", venv, "-i", project.url)
        assert [path for path in index.hits if path.startswith("/files/")] == []
        assert dist_infos(venv) == {"alpha": "1.0", "beta": "2.0"}

        project.write("requirements.txt", "alpha==1.0", "beta==2.0", "gamma==1.0")
        yanked = events.next("yanked-pin", watch=wid)
        assert (yanked["name"], yanked["version"], yanked["reason"]) == (
            "gamma",
            "1.0",
            "broken build",
        )
        assert "gamma==1.0 is yanked: broken build" in yanked["message"]
        assert events.next("prefetch-done", watch=wid)["packages"] == 3
        # Reported once: a warming that finds the same yanked pin says nothing new.
        project.write("requirements.txt", "gamma==1.0", "alpha==1.0", "beta==2.0")
        events.next("prefetch-done", watch=wid)
    assert [e["event"] for e in events.seen].count("yanked-pin") == 1, events.seen


def test_resolution_changes_and_failures_are_reported(project: Project) -> None:
    index = project.index
    index.add_many(
        [
            package("app", "1.0", "lib"),
            package("lib", "1.0"),
            package("lib", "2.0"),
            package("newpkg", "1.0"),
        ]
    )
    path = project.write("requirements.in", "app")
    with EventStream(project.env) as events:
        wid = project.add_one("requirements.in")
        assert events.next("prefetch-done", watch=wid)["packages"] == 2

        project.write("requirements.in", "app", "newpkg", "lib<2")
        changed = events.next("resolution-changed", watch=wid)
        assert changed["changes"] == [
            {"name": "lib", "old": "2.0", "new": "1.0"},
            {"name": "newpkg", "old": None, "new": "1.0"},
        ]
        assert events.next("prefetch-done", watch=wid)["packages"] == 3

        project.write("requirements.in", "app", "missingpkg")
        failed = events.next("warming-failed", watch=wid)
        assert "missingpkg" in failed["message"], failed
        info = project.info(wid)
        assert info["state"] == "failed"
        assert "missingpkg" in info["error"], info
        (error,) = [
            e for e in project.status()["errors"] if e["source"].startswith(f"watch {wid} ")
        ]
        assert error["source"] == f"watch {wid} ({path})"
        assert "missingpkg" in error["message"]
        assert error["code"] < -32000

        project.write("requirements.in", "app", "newpkg", "lib<2")
        assert events.next("prefetch-done", watch=wid)["packages"] == 3
        info = project.info(wid)
        assert (info["state"], info["error"]) == ("warm", None)
    # Back to the pins before the failure: nothing changed, nothing to report.
    assert [e["event"] for e in events.seen] == [
        "prefetch-done",
        "resolution-changed",
        "prefetch-done",
        "warming-failed",
        "prefetch-done",
    ]


def test_a_watched_file_that_disappears_is_watched_for(project: Project) -> None:
    project.index.add_many([package("solo"), package("other")])
    path = project.write("requirements.in", "solo")
    with EventStream(project.env) as events:
        wid = project.add_one("requirements.in")
        events.next("prefetch-done", watch=wid)
        path.unlink()
        missing = events.next("watch-missing", watch=wid)
        assert missing["path"] == str(path)
        assert project.info(wid)["state"] == "missing"
        # The daemon keeps serving.
        out = project.burrow.ok("compile", "solo", "--no-header", "-q", "-i", project.url)
        assert out.startswith("solo==1.0")
        assert project.burrow.json("watch", "list")["watches"][0]["state"] == "missing"

        project.write("requirements.in", "solo", "other")
        assert events.next("prefetch-done", watch=wid)["packages"] == 2
        assert project.info(wid)["state"] == "warm"
    assert [e["event"] for e in events.seen].count("watch-missing") == 1
