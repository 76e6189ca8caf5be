"""kill -9 during a sync, a cache fill and a build: the fast part of ``python -m reliability``.

A few kills each, drawn (seeded) from the part of the request that changes the disk; the
checks, the restart and the repair are those of the harness (:mod:`reliability.crash`), which
``make reliability`` runs for many more iterations.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from burrowd.protocol.messages import ClientEnv, IndexOptions, PrefetchParams
from reliability import checks, crash, sets
from reliability.world import make_venv, site_packages, world
from tests.support.dists import DistSpec
from tests.support.index import FakeIndex

SEED = 16

pytestmark = pytest.mark.slow


def _quiet(message: str) -> None:
    """Swallow the harness's progress lines."""


def _problems(stats: crash.CrashStats, check: str) -> list[str]:
    return [f"kill {f.iteration} ({f.phase}): {f.problem}" for f in stats.failures(check)]


class TestChecks:
    """The checks find what they are meant to find."""

    def test_environment_check_finds_half_packages(self, tmp_path: Path) -> None:
        with world(tmp_path / "w") as w:
            sets.publish(w.index, {"rl-keep-a": "1.0", "rl-big-gone": "1.0"})
            pins = sets.write_pins(w.work / "p.txt", {"rl-keep-a": "1.0", "rl-big-gone": "1.0"})
            venv = make_venv(w.work / "venv")
            w.cli_ok("sync", pins, "-p", venv, "-i", w.index_url, "-q")
            site = site_packages(venv)
            assert checks.check_environment(site, {"rl-keep-a": "1.0", "rl-big-gone": "1.0"}) == []
            (site / "rl_big_gone" / "m007.py").unlink()
            (site / "stray.py").write_text("x = 1\n")
            found = checks.check_environment(site, {"rl-keep-a": "2.0", "rl-big-gone": "1.0"})
            assert any("rl_big_gone/m007.py is listed in RECORD but missing" in p for p in found)
            assert "stray.py: owned by no distribution" in found
            assert "rl-keep-a: version 1.0 installed, expected 2.0" in found
            # Its cache is whole; an archive without its manifest is not.
            assert checks.check_cache(w.env.cache) == []
            archive = next((w.env.cache / "archive-v0").iterdir())
            (archive / checks.MANIFEST).unlink()
            found = checks.check_cache(w.env.cache)
            assert any("no manifest" in p for p in found)
            assert any("which is not whole" in p for p in found)


def _killed(tmp_path: Path, scenario: crash.Scenario, kills: int) -> crash.CrashStats:
    """Run ``kills`` iterations of a crash scenario; every repair must have worked."""
    with world(tmp_path / "w") as w:
        stats = scenario(w, random.Random(SEED), crash.Budget(kills, 120, focus=1.0), _quiet)
    assert stats.iterations == kills
    assert stats.repairs_ok == kills
    assert _problems(stats, "repair") == []
    return stats


def test_killed_syncs_leave_old_or_new_and_are_repaired(tmp_path: Path) -> None:
    stats = _killed(tmp_path, crash.crash_sync, 3)
    assert _problems(stats, "cache") == []
    assert _problems(stats, "environment") == []


def test_killed_cache_fills_leave_no_half_entry(tmp_path: Path) -> None:
    stats = _killed(tmp_path, crash.crash_fill, 3)
    assert _problems(stats, "cache") == []


def test_killed_build_leaves_no_built_wheel(tmp_path: Path) -> None:
    stats = _killed(tmp_path, crash.crash_builds, 1)
    assert _problems(stats, "cache") == []


def test_temp_files_of_a_killed_fill_are_gone_after_the_next_request(tmp_path: Path) -> None:
    # Slow downloads, so the kill surely lands while files are being written into .tmp.
    with world(tmp_path / "w", bandwidth=10_000.0) as w:
        index: FakeIndex = w.index
        for n in range(4):
            index.add(DistSpec(f"rl-slow-{n}", "1.0", files=sets.spec("rl-big-x", "1.0").files))
        w.start()
        params = PrefetchParams(
            env=ClientEnv(cwd=str(w.work)),
            requirements=[f"rl-slow-{n}==1.0" for n in range(4)],
            index=IndexOptions(index_url=w.index_url),
        )
        kill = crash.request_and_kill(w, "prefetch", params, 1.0)
        assert kill.phase == "downloading", kill
        left = checks.temp_entries(w.env.cache)
        assert left, "the kill left nothing in .tmp: it came too late"
        index.bandwidth = None
        w.start()
        w.cli_ok("prefetch", *params.requirements, "-i", w.index_url, "-q")
        assert left & checks.temp_entries(w.env.cache) == set()
    shutil.rmtree(tmp_path / "w", ignore_errors=True)
