"""Many clients at once against one daemon: the fast part of ``python -m reliability``."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability import load
from reliability.world import world


def _quiet(message: str) -> None:
    """Swallow the harness's progress lines."""


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert load.percentile(values, 50) == 50.0
    assert load.percentile(values, 99) == 99.0
    assert load.percentile(values, 100) == 100.0
    assert load.percentile([3.0], 95) == 3.0


@pytest.mark.slow
def test_every_request_of_eight_clients_is_answered_correctly(tmp_path: Path) -> None:
    with world(tmp_path / "w") as w:
        stats = load.run_load(w, clients=8, per_client=10, seed=16, log=_quiet)
    assert stats.failures == []
    assert stats.requests == 80
    assert all(stats.latencies[m] for m in ("status", "resolve", "sync"))
    assert stats.peak_rss_kib is not None
    assert stats.peak_rss_kib > 0
