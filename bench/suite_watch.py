"""watch: from saving a watched requirements file to a synced venv, burrow vs uv.

``burrow watch add requirements.in`` makes the daemon resolve the file on every save and
prefetch every wheel of the result in the background, at low priority. This suite measures
what that buys a person who edits ``requirements.in`` and then compiles and syncs.

Setup (untimed): one project folder per tool, each with ``requirements.in`` holding a real set
(``e-jupyter``, 97 pins; ``--quick``: ``c-web``) and its own venv (``python -m venv
--without-pip``). burrow gets a daemon of its own (fresh socket, cache, log and state dir, so
the watch list lands under the temp root), uv its own ``--cache-dir``. Each tool compiles and
syncs the base set once (warm caches, as for a project in use), then once more with the edit
in a scratch folder, which tells which packages the edit adds to the graph. Then ``burrow
watch add requirements.in`` (with the compile's options) in burrow's folder.

Why not ``d-large``: on this index uv and burrow pin it differently (uv takes python-dateutil
4.0.0 and backtracks boto3 down to 0.0.3; burrow and ``d-large.txt`` keep boto3 1.44 with
python-dateutil 2.9), and uv's compile of it takes 26-30 s of backtracking even warm, so the
rows would compare two graphs and mostly time uv's backtracking, not the watch.

The edit appends a few popular pure-Python packages that are not in the set
(:data:`ADDED`). Before every run the packages the edit adds (the direct ones and their new
dependencies) are removed from that tool's cache (``burrow cache clean NAME...``, ``uv cache
clean NAME...``), ``requirements.in`` and the compiled file go back to the base set and the
venv is synced back to it; for burrow the daemon is then left to settle (the watch warm,
nothing in flight): every run starts from the same state, warm for the base set and cold for
the new packages. At t0 the edited file is saved the way an editor saves (write a temporary
file, ``rename`` it over the old one), and then:

* (a) immediately: ``burrow compile requirements.in -o requirements.txt && burrow sync
  requirements.txt -p venv`` / ``uv pip compile requirements.in -o requirements-uv.txt && uv
  pip sync requirements-uv.txt --python venv-uv``; timed from t0 to the end of the sync;
* (b) after a pause: the same commands 2 s after t0 (the time from the editor to a terminal);
  timed from t0 (the pause included, for uv too) and also alone (what the warming left).

Runs are separate, not parallel: burrow's and uv's commands started at the same moment would
compete for the network and the CPU, and each would slow the other by an amount that depends
on which one gets ahead. Instead each round runs burrow (a), uv (a), burrow (b), uv (b), the
order rotating by one each round, so drifting load and network hit both tools alike; uv's
folder is not watched, so no warming runs during uv's runs.

For burrow the daemon's ``watch.event`` notifications are followed on a socket of the
benchmark's own: the first ``prefetch-done`` after t0 says when the warming finished. In (a)
the compile rewrites ``requirements.txt``, a file the watch follows, which cancels a warming
still running and starts another: that row is the end of whichever warming finished first.
During every burrow run a raw ``status`` request (a new connection, newline-delimited
JSON-RPC) is sent every 20 ms; each reply says the watch's state and whether a foreground
request runs, which sorts the samples. The target (design: ``status`` answers within 50 ms
while work runs) is held to the raw request; after the rounds, two more warmings with no
foreground command also time ``burrow daemon status`` (a whole client process) back to back.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from bench.context import Context
from bench.daemon import BurrowDaemon, DaemonError
from bench.pins import Pins, diff_pins, read_pins
from bench.report import RatioColumn, Row, SuiteResult, Table, fmt_seconds
from bench.suite_sync import dist_infos
from bench.timing import Outcome, Series, rotated, run_timed
from bench.tools import EXCLUDE_NEWER, clean_env, load_average

NAME = "watch"

BURROW = "burrow"
UV = "uv"
TOOLS = [BURROW, UV]
IMMEDIATE = "a"
PAUSED = "b"
#: The runs of one round, in the order of round 0 (rotated by one each round).
RUNS = [(BURROW, IMMEDIATE), (UV, IMMEDIATE), (BURROW, PAUSED), (UV, PAUSED)]

BASE_SET = "e-jupyter"
QUICK_SET = "c-web"
#: What the edit appends: popular pure-Python packages with a few dependencies of their own,
#: none of them in either set.
ADDED = ("flake8", "mkdocs", "rich")
#: Seconds from the save to the commands in scenario (b).
PAUSE = 2.0
#: Seconds between two raw ``status`` requests.
PROBE_INTERVAL = 0.020
#: The design's bound on ``status`` while work runs.
STATUS_TARGET = 0.050
#: Extra warmings after the rounds that time ``burrow daemon status`` too.
CLI_PROBE_RUNS = 2
IDLE_SAMPLES = 50
TIMEOUT = 600.0
EVENT_TIMEOUT = 300.0
SETTLE_TIMEOUT = 300.0
#: How long the daemon must look idle before a run starts.
SETTLE_QUIET = 0.3

RAW = "raw `status` RPC"
CLI = "`burrow daemon status`"
WARMING = frozenset({"warming", "yielding"})
DONE_EVENTS = frozenset({"prefetch-done", "warming-failed"})


# -- JSON-RPC over the daemon's socket ---------------------------------------------------------


def _encode(method: str, params: dict[str, Any] | None = None) -> bytes:
    message = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    return json.dumps(message).encode() + b"\n"


def _reply(reader: BinaryIO, method: str) -> dict[str, Any]:
    """Read lines until the answer to request 1; return its result (notifications skipped)."""
    while True:
        line = reader.readline()
        if not line:
            raise DaemonError(f"the daemon closed the connection before answering {method}")
        message = json.loads(line)
        if isinstance(message, dict) and message.get("id") == 1:
            if "error" in message:
                raise DaemonError(f"{method} failed: {message['error']}")
            result = message.get("result")
            if not isinstance(result, dict):
                raise DaemonError(f"{method} answered {result!r}")
            return result


def rpc(sock_path: Path, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Send one request on a new connection and return its result."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(sock_path))
        sock.sendall(_encode(method, params))
        with sock.makefile("rb") as reader:
            return _reply(reader, method)


def timed_status(sock_path: Path) -> tuple[float, dict[str, Any]]:
    """Return how long a ``status`` request took (connect to reply read) and its result."""
    start = time.perf_counter()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(sock_path))
        sock.sendall(_encode("status"))
        with sock.makefile("rb") as reader:
            line = reader.readline()
    seconds = time.perf_counter() - start
    message = json.loads(line) if line else {}
    result = message.get("result") if isinstance(message, dict) else None
    return seconds, result if isinstance(result, dict) else {}


def _watch_state(status: dict[str, Any]) -> str:
    watches = status.get("watches")
    if isinstance(watches, list) and watches and isinstance(watches[0], dict):
        return str(watches[0].get("state", ""))
    return ""


def _settled(status: dict[str, Any]) -> bool:
    """Return whether the daemon is idle: every watch warm (or failed), nothing in flight."""
    if status.get("jobs") or status.get("foreground"):
        return False
    watches = status.get("watches")
    for watch in watches if isinstance(watches, list) else []:
        state = watch.get("state")
        if state == "failed":
            continue
        if state != "warm" or (watch.get("warmed_at") or 0) < (watch.get("changed_at") or 0):
            return False
    return True


class Events:
    """``watch.event`` notifications, followed on a connection of the benchmark's own."""

    def __init__(self, sock_path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(sock_path))
        self.sock.sendall(_encode("watch.events"))
        self.reader = self.sock.makefile("rb")
        _reply(self.reader, "watch.events")  # subscribed from here on
        self.sock.settimeout(None)
        self.events: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, name="watch-events", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for line in self.reader:
                message = json.loads(line)
                if isinstance(message, dict) and message.get("method") == "watch.event":
                    params = message.get("params")
                    if isinstance(params, dict):
                        with self.cond:
                            self.events.append(params)
                            self.cond.notify_all()
        except (OSError, ValueError):
            pass

    def wait_for(self, names: Iterable[str], after: float, timeout: float) -> dict[str, Any] | None:
        """Return the first event named in ``names`` stamped at or after ``after`` (epoch s)."""
        wanted = set(names)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for event in self.events:
                    if event.get("event") in wanted and float(event.get("at", 0)) >= after:
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.thread.is_alive():
                    return None
                self.cond.wait(remaining)

    def close(self) -> None:
        """Unsubscribe by closing the connection."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)
        self.reader.close()


@dataclass(frozen=True)
class Sample:
    """One ``status`` request: when it was sent, how long it took, what the daemon said."""

    at: float
    seconds: float
    state: str
    foreground: int
    http_requests: int


class Prober:
    """Sample ``status`` latency in a thread: raw requests on a fixed tick, or the CLI."""

    def __init__(self, sample: Callable[[], Sample | None], interval: float) -> None:
        self.sample = sample
        self.interval = interval
        self.samples: list[Sample] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="status-probe", daemon=True)

    def start(self) -> Prober:
        self.thread.start()
        return self

    def _loop(self) -> None:
        tick = time.perf_counter()
        while not self.stop_event.is_set():
            try:
                found = self.sample()
            except (OSError, ValueError, DaemonError):
                found = None
            if found is not None:
                self.samples.append(found)
            tick = max(tick + self.interval, time.perf_counter())
            self.stop_event.wait(max(0.0, tick - time.perf_counter()))

    def stop(self) -> list[Sample]:
        self.stop_event.set()
        self.thread.join(60)
        return self.samples


def raw_sampler(sock_path: Path) -> Callable[[], Sample]:
    def sample() -> Sample:
        at = time.time()
        seconds, status = timed_status(sock_path)
        return Sample(
            at,
            seconds,
            _watch_state(status),
            int(status.get("foreground", 0)),
            int(status.get("http_requests", 0)),
        )

    return sample


def cli_sampler(daemon: BurrowDaemon) -> Callable[[], Sample | None]:
    def sample() -> Sample | None:
        at = time.time()
        outcome = daemon.run("--json", "daemon", "status", timeout=60)
        if not outcome.ok:
            return None
        status = json.loads(outcome.stdout)
        return Sample(
            at,
            outcome.seconds,
            _watch_state(status),
            int(status.get("foreground", 0)),
            int(status.get("http_requests", 0)),
        )

    return sample


# -- the projects --------------------------------------------------------------------------------


@dataclass
class Project:
    """One tool's project folder: the input, the compiled file, the venv."""

    tool: str
    home: Path
    output_name: str
    base_in: str = ""
    base_out: str = ""

    @property
    def requirements(self) -> Path:
        return self.home / "requirements.in"

    @property
    def output(self) -> Path:
        return self.home / self.output_name

    @property
    def venv(self) -> Path:
        return self.home / ("venv" if self.tool == BURROW else "venv-uv")

    @property
    def edited_in(self) -> str:
        return self.base_in.rstrip("\n") + "\n" + "".join(f"{name}\n" for name in ADDED)


def save(path: Path, text: str) -> tuple[float, float]:
    """Save ``text`` as an editor does; return ``(perf_counter, time)`` just before the rename."""
    tmp = path.with_name(f".{path.name}.swp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    t0, t0_wall = time.perf_counter(), time.time()
    os.replace(tmp, path)
    return t0, t0_wall


@dataclass
class _Measured:
    """Everything the rounds record."""

    total: dict[str, dict[str, Series]] = field(
        default_factory=lambda: {s: {t: Series() for t in TOOLS} for s in (IMMEDIATE, PAUSED)}
    )
    compile: dict[str, dict[str, Series]] = field(
        default_factory=lambda: {s: {t: Series() for t in TOOLS} for s in (IMMEDIATE, PAUSED)}
    )
    sync: dict[str, dict[str, Series]] = field(
        default_factory=lambda: {s: {t: Series() for t in TOOLS} for s in (IMMEDIATE, PAUSED)}
    )
    after_pause: dict[str, Series] = field(default_factory=lambda: {t: Series() for t in TOOLS})
    warmed: dict[str, Series] = field(
        default_factory=lambda: {IMMEDIATE: Series(), PAUSED: Series()}
    )
    warm_before_sync: list[bool] = field(default_factory=list)
    downloaded: dict[str, list[int]] = field(default_factory=lambda: {IMMEDIATE: [], PAUSED: []})
    http_after_pause: list[int] = field(default_factory=list)
    raw_runs: list[list[Sample]] = field(default_factory=list)
    cli_runs: list[list[Sample]] = field(default_factory=list)
    #: Raw samples of the warmings that the CLI probe ran through too (its processes compete
    #: for the CPU with the daemon, so these are kept apart from the target).
    probe_raw_runs: list[list[Sample]] = field(default_factory=list)
    idle: list[Sample] = field(default_factory=list)
    setup: dict[str, float] = field(default_factory=dict)
    new_names: list[str] = field(default_factory=list)
    pins: dict[str, int] = field(default_factory=dict)


class _Suite:
    """The folders, the daemon and the commands of one run of the suite."""

    def __init__(self, ctx: Context, set_name: str, problems: list[str]) -> None:
        self.ctx = ctx
        self.set_name = set_name
        self.problems = problems
        self.home = ctx.root / NAME
        self.home.mkdir(parents=True, exist_ok=True)
        self.daemon = ctx.daemon(self.home / "burrow")
        self.env = clean_env()
        self.uv_cache = self.home / "uv-cache"
        self.projects = {
            BURROW: Project(BURROW, self.home / "pb", "requirements.txt"),
            UV: Project(UV, self.home / "pu", "requirements-uv.txt"),
        }
        self.events: Events | None = None
        self.watching = False
        self.expected: dict[str, Pins] = {}
        self.m = _Measured()

    # -- commands --------------------------------------------------------------------------

    def _target(self) -> list[str]:
        return [
            "--python-version",
            self.ctx.options.python_version,
            "--exclude-newer",
            EXCLUDE_NEWER,
        ]

    def burrow(self, cwd: Path, *args: str | Path) -> Outcome:
        argv = [self.ctx.tools.burrow, *args]
        return run_timed(argv, env=self.daemon.env, cwd=cwd, timeout=TIMEOUT)

    def uv(self, cwd: Path, *args: str | Path) -> Outcome:
        uv = self.ctx.tools.uv
        assert uv is not None
        return run_timed([uv, *args], env=self.env, cwd=cwd, timeout=TIMEOUT)

    def compile(self, p: Project) -> Outcome:
        out = p.output_name
        if p.tool == BURROW:
            return self.burrow(
                p.home, "-q", "compile", "requirements.in", "-o", out, *self._target()
            )
        return self.uv(
            p.home,
            *("pip", "compile", "--no-config", "-q", "--cache-dir", self.uv_cache),
            *self._target(),
            *("requirements.in", "-o", out),
        )

    def sync(self, p: Project) -> Outcome:
        if p.tool == BURROW:
            return self.burrow(p.home, "-q", "sync", p.output_name, "-p", p.venv)
        return self.uv(
            p.home,
            *("pip", "sync", "--no-config", "-q", "--cache-dir", self.uv_cache),
            *("--python", p.venv / "bin" / "python", p.output_name),
        )

    def clean(self, tool: str) -> Outcome:
        names = self.m.new_names
        if tool == BURROW:
            return self.burrow(self.home, "-q", "cache", "clean", *names)
        return self.uv(
            self.home, "cache", "clean", "--no-config", "-q", "--cache-dir", self.uv_cache, *names
        )

    def _ok(self, outcome: Outcome, what: str) -> bool:
        if not outcome.ok:
            self.problems.append(f"{what} failed:\n\n{outcome.describe()}")
        return outcome.ok

    def settle(self) -> bool:
        """Wait until the daemon has been idle for :data:`SETTLE_QUIET` seconds."""
        time.sleep(SETTLE_QUIET)  # a change just written is reported after the debounce
        deadline = time.monotonic() + SETTLE_TIMEOUT
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if _settled(rpc(self.daemon.socket, "status")):
                now = time.monotonic()
                quiet_since = quiet_since or now
                if now - quiet_since >= SETTLE_QUIET:
                    return True
            else:
                quiet_since = None
            time.sleep(0.05)
        self.problems.append(
            f"the daemon did not settle within {SETTLE_TIMEOUT:.0f} s: "
            f"`{json.dumps(rpc(self.daemon.socket, 'status').get('watches'))}`"
        )
        return False

    # -- setup -----------------------------------------------------------------------------

    def setup(self) -> bool:
        """Warm both tools for the base set, learn what the edit adds, add the watch."""
        base = self.ctx.set_file(self.set_name, ".in")
        if not base.is_file():
            self.problems.append(f"missing requirement set {base}")
            return False
        try:
            self.daemon.start()
        except DaemonError as exc:
            self.problems.append(f"`burrow daemon start` failed:\n\n{exc}")
            return False
        edited: dict[str, Pins] = {}
        for tool, p in self.projects.items():
            p.home.mkdir(parents=True, exist_ok=True)
            p.base_in = base.read_text()
            save(p.requirements, p.base_in)
            made = run_timed(
                [self.ctx.tools.python, "-m", "venv", "--without-pip", p.venv],
                env=self.env,
                cwd=p.home,
                timeout=300,
            )
            if not self._ok(made, "`python -m venv`"):
                return False
            compiled = self.compile(p)
            if not self._ok(compiled, f"{tool}: the setup compile of {self.set_name}"):
                return False
            synced = self.sync(p)
            if not self._ok(synced, f"{tool}: the setup sync of {self.set_name}"):
                return False
            self.m.setup[f"{tool} compile"] = compiled.seconds
            self.m.setup[f"{tool} sync"] = synced.seconds
            p.base_out = p.output.read_text()
            # The edit compiled once elsewhere: which packages it adds.
            scratch = self.home / f"scratch-{tool}"
            scratch.mkdir(exist_ok=True)
            save(scratch / "requirements.in", p.edited_in)
            probe = self.compile(Project(tool, scratch, p.output_name))
            if not self._ok(probe, f"{tool}: the setup compile of the edit"):
                return False
            edited[tool] = read_pins(scratch / p.output_name) or {}
            self.m.setup[f"{tool} compile of the edit"] = probe.seconds
            shutil.rmtree(scratch, ignore_errors=True)
        base_pins = {t: read_pins(p.output) or {} for t, p in self.projects.items()}
        if base_pins[BURROW] != base_pins[UV]:
            diff = diff_pins(base_pins[BURROW], base_pins[UV], BURROW, UV)
            self.problems.append(
                f"burrow and uv pin `{self.set_name}` differently:\n\n```\n"
                + "\n".join(diff)
                + "\n```"
            )
        if edited[BURROW] != edited[UV]:
            diff = diff_pins(edited[BURROW], edited[UV], BURROW, UV)
            self.problems.append(
                "burrow and uv pin the edited set differently (the rows compare different "
                "graphs):\n\n```\n" + "\n".join(diff) + "\n```"
            )
        self.expected = edited
        self.m.new_names = sorted({n for t in TOOLS for n in edited[t] if n not in base_pins[t]})
        self.m.pins = {"base": len(base_pins[BURROW]), "edited": len(edited[BURROW])}
        self.ctx.log(f"{NAME}: the edit adds {', '.join(self.m.new_names)}")
        self.events = Events(self.daemon.socket)
        burrow_p = self.projects[BURROW]
        added_at = time.time()
        watched = self.burrow(burrow_p.home, "watch", "add", "requirements.in", *self._target())
        if not self._ok(watched, "`burrow watch add`"):
            return False
        self.watching = True
        if self.events.wait_for(DONE_EVENTS, added_at, EVENT_TIMEOUT) is None:
            self.problems.append("the first warming of the watch did not finish")
            return False
        if not self.settle():
            return False
        for _ in range(IDLE_SAMPLES):
            self.m.idle.append(raw_sampler(self.daemon.socket)())
            time.sleep(PROBE_INTERVAL)
        return True

    # -- one run ---------------------------------------------------------------------------

    def prepare(self, tool: str) -> bool:
        """Start ``tool`` from the base set: new packages out of its cache, the venv reset."""
        p = self.projects[tool]
        if not self._ok(self.clean(tool), f"{tool}: cleaning the added packages from the cache"):
            return False
        save(p.output, p.base_out)
        save(p.requirements, p.base_in)
        if not self._ok(self.sync(p), f"{tool}: the sync back to the base set"):
            return False
        os.sync()
        # burrow: the watch warms the base set again (the clean dropped the daemon's memory
        # of metadata); start once that and anything else is done. uv: nothing of burrow's
        # may run during uv's runs either.
        return self.settle()

    def measure(self, tool: str, scenario: str) -> None:
        p = self.projects[tool]
        m = self.m
        prober = Prober(raw_sampler(self.daemon.socket), PROBE_INTERVAL) if tool == BURROW else None
        if prober is not None:
            prober.start()
            time.sleep(3 * PROBE_INTERVAL)
        t0, t0_wall = save(p.requirements, p.edited_in)
        if scenario == PAUSED:
            time.sleep(max(0.0, t0 + PAUSE - time.perf_counter()))
        start, start_wall = time.perf_counter(), time.time()
        compiled = self.compile(p)
        m.compile[scenario][tool].record(compiled)
        synced = self.sync(p) if compiled.ok else None
        end, end_wall = time.perf_counter(), time.time()
        if synced is not None:
            m.sync[scenario][tool].record(synced)
        last = synced if synced is not None else compiled
        label = f"{tool} ({scenario}) round"
        if last.ok:
            m.total[scenario][tool].add(end - t0)
            if scenario == PAUSED:
                m.after_pause[tool].add(end - start)
            self._check_result(p, label)
        else:
            m.total[scenario][tool].record(last)
            if scenario == PAUSED:
                m.after_pause[tool].record(last)
            self.problems.append(f"{label}: failed:\n\n{last.describe()}")
        if prober is None or self.events is None:
            return
        done = self.events.wait_for(DONE_EVENTS, t0_wall, EVENT_TIMEOUT)
        self.settle()
        samples = prober.stop()
        m.raw_runs.append(samples)
        if done is None:
            self.problems.append(f"{label}: no prefetch-done within {EVENT_TIMEOUT:.0f} s")
            return
        if done.get("event") != "prefetch-done":
            self.problems.append(f"{label}: the warming failed: {done.get('message')}")
            return
        m.warmed[scenario].add(float(done["at"]) - t0_wall)
        m.downloaded[scenario].append(int(done.get("downloaded", 0)))
        if scenario == IMMEDIATE:
            m.warm_before_sync.append(float(done["at"]) <= end_wall)
        else:
            before = [s.http_requests for s in samples if s.at + s.seconds <= start_wall]
            after = [s.http_requests for s in samples if s.at >= end_wall]
            if before and after:
                m.http_after_pause.append(after[0] - before[-1])

    def _check_result(self, p: Project, label: str) -> None:
        pins = read_pins(p.output) or {}
        want = self.expected.get(p.tool, {})
        if pins != want:
            diff = diff_pins(pins, want, "this run", "the setup compile")
            self.problems.append(
                f"{label} pinned differently:\n\n```\n" + "\n".join(diff) + "\n```"
            )
        have = dist_infos(p.venv)
        if have != len(pins):
            self.problems.append(
                f"{label} left {have} distributions in the venv for {len(pins)} pins"
            )

    def probe_cli(self) -> None:
        """A warming with no foreground command, sampled by raw requests and the CLI."""
        p = self.projects[BURROW]
        if self.events is None or not self.prepare(BURROW):
            return
        raw = Prober(raw_sampler(self.daemon.socket), PROBE_INTERVAL).start()
        cli = Prober(cli_sampler(self.daemon), PROBE_INTERVAL).start()
        time.sleep(3 * PROBE_INTERVAL)
        _, t0_wall = save(p.requirements, p.edited_in)
        done = self.events.wait_for(DONE_EVENTS, t0_wall, EVENT_TIMEOUT)
        self.m.probe_raw_runs.append(raw.stop())
        self.m.cli_runs.append(cli.stop())
        if done is None:
            self.problems.append("status probe: no prefetch-done")
        self.settle()

    def close(self) -> None:
        """Remove the watch, unsubscribe, stop the daemon, delete the folders."""
        try:
            if self.watching and self.daemon.pid is not None:
                removed = self.burrow(self.home, "-q", "watch", "remove", "--all")
                if not removed.ok:
                    self.problems.append(
                        f"`burrow watch remove --all` failed:\n\n{removed.describe()}"
                    )
        finally:
            if self.events is not None:
                self.events.close()
            self.ctx.release(self.daemon, remove=False)
            shutil.rmtree(self.home, ignore_errors=True)


# -- the report ---------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _dist_row(label: str, values: list[float]) -> str:
    if not values:
        return f"| {label} | 0 | — | — | — | — |"
    over = sum(1 for v in values if v >= STATUS_TARGET)
    return (
        f"| {label} | {len(values)} | {fmt_seconds(statistics.median(values))} | "
        f"{fmt_seconds(_pct(values, 0.95))} | {fmt_seconds(max(values))} | {over} |"
    )


def _per_run(
    runs: list[list[Sample]], pick: Callable[[Sample], bool], f: Callable[[list[float]], float]
) -> Series:
    series = Series()
    for run in runs:
        values = [s.seconds for s in run if pick(s)]
        if values:
            series.add(f(values))
    return series


def _during(s: Sample) -> bool:
    return s.state in WARMING


def _status_report(m: _Measured) -> tuple[Table, str]:
    def alone(s: Sample) -> bool:
        return s.state in WARMING and not s.foreground

    def with_fg(s: Sample) -> bool:
        return s.state in WARMING and bool(s.foreground)

    def fg_only(s: Sample) -> bool:
        return s.state not in WARMING and bool(s.foreground)

    raw_all = [s for run in m.raw_runs for s in run]
    probe_all = [s for run in m.probe_raw_runs for s in run]
    cli_all = [s for run in m.cli_runs for s in run]
    during = [s.seconds for s in raw_all if _during(s)]
    cli_during = [s.seconds for s in cli_all if _during(s)]
    table = Table(
        f"`status` latency while a warming runs (sampled every {PROBE_INTERVAL * 1000:.0f} ms)",
        [RAW, CLI],
        [],
    )
    note = (
        f"raw: {len(during)} samples in the rounds' warmings, median "
        f"{fmt_seconds(statistics.median(during))}, max {fmt_seconds(max(during))}"
        if during
        else "no raw sample fell inside a warming"
    )
    if cli_during:
        note += (
            f"; CLI: {len(cli_during)} samples (a whole client process), median "
            f"{fmt_seconds(statistics.median(cli_during))}, max {fmt_seconds(max(cli_during))}"
        )
    table.rows.append(
        Row(
            "max during each warming",
            {RAW: _per_run(m.raw_runs, _during, max), CLI: _per_run(m.cli_runs, _during, max)},
            target=f"< {STATUS_TARGET * 1000:.0f} ms (raw)",
            verdict=None if not during else max(during) < STATUS_TARGET,
            note=note,
        )
    )
    table.rows.append(
        Row(
            "median during each warming",
            {
                RAW: _per_run(m.raw_runs, _during, statistics.median),
                CLI: _per_run(m.cli_runs, _during, statistics.median),
            },
        )
    )
    lines = [
        "#### `status` latency, every sample",
        "",
        "Sorted by what the reply says: the watch's state (`warming`/`yielding` = a warming "
        "runs) and `foreground` (a compile or sync at work). In (a) a warming mostly waits "
        "(`pending`) while the compile and sync run: background work is held back then.",
        "",
        "| samples | n | median | p95 | max | >= 50 ms |",
        "| --- | --- | --- | --- | --- | --- |",
        _dist_row("raw, idle daemon (before the rounds)", [s.seconds for s in m.idle]),
        _dist_row("raw, warming, no foreground request", [s.seconds for s in raw_all if alone(s)]),
        _dist_row(
            "raw, warming while a compile/sync runs", [s.seconds for s in raw_all if with_fg(s)]
        ),
        _dist_row(
            "raw, compile/sync running, watch pending or warm",
            [s.seconds for s in raw_all if fg_only(s)],
        ),
        _dist_row("raw, any state (all burrow runs of the rounds)", [s.seconds for s in raw_all]),
        _dist_row(
            "raw, warming, while the CLI probe also runs",
            [s.seconds for s in probe_all if _during(s)],
        ),
        _dist_row("CLI, warming (whole `burrow daemon status` process)", cli_during),
        _dist_row("CLI, any state", [s.seconds for s in cli_all]),
    ]
    return table, "\n".join(lines)


def run(ctx: Context) -> SuiteResult:
    """Run the suite."""
    opts = ctx.options
    set_name = QUICK_SET if opts.quick else BASE_SET
    rounds = opts.warm_runs
    result = SuiteResult(NAME, "watch: save a watched requirements.in → synced venv, burrow vs uv")
    result.load_start = load_average()
    started = time.monotonic()
    suite = _Suite(ctx, set_name, result.problems)
    m = suite.m
    try:
        if suite.setup():
            for r in range(rounds):
                ctx.log(f"{NAME}: round {r + 1}/{rounds}")
                for tool, scenario in rotated(RUNS, r):
                    if suite.prepare(tool):
                        suite.measure(tool, scenario)
            for n in range(CLI_PROBE_RUNS):
                ctx.log(f"{NAME}: status probe {n + 1}/{CLI_PROBE_RUNS}")
                suite.probe_cli()
    finally:
        suite.close()

    added = ", ".join(f"`{a}`" for a in ADDED)
    new = ", ".join(m.new_names)
    result.method = [
        f"Base: `{set_name}.in` ({m.pins.get('base', '?')} pins), warm in both tools' caches "
        f"(compiled and synced once); the edit appends {added}, which brings "
        f"{m.pins.get('edited', 0) - m.pins.get('base', 0)} new pins ({new}). Before every run "
        "those are removed from the running tool's cache (`burrow cache clean` / `uv cache "
        "clean`), the files and the venv go back to the base set, and burrow's daemon is left "
        "to settle (watch warm, nothing in flight).",
        "t0: the edited `requirements.in` is saved as an editor does (temporary file, fsync, "
        "`rename` over the file); burrow's folder is watched (`burrow watch add "
        "requirements.in` with the compile's options).",
        "(a) at t0: `burrow -q compile requirements.in -o requirements.txt && burrow -q sync "
        "requirements.txt -p venv` / `uv pip compile ... -o requirements-uv.txt && uv pip sync "
        f"requirements-uv.txt --python venv-uv/bin/python`; (b) the same {PAUSE:.0f} s after "
        "t0. Both tools: `--python-version "
        f"{opts.python_version} --exclude-newer {EXCLUDE_NEWER}`, private caches, uv "
        "`--no-config`.",
        f"{rounds} round(s) of four separate runs, burrow (a), uv (a), burrow (b), uv (b), the "
        "order rotating each round: not in parallel, so the tools never share the network or "
        "the CPU during a measurement; uv's folder is not watched.",
        "Warming done: the `at` of the first `prefetch-done` event after t0 (the daemon's "
        "clock, the same machine). In (a) the compile rewrites `requirements.txt`, which the "
        "watch follows: a warming still running is cancelled and restarted, so that row is the "
        "end of the restarted one.",
        f"`status`: a raw request on a new connection every {PROBE_INTERVAL * 1000:.0f} ms "
        "during every burrow run; samples are sorted by the watch state and `foreground` count "
        f"in the reply. After the rounds, {CLI_PROBE_RUNS} warmings with no command run also "
        "time `burrow --json daemon status` back to back (a whole client process).",
    ]
    vs_uv = [RatioColumn("burrow/uv", BURROW, UV)]
    main = Table("Save → synced venv", TOOLS, vs_uv)
    main.rows += [
        Row("(a) immediately: t0 → sync done", m.total[IMMEDIATE]),
        Row("(a) compile", m.compile[IMMEDIATE]),
        Row("(a) sync", m.sync[IMMEDIATE]),
        Row(f"(b) {PAUSE:.0f} s pause: t0 → sync done", m.total[PAUSED], note="pause included"),
        Row("(b) compile + sync after the pause", m.after_pause),
        Row("(b) compile", m.compile[PAUSED]),
        Row("(b) sync", m.sync[PAUSED]),
        Row(
            "(b) t0 → warming done",
            {BURROW: m.warmed[PAUSED]},
            note=f"wheels the warming downloaded: {m.downloaded[PAUSED]}",
        ),
        Row(
            "(a) t0 → warming done",
            {BURROW: m.warmed[IMMEDIATE]},
            note=f"before the sync ended: {m.warm_before_sync}; downloaded: "
            f"{m.downloaded[IMMEDIATE]}",
        ),
    ]
    status_table, status_section = _status_report(m)
    result.tables += [main, status_table]
    setup = "; ".join(f"{k} {fmt_seconds(v)}" for k, v in m.setup.items())
    result.sections += [
        status_section,
        f"HTTP requests the daemon made while burrow's compile + sync ran after the pause (b), "
        f"per run: {m.http_after_pause} (0: the warming left nothing to fetch or revalidate).",
        f"Setup, once, untimed for the rows: {setup}.",
    ]
    result.load_end = load_average()
    result.seconds = time.monotonic() - started
    ctx.log(f"{NAME}: done in {fmt_seconds(result.seconds)}")
    return result
