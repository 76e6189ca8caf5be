"""kill -9 the daemon at random points of a sync, a cache fill and a build, then check.

Each iteration sends one request over the socket (the client library, so the harness sees the
request's ``$/progress`` phases), SIGKILLs the daemon after a delay drawn from a seeded RNG,
restarts it with ``burrow daemon start`` and reads the cache and the environment from the
file system (:mod:`reliability.checks`). Then the same request, through the real CLI, must
succeed and leave the wanted state; temporary files the kill left must be gone by then.

Half the delays are uniform over a whole uninterrupted request and half uniform over the
part that changes things (removing and linking files for a sync, downloading and unpacking
for a fill, the backend run for a build), timed once before the iterations; the phase a kill
landed in is the last ``$/progress`` phase the request had sent (for a build: whether the
log says the build started and whether its wheel was stored).
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from burrowd.client.connection import DaemonUnavailable
from burrowd.protocol import jsonrpc
from burrowd.protocol.errors import ErrorObject
from burrowd.protocol.messages import (
    ClientEnv,
    IndexOptions,
    InstallOptions,
    PrefetchParams,
    ProgressParams,
    PythonOptions,
    SyncParams,
)
from reliability import checks, sets
from reliability.world import HarnessError, World, make_venv, site_packages
from tests.e2e.helpers import wait_until
from tests.install_e2e.support import TRASH_DIR

__all__ = [
    "CrashStats",
    "Finding",
    "KillOutcome",
    "Scenario",
    "crash_builds",
    "crash_fill",
    "crash_sync",
]

#: The phase of a kill that came after the request's reply (the daemon was idle).
AFTER_REPLY = "after the reply"
BEFORE_PROGRESS = "before any progress"


@dataclass(frozen=True)
class Finding:
    """One violation: what was wrong, after which kill."""

    scenario: str
    iteration: int
    phase: str
    check: str  # "cache", "environment", "repair", "temp", "build"
    problem: str


@dataclass
class CrashStats:
    """What one scenario's iterations found."""

    scenario: str
    iterations: int = 0
    phases: collections.Counter[str] = field(default_factory=collections.Counter)
    findings: list[Finding] = field(default_factory=list)
    repairs_ok: int = 0
    repairs_failed: int = 0
    seconds: float = 0.0
    #: Kills after which the file system needed a recovery (seen before the restart).
    half_before_restart: int = 0
    #: Iterations whose check found something, per check.
    failed: collections.Counter[str] = field(default_factory=collections.Counter)

    def add(self, iteration: int, phase: str, check: str, problems: list[str]) -> None:
        """Record the problems one check found after one kill."""
        if problems:
            self.failed[check] += 1
        self.findings += [Finding(self.scenario, iteration, phase, check, p) for p in problems]

    def repaired(self, iteration: int, phase: str, problems: list[str]) -> None:
        """Record how the repair request after one kill went (``problems``: none if well)."""
        self.add(iteration, phase, "repair", problems)
        if problems:
            self.repairs_failed += 1
        else:
            self.repairs_ok += 1

    def failures(self, check: str) -> list[Finding]:
        """Return the findings of one check."""
        return [f for f in self.findings if f.check == check]


@dataclass
class KillOutcome:
    """How one killed request went."""

    phase: str
    delay: float
    replied: bool
    timeline: list[tuple[float, str]]


def _phase_label(progress: ProgressParams) -> str:
    return progress.phase


def request_and_kill(
    w: World, method: str, params: msgspec.Struct, delay: float | None
) -> KillOutcome:
    """Send one request and SIGKILL the daemon ``delay`` seconds later (``None``: never).

    Return the phase the request was in at the kill. The daemon is dead on return unless
    ``delay`` is ``None`` (then the request ran to its end, for the timing runs).
    """
    timeline: list[tuple[float, str]] = []
    guard = threading.Lock()
    state: dict[str, str] = {}
    with w.transport() as (transport, info):
        pid = info.pid
        w.pid = pid
        start = time.monotonic()

        def on_note(env: jsonrpc.Envelope) -> None:
            if env.method != jsonrpc.PROGRESS:
                return
            with contextlib.suppress(msgspec.ValidationError, msgspec.DecodeError):
                progress = jsonrpc.decode_as(env.params, ProgressParams)
                with guard:
                    timeline.append((time.monotonic() - start, _phase_label(progress)))

        def kill(phase: str | None = None) -> None:
            with guard:
                if "phase" in state:
                    return
                state["phase"] = phase or (timeline[-1][1] if timeline else BEFORE_PROGRESS)
                os.kill(pid, signal.SIGKILL)

        timer = threading.Timer(delay, kill) if delay is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        replied = False
        try:
            reply = transport.call_raw(method, params, on_note)
            replied = True
            if delay is None and isinstance(reply.error, ErrorObject):
                raise HarnessError(f"{method} failed: {reply.error.message}")
        except (DaemonUnavailable, OSError, msgspec.DecodeError):
            if delay is None:
                raise
        finally:
            if timer is not None:
                timer.cancel()
                if replied:
                    kill(AFTER_REPLY)
                timer.join()
    if delay is not None:
        w.wait_gone()
    return KillOutcome(state.get("phase", ""), delay or 0.0, replied, timeline)


def _leftovers(names: set[str]) -> list[str]:
    """Describe temporary entries a kill left that the next request did not remove."""
    if not names:
        return []
    kinds = collections.Counter(n.split("-", 1)[0] + "-*" for n in names)
    what = ", ".join(f"{k} x{c}" for k, c in sorted(kinds.items()))
    return [f"{len(names)} temporary entries of the killed daemon still in .tmp ({what})"]


def _window(timeline: list[tuple[float, str]], phases: set[str], end: float) -> tuple[float, float]:
    """Return when the first of ``phases`` started and when the phase after them started."""
    begin: float | None = None
    for moment, phase in timeline:
        if phase in phases and begin is None:
            begin = moment
        elif begin is not None and phase not in phases:
            return begin, moment
    if begin is None:
        return 0.0, end
    return begin, end


def _delay(rng: random.Random, budget: Budget, total: float, window: tuple[float, float]) -> float:
    if rng.random() >= budget.focus:
        return rng.uniform(0.0, total * 1.1)
    return rng.uniform(*window)


def _client_env(w: World) -> ClientEnv:
    return ClientEnv(cwd=os.fspath(w.work), path=os.environ.get("PATH", ""))


@dataclass
class Budget:
    """How many iterations, and until when."""

    iterations: int
    seconds: float
    #: The share of kills drawn from the part of a request that changes the disk.
    focus: float = 0.5
    started: float = field(default_factory=time.monotonic)

    def more(self, done: int) -> bool:
        """Return whether another iteration fits."""
        return done < self.iterations and time.monotonic() - self.started < self.seconds


Log = Callable[[str], None]
#: One crash scenario: kill the daemon at random points of some work, check, repair, repeat.
Scenario = Callable[[World, random.Random, Budget, Log], CrashStats]


def _uninterrupted(
    w: World, method: str, params: msgspec.Struct, reset: Callable[[], None], *, runs: int
) -> tuple[KillOutcome, float]:
    """Run the request ``runs`` times to its end, ``reset`` before each; return the last
    run and how long it took (the scale of the random kill delays)."""
    outcome, total = KillOutcome("", 0.0, True, []), 0.0
    for _ in range(runs):
        reset()
        started = time.monotonic()
        outcome = request_and_kill(w, method, params, None)
        total = time.monotonic() - started
    return outcome, total


def _restart(w: World) -> None:
    w.start()
    if not w.settle():
        raise HarnessError("the restarted daemon did not settle within 15 s")


# -- sync -------------------------------------------------------------------------------------


def crash_sync(w: World, rng: random.Random, budget: Budget, log: Log) -> CrashStats:
    """Kill syncs of a venv from the old pins to the new ones; check and repair each time."""
    stats = CrashStats("sync")
    t0 = time.monotonic()
    sets.publish(w.index, sets.OLD, sets.NEW)
    old_txt = sets.write_pins(w.work / "old.txt", sets.OLD)
    new_txt = sets.write_pins(w.work / "new.txt", sets.NEW)
    venv = w.work / "venv"
    template = w.work / "venv-old"
    site = site_packages(venv)
    make_venv(venv)
    if w.pid is None:
        w.start()
    w.cli_ok("sync", old_txt, "-p", venv, "-i", w.index_url, "-q")
    problems = checks.check_environment(site, sets.OLD)
    if problems:
        raise HarnessError(f"the old set did not install cleanly: {problems[:5]}")
    shutil.copytree(venv, template, symlinks=True)
    params = SyncParams(
        env=_client_env(w),
        requirement_files=[os.fspath(new_txt)],
        index=IndexOptions(index_url=w.index_url),
        python=PythonOptions(python=os.fspath(venv)),
        options=InstallOptions(reinstall_packages=[sets.REINSTALL]),
    )

    def restore() -> None:
        # The daemon empties the venv's trash just after it answers.
        wait_until(lambda: not (venv / TRASH_DIR).exists(), 10.0)
        shutil.rmtree(venv)
        shutil.copytree(template, venv, symlinks=True)

    # Two timing runs: the first downloads the new wheels, the second is what iterations see.
    timing, total = _uninterrupted(w, "sync", params, restore, runs=2)
    window = _window(timing.timeline, {"uninstalling", "installing"}, total)
    log(
        f"sync: an uninterrupted sync takes {total:.2f} s; it changes the venv from "
        f"{window[0]:.2f} s to {window[1]:.2f} s"
    )
    while budget.more(stats.iterations):
        i = stats.iterations
        stats.iterations += 1
        restore()
        before = checks.temp_entries(w.env.cache)
        kill = request_and_kill(w, "sync", params, _delay(rng, budget, total, window))
        stats.phases[kill.phase] += 1
        if checks.check_environment(site, sets.OLD, sets.NEW):
            stats.half_before_restart += 1
        _restart(w)
        debris = checks.temp_entries(w.env.cache) - before
        stats.add(i, kill.phase, "cache", checks.check_cache(w.env.cache))
        stats.add(i, kill.phase, "environment", checks.check_environment(site, sets.OLD, sets.NEW))
        done = w.cli("sync", new_txt, "-p", venv, "-i", w.index_url, "-q")
        if done.returncode != 0:
            stats.repaired(i, kill.phase, [f"burrow sync failed: {done.stderr.strip()}"])
            continue
        stats.repaired(i, kill.phase, checks.check_environment(site, sets.NEW))
        stats.add(i, kill.phase, "cache", checks.check_cache(w.env.cache))
        stats.add(i, kill.phase, "temp", _leftovers(debris & checks.temp_entries(w.env.cache)))
        if stats.iterations % 10 == 0:
            log(f"sync: {stats.iterations} kills, {len(stats.findings)} findings")
    stats.seconds = time.monotonic() - t0
    return stats


# -- cache fill -------------------------------------------------------------------------------


def crash_fill(w: World, rng: random.Random, budget: Budget, log: Log) -> CrashStats:
    """Kill prefetches of both pin sets into an empty cache; check and repair each time."""
    stats = CrashStats("cache fill")
    t0 = time.monotonic()
    sets.publish(w.index, sets.OLD, sets.NEW)
    every = sorted({(n, v) for pinset in (sets.OLD, sets.NEW) for n, v in pinset.items()})
    fill_txt = w.work / "fill.txt"
    fill_txt.write_text("".join(f"{n}=={v}\n" for n, v in every), encoding="utf-8")
    if w.pid is None:
        w.start()
    params = PrefetchParams(
        env=_client_env(w),
        requirement_files=[os.fspath(fill_txt)],
        index=IndexOptions(index_url=w.index_url),
    )

    def empty() -> None:
        w.cli_ok("cache", "clean", "-q")

    timing, total = _uninterrupted(w, "prefetch", params, empty, runs=1)
    window = _window(timing.timeline, {"downloading"}, total)
    log(f"fill: an uninterrupted fill of {len(every)} wheels takes {total:.2f} s")
    while budget.more(stats.iterations):
        i = stats.iterations
        stats.iterations += 1
        empty()
        before = checks.temp_entries(w.env.cache)
        kill = request_and_kill(w, "prefetch", params, _delay(rng, budget, total, window))
        stats.phases[kill.phase] += 1
        _restart(w)
        debris = checks.temp_entries(w.env.cache) - before
        stats.add(i, kill.phase, "cache", checks.check_cache(w.env.cache))
        done = w.cli("prefetch", "-r", fill_txt, "-i", w.index_url, "-q")
        if done.returncode != 0:
            stats.repaired(i, kill.phase, [f"burrow prefetch failed: {done.stderr.strip()}"])
            continue
        after = checks.check_cache(w.env.cache)
        archives = w.env.cache / "archive-v0"
        count = sum(1 for _ in archives.iterdir()) if archives.is_dir() else 0
        if count < len(every):
            after.append(f"archive-v0 holds {count} archives after the fill, expected {len(every)}")
        stats.repaired(i, kill.phase, after)
        stats.add(i, kill.phase, "temp", _leftovers(debris & checks.temp_entries(w.env.cache)))
        if stats.iterations % 10 == 0:
            log(f"fill: {stats.iterations} kills, {len(stats.findings)} findings")
    stats.seconds = time.monotonic() - t0
    return stats


# -- builds -----------------------------------------------------------------------------------


def crash_builds(w: World, rng: random.Random, budget: Budget, log: Log) -> CrashStats:
    """Kill builds of a slow ``setup.py`` sdist; no built wheel may survive a killed build."""
    stats = CrashStats("build")
    t0 = time.monotonic()
    sets.add_slow_sdist(w.index, w.work / "sdists")
    name = sets.SLOW_BUILD.name
    pin = f"{name}=={sets.SLOW_BUILD.version}"
    if w.pid is None:
        w.start()
    params = PrefetchParams(
        env=_client_env(w), requirements=[pin], index=IndexOptions(index_url=w.index_url)
    )

    def forget() -> None:
        w.cli_ok("cache", "clean", name, "-q")

    # The first build also makes the isolated build environment; time the second.
    _, total = _uninterrupted(w, "prefetch", params, forget, runs=2)
    log(f"build: an uninterrupted build takes {total:.2f} s")
    while budget.more(stats.iterations):
        i = stats.iterations
        stats.iterations += 1
        forget()
        before = checks.temp_entries(w.env.cache)
        w.mark_log()
        # The backend runs for most of a build; the start is the download and the set-up.
        kill = request_and_kill(
            w, "prefetch", params, _delay(rng, budget, total, (0.25 * total, 0.9 * total))
        )
        stored = checks.built_wheels(w.env.cache, name)
        orphans = checks.lingering_processes(w.env.cache)
        started_build = f"building {name.replace('-', '_')}" in w.new_log()
        if stored:
            phase = "after the wheel was stored"
        elif started_build:
            phase = "while the backend ran"
        else:
            phase = "before the build"
        stats.phases[phase] += 1
        _restart(w)
        debris = checks.temp_entries(w.env.cache) - before
        problems = checks.check_cache(w.env.cache)
        if not stored and checks.built_wheels(w.env.cache, name):
            problems.append(f"a built wheel of {name} appeared after a kill {phase}")
        problems += [f"a build process outlived the daemon: {p}" for p in orphans]
        stats.add(i, phase, "cache", problems)
        done = w.cli("prefetch", pin, "-i", w.index_url, "-q")
        after = checks.check_cache(w.env.cache)
        if done.returncode != 0:
            after.append(f"burrow prefetch failed: {done.stderr.strip()}")
        elif not checks.built_wheels(w.env.cache, name):
            after.append(f"no built wheel of {name} after the next build")
        stats.repaired(i, phase, after)
        stats.add(i, phase, "temp", _leftovers(debris & checks.temp_entries(w.env.cache)))
        del kill
    stats.seconds = time.monotonic() - t0
    return stats
