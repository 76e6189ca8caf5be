"""Many clients at once against one daemon: every answer checked, latencies and memory kept.

Each client is a thread with its own connection (the client library's
:class:`SocketTransport`) and its own venv. It sends a seeded mix of ``status``,
``resolve`` (compiling one of three small ``.in`` files), ``sync`` (alternating between two
pin sets), ``cache.stats`` and ``cache.dir``, one at a time, as fast as the answers come.
Every result is checked: a resolve must give the expected pins, a sync must leave the venv
holding exactly its pins (read from the file system), ``status`` must name the daemon's pid,
the cache methods its cache directory.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from burrowd.protocol.errors import RpcError
from burrowd.protocol.messages import (
    CacheDirParams,
    CacheDirResult,
    CacheStatsParams,
    CacheStatsResult,
    ClientEnv,
    IndexOptions,
    PythonOptions,
    ResolveParams,
    ResolveResult,
    StatusParams,
    StatusResult,
    SyncParams,
    SyncResult,
)
from reliability import checks
from reliability.world import World, make_venv, site_packages
from tests.support.dists import DistSpec

__all__ = ["LoadStats", "percentile", "run_load"]

#: What the index serves for the load: a tiny dependency graph.
SPECS: Final = [
    DistSpec("ld-app", "1.0", requires_dist=["ld-core>=1", "ld-util"]),
    DistSpec("ld-core", "1.0"),
    DistSpec("ld-core", "2.0"),
    DistSpec("ld-util", "1.0"),
    DistSpec("ld-util", "1.1"),
    DistSpec("ld-tool", "1.0", requires_dist=["ld-core<2"]),
]
#: ``.in`` file contents -> the pins a resolve must give.
COMPILES: Final = {
    "ld-app\n": {"ld-app": "1.0", "ld-core": "2.0", "ld-util": "1.1"},
    "ld-tool\n": {"ld-tool": "1.0", "ld-core": "1.0"},
    "ld-app\nld-util<1.1\n": {"ld-app": "1.0", "ld-core": "2.0", "ld-util": "1.0"},
}
#: Two pin sets each client's venv alternates between.
SYNCS: Final = [
    {"ld-app": "1.0", "ld-core": "2.0", "ld-util": "1.1"},
    {"ld-tool": "1.0", "ld-core": "1.0"},
]
#: Method -> weight in the mix.
MIX: Final = {"status": 30, "resolve": 25, "sync": 20, "cache.stats": 15, "cache.dir": 10}


@dataclass
class LoadStats:
    """What the load run measured."""

    clients: int
    per_client: int
    latencies: dict[str, list[float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rss_before_kib: int | None = None
    peak_rss_kib: int | None = None

    @property
    def requests(self) -> int:
        """Return the number of requests answered or failed."""
        return sum(len(v) for v in self.latencies.values())


def percentile(values: list[float], q: float) -> float:
    """Return the ``q`` percentile (0-100) of ``values`` by the nearest-rank method."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def _prepare(w: World, clients: int) -> tuple[list[Path], list[Path], list[Path]]:
    for spec in SPECS:
        w.index.add(spec)
    inputs = []
    for n, text in enumerate(COMPILES):
        path = w.work / f"load-{n}.in"
        path.write_text(text, encoding="utf-8")
        inputs.append(path)
    pins = []
    for n, pinset in enumerate(SYNCS):
        path = w.work / f"load-{n}.txt"
        path.write_text("".join(f"{k}=={v}\n" for k, v in sorted(pinset.items())))
        pins.append(path)
    template = make_venv(w.work / "load-venv")
    venvs = []
    for n in range(clients):
        venv = w.work / f"load-venv-{n:02d}"
        shutil.copytree(template, venv, symlinks=True)
        venvs.append(venv)
    return inputs, pins, venvs


def run_load(
    w: World, *, clients: int, per_client: int, seed: int, log: Callable[[str], None]
) -> LoadStats:
    """Run ``clients`` threads of ``per_client`` requests each against the world's daemon."""
    stats = LoadStats(clients, per_client, {m: [] for m in MIX})
    inputs, pins, venvs = _prepare(w, clients)
    if w.pid is None:
        w.start()
    stats.rss_before_kib = w.peak_rss_kib()
    pid = w.pid
    cache_dir = os.fspath(w.env.cache)
    index = IndexOptions(index_url=w.index_url)
    env = ClientEnv(cwd=os.fspath(w.work), path=os.environ.get("PATH", ""))
    guard = threading.Lock()
    barrier = threading.Barrier(clients)
    methods = list(MIX)
    weights = list(MIX.values())

    def client(n: int) -> None:
        rng = random.Random(f"{seed}-{n}")
        venv = venvs[n]
        synced = 0
        with w.transport() as (t, _):
            barrier.wait()
            for i in range(per_client):
                method = rng.choices(methods, weights)[0]
                problem = ""
                started = time.monotonic()
                try:
                    if method == "status":
                        st = t.call("status", StatusParams(), StatusResult)
                        if st.pid != pid:
                            problem = f"status names pid {st.pid}, not {pid}"
                    elif method == "resolve":
                        k = rng.randrange(len(inputs))
                        res = t.call(
                            "resolve",
                            ResolveParams(
                                env=env, requirement_files=[os.fspath(inputs[k])], index=index
                            ),
                            ResolveResult,
                        )
                        got = {p.name: p.version for p in res.packages}
                        want = list(COMPILES.values())[k]
                        if got != want:
                            problem = f"resolve of {inputs[k].name} gave {got}, expected {want}"
                    elif method == "sync":
                        k = synced % len(SYNCS)
                        synced += 1
                        t.call(
                            "sync",
                            SyncParams(
                                env=env,
                                requirement_files=[os.fspath(pins[k])],
                                index=index,
                                python=PythonOptions(python=os.fspath(venv)),
                            ),
                            SyncResult,
                        )
                        found = checks.check_environment(site_packages(venv), SYNCS[k])
                        if found:
                            problem = f"sync of {pins[k].name}: {'; '.join(found[:3])}"
                    elif method == "cache.stats":
                        cs = t.call("cache.stats", CacheStatsParams(), CacheStatsResult)
                        if cs.path != cache_dir or not cs.buckets:
                            problem = f"cache.stats answered {cs.path} with {len(cs.buckets)}"
                    else:
                        cd = t.call("cache.dir", CacheDirParams(), CacheDirResult)
                        if cd.path != cache_dir:
                            problem = f"cache.dir answered {cd.path}, expected {cache_dir}"
                except (RpcError, OSError, RuntimeError) as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = time.monotonic() - started
                with guard:
                    stats.latencies[method].append(elapsed)
                    if problem:
                        stats.failures.append(f"client {n} request {i} ({method}): {problem}")

    threads = [threading.Thread(target=client, args=(n,), name=f"load-{n}") for n in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats.seconds = time.monotonic() - started
    stats.peak_rss_kib = w.peak_rss_kib()
    log(
        f"load: {stats.requests} requests from {clients} clients in {stats.seconds:.1f} s, "
        f"{len(stats.failures)} failures"
    )
    return stats
