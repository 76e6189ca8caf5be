"""The daemon keeps a watch's project pages fresh in the background.

The fake index sends no ``Cache-Control``, so pages get the heuristic lifetime
``BURROW_INDEX_TTL`` (3 s here); the daemon revalidates a watch's pages at 3/4 of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.e2e.helpers import wait_until
from tests.watch_e2e.support import EventStream, Project, package

TTL = 3.0


def _page_requests(p: Project) -> list[tuple[str, str, int]]:
    """Return (path, If-None-Match, status) of the project page requests seen."""
    return [
        (r.path, r.headers.get("If-None-Match", ""), r.status)
        for r in list(p.index.requests)
        if r.path.startswith("/simple/")
    ]


def test_pages_are_revalidated_before_they_expire(private: Callable[..., Project]) -> None:
    p = private({"BURROW_INDEX_TTL": f"{TTL:g}"})
    p.index.add_many([package("fresh-app", "1.0", "fresh-lib"), package("fresh-lib")])
    p.write("requirements.in", "fresh-app")
    wid = p.add_one("requirements.in")
    warm = p.until_watch(wid, lambda w: w["state"] == "warm")
    assert warm["pages"] == 2
    assert 0 < warm["refresh_in"] <= TTL
    p.index.reset_hits()
    # No client asks for anything: the daemon revalidates on its own, conditionally, at
    # 3/4 of the pages' lifetime (2.25 s), then every 2.25 s. Two rounds take us past the
    # lifetime of the pages the warming fetched (~4.5 s).
    assert wait_until(lambda: len(_page_requests(p)) >= 4, TTL * 3), _page_requests(p)
    rounds = _page_requests(p)[:4]
    assert sorted(path for path, _, _ in rounds) == [
        "/simple/fresh-app/",
        "/simple/fresh-app/",
        "/simple/fresh-lib/",
        "/simple/fresh-lib/",
    ]
    assert all(etag and status == 304 for _, etag, status in rounds), rounds
    assert time.time() > warm["warmed_at"] + TTL
    # Right after a round, a compile finds every page fresh in memory. (Timed so: a compile
    # that asks for a page while it is being revalidated waits for that request and counts
    # the page as read from disk, or nowhere; see the test below.)
    result = p.burrow.json("compile", "requirements.in", "--dry-run", "-i", p.url)
    assert result["pages"] == {"memory": 2, "disk": 0, "network": 0}, _page_requests(p)
    assert [r["name"] for r in result["packages"]] == ["fresh-app", "fresh-lib"]


def test_a_page_shared_with_a_warming_is_counted(private: Callable[..., Project]) -> None:
    p = private()
    p.index.add_many([package("joined-app", "1.0", "joined-lib"), package("joined-lib")])
    p.index.latency = 0.8
    p.write("requirements.in", "joined-app")
    client = p.client()
    client.sock.settimeout(30)
    p.add_one("requirements.in")
    p.until(lambda s: any(j["kind"] == "page" for j in s["jobs"]))
    # Sent over a connection already open: it asks for the page while the warming loads it.
    result = client.call(
        "resolve",
        {
            "env": {"cwd": str(p.cwd)},
            "requirement_files": ["requirements.in"],
            "index": {"index_url": p.url},
            "dry_run": True,
        },
    )
    assert [r["name"] for r in result["packages"]] == ["joined-app", "joined-lib"]
    assert sum(result["pages"].values()) == 2, result["pages"]


def test_a_page_that_changed_warms_the_watch_again(private: Callable[..., Project]) -> None:
    p = private({"BURROW_INDEX_TTL": f"{TTL:g}"})
    p.index.add_many([package("moving"), package("pinned-dep")])
    p.write("requirements.txt", "moving==1.0", "pinned-dep==1.0")
    with EventStream(p.env) as events:
        wid = p.add_one("requirements.txt")
        events.next("prefetch-done", watch=wid)
        # Yanked on the index after the warming: the next revalidation sees it.
        p.index.add(package("moving"), yanked="retracted")
        yanked = events.next("yanked-pin", watch=wid, timeout=TTL * 4)
        assert (yanked["name"], yanked["version"], yanked["reason"]) == (
            "moving",
            "1.0",
            "retracted",
        )
