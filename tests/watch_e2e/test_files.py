"""Which changes of files on disk warm a watch again: includes, constraints, directories."""

from __future__ import annotations

import shutil
from collections.abc import Callable

from tests.watch_e2e.support import EventStream, Project, package


def test_includes_and_constraints_are_watched_too(project: Project) -> None:
    project.index.add_many(
        [
            package("top"),
            package("inc"),
            package("extra"),
            package("ver", "1.0"),
            package("ver", "2.0"),
        ]
    )
    project.write("base.in", "inc")
    project.write("constraints.txt", "ver<2")
    project.write("requirements.in", "-r base.in", "top", "ver")
    with EventStream(project.env) as events:
        wid = project.add_one("requirements.in", "-c", "constraints.txt")
        assert events.next("prefetch-done", watch=wid)["packages"] == 3
        assert sorted(project.info(wid)["files"]) == [
            str(project.cwd / name) for name in ("base.in", "constraints.txt", "requirements.in")
        ]
        # Saved in place, the way some editors do, rather than renamed over.
        (project.cwd / "base.in").write_text("inc\nextra\n")
        changed = events.next("resolution-changed", watch=wid)
        assert changed["changes"] == [{"name": "extra", "old": None, "new": "1.0"}]
        project.write("constraints.txt", "ver>1")
        changed = events.next("resolution-changed", watch=wid)
        assert changed["changes"] == [{"name": "ver", "old": "1.0", "new": "2.0"}]
        assert events.next("prefetch-done", watch=wid)["packages"] == 4


def test_adding_a_watched_path_again_replaces_its_options(project: Project) -> None:
    project.index.add(package("again"))
    project.write("requirements.in", "again")
    nowhere = (project.cwd / "no-index").as_uri()
    (first,) = project.burrow.json("watch", "add", "requirements.in", "-i", nowhere)["watches"]
    failed = project.until_watch(first["id"], lambda w: w["state"] == "failed")
    assert "again" in failed["error"]
    second = project.add_one("./requirements.in")
    assert second == first["id"]
    warm = project.until_watch(second, lambda w: w["state"] == "warm")
    assert (warm["packages"], warm["error"]) == (1, None)
    assert len(project.burrow.json("watch", "list")["watches"]) == 1


def test_an_edit_just_before_another_watch_is_added_is_not_lost(
    private: Callable[..., Project],
) -> None:
    # A long debounce makes the window wide and the outcome certain.
    p = private({"BURROW_WATCH_DEBOUNCE": "1"})
    p.index.add_many([package("here"), package("there"), package("later")])
    (p.cwd / "sub").mkdir()
    p.write("sub/requirements.in", "here")
    p.write("requirements.in", "there")
    client = p.client()
    with EventStream(p.env) as events:
        wid = p.add_one("sub/requirements.in")
        assert events.next("prefetch-done", watch=wid)["packages"] == 1
        p.write("sub/requirements.in", "here", "later")
        # Another watch, in another directory, added while that change is being debounced.
        client.call(
            "watch.add",
            {
                "env": {"cwd": str(p.cwd)},
                "requirement_files": ["requirements.in"],
                "index": {"index_url": p.url},
            },
        )
        assert events.next("prefetch-done", watch=wid, timeout=5)["packages"] == 2


def test_a_removed_directory_is_watched_for(project: Project) -> None:
    project.index.add_many([package("deep"), package("deeper")])
    (project.cwd / "sub").mkdir()
    project.write("sub/requirements.in", "deep")
    with EventStream(project.env) as events:
        wid = project.add_one("sub/requirements.in")
        events.next("prefetch-done", watch=wid)
        # The warming is over (it counts its run last) and changes nothing any more.
        project.until_watch(wid, lambda w: w["runs"] == 1)
        shutil.rmtree(project.cwd / "sub")
        events.next("watch-missing", watch=wid, timeout=10)
        assert project.info(wid)["state"] == "missing"
        (project.cwd / "sub").mkdir()
        project.write("sub/requirements.in", "deep", "deeper")
        # The directory is looked for every 2 s (MISSING_POLL) once it is known to be gone.
        assert events.next("prefetch-done", watch=wid, timeout=6)["packages"] == 2
