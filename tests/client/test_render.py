"""Human output: units, durations, the status table, errors, JSON and the progress line."""

from __future__ import annotations

import io
import json

import pytest

from burrowd.client import render
from burrowd.protocol.errors import RpcError
from burrowd.protocol.messages import (
    BucketStats,
    CacheStatsResult,
    ErrorInfo,
    JobInfo,
    ProgressParams,
    QueueInfo,
    RequestInfo,
    StatusResult,
    WatchInfo,
)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        pytest.param(0, "0 B", id="zero"),
        pytest.param(1023, "1023 B", id="bytes"),
        pytest.param(1024, "1.0 KiB", id="kib"),
        pytest.param(1536, "1.5 KiB", id="kib-half"),
        pytest.param(5 * 1024**2, "5.0 MiB", id="mib"),
        pytest.param(3 * 1024**3, "3.0 GiB", id="gib"),
        pytest.param(5000 * 1024**3, "5000.0 GiB", id="beyond-gib"),
    ],
)
def test_format_bytes(n: int, text: str) -> None:
    assert render.format_bytes(n) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(0, "0.0s", id="zero"),
        pytest.param(3.24, "3.2s", id="seconds"),
        pytest.param(59.9, "59.9s", id="under-a-minute"),
        pytest.param(60, "1m 00s", id="a-minute"),
        pytest.param(245, "4m 05s", id="minutes"),
        pytest.param(7800, "2h 10m", id="hours"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert render.format_duration(seconds) == text


def _status(**changes: object) -> StatusResult:
    fields: dict[str, object] = {
        "pid": 42,
        "version": "0.1",
        "build": "abcd",
        "started_at": 0.0,
        "uptime": 61.0,
        "socket": "/run/b.sock",
        "cache_dir": "/c",
        "log_file": "/l.log",
        "connections": 2,
        "requests": [],
        "idle_timeout": 900.0,
        "idle_for": 1.0,
    }
    fields.update(changes)
    return StatusResult(**fields)  # type: ignore[arg-type]


class TestRenderStatus:
    def test_table(self) -> None:
        out = io.StringIO()
        render.render_status(_status(), out)
        assert out.getvalue().splitlines() == [
            "pid           42",
            "version       0.1 (build abcd)",
            "uptime        1m 01s",
            "socket        /run/b.sock",
            "cache         /c",
            "log           /l.log",
            "connections   2",
            "in memory     0 project pages, 0 metadata",
            "network       0 HTTP requests, 0 downloads",
            "builds        0 backend runs, 0 git fetches",
            "cache size    measuring",
            "queues        -",
            "idle timeout  15m 00s",
            "requests in flight: none",
        ]

    def test_jobs_queues_watches_and_errors(self) -> None:
        out = io.StringIO()
        status = _status(
            cache_size=3 * 1024 * 1024,
            cache_size_age=12.0,
            queues=[
                QueueInfo(name="network", limit=48, running=48, waiting=2, waiting_background=5),
                QueueInfo(name="unpack", limit=6, running=1),
            ],
            jobs=[
                JobInfo(
                    kind="wheel",
                    what="foo-1.0-py3-none-any.whl",
                    elapsed=1.5,
                    waiters=["request 7 (sync, pid 1 uid 2)", "watch 1 (requirements.in)"],
                ),
                JobInfo(kind="page", what="bar on https://x/simple/", elapsed=0.2, background=True),
            ],
            watches=[
                WatchInfo(
                    id=1,
                    path="/p/requirements.in",
                    kind="resolve",
                    state="failed",
                    target="CPython 3.12",
                    error="No solution found: foo",
                )
            ],
            errors=[ErrorInfo(at=0.0, source="watch 1 (/p/r.in)", code=-32010, message="boom")],
            subscribers=2,
        )
        render.render_status(status, out)
        lines = out.getvalue().splitlines()
        assert "cache size    3.0 MiB (measured 12.0s ago)" in lines
        assert "queues        network 48/48 (2 waiting, 5 warming), unpack 1/6" in lines
        text = out.getvalue()
        assert "shared work in flight (2):\n  wheel        foo-1.0-py3-none-any.whl  1.5s\n" in text
        assert "      waited on by request 7 (sync, pid 1 uid 2)\n" in text
        assert "  page         bar on https://x/simple/  0.2s (warming)\n" in text
        assert "    1  /p/requirements.in  [failed, resolved]\n" in text
        assert "       error: No solution found: foo\n" in text
        assert "event subscribers: 2" in lines
        assert lines[-2] == "last errors (1):"
        assert lines[-1].endswith("  watch 1 (/p/r.in): boom")

    def test_requests_and_no_idle_timeout(self) -> None:
        out = io.StringIO()
        requests = [
            RequestInfo(id=7, method="sync", elapsed=2.5, phase="download"),
            RequestInfo(id="x", method="resolve", elapsed=0.1),
        ]
        render.render_status(_status(idle_timeout=0.0, requests=requests), out)
        lines = out.getvalue().splitlines()
        assert "idle timeout  never" in lines
        assert lines[-3:] == [
            "requests in flight (2):",
            "       7  sync [download]  2.5s",
            "       x  resolve  0.1s",
        ]


class TestPrintError:
    def test_message_only(self) -> None:
        out = io.StringIO()
        render.print_error(ValueError("it broke"), out)
        assert out.getvalue() == "error: it broke\n"

    def test_build_log_and_traceback(self) -> None:
        error = RpcError("build failed", {"log_tail": "gcc: error", "traceback": "Traceback..."})
        quiet, verbose = io.StringIO(), io.StringIO()
        render.print_error(error, quiet)
        render.print_error(error, verbose, verbose=True)
        assert quiet.getvalue() == "error: build failed\n--- build log ---\ngcc: error\n"
        assert verbose.getvalue().endswith("Traceback...")


def test_print_json() -> None:
    out = io.StringIO()
    render.print_json(_status(pid=7), out)
    text = out.getvalue()
    assert text.endswith("}\n")
    assert '\n  "pid": 7,' in text
    assert json.loads(text)["pid"] == 7


class TestProgress:
    def test_disabled_when_not_a_terminal(self) -> None:
        out = io.StringIO()
        progress = render.Progress(out)
        progress(ProgressParams(token=1, phase="download", current=1, total=2))
        progress.clear()
        assert out.getvalue() == ""

    def test_bar_and_clear(self) -> None:
        out = io.StringIO()
        progress = render.Progress(out, enabled=True)
        progress(ProgressParams(token=1, phase="download", current=6, total=24, bytes=2048))
        assert out.getvalue() == "\r\x1b[2Kdownload [######..................] 6/24 2.0 KiB"
        # Throttled: a step right after is not drawn, the last step always is.
        progress(ProgressParams(token=1, phase="download", current=7, total=24))
        progress(ProgressParams(token=1, phase="download", current=24, total=24, message="ok"))
        assert out.getvalue().count("\r\x1b[2K") == 2
        assert out.getvalue().endswith("[########################] 24/24 ok")
        progress.clear()
        assert out.getvalue().endswith("ok\r\x1b[2K")
        progress.clear()
        assert out.getvalue().endswith("ok\r\x1b[2K")

    def test_count_without_total(self) -> None:
        out = io.StringIO()
        render.Progress(out, enabled=True)(ProgressParams(token=1, phase="resolve", current=12))
        assert out.getvalue() == "\r\x1b[2Kresolve 12"


class TestHeaderCommand:
    def test_secrets_in_urls_are_hidden(self) -> None:
        from burrowd.client.cli import _redacted_command  # noqa: PLC0415

        shown = _redacted_command(
            [
                "compile",
                "-q",
                "-i",
                "https://ghp_T0KEN@example.org/simple",
                "--extra-index-url",
                "https://user:s3cret@example.org/simple",
                "req.in",
            ]
        )
        assert "T0KEN" not in shown
        assert "s3cret" not in shown
        assert shown == (
            "burrow compile -i 'https://****@example.org/simple' --extra-index-url "
            "'https://user:****@example.org/simple' req.in"
        )


def test_cache_stats_counts_entries_in_words() -> None:
    stats = CacheStatsResult(
        path="/c",
        buckets=[
            BucketStats(bucket="wheels-v0", entries=1, size=2048),
            BucketStats(bucket="simple-v0", entries=2, size=0),
        ],
        size=2048,
        memory_pages=3,
    )
    out = io.StringIO()
    render.render_cache_stats(stats, out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "/c"
    assert lines[1].split() == ["wheels-v0", "1", "entry", "2.0", "KiB"]
    assert lines[2].split() == ["simple-v0", "2", "entries", "0", "B"]
    # The columns stay aligned whatever the noun.
    assert len(lines[1]) == len(lines[2])
