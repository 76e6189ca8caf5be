"""Single-flight: one run of the work per key, shared by every caller, never cancelled by one."""

from __future__ import annotations

import asyncio

import pytest

from burrowd.daemon.scheduler import Limits, OnceMap


class Work:
    """Work that counts its runs and waits for a signal before it answers."""

    def __init__(self, result: str = "done", error: Exception | None = None) -> None:
        self.result = result
        self.error = error
        self.runs = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = False

    async def __call__(self) -> str:
        self.runs += 1
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.error is not None:
            raise self.error
        return f"{self.result} {self.runs}"


class TestOnceMap:
    async def test_ten_concurrent_runs_share_one_work(self) -> None:
        flights: OnceMap[str, str] = OnceMap()
        work = Work()
        waiters = [asyncio.ensure_future(flights.run("k", work)) for _ in range(10)]
        await work.started.wait()
        assert "k" in flights
        assert flights.keys() == ["k"]
        assert len(flights) == 1
        work.release.set()
        assert await asyncio.gather(*waiters) == ["done 1"] * 10
        assert work.runs == 1
        assert "k" not in flights
        assert len(flights) == 0

    async def test_keys_run_independently(self) -> None:
        flights: OnceMap[tuple[str, int], str] = OnceMap()
        a, b = Work("a"), Work("b")
        a.release.set()
        b.release.set()
        results = await asyncio.gather(flights.run(("x", 1), a), flights.run(("x", 2), b))
        assert list(results) == ["a 1", "b 1"]

    async def test_cancelling_one_waiter_does_not_cancel_the_work(self) -> None:
        flights: OnceMap[str, str] = OnceMap()
        work = Work()
        first = asyncio.ensure_future(flights.run("k", work))
        others = [asyncio.ensure_future(flights.run("k", work)) for _ in range(3)]
        await work.started.wait()
        first.cancel()
        await asyncio.sleep(0)
        with pytest.raises(asyncio.CancelledError):
            await first
        assert not work.cancelled
        work.release.set()
        assert await asyncio.gather(*others) == ["done 1"] * 3
        assert work.runs == 1

    async def test_work_finishes_even_when_every_waiter_left(self) -> None:
        flights: OnceMap[str, str] = OnceMap()
        work = Work()
        only = asyncio.ensure_future(flights.run("k", work))
        await work.started.wait()
        only.cancel()
        await asyncio.sleep(0)
        assert "k" in flights  # still running for whoever comes next
        late = asyncio.ensure_future(flights.run("k", work))
        work.release.set()
        assert await late == "done 1"
        assert work.runs == 1
        assert not work.cancelled

    async def test_an_exception_reaches_every_waiter_and_the_next_call_retries(self) -> None:
        flights: OnceMap[str, str] = OnceMap()
        work = Work(error=LookupError("no such thing"))
        waiters = [asyncio.ensure_future(flights.run("k", work)) for _ in range(5)]
        await work.started.wait()
        work.release.set()
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, LookupError) and str(r) == "no such thing" for r in results)
        assert work.runs == 1
        assert "k" not in flights
        work.error = None
        assert await flights.run("k", work) == "done 2"
        assert work.runs == 2

    async def test_a_failure_nobody_awaited_is_not_reported_as_unhandled(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        flights: OnceMap[str, str] = OnceMap()
        work = Work(error=ValueError("boom"))
        only = asyncio.ensure_future(flights.run("k", work))
        await work.started.wait()
        only.cancel()
        await asyncio.sleep(0)
        work.release.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert "k" not in flights
        assert "Task exception was never retrieved" not in caplog.text

    async def test_a_result_is_not_replayed(self) -> None:
        flights: OnceMap[str, str] = OnceMap()
        work = Work()
        work.release.set()
        assert await flights.run("k", work) == "done 1"
        assert await flights.run("k", work) == "done 2"


class TestLimits:
    async def test_semaphores(self) -> None:
        limits = Limits()
        assert limits.network.limit == 48
        assert limits.unpack.limit >= 2
        other = Limits()
        assert other.network is not limits.network
