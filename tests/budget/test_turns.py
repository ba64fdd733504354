"""Paced requests of one class go one at a time, in arrival order, each at the slot the pure pace
gives it, and a caller that gives up never stalls the ones behind it.

The event loop runs on a virtual clock that jumps to the next timer instead of sleeping, so the
slot times are exact and the tests take no real time. The expected times come from
``_core.pace.reserve`` itself: the budget must hand out the slots the pure core computes.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

import areplicate
from areplicate._budget import Budget, pace_params
from areplicate._core.pace import Pace, reserve

T = TypeVar("T")

#: 1.25 creates a second at the start (an eighth of the ceiling) and one second of burst: the first
#: create goes at once, each later one 0.8 s after the one before.
LIMITS = areplicate.RateLimits(creates_per_minute=600.0, burst=1.0)


class VirtualClock(selectors.DefaultSelector):
    """A selector that, when nothing is ready, moves the clock to the deadline instead of waiting;
    calling it reads the clock."""

    now = 0.0

    def __call__(self) -> float:
        return self.now

    def stall(self, seconds: float) -> None:
        """What a callback that blocks the loop for ``seconds`` does: every timer runs late."""
        self.now += seconds

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if not events:
            if timeout is None:
                raise RuntimeError("nothing is scheduled: the test would wait for ever")
            self.now += max(timeout, 0.0)
        return events


def on_virtual_time(
    main: Callable[[Budget, VirtualClock], Coroutine[Any, Any, T]],
    limits: areplicate.RateLimits = LIMITS,
) -> T:
    """Run ``main(budget, clock)`` on a loop whose clock the budget shares, in virtual time."""
    clock = VirtualClock()
    loop = asyncio.SelectorEventLoop(clock)
    loop.time = clock  # type: ignore[method-assign]
    try:
        budget = Budget(limits, clock=clock)
        return loop.run_until_complete(asyncio.wait_for(main(budget, clock), timeout=600))
    finally:
        loop.close()


def chained(n: int) -> list[float]:
    """The go-times of ``n`` queued creates: each slot is reserved when the one before it goes."""
    params = pace_params(LIMITS, create=True)
    pace = Pace.fresh(params, 0.0)
    times, now = [], 0.0
    for _ in range(n):
        pace, now = reserve(pace, params, now)
        times.append(now)
    return times


def slots(starts: list[float]) -> list[float]:
    """The pure pace's go-times for creates whose slots are reserved at ``starts`` (in order)."""
    params = pace_params(LIMITS, create=True)
    pace = Pace.fresh(params, 0.0)
    times = []
    for now in starts:
        pace, go = reserve(pace, params, now)
        times.append(go)
    return times


async def acquire_all(
    budget: Budget, now: Callable[[], float], n: int
) -> tuple[list[asyncio.Task[None]], dict[int, float]]:
    """Start ``n`` creates queueing for the budget in order; ``went[i]`` is when caller i may go."""
    went: dict[int, float] = {}

    async def one(i: int) -> None:
        await budget.acquire(create=True)
        went[i] = now()

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(0)  # each one queued before the next arrives
    return tasks, went


async def settle(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


def test_creates_go_in_arrival_order_each_at_its_slot() -> None:
    """Each turn reserves its slot when the turn before it goes, so the times chain exactly."""

    async def main(budget: Budget, now: VirtualClock) -> dict[int, float]:
        tasks, went = await acquire_all(budget, now, 6)
        await settle(tasks)
        return went

    went = on_virtual_time(main)
    assert list(went) == list(range(6))
    assert list(went.values()) == pytest.approx(chained(6))


def test_a_caller_that_gives_up_in_the_queue_takes_no_slot() -> None:
    """Cancelled before its turn came, it reserved nothing: the others go as if it never came."""

    async def main(budget: Budget, now: VirtualClock) -> dict[int, float]:
        tasks, went = await acquire_all(budget, now, 5)
        tasks[2].cancel()
        await settle(tasks)
        return went

    went = on_virtual_time(main)
    assert list(went) == [0, 1, 3, 4]
    assert list(went.values()) == pytest.approx(chained(4))


def test_a_caller_that_gives_up_before_its_slot_passes_the_turn_at_once() -> None:
    """Its slot is spent, as with any reservation, and the next caller reserves when it gave up:
    nobody is left waiting for a slot that no one will use."""

    async def main(budget: Budget, now: VirtualClock) -> tuple[dict[int, float], float]:
        tasks, went = await acquire_all(budget, now, 4)
        # Caller 0 went at once and caller 1 at 0.8 s; caller 2 was handed the turn then, for its
        # slot at 1.6 s.
        await asyncio.sleep(1.0)
        gave_up = now()
        tasks[2].cancel()
        await settle(tasks)
        return went, gave_up

    went, gave_up = on_virtual_time(main)
    assert list(went) == [0, 1, 3]
    starts = [0.0, 0.0, chained(2)[1], gave_up]
    assert list(went.values()) == pytest.approx([slots(starts)[i] for i in (0, 1, 3)])


def test_a_caller_cancelled_just_after_its_turn_came_still_passes_it_on() -> None:
    """Its turn was handed over, but it never ran again: the callers behind it must not starve."""

    async def main(budget: Budget, now: VirtualClock) -> dict[int, float]:
        went: dict[int, float] = {}
        waiters: list[asyncio.Task[None]] = []

        async def late() -> None:
            await budget.acquire(create=True)
            # Caller 2 was just handed the turn, at once (the loop ran late, so its slot is
            # already due), and has not run since: cancelled now, it learns of its turn only as
            # a CancelledError.
            waiters[0].cancel()
            went[1] = now()

        async def one(i: int) -> None:
            await budget.acquire(create=True)
            went[i] = now()

        await one(0)  # goes at once
        caller = asyncio.create_task(late())  # its slot is at 0.8 s
        await asyncio.sleep(0)
        for i in (2, 3):
            waiters.append(asyncio.create_task(one(i)))
            await asyncio.sleep(0)
        asyncio.get_running_loop().call_later(0.5, now.stall, 5.0)
        await settle([caller, *waiters])
        return went

    went = on_virtual_time(main)
    assert list(went) == [0, 1, 3]
    assert went[1] == pytest.approx(5.5)  # late: the loop stalled from 0.5 s to 5.5 s
    assert went[3] == pytest.approx(slots([0.0, 0.0, 5.5, 5.5])[3])


def test_turns_wait_out_a_pause_a_429_began() -> None:
    """A 429's pause holds the queue: nobody goes before it ends, and then one at a time, at pace,
    even the caller whose slot was reserved before the pause."""

    async def main(budget: Budget, now: VirtualClock) -> dict[int, float]:
        tasks, went = await acquire_all(budget, now, 4)
        budget.pause(10.0)
        await settle(tasks)
        return went

    went = on_virtual_time(main)
    assert list(went) == [0, 1, 2, 3]
    assert [went[1], went[2], went[3]] == pytest.approx([10.0, 10.8, 11.6])


def test_a_429_as_a_turn_ends_leaves_no_burst_at_the_end_of_its_pause() -> None:
    """The 429 is handled in the same pass of the loop as a turn ends, after the next caller's
    slot was reserved: that slot is not used, and after the pause the callers go at the pace the
    429 cut."""

    async def main(budget: Budget, now: VirtualClock) -> dict[int, float]:
        tasks, went = await acquire_all(budget, now, 5)

        async def throttled_elsewhere() -> None:
            await asyncio.sleep(0.8)  # when caller 1's slot comes
            budget.learned(429, {}, create=True)  # what a request answered 429 does
            budget.pause(5.0)

        await asyncio.gather(throttled_elsewhere(), *tasks)
        return went

    went = on_virtual_time(main)
    assert list(went) == [0, 1, 2, 3, 4]
    assert went[1] == pytest.approx(0.8)
    interval = 1 / (1.25 / 2)  # the 429 halved the pace
    assert [went[2], went[3], went[4]] == pytest.approx([5.8, 5.8 + interval, 5.8 + 2 * interval])


def test_the_first_caller_giving_up_while_it_waits_for_its_slot_lets_the_next_go() -> None:
    """The caller that found no queue sleeps to its slot itself; cancelled there, it passes on."""

    async def main(budget: Budget, now: VirtualClock) -> dict[int, float]:
        budget.pause(1.0)  # the first slot is at the pause's end
        tasks, went = await acquire_all(budget, now, 3)
        await asyncio.sleep(0.5)
        tasks[0].cancel()
        await settle(tasks)
        return went

    went = on_virtual_time(main)
    assert list(went) == [1, 2]
    assert went[1] == pytest.approx(1.8)  # its slot, reserved when the first one gave up
