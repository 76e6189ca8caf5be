"""cache-fill (issue 3): download and unpack every wheel of a pinned set into an empty cache.

Each round, interleaved with the order rotating:

* burrow cold: a fresh cache and a fresh daemon (``burrow daemon start``, timed as its own row),
  then ``burrow --json prefetch --python-version X.Y.Z -r SET.txt``; its JSON must list every pin.
* burrow warm: right after, the same command again, then once more with ``--offline``; both must
  find every wheel cached (``"cached": true``), the offline one must succeed, and
  ``burrow cache stats`` must count no new entry in any bucket between before and after: no
  network request was needed.
* uv cold: ``uv venv`` (untimed, ``--no-cache``) makes a throwaway venv, then
  ``uv pip install --no-deps -r SET.txt`` into it with a fresh ``--cache-dir`` is timed. uv does
  a little more work than burrow here (it also links each unpacked wheel into the venv).

The target: burrow cold within 1.0x of uv cold (ratio of medians; issue 17 tightened issue 3's
1.2x). A second table gives each tool's CPU time for the same fills: on a machine of few CPUs a
fill is bound by CPU, and the wall-clock ratio follows the CPU ratio.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.daemon import DaemonError
from bench.pins import read_pins
from bench.report import RatioColumn, Row, SuiteResult, Table, fmt_seconds
from bench.timing import Outcome, Series, rotated, run_timed
from bench.tools import clean_env, load_average

NAME = "cache-fill"
TARGET_RATIO = 1.0
TIMEOUT = 1800.0
#: Room one round's caches take at most (burrow's and uv's, the large set: about 2 GiB).
ROUND_BYTES = 4 * 2**30

BURROW = "burrow"
UV = "uv"


@dataclass
class _State:
    cold: dict[str, Series] = field(default_factory=lambda: {BURROW: Series(), UV: Series()})
    #: CPU seconds of each cold fill: burrow's daemon, workers and client; uv's process.
    cpu: dict[str, Series] = field(default_factory=lambda: {BURROW: Series(), UV: Series()})
    start: Series = field(default_factory=Series)
    warm: Series = field(default_factory=Series)
    offline: Series = field(default_factory=Series)
    downloaded: list[int] = field(default_factory=list)
    new_entries: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _wheels(outcome: Outcome) -> list[dict[str, Any]]:
    """Return the ``wheels`` of a ``burrow --json prefetch`` result."""
    try:
        data = json.loads(outcome.stdout)
    except json.JSONDecodeError:
        return []
    wheels = data.get("wheels") if isinstance(data, dict) else None
    return [w for w in wheels if isinstance(w, dict)] if isinstance(wheels, list) else []


def _burrow_round(
    ctx: Context, home: Path, pins_file: Path, n_pins: int, st: _State, *, keep: bool
) -> None:
    daemon = ctx.daemon(home)
    try:
        try:
            st.start.record(daemon.start())
        except DaemonError as exc:
            st.problems.append(f"`burrow daemon start` failed:\n\n{exc}")
            return
        argv: list[str | Path] = [
            "--json",
            "prefetch",
            "--python-version",
            ctx.options.python_version,
            "-r",
            pins_file,
        ]
        spent = daemon.cpu()
        cold = daemon.run(*argv, timeout=TIMEOUT)
        spent = daemon.cpu() - spent
        if not st.cold[BURROW].record(cold):
            st.problems.append(
                f"burrow cold prefetch failed:\n\n{cold.describe()}\n\ndaemon log:\n\n"
                f"```\n{daemon.log_tail()}\n```"
            )
            return
        st.cpu[BURROW].samples.append(spent + (cold.cpu or 0.0))
        wheels = _wheels(cold)
        fetched = [w for w in wheels if not w.get("cached")]
        st.downloaded.append(sum(int(w.get("size") or 0) for w in fetched))
        if len(wheels) != n_pins or len(fetched) != n_pins:
            st.problems.append(
                f"burrow cold prefetch listed {len(wheels)} wheels, {len(fetched)} fetched, for "
                f"{n_pins} pins in a fresh cache: `{cold.command()}`"
            )
        before = daemon.cache_entries()
        for series, extra in ((st.warm, []), (st.offline, ["--offline"])):
            warm = daemon.run(*argv, *extra, timeout=TIMEOUT)
            label = "warm prefetch" + (" --offline" if extra else "")
            if not series.record(warm):
                st.problems.append(f"burrow {label} failed:\n\n{warm.describe()}")
                continue
            uncached = [w.get("name") for w in _wheels(warm) if not w.get("cached")]
            if uncached:
                st.problems.append(
                    f"burrow {label} fetched {len(uncached)} wheels again "
                    f"({', '.join(map(str, uncached[:10]))}): `{warm.command()}`"
                )
        after = daemon.cache_entries()
        grown = [
            f"{bucket} {before.get(bucket, 0)} -> {count}"
            for bucket, count in after.items()
            if count > before.get(bucket, 0)
        ]
        if grown:
            st.new_entries.append("; ".join(grown))
            st.problems.append(
                f"the warm prefetches added cache entries ({'; '.join(grown)}): they went to "
                "the network"
            )
    finally:
        ctx.release(daemon, remove=not keep)


def _uv_round(ctx: Context, home: Path, pins_file: Path, st: _State) -> None:
    uv = ctx.tools.uv
    assert uv is not None
    home.mkdir(parents=True, exist_ok=True)
    env = clean_env()
    venv = home / "venv"
    made = run_timed(
        [uv, "venv", "--no-config", "--no-cache", "--python", ctx.tools.python, venv],
        env=env,
        cwd=home,
        timeout=300,
    )
    if not made.ok:
        st.problems.append(f"`uv venv` failed:\n\n{made.describe()}")
        shutil.rmtree(home, ignore_errors=True)
        return
    argv: list[str | Path] = [
        uv,
        "pip",
        "install",
        "--no-config",
        "--cache-dir",
        home / "uv-cache",
        "--python",
        venv / "bin" / "python",
        "--no-deps",
        "-r",
        pins_file,
    ]
    outcome = run_timed(argv, env=env, cwd=home, timeout=TIMEOUT)
    if not st.cold[UV].record(outcome):
        st.problems.append(f"uv cold install failed:\n\n{outcome.describe()}")
    elif outcome.cpu is not None:
        st.cpu[UV].samples.append(outcome.cpu)


def run(ctx: Context) -> SuiteResult:
    """Run the suite."""
    opts = ctx.options
    set_name, runs = opts.fill_set, opts.fill_runs
    pins_file = ctx.set_file(set_name, ".txt")
    n_pins = len(read_pins(pins_file) or {})
    result = SuiteResult(
        NAME, f"cache-fill: wheels of `{set_name}.txt` into an empty cache (issues 3 and 17)"
    )
    result.load_start = load_average()
    started = time.monotonic()
    result.method = [
        f"Set `{set_name}.txt`: {n_pins} pins. {runs} round(s); in each, burrow and uv run "
        "interleaved (the order rotates each round), each with a fresh cache.",
        "burrow cold: fresh cache + fresh daemon (`burrow daemon start` first, timed as its own "
        "row), then `burrow --json prefetch --python-version "
        f"{opts.python_version} -r SET.txt`.",
        "uv cold: `uv venv --no-cache` (untimed), then `uv pip install --no-deps -r SET.txt` "
        "into it with a fresh `--cache-dir`. uv also links every wheel into the venv; burrow "
        "only fills its cache.",
        "burrow warm: the same prefetch right after, then with `--offline`; both must report "
        "every wheel cached, and `burrow cache stats` must show no new entry afterwards "
        "(no network request).",
        f"Target: burrow cold / uv cold <= {TARGET_RATIO}.",
    ]
    # Removing a round's trees (tens of thousands of files) right before the next tool runs
    # slowed that tool by whatever it was: ext4 skips inodes freed within the last minute or
    # more when it allocates new ones, scanning them one by one on every file created near
    # them (perf: ``recently_deleted`` took up to 60% of an unpack). So the trees stay until
    # the last round, when the disk has room for them all.
    keep = shutil.disk_usage(ctx.root).free > runs * ROUND_BYTES
    result.method.append(
        "The rounds' caches are removed after the last round, so that no tool's files are "
        "created among inodes another tool's round just freed (ext4 scans those)."
        if keep
        else "The disk is too small to keep every round: each round's caches are removed "
        "after it, which adds kernel work (ext4 scans freed inodes) to the round after."
    )
    st = _State()
    for r in range(runs):
        ctx.log(f"{NAME}: round {r + 1}/{runs} ({set_name})")
        for tool in rotated([BURROW, UV], r):
            home = ctx.root / f"fill{r}" / tool
            if tool == BURROW:
                _burrow_round(ctx, home, pins_file, n_pins, st, keep=keep)
            else:
                _uv_round(ctx, home, pins_file, st)
        if not keep:
            shutil.rmtree(ctx.root / f"fill{r}", ignore_errors=True)
    for r in range(runs):
        shutil.rmtree(ctx.root / f"fill{r}", ignore_errors=True)

    cold = Table("Cold fill", [BURROW, UV], [RatioColumn("burrow/uv", BURROW, UV)], rows=[])
    mib = [d / 2**20 for d in st.downloaded]
    row = Row(
        f"`{set_name}.txt` cold ({n_pins} wheels)",
        st.cold,
        target=f"<= {TARGET_RATIO}x uv",
        note=f"burrow downloaded {max(mib):.1f} MiB" if mib else "",
    )
    ratio = cold.ratio(row, cold.ratios[0])
    row.verdict = None if ratio is None else ratio <= TARGET_RATIO
    cold.rows.append(row)
    result.tables.append(cold)
    # On two cores a fill is bound by CPU, so the work each tool does tells where the wall
    # time can still come from.
    cpu = Table(
        "CPU of the cold fill (user + system)",
        [BURROW, UV],
        [RatioColumn("burrow/uv", BURROW, UV)],
        rows=[
            Row(
                f"`{set_name}.txt` cold: burrow's daemon, unpack workers and client; uv",
                st.cpu,
                note=f"{os.cpu_count()} CPUs",
            )
        ],
    )
    result.tables.append(cpu)

    no_net = not st.new_entries and bool(st.offline.samples) and not st.offline.failures
    warm = Table("Warm repeat (burrow only) and daemon start", [BURROW], [], rows=[])
    warm.rows += [
        Row(f"`{set_name}.txt` warm prefetch", {BURROW: st.warm}),
        Row(
            f"`{set_name}.txt` warm prefetch `--offline`",
            {BURROW: st.offline},
            target="no network: offline succeeds, no new cache entries",
            verdict=no_net if st.offline.attempts else None,
        ),
        Row("`burrow daemon start` (fresh cache)", {BURROW: st.start}),
    ]
    result.tables.append(warm)
    result.problems += st.problems
    result.load_end = load_average()
    result.seconds = time.monotonic() - started
    ctx.log(f"{NAME}: done in {fmt_seconds(result.seconds)}")
    return result
