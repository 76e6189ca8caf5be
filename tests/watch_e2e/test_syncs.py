"""Many clients at once: one download per wheel, whoever asks, and each venv its own pins."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from tests.install_e2e.support import finish, make_venv, reaped
from tests.support.index import IndexedFile
from tests.watch_e2e.support import Project, dist_infos, package

CLIENTS = 8
#: Seconds each wheel takes to download: long enough for the syncs to overlap.
SLOW_DOWNLOAD = 1.0
BLOB = 16_000


def _make_venvs(root: Path, count: int) -> list[Path]:
    """Create ``count`` venvs in parallel threads (each ``python -m venv`` is a process)."""
    venvs = [root / f"venv{i}" for i in range(count)]
    threads = [threading.Thread(target=make_venv, args=(v,)) for v in venvs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all((v / "bin" / "python").exists() for v in venvs)
    return venvs


def test_eight_syncs_of_overlapping_sets_download_each_wheel_once(
    project: Project, tmp_path: Path
) -> None:
    names = [f"shared{i}" for i in range(CLIENTS)]
    entries: list[IndexedFile] = project.index.add_many(
        [package("common", blob=BLOB), *(package(n, blob=BLOB) for n in names)]
    )
    project.index.bandwidth = BLOB / SLOW_DOWNLOAD
    venvs = _make_venvs(tmp_path, CLIENTS)
    # Client i wants common, its own package and its neighbour's: each wheel is wanted
    # by two or (common) eight clients at once.
    wanted = [
        {"common": "1.0", names[i]: "1.0", names[(i + 1) % CLIENTS]: "1.0"} for i in range(CLIENTS)
    ]
    procs = []
    for i, (venv, pins) in enumerate(zip(venvs, wanted, strict=True)):
        reqs = project.write(f"pins{i}.txt", *(f"{n}=={v}" for n, v in sorted(pins.items())))
        procs.append(
            project.burrow.popen("--json", "sync", reqs, "--python", venv, "-i", project.url)
        )
    most = 0
    with reaped(*procs):
        while any(proc.poll() is None for proc in procs):
            status = project.status()
            most = max(most, sum(r["method"] == "sync" for r in status["requests"]))
        results = [finish(proc) for proc in procs]
    for code, out, err in results:
        assert (code, err) == (0, ""), out
    assert most >= 2, "the syncs never overlapped"
    for entry in entries:
        assert project.index.hits[entry.url_path] == 1, (entry.filename, project.index.hits)
    for venv, pins, (_, out, _) in zip(venvs, wanted, results, strict=True):
        assert dist_infos(venv) == pins, venv
        listed = project.burrow.json("list", "--python", venv)
        assert {p["name"]: p["version"] for p in listed["packages"]} == pins
        assert sorted(c["name"] for c in json.loads(out)["installed"]) == sorted(pins)
