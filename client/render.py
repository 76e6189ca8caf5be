"""All human output of the client: tables, progress bars and errors."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import msgspec

from burrowd.protocol.errors import RpcError
from burrowd.protocol.messages import (
    CachePruneResult,
    CacheStatsResult,
    EnvironmentChange,
    InstallResult,
    ListResult,
    PackageChange,
    PrefetchResult,
    ProgressParams,
    QueueInfo,
    ResolveResult,
    StatusResult,
    VenvResult,
    WatchEvent,
    WatchInfo,
)

__all__ = [
    "Progress",
    "format_bytes",
    "format_duration",
    "format_elapsed",
    "print_error",
    "print_json",
    "render_change",
    "render_freeze",
    "render_list",
    "render_status",
    "render_venv",
    "render_watch_event",
    "render_watches",
]


def format_bytes(n: float) -> str:
    """Return ``n`` bytes in a short human unit."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - the loop always returns


def format_duration(seconds: float) -> str:
    """Return a duration like ``3.2s``, ``4m 05s`` or ``2h 10m``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_elapsed(seconds: float) -> str:
    """Return a short duration as uv prints it: ``12ms``, ``1.34s``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.2f}s" if seconds < 60 else format_duration(seconds)


def print_json(value: Any, out: TextIO | None = None) -> None:
    """Print a result as pretty JSON (``--json``)."""
    stream = out or sys.stdout
    stream.write(msgspec.json.format(msgspec.json.encode(value), indent=2).decode() + "\n")


def print_error(
    error: RpcError | Exception, out: TextIO | None = None, verbose: bool = False
) -> None:
    """Print an error for a human: the message, then what ``data`` adds."""
    stream = out or sys.stderr
    stream.write(f"error: {error}\n")
    if isinstance(error, RpcError) and isinstance(error.data, dict):
        tail = error.data.get("log_tail")
        if tail:
            stream.write(f"--- build log ---\n{tail}\n")
        if verbose and error.data.get("traceback"):
            stream.write(str(error.data["traceback"]))


def render_status(status: StatusResult, out: TextIO | None = None) -> None:
    """Print ``burrow daemon status``."""
    stream = out or sys.stdout
    rows = [
        ("pid", str(status.pid)),
        ("version", f"{status.version} (build {status.build})"),
        ("uptime", format_duration(status.uptime)),
        ("socket", status.socket),
        ("cache", status.cache_dir),
        ("log", status.log_file),
        ("connections", str(status.connections)),
        (
            "in memory",
            f"{status.memory_pages} project pages, {status.memory_metadata} metadata",
        ),
        ("network", f"{status.http_requests} HTTP requests, {status.downloads} downloads"),
        ("builds", f"{status.builds} backend runs, {status.git_fetches} git fetches"),
        ("cache size", _cache_size(status)),
        (
            "queues",
            ", ".join(_queue(q) for q in status.queues) or "-",
        ),
        (
            "idle timeout",
            "never" if status.idle_timeout <= 0 else format_duration(status.idle_timeout),
        ),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        stream.write(f"{key:<{width}}  {value}\n")
    if status.requests:
        stream.write(f"requests in flight ({len(status.requests)}):\n")
        for req in status.requests:
            phase = f" [{req.phase}]" if req.phase else ""
            who = f"  ({req.client})" if req.client else ""
            stream.write(
                f"  {req.id!s:>6}  {req.method}{phase}  {format_duration(req.elapsed)}{who}\n"
            )
    else:
        stream.write("requests in flight: none\n")
    if status.jobs:
        stream.write(f"shared work in flight ({len(status.jobs)}):\n")
        for job in sorted(status.jobs, key=lambda j: -j.elapsed)[:MAX_JOBS_SHOWN]:
            background = " (warming)" if job.background else ""
            stream.write(
                f"  {job.kind:<12} {job.what}  {format_duration(job.elapsed)}{background}\n"
            )
            for waiter in job.waiters:
                stream.write(f"      waited on by {waiter}\n")
        if len(status.jobs) > MAX_JOBS_SHOWN:
            stream.write(f"  ... and {len(status.jobs) - MAX_JOBS_SHOWN} more\n")
    if status.watches:
        render_watches(status.watches, out=stream)
    if status.subscribers:
        stream.write(f"event subscribers: {status.subscribers}\n")
    if status.errors:
        stream.write(f"last errors ({len(status.errors)}):\n")
        for error in status.errors[-MAX_ERRORS_SHOWN:]:
            when = time.strftime("%H:%M:%S", time.localtime(error.at))
            stream.write(f"  {when}  {error.source}: {error.message}\n")


#: Lines of shared work and errors ``status`` prints (``--json`` has them all).
MAX_JOBS_SHOWN = 20
MAX_ERRORS_SHOWN = 5


def _cache_size(status: StatusResult) -> str:
    if status.cache_size is None:
        return "measuring"
    age = status.cache_size_age or 0.0
    return f"{format_bytes(status.cache_size)} (measured {format_duration(age)} ago)"


def _queue(q: QueueInfo) -> str:
    text = f"{q.name} {q.running}/{q.limit}"
    if q.running_background:
        text += f" [{q.running_background}/{q.background_limit} warming]"
    if q.waiting or q.waiting_background:
        text += f" ({q.waiting} waiting, {q.waiting_background} warming)"
    return text


def render_watches(
    watches: list[WatchInfo], out: TextIO | None = None, verb: str | None = None
) -> None:
    """Print watches (``burrow watch list``, and the watches of ``status``)."""
    stream = out or sys.stdout
    if verb is not None:
        for w in watches:
            stream.write(f"{verb} {w.path} (watch {w.id})\n")
        return
    if not watches:
        stream.write("watches: none\n")
        return
    stream.write(f"watches ({len(watches)}):\n")
    now = time.time()
    for w in watches:
        detail: list[str] = [w.state]
        if w.kind is not None:
            detail.append("lock file" if w.kind == "pins" else "resolved")
        if w.warmed_at is not None:
            detail.append(
                f"{_plural(w.packages, 'package')} warm {format_duration(now - w.warmed_at)} ago"
                f" in {format_duration(w.elapsed)}"
            )
        if w.refresh_in is not None:
            detail.append(f"{w.pages} pages revalidated in {format_duration(w.refresh_in)}")
        stream.write(f"  {w.id:>3}  {w.path}  [{', '.join(detail)}]\n")
        if w.target:
            stream.write(f"       for {w.target}\n")
        if w.error:
            stream.write(f"       error: {w.error}\n")


def render_watch_event(event: WatchEvent, out: TextIO | None = None) -> None:
    """Print one ``watch.event`` as a line."""
    stream = out or sys.stdout
    when = time.strftime("%H:%M:%S", time.localtime(event.at))
    message = f": {event.message}" if event.message else ""
    stream.write(f"{when}  watch {event.watch} {event.path}  {event.event}{message}\n")


def render_cache_stats(stats: CacheStatsResult, out: TextIO | None = None) -> None:
    """Print ``burrow cache stats``."""
    stream = out or sys.stdout
    stream.write(f"{stats.path}\n")
    width = max((len(b.bucket) for b in stats.buckets), default=6)
    for b in stats.buckets:
        noun = "entry  " if b.entries == 1 else "entries"
        stream.write(f"  {b.bucket:<{width}}  {b.entries:>7} {noun}  {format_bytes(b.size):>10}\n")
    stream.write(f"  {'total':<{width}}  {'':>15}  {format_bytes(stats.size):>10}\n")
    stream.write(
        f"in memory: {stats.memory_pages} project pages, {stats.memory_metadata} metadata\n"
    )


def render_prune(result: CachePruneResult, out: TextIO | None = None) -> None:
    """Print ``burrow cache prune``."""
    stream = out or sys.stdout
    if not result.removed:
        stream.write(f"nothing to prune in {result.path}\n")
        return
    parts = ", ".join(f"{n} {kind}" for kind, n in sorted(result.removed.items()))
    stream.write(f"removed {parts} ({format_bytes(result.size)}) from {result.path}\n")


def render_prefetch(
    result: PrefetchResult, out: TextIO | None = None, verbose: bool = False
) -> None:
    """Print ``burrow prefetch``."""
    stream = out or sys.stdout
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    cached = len(result.wheels) - result.downloaded
    stream.write(
        f"{len(result.wheels)} wheels for {result.target}: {result.downloaded} fetched "
        f"({format_bytes(result.bytes)}), {cached} already cached, "
        f"in {format_duration(result.elapsed)}\n"
    )
    if verbose:
        for w in sorted(result.wheels, key=lambda w: w.name):
            state = "cached" if w.cached else "fetched"
            stream.write(f"  {w.name}=={w.version}  {w.filename}  {state}\n")


def render_resolve(
    result: ResolveResult, out: TextIO | None = None, verbose: bool = False, quiet: bool = False
) -> None:
    """Print ``burrow compile``: the pins to stdout unless written to a file, notes to stderr."""
    stream = out or sys.stdout
    for warning in result.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    if not result.wrote:
        stream.write(result.output)
    if quiet:
        return
    count = len(result.packages)
    note = (
        f"Resolved {count} package{'' if count == 1 else 's'} in {format_duration(result.elapsed)}"
    )
    if result.wrote:
        note += f", wrote {result.output_file}"
    if verbose:
        pages = result.pages
        note += (
            f" (project pages: {pages.get('memory', 0)} from memory, {pages.get('disk', 0)} "
            f"from disk, {pages.get('network', 0)} from the network; target {result.target})"
        )
    sys.stderr.write(note + "\n")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _change_line(sign: str, change: PackageChange) -> str:
    line = f" {sign} {change.name}=={change.version}"
    if change.url:
        line = f" {sign} {change.name} @ {change.url}"
    return line


def render_change(
    result: EnvironmentChange,
    out: TextIO | None = None,
    verbose: bool = False,
    quiet: bool = False,
) -> None:
    """Print what ``sync``, ``install`` or ``uninstall`` did to an environment, as uv does."""
    stream = out or sys.stdout
    err = sys.stderr
    for warning in result.warnings:
        err.write(f"warning: {warning}\n")
    for problem in result.problems:
        err.write(f"warning: {problem}\n")
    if quiet:
        return
    timings = result.timings
    if verbose:
        stream.write(f"Using {result.target} environment at {result.environment}\n")
    if isinstance(result, InstallResult):
        resolve_time = timings.get("resolve", 0.0)
        stream.write(
            f"Resolved {_plural(result.resolved, 'package')} in {format_elapsed(resolve_time)}\n"
        )
    would = "Would " if result.dry_run else ""
    if not result.installed and not result.removed:
        if result.dry_run:
            stream.write("Would make no changes\n")
        else:
            stream.write(
                f"Audited {_plural(result.unchanged, 'package')} in "
                f"{format_elapsed(result.elapsed)}\n"
            )
        return
    fetched = [c for c in result.installed if not c.cached]
    if fetched and not result.dry_run:
        stream.write(
            f"Prepared {_plural(len(fetched), 'package')} in "
            f"{format_elapsed(timings.get('prepare', 0.0))}"
            + (f" ({format_bytes(result.bytes)} downloaded)" if result.bytes else "")
            + "\n"
        )
    if result.removed:
        verb = "uninstall" if result.dry_run else "Uninstalled"
        line = f"{would}{verb} {_plural(len(result.removed), 'package')}"
        if not result.dry_run:
            line += f" in {format_elapsed(timings.get('uninstall', 0.0))}"
        stream.write(line + "\n")
    if result.installed:
        verb = "install" if result.dry_run else "Installed"
        line = f"{would}{verb} {_plural(len(result.installed), 'package')}"
        if not result.dry_run:
            line += f" in {format_elapsed(timings.get('install', 0.0))}"
        stream.write(line + "\n")
    if "compile" in timings:
        stream.write(f"Bytecode compiled in {format_elapsed(timings['compile'])}\n")
    # By name, a removal before the install that replaces it, as uv lists them.
    lines = [(c.name, 0, _change_line("-", c)) for c in result.removed]
    lines += [(c.name, 1, _change_line("+", c)) for c in result.installed]
    for _name, _order, line in sorted(lines):
        stream.write(line + "\n")


def render_list(result: ListResult, out: TextIO | None = None, verbose: bool = False) -> None:
    """Print ``burrow list``: a two-column table, as ``uv pip list`` shows it."""
    stream = out or sys.stdout
    rows = [("Package", "Version", "Location" if verbose else "")]
    for p in result.packages:
        where = ""
        if p.editable and p.url:
            where = p.url
        if verbose:
            where = where or p.path
        rows.append((p.name, p.version, where))
    name_w = max(len(r[0]) for r in rows)
    ver_w = max(len(r[1]) for r in rows)
    extra = any(r[2] for r in rows[1:])
    for i, (name, version, where) in enumerate(rows):
        line = f"{name:<{name_w}} {version:<{ver_w}}"
        if extra:
            line += f" {where}"
        stream.write(line.rstrip() + "\n")
        if i == 0:
            sep = f"{'-' * name_w} {'-' * ver_w}"
            if extra:
                sep += f" {'-' * max(8, *(len(r[2]) for r in rows))}"
            stream.write(sep + "\n")


def render_freeze(result: ListResult, out: TextIO | None = None) -> None:
    """Print ``burrow freeze``: one requirement per installed distribution."""
    stream = out or sys.stdout
    for p in result.packages:
        if p.editable and p.url:
            stream.write(f"-e {p.url}\n")
        elif p.url:
            stream.write(f"{p.name} @ {p.url}\n")
        else:
            stream.write(f"{p.name}=={p.version}\n")


def render_venv(result: VenvResult, out: TextIO | None = None) -> None:
    """Print ``burrow venv``."""
    stream = out or sys.stdout
    stream.write(f"Using Python {result.version}\n")
    stream.write(f"Created a virtual environment at {result.path}\n")
    for change in result.seeded:
        stream.write(_change_line("+", change) + "\n")
    stream.write(f"Activate with: source {result.path}/bin/activate\n")


class Progress:
    """Render ``$/progress`` notifications as one updating line on a terminal."""

    def __init__(self, out: TextIO | None = None, enabled: bool | None = None) -> None:
        self.out = out or sys.stderr
        self.enabled = self.out.isatty() if enabled is None else enabled
        self._shown = False
        self._last = 0.0

    def __call__(self, p: ProgressParams) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.05 and not (p.total and p.current >= p.total):
            return
        self._last = now
        parts = [p.phase]
        if p.total:
            width = 24
            filled = int(width * min(p.current, p.total) / p.total)
            parts.append(f"[{'#' * filled}{'.' * (width - filled)}] {p.current}/{p.total}")
        elif p.current:
            parts.append(str(p.current))
        if p.bytes:
            parts.append(format_bytes(p.bytes))
        if p.message:
            parts.append(p.message)
        line = " ".join(parts)[:120]
        self.out.write(f"\r\x1b[2K{line}")
        self.out.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the progress line."""
        if self._shown:
            self.out.write("\r\x1b[2K")
            self.out.flush()
            self._shown = False
