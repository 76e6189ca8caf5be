"""Scheduling: priorities, the foreground gate, prioritised semaphores and single-flight.

Everything runs on a real event loop. Tasks are driven to a known state with :func:`until`
(a bounded spin of the loop), never with sleeps: the scheduler does no I/O, so every state
it can reach is reached within a few loop iterations.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pytest

from burrowd.daemon.scheduler import (
    LOOP_SLICE,
    Foreground,
    Limits,
    OnceMap,
    Priority,
    PrioritySemaphore,
    current_priority,
    pace,
    working_for,
)


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Run the loop until ``condition()`` holds; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - a state of our own objects, not an event
            await asyncio.sleep(0)


async def seen_priority() -> Priority:
    """Return the priority the work runs for."""
    return current_priority()


async def paced(priority: Priority, steps: int = 1) -> Priority:
    """Call :func:`pace` ``steps`` times as work done for ``priority``; return the priority seen."""
    with working_for(priority):
        for _ in range(steps):
            await pace()
        return current_priority()


def take_slot(sem: PrioritySemaphore, priority: Priority, granted: list[str]) -> asyncio.Task[None]:
    """Start a task that takes a slot for ``priority``, notes its label, and gives it back."""

    async def take() -> None:
        with working_for(priority):
            async with sem:
                granted.append(priority.label)

    return asyncio.create_task(take())


async def queue_behind(
    sem: PrioritySemaphore, priorities: list[Priority], granted: list[str]
) -> list[asyncio.Task[None]]:
    """Queue one waiter per priority on a full ``sem``, in this order."""
    tasks: list[asyncio.Task[None]] = []
    for priority in priorities:
        tasks.append(take_slot(sem, priority, granted))
        await until(lambda: sum(sem.waiting()) == len(tasks))
    return tasks


class Asked:
    """One waiter of a crowd, as the old scan over every waiter saw it."""

    def __init__(self, label: str, priority: Priority, weight: float) -> None:
        self.label = label
        self.priority = priority
        self.weight = weight
        #: Whether its slot was granted as background work.
        self.background = False


def weight_of(asked: Asked) -> float:
    return asked.weight


class OldScan:
    """The rules the semaphore followed when it scanned every waiter, replayed on a model.

    The reference for the heaps: each free slot goes to the heaviest foreground waiter, else
    (under the background share) to the heaviest background one; ``max()`` keeps the first
    of equal weights, so ties keep arrival order.
    """

    def __init__(self, limit: int, background_limit: int, running: int) -> None:
        self.limit = limit
        self.background_limit = background_limit
        self.running = running
        self.running_background = 0
        #: The waiters left, in arrival order (cancelled ones are removed at once).
        self.queue: list[Asked] = []
        self.granted: list[Asked] = []

    def waiting(self) -> tuple[int, int]:
        background = sum(1 for asked in self.queue if asked.priority.background)
        return len(self.queue) - background, background

    def give_back(self, background: bool) -> None:
        self.running -= 1
        if background:
            self.running_background -= 1
        self.wake()

    def wake(self) -> None:
        while self.queue and self.running < self.limit:
            foreground = [asked for asked in self.queue if not asked.priority.background]
            chosen = max(foreground, key=weight_of, default=None)
            if chosen is None:
                if self.running_background >= self.background_limit:
                    return
                chosen = max(self.queue, key=weight_of)
            self.queue.remove(chosen)
            chosen.background = chosen.priority.background
            self.running += 1
            if chosen.background:
                self.running_background += 1
            self.granted.append(chosen)


Hook = Callable[[], object]


class Crowd:
    """Tasks that each take a slot of ``sem``, note it, and hold it until told to give it back."""

    def __init__(self, sem: PrioritySemaphore) -> None:
        self.sem = sem
        #: The labels of the tasks that got a slot, in the order they ran with it.
        self.ran: list[str] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._turns: dict[str, asyncio.Event] = {}
        self._hooks: dict[str, tuple[list[Hook], list[Hook]]] = {}

    async def join(self, label: str, priority: Priority, weight: float) -> None:
        """Queue a waiter on the full ``sem`` and wait until it is queued."""
        turn = self._turns[label] = asyncio.Event()

        async def hold() -> None:
            with working_for(priority):
                async with self.sem.weighted(weight):
                    self.ran.append(label)
                    await turn.wait()
                    before, after = self._hooks.pop(label)
                    for hook in before:
                        hook()
                for hook in after:
                    hook()

        queued = sum(self.sem.waiting())
        self.tasks[label] = asyncio.create_task(hold())
        await until(lambda: sum(self.sem.waiting()) == queued + 1)

    async def release(self, label: str, before: list[Hook], after: list[Hook]) -> None:
        """Have ``label`` give its slot back, running ``before`` and ``after`` around the
        release in the same step (no other task runs in between)."""
        self._hooks[label] = (before, after)
        self._turns[label].set()
        await self.tasks[label]


class TestWorkingFor:
    async def test_sets_the_priority_for_the_block_only(self) -> None:
        outside = current_priority()
        assert not outside.background  # unattributed work is the daemon's own, foreground
        request = Priority("request 1")
        with working_for(request) as given:
            assert given is request
            assert current_priority() is request
        assert current_priority() is outside

    async def test_nested_blocks_restore_the_outer_priority(self) -> None:
        outer, inner = Priority("outer"), Priority("inner", background=True)
        with working_for(outer):
            with working_for(inner):
                assert current_priority() is inner
            assert current_priority() is outer

    async def test_tasks_started_inside_keep_the_priority_after_the_block(self) -> None:
        # Tasks copy the context when created: work a request spawned stays its work even
        # once the request's own block has ended.
        request = Priority("request 1")
        go = asyncio.Event()

        async def seen() -> Priority:
            await go.wait()
            return current_priority()

        with working_for(request):
            task = asyncio.create_task(seen())
        assert current_priority() is not request
        go.set()
        assert await task is request

    async def test_reset_even_when_the_block_raises(self) -> None:
        outside = current_priority()
        with pytest.raises(LookupError), working_for(Priority("failing")):
            raise LookupError
        assert current_priority() is outside


class TestPriority:
    def test_promote_makes_background_work_foreground(self) -> None:
        priority = Priority("warm requirements.txt", background=True)
        assert repr(priority) == "<Priority 'warm requirements.txt' background>"
        priority.promote()
        assert not priority.background
        assert repr(priority) == "<Priority 'warm requirements.txt' foreground>"
        priority.promote()  # a second request joining changes nothing
        assert not priority.background


class TestPrioritySemaphore:
    async def test_never_more_than_the_limit_at_once(self) -> None:
        sem = PrioritySemaphore("network", 2)
        inside = peak = 0
        release = asyncio.Event()

        async def hold() -> None:
            nonlocal inside, peak
            async with sem:
                inside += 1
                peak = max(peak, inside)
                await release.wait()
                inside -= 1

        tasks = [asyncio.create_task(hold()) for _ in range(6)]
        await until(lambda: sem.waiting() == (4, 0))
        assert sem.running == 2
        release.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 1.0)
        assert peak == 2
        assert sem.running == 0
        assert sem.waiting() == (0, 0)

    async def test_running_counts_the_slots_taken(self) -> None:
        sem = PrioritySemaphore("build", 3)
        await sem.acquire()
        await sem.acquire()
        assert sem.running == 2
        sem.release()
        assert sem.running == 1
        async with sem:
            assert sem.running == 2
        sem.release()
        assert sem.running == 0

    async def test_a_freed_slot_goes_to_a_waiter_not_to_a_newcomer(self) -> None:
        # The slot is handed over in release(): a task arriving before the waiter runs
        # finds no free slot and queues behind it.
        sem = PrioritySemaphore("unpack", 1)
        granted: list[str] = []
        await sem.acquire()
        await queue_behind(sem, [Priority("first")], granted)
        sem.release()
        assert sem.running == 1
        late = take_slot(sem, Priority("late"), granted)
        await until(lambda: granted == ["first", "late"])
        await late
        assert sem.running == 0

    @pytest.mark.parametrize(
        "background",
        [pytest.param(False, id="foreground"), pytest.param(True, id="background")],
    )
    async def test_waiters_of_one_priority_are_served_in_arrival_order(
        self, background: bool
    ) -> None:
        sem = PrioritySemaphore("network", 1)
        granted: list[str] = []
        labels = [f"waiter {n}" for n in range(5)]
        await sem.acquire()
        tasks = await queue_behind(
            sem, [Priority(label, background=background) for label in labels], granted
        )
        assert sem.waiting() == ((0, 5) if background else (5, 0))
        sem.release()
        await asyncio.wait_for(asyncio.gather(*tasks), 1.0)
        assert granted == labels
        assert sem.running == 0

    @pytest.mark.parametrize(
        "background",
        [pytest.param(False, id="foreground"), pytest.param(True, id="background")],
    )
    async def test_the_heaviest_waiter_goes_first(self, background: bool) -> None:
        sem = PrioritySemaphore("unpack", 1)
        granted: list[str] = []
        weights = {"small": 1.0, "huge": 50.0, "medium": 5.0, "also small": 1.0, "none": 0.0}

        def weighed(label: str) -> asyncio.Task[None]:
            async def take() -> None:
                with working_for(Priority(label, background=background)):
                    async with sem.weighted(weights[label]):
                        granted.append(label)

            return asyncio.create_task(take())

        await sem.acquire()
        tasks: list[asyncio.Task[None]] = []
        for label in weights:
            tasks.append(weighed(label))
            await until(lambda: sum(sem.waiting()) == len(tasks))
        sem.release()
        await asyncio.wait_for(asyncio.gather(*tasks), 1.0)
        assert granted == ["huge", "medium", "small", "also small", "none"]
        assert sem.running == 0

    async def test_weight_does_not_put_background_before_a_request(self) -> None:
        sem = PrioritySemaphore("unpack", 1)
        granted: list[str] = []

        async def take(label: str, weight: float, background: bool) -> None:
            with working_for(Priority(label, background=background)):
                async with sem.weighted(weight):
                    granted.append(label)

        await sem.acquire()
        tasks = [asyncio.create_task(take("warm, huge", 100.0, True))]
        await until(lambda: sum(sem.waiting()) == 1)
        tasks.append(asyncio.create_task(take("request, small", 1.0, False)))
        await until(lambda: sum(sem.waiting()) == 2)
        sem.release()
        await asyncio.wait_for(asyncio.gather(*tasks), 1.0)
        assert granted == ["request, small", "warm, huge"]

    async def test_foreground_goes_before_background_that_queued_earlier(self) -> None:
        sem = PrioritySemaphore("network", 1)
        granted: list[str] = []
        await sem.acquire()
        tasks = await queue_behind(
            sem,
            [
                Priority("warm 1", background=True),
                Priority("request 1"),
                Priority("warm 2", background=True),
                Priority("request 2"),
            ],
            granted,
        )
        assert sem.waiting() == (2, 2)
        sem.release()
        await asyncio.wait_for(asyncio.gather(*tasks), 1.0)
        assert granted == ["request 1", "request 2", "warm 1", "warm 2"]
        assert sem.running == 0

    async def test_a_background_waiter_promoted_while_queued_counts_as_foreground(self) -> None:
        sem = PrioritySemaphore("build", 1)
        granted: list[str] = []
        joined = Priority("warm joined by a request", background=True)
        await sem.acquire()
        tasks = await queue_behind(sem, [Priority("warm alone", background=True), joined], granted)
        assert sem.waiting() == (0, 2)
        joined.promote()
        assert sem.waiting() == (1, 1)
        sem.release()
        await asyncio.wait_for(asyncio.gather(*tasks), 1.0)
        assert granted == ["warm joined by a request", "warm alone"]

    async def test_cancelling_a_queued_waiter_removes_it(self) -> None:
        sem = PrioritySemaphore("network", 1)
        granted: list[str] = []
        await sem.acquire()
        gone, stays = await queue_behind(
            sem, [Priority("cancelled"), Priority("stays", background=True)], granted
        )
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert sem.waiting() == (0, 1)
        assert len(sem._waiters) == 1  # removed, not only skipped later
        sem.release()
        await asyncio.wait_for(stays, 1.0)
        assert granted == ["stays"]
        assert sem.running == 0

    async def test_a_waiter_cancelled_just_before_a_release_is_skipped(self) -> None:
        # Its entry is still queued when the slot is freed (it has not run since): the
        # slot goes to the next waiter.
        sem = PrioritySemaphore("network", 1)
        granted: list[str] = []
        await sem.acquire()
        gone, next_one = await queue_behind(sem, [Priority("cancelled"), Priority("next")], granted)
        gone.cancel()
        sem.release()
        assert sem.running == 1
        await asyncio.wait_for(next_one, 1.0)
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert granted == ["next"]
        assert sem.running == 0

    async def test_a_waiter_cancelled_as_it_is_granted_hands_the_slot_on(self) -> None:
        sem = PrioritySemaphore("build", 1)
        granted: list[str] = []
        await sem.acquire()
        unlucky, next_one = await queue_behind(
            sem, [Priority("unlucky"), Priority("next")], granted
        )
        sem.release()  # the slot is now unlucky's, but it has not run yet...
        assert sem.running == 1
        unlucky.cancel()  # ...and is cancelled before it does
        with pytest.raises(asyncio.CancelledError):
            await unlucky
        await asyncio.wait_for(next_one, 1.0)
        assert granted == ["next"]
        assert sem.running == 0  # no slot leaked
        await asyncio.wait_for(sem.acquire(), 1.0)
        sem.release()


class TestBackgroundShare:
    async def test_background_work_takes_at_most_its_share(self) -> None:
        sem = PrioritySemaphore("network", 3, background_limit=1)
        release = asyncio.Event()
        inside: list[str] = []

        async def hold(priority: Priority) -> None:
            with working_for(priority):
                async with sem:
                    inside.append(priority.label)
                    await release.wait()

        warm = [asyncio.create_task(hold(Priority(f"warm {n}", background=True))) for n in range(3)]
        await until(lambda: sem.waiting() == (0, 2))
        assert (sem.running, sem.running_background) == (1, 1)  # two slots stay free
        request = asyncio.create_task(hold(Priority("request")))
        await until(lambda: "request" in inside)  # a request takes a free slot at once
        assert (sem.running, sem.running_background) == (2, 1)
        release.set()
        await asyncio.wait_for(asyncio.gather(*warm, request), 1.0)
        assert (sem.running, sem.running_background) == (0, 0)

    async def test_a_freed_background_slot_goes_to_the_next_background_waiter(self) -> None:
        sem = PrioritySemaphore("unpack", 4, background_limit=1)
        granted: list[str] = []
        with working_for(Priority("warm 0", background=True)):
            await sem.acquire()
        tasks = await queue_behind(
            sem, [Priority("warm 1", background=True), Priority("warm 2", background=True)], granted
        )
        assert sem.running_background == 1
        with working_for(Priority("warm 0", background=True)):
            sem.release()
        await asyncio.wait_for(asyncio.gather(*tasks), 1.0)
        assert granted == ["warm 1", "warm 2"]
        assert (sem.running, sem.running_background) == (0, 0)

    async def test_a_slot_taken_in_the_background_is_given_back_as_background(self) -> None:
        # The work was promoted while it held the slot: the share is still given back.
        sem = PrioritySemaphore("build", 2, background_limit=1)
        warm = Priority("warm", background=True)
        with working_for(warm):
            await sem.acquire()
            warm.promote()
            sem.release()
        assert (sem.running, sem.running_background) == (0, 0)

    async def test_the_share_defaults_to_the_whole_limit(self) -> None:
        sem = PrioritySemaphore("network", 2)
        assert sem.background_limit == 2
        with working_for(Priority("warm", background=True)):
            await sem.acquire()
            await sem.acquire()
        assert sem.running_background == 2


class TestManyWaiters:
    """Crowds of waiters are served in the order the old scan over every waiter gave."""

    @pytest.mark.parametrize("seed", [1, 2, 3])
    @pytest.mark.parametrize(
        ("limit", "background_limit"),
        [
            pytest.param(1, None, id="one-slot"),
            pytest.param(4, 2, id="four-slots-two-for-warming"),
            pytest.param(3, 1, id="three-slots-one-for-warming"),
        ],
    )
    async def test_the_wake_order_is_the_old_scans(
        self, limit: int, background_limit: int | None, seed: int
    ) -> None:
        # 200 waiters of mixed priorities and weights; between two releases one is promoted,
        # cancelled (before the release or as it is granted), or nothing happens. After each
        # release the slots went where the old rules put them, and were counted alike.
        rng = random.Random(seed)
        sem = PrioritySemaphore("unpack", limit, background_limit)
        for _ in range(limit):
            await sem.acquire()  # the test holds every slot: the whole crowd queues
        model = OldScan(limit, sem.background_limit, running=limit)
        crowd = Crowd(sem)
        # Warming jobs whose priority many waiters share: promoting one moves them all up.
        warming = [Priority(f"warm {n}", background=True) for n in range(8)]
        priorities = set(warming)
        for n in range(200):
            label = f"waiter {n}"
            kind = rng.random()
            if kind < 0.3:
                priority = Priority(label)
            elif kind < 0.6:
                priority = Priority(label, background=True)
            else:
                priority = rng.choice(warming)
            priorities.add(priority)
            # Few distinct weights, so that many ties must keep arrival order.
            weight = rng.choice([0.0, 1.0, 1.0, 5.0, 50.0, round(rng.uniform(0, 100), 1)])
            model.queue.append(Asked(label, priority, weight))
            await crowd.join(label, priority, weight)
        assert sem.waiting() == model.waiting()

        cancelled: set[str] = set()

        def settled() -> bool:
            expected = [asked for asked in model.granted if asked.label not in cancelled]
            return len(crowd.ran) >= len(expected) and all(
                crowd.tasks[label].done() for label in cancelled
            )

        holders: list[Asked | None] = [None] * limit  # None: a slot the test holds
        while holders:
            roll = rng.random()
            before: list[Hook] = []
            after: list[Hook] = []
            if roll < 0.15 and model.queue:
                rng.choice(model.queue).priority.promote()
            elif roll < 0.3 and model.queue:
                # Cancelled while waiting, and run since: it left the queue.
                gone = rng.choice(model.queue)
                model.queue.remove(gone)
                cancelled.add(gone.label)
                crowd.tasks[gone.label].cancel()
                with pytest.raises(asyncio.CancelledError):
                    await crowd.tasks[gone.label]
            elif roll < 0.45 and model.queue:
                # Cancelled just before the release: still queued when the slot is freed.
                late = rng.choice(model.queue)
                model.queue.remove(late)
                cancelled.add(late.label)
                before.append(crowd.tasks[late.label].cancel)
            holder = holders.pop(0)
            granted = len(model.granted)
            model.give_back(holder.background if holder else False)
            fresh = model.granted[granted:]
            if roll > 0.85 and fresh:
                # Cancelled as it is granted, before it runs: it hands its slot on.
                unlucky = fresh.pop(0)
                cancelled.add(unlucky.label)
                after.append(crowd.tasks[unlucky.label].cancel)
                granted = len(model.granted)
                model.give_back(unlucky.background)
                fresh += model.granted[granted:]
            holders += fresh
            if holder is None:
                for hook in before:
                    hook()
                sem.release()
                for hook in after:
                    hook()
            else:
                await crowd.release(holder.label, before, after)
            await until(settled)
            assert crowd.ran == [a.label for a in model.granted if a.label not in cancelled]
            assert (sem.running, sem.running_background) == (
                model.running,
                model.running_background,
            )
            assert sem.waiting() == model.waiting()

        assert len(crowd.ran) + len(cancelled) == 200
        assert not cancelled & set(crowd.ran)
        assert (sem.running, sem.running_background) == (0, 0)
        assert sem.waiting() == (0, 0)
        assert not sem._waiters
        assert not [p for p in priorities if p._on_promote]  # no callback left behind
        await asyncio.gather(*crowd.tasks.values(), return_exceptions=True)

    async def test_cancelled_waiters_never_get_a_slot_nor_leak_one(self) -> None:
        rng = random.Random(7)
        sem = PrioritySemaphore("unpack", 4, background_limit=2)
        ran: list[str] = []
        for _ in range(4):
            await sem.acquire()
        # The four heaviest requests get the four slots first, and are cancelled before
        # they run; 180 others are cancelled while they wait, 16 survive.
        heavy = [(f"heavy {n}", Priority(f"heavy {n}"), 1000.0 + n) for n in range(4)]
        warm = Priority("warm", background=True)
        others = [
            (
                f"waiter {n}",
                rng.choice(
                    [Priority(f"waiter {n}"), Priority(f"waiter {n}", background=True), warm]
                ),
                rng.choice([0.0, 1.0, 5.0, 50.0]),
            )
            for n in range(196)
        ]
        crowd = heavy + others
        rng.shuffle(crowd)

        async def take(label: str, priority: Priority, weight: float) -> None:
            with working_for(priority):
                async with sem.weighted(weight):
                    ran.append(label)

        tasks = {label: asyncio.create_task(take(label, p, w)) for label, p, w in crowd}
        await until(lambda: sum(sem.waiting()) == 200)
        doomed = rng.sample([label for label, _, _ in others], 180)
        survivors = {label for label, _, _ in others} - set(doomed)
        for label in doomed[:90]:  # cancelled, and run since
            tasks[label].cancel()
        await until(lambda: len(sem._waiters) == 110)
        for label in doomed[90:]:  # cancelled just before the releases
            tasks[label].cancel()
        for _ in range(4):
            sem.release()
        assert sem.running == 4
        # Only the survivors still wait: the slots went to the heavy ones, none skipped for
        # a cancelled waiter.
        assert sum(sem.waiting()) == len(survivors)
        for label, _, _ in heavy:  # granted, cancelled before they run: they hand it on
            tasks[label].cancel()
        await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), 2.0)

        assert sorted(ran) == sorted(survivors)
        assert all(tasks[label].cancelled() for label in [*doomed, *(h[0] for h in heavy)])
        assert (sem.running, sem.running_background) == (0, 0)
        assert sem.waiting() == (0, 0)
        assert not sem._waiters
        assert not warm._on_promote
        for _ in range(4):  # every slot is free again, none taken twice
            await asyncio.wait_for(sem.acquire(), 1.0)
        assert sem.running == 4
        for _ in range(4):
            sem.release()
        assert sem.running == 0

    async def test_cancelled_and_promoted_waiters_do_not_pile_up(self) -> None:
        sem = PrioritySemaphore("network", 1)
        granted: list[str] = []
        await sem.acquire()
        warm = Priority("warm", background=True)
        tasks = [take_slot(sem, warm, granted) for _ in range(1000)]
        await until(lambda: sem.waiting() == (0, 1000))
        assert len(warm._on_promote) == 1  # one callback for the semaphore, not one per wait
        for task in tasks[10:]:
            task.cancel()
        await asyncio.gather(*tasks[10:], return_exceptions=True)
        assert sem.waiting() == (0, 10)
        # The heaps were rebuilt without the cancelled entries, not kept until popped.
        assert len(sem._foreground) + len(sem._background) < 200
        warm.promote()
        assert sem.waiting() == (10, 0)
        sem.release()
        await asyncio.wait_for(asyncio.gather(*tasks[:10]), 1.0)
        assert granted == ["warm"] * 10
        assert (sem.running, sem.running_background) == (0, 0)  # granted as foreground
        assert not sem._waiters


class TestForeground:
    async def test_background_work_waits_while_a_request_runs(self) -> None:
        gate = Foreground()
        warm = Priority("warm", background=True, gate=gate)
        with gate.running():
            task = asyncio.create_task(paced(warm))
            await until(lambda: warm.held)
            assert gate.held == 1
            assert not task.done()
        assert await asyncio.wait_for(task, 1.0) is warm
        assert not warm.held
        assert gate.held == 0
        assert gate.active == 0

    async def test_background_work_resumes_only_when_the_last_request_ends(self) -> None:
        gate = Foreground()
        warm = Priority("warm", background=True, gate=gate)
        with gate.running():
            with gate.running():
                task = asyncio.create_task(paced(warm))
                await until(lambda: warm.held)
            assert gate.active == 1
            for _ in range(10):
                await asyncio.sleep(0)
            assert warm.held
            assert not task.done()
        await asyncio.wait_for(task, 1.0)

    async def test_a_request_starting_before_held_work_runs_holds_it_again(self) -> None:
        gate = Foreground()
        warm = Priority("warm", background=True, gate=gate)
        with gate.running():
            task = asyncio.create_task(paced(warm))
            await until(lambda: warm.held)
        # The held work was woken but has not run yet: a new request starts first.
        with gate.running():
            for _ in range(10):
                await asyncio.sleep(0)
            assert warm.held
            assert gate.held == 1
            assert not task.done()
        await asyncio.wait_for(task, 1.0)

    @pytest.mark.parametrize(
        ("background", "with_gate"),
        [
            pytest.param(False, True, id="foreground-work"),
            pytest.param(True, False, id="background-work-without-a-gate"),
        ],
    )
    async def test_work_that_does_not_yield_to_requests_never_waits(
        self, background: bool, with_gate: bool
    ) -> None:
        gate = Foreground()
        priority = Priority("p", background=background, gate=gate if with_gate else None)
        with gate.running():
            assert await asyncio.wait_for(paced(priority, steps=50), 1.0) is priority
            assert not priority.held
            assert gate.held == 0

    async def test_promoted_held_work_resumes_while_the_request_still_runs(self) -> None:
        gate = Foreground()
        warm = Priority("warm", background=True, gate=gate)
        with gate.running():
            task = asyncio.create_task(paced(warm))
            await until(lambda: warm.held)
            warm.promote()
            assert await asyncio.wait_for(task, 1.0) is warm
            assert gate.active == 1
            assert not warm.held
            assert gate.held == 0

    async def test_held_counts_the_waiting_tasks(self) -> None:
        gate = Foreground()
        first = Priority("warm 1", background=True, gate=gate)
        second = Priority("warm 2", background=True, gate=gate)
        assert gate.held == 0
        with gate.running():
            tasks = [asyncio.create_task(paced(p)) for p in (first, second)]
            await until(lambda: gate.held == 2)
            second.promote()
            assert gate.held == 1  # at once, before the promoted task runs again
            await until(tasks[1].done)
            assert gate.held == 1
            assert first.held
            assert not second.held
        await asyncio.wait_for(asyncio.gather(*tasks), 1.0)
        assert gate.held == 0

    async def test_pace_lets_other_tasks_run_in_a_busy_loop(self) -> None:
        # Work that only calls pace() between CPU-bound steps must still let the loop
        # serve others (``status``) every LOOP_SLICE.
        other_ran = False

        async def other() -> None:
            nonlocal other_ran
            other_ran = True

        task = asyncio.create_task(other())
        deadline = time.monotonic() + 100 * LOOP_SLICE + 1.0
        while not other_ran and time.monotonic() < deadline:
            await pace()
        assert other_ran
        await task


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

    async def test_flights_describe_the_work_and_who_waits(self) -> None:
        flights: OnceMap[tuple[str, str], str] = OnceMap("wheel", lambda key: f"{key[0]}=={key[1]}")
        work = Work()
        before = time.monotonic()
        waiters = []
        for label in ("request 2", "request 1", "request 2"):
            with working_for(Priority(label)):
                waiters.append(asyncio.create_task(flights.run(("attrs", "24.2.0"), work)))
        # The callers join as the loop first runs them; the work task, created by the first
        # of them, runs after all three.
        await work.started.wait()
        (info,) = flights.flights(time.monotonic())
        assert info.kind == "wheel"
        assert info.what == "attrs==24.2.0"
        assert info.waiters == ["request 1", "request 2"]  # sorted, each label once
        assert not info.background
        assert 0 <= info.elapsed <= time.monotonic() - before
        assert flights.flights(time.monotonic() + 10)[0].elapsed >= 10
        work.release.set()
        await asyncio.gather(*waiters)
        assert flights.flights(time.monotonic()) == []

    async def test_a_flight_started_for_background_work_is_background_until_a_request_joins(
        self,
    ) -> None:
        flights: OnceMap[str, str] = OnceMap("page")
        work = Work()
        with working_for(Priority("warm", background=True)):
            warm = asyncio.create_task(flights.run("k", work))
        await work.started.wait()
        (info,) = flights.flights(time.monotonic())
        assert info.background
        assert info.waiters == ["warm"]
        with working_for(Priority("request")):
            request = asyncio.create_task(flights.run("k", work))
        await until(lambda: not flights.flights(time.monotonic())[0].background)
        assert flights.flights(time.monotonic())[0].waiters == ["request", "warm"]
        work.release.set()
        assert await request == await warm == "done 1"

    async def test_background_joining_foreground_work_leaves_it_foreground(self) -> None:
        flights: OnceMap[str, str] = OnceMap()
        work = Work()
        with working_for(Priority("request")):
            request = asyncio.create_task(flights.run("k", work))
        await work.started.wait()
        with working_for(Priority("warm", background=True)):
            warm = asyncio.create_task(flights.run("k", work))
        await until(lambda: flights.flights(time.monotonic())[0].waiters == ["request", "warm"])
        assert not flights.flights(time.monotonic())[0].background
        work.release.set()
        assert await request == await warm == "done 1"

    async def test_the_work_runs_with_a_priority_of_its_own(self) -> None:
        # Promoting the flight must not promote the priority of the caller that started it
        # (its other work still yields), so the work gets a copy.
        flights: OnceMap[str, Priority] = OnceMap()
        gate = Foreground()
        caller = Priority("warm", background=True, gate=gate)
        with working_for(caller):
            seen = await flights.run("k", seen_priority)
            assert current_priority() is caller
        assert seen is not caller
        assert (seen.label, seen.background, seen.gate) == ("warm", True, gate)

    async def test_a_request_joining_held_background_work_promotes_it(self) -> None:
        # The no-deadlock guarantee: the request is foreground work, so background work
        # waits at the gate until it ends; the request must not wait for that work.
        gate = Foreground()
        flights: OnceMap[str, Priority] = OnceMap()
        warm = Priority("warm", background=True, gate=gate)

        async def work() -> Priority:
            await pace()
            return current_priority()

        with gate.running():
            with working_for(warm):
                warming = asyncio.create_task(flights.run("k", work))
            await until(lambda: gate.held == 1)
            assert flights.flights(time.monotonic())[0].background
            with working_for(Priority("request")):
                ran_as = await asyncio.wait_for(flights.run("k", work), 1.0)
            assert gate.active == 1  # the request was still running
        assert ran_as is not warm
        assert not ran_as.background
        assert warm.background  # the warming job's other work still yields
        assert await warming is ran_as

    async def test_promotion_reaches_the_shared_work_the_work_waits_for(self) -> None:
        # Shared work waits for other shared work (a build for its build environment): a
        # request joining the outer work must promote the inner one too, or the request
        # waits for work that waits for the request to end.
        gate = Foreground()
        builds: OnceMap[str, str] = OnceMap("build")
        envs: OnceMap[str, str] = OnceMap("build-env")

        async def make_env() -> str:
            await pace()
            return "env"

        async def build() -> str:
            return "wheel from " + await envs.run("env", make_env)

        with gate.running():
            with working_for(Priority("warm", background=True, gate=gate)):
                warming = asyncio.create_task(builds.run("pkg", build))
            await until(lambda: gate.held == 1)
            with working_for(Priority("request")):
                built = await asyncio.wait_for(builds.run("pkg", build), 1.0)
            assert gate.active == 1
        assert built == "wheel from env"
        assert await warming == built

    async def test_promoted_work_gets_a_slot_before_earlier_background_waiters(self) -> None:
        sem = PrioritySemaphore("build", 1)
        flights: OnceMap[str, str] = OnceMap()
        granted: list[str] = []

        async def work() -> str:
            async with sem:
                granted.append("shared work")
            return "built"

        await sem.acquire()
        (other,) = await queue_behind(sem, [Priority("other warm", background=True)], granted)
        with working_for(Priority("warm", background=True)):
            warming = asyncio.create_task(flights.run("k", work))
        await until(lambda: sem.waiting() == (0, 2))
        with working_for(Priority("request")):
            request = asyncio.create_task(flights.run("k", work))
        await until(lambda: sem.waiting() == (1, 1))
        sem.release()
        assert list(await asyncio.wait_for(asyncio.gather(warming, request), 1.0)) == ["built"] * 2
        await asyncio.wait_for(other, 1.0)
        assert granted == ["shared work", "other warm"]

    async def test_waiters_that_leave_are_no_longer_listed(self) -> None:
        flights: OnceMap[str, str] = OnceMap()
        work = Work()
        tasks = {}
        for label in ("leaves", "cancelled", "stays"):
            with working_for(Priority(label)):
                tasks[label] = asyncio.create_task(flights.run("k", work))
        await work.started.wait()
        assert flights.flights(time.monotonic())[0].waiters == ["cancelled", "leaves", "stays"]
        tasks["cancelled"].cancel()
        with pytest.raises(asyncio.CancelledError):
            await tasks["cancelled"]
        assert flights.flights(time.monotonic())[0].waiters == ["leaves", "stays"]
        tasks["leaves"].cancel()
        tasks["stays"].cancel()
        await asyncio.gather(tasks["leaves"], tasks["stays"], return_exceptions=True)
        assert (
            flights.flights(time.monotonic())[0].waiters == []
        )  # the work goes on, for nobody now
        work.release.set()
        await until(lambda: not flights.flights(time.monotonic()))


class TestLimits:
    async def test_semaphores(self) -> None:
        limits = Limits()
        assert limits.network.limit == 48
        assert limits.unpack.limit >= 2
        # warming keeps to a share of each queue, so requests always find slots
        assert all(0 < sem.background_limit < sem.limit for sem in (limits.network, limits.unpack))
        assert 1 <= limits.build.background_limit <= limits.build.limit
        other = Limits()
        assert other.network is not limits.network

    def test_all_lists_every_kind_of_work(self) -> None:
        limits = Limits()
        assert limits.all() == [limits.network, limits.downloads, limits.unpack, limits.build]
        assert [sem.name for sem in limits.all()] == ["network", "downloads", "unpack", "build"]
        assert all(sem.running == 0 and sem.waiting() == (0, 0) for sem in limits.all())
