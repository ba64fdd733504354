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


class _JumpingSelector(selectors.DefaultSelector):
    """A selector that, when nothing is ready, moves the clock to the deadline instead of waiting."""

    now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if not events:
            if timeout is None:
                raise RuntimeError("nothing is scheduled: the test would wait for ever")
            self.now += max(timeout, 0.0)
        return events


def on_virtual_time(
    main: Callable[[Budget, Callable[[], float]], Coroutine[Any, Any, T]],
    limits: areplicate.RateLimits = LIMITS,
) -> T:
    """Run ``main(budget, now)`` on a loop whose clock the budget shares, in virtual time."""
    selector = _JumpingSelector()
    loop = asyncio.SelectorEventLoop(selector)
    loop.time = lambda: selector.now  # type: ignore[method-assign]
    try:
        budget = Budget(limits, clock=loop.time)
        return loop.run_until_complete(asyncio.wait_for(main(budget, loop.time), timeout=600))
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

    async def main(budget: Budget, now: Callable[[], float]) -> dict[int, float]:
        tasks, went = await acquire_all(budget, now, 6)
        await settle(tasks)
        return went

    went = on_virtual_time(main)
    assert list(went) == list(range(6))
    assert list(went.values()) == pytest.approx(chained(6))


def test_a_caller_that_gives_up_in_the_queue_takes_no_slot() -> None:
    """Cancelled before its turn came, it reserved nothing: the others go as if it never came."""

    async def main(budget: Budget, now: Callable[[], float]) -> dict[int, float]:
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

    async def main(budget: Budget, now: Callable[[], float]) -> tuple[dict[int, float], float]:
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

    async def main(budget: Budget, now: Callable[[], float]) -> dict[int, float]:
        went: dict[int, float] = {}
        waiters: list[asyncio.Task[None]] = []

        async def first() -> None:
            await budget.acquire(create=True)
            # Caller 1 was just handed the turn (its slot is now: the burst is large) and has not
            # run since: cancelled here, it learns of its turn only as a CancelledError.
            waiters[0].cancel()
            went[0] = now()

        async def one(i: int) -> None:
            await budget.acquire(create=True)
            went[i] = now()

        # The first caller's slot is at the end of a pause, and a second pause keeps it waiting
        # longer: the others queue behind it, and the first slot after the second pause is free
        # at once, so caller 1 is handed its turn without a timer.
        budget.pause(1.0)
        head = asyncio.create_task(first())
        await asyncio.sleep(0)
        for i in (1, 2):
            waiters.append(asyncio.create_task(one(i)))
            await asyncio.sleep(0)
        await asyncio.sleep(0.5)
        budget.pause(1.5)
        await settle([head, *waiters])
        return went

    went = on_virtual_time(main, areplicate.RateLimits(creates_per_minute=600.0, burst=60.0))
    assert list(went) == [0, 2]
    assert went[0] == pytest.approx(2.0)
    assert went[2] == pytest.approx(2.8)


def test_turns_wait_out_a_pause_a_429_began() -> None:
    """A 429's pause holds the queue: nobody goes before it ends, and then one at a time."""

    async def main(budget: Budget, now: Callable[[], float]) -> dict[int, float]:
        tasks, went = await acquire_all(budget, now, 4)
        budget.pause(10.0)
        await settle(tasks)
        return went

    went = on_virtual_time(main)
    assert list(went) == [0, 1, 2, 3]
    assert min(went[1], went[2], went[3]) >= 10.0
    # Caller 1 reserved its slot before the pause and goes at its end; from caller 2 on, each
    # slot is reserved after the pause, at pace.
    times = [went[2], went[3]]
    assert times[1] - times[0] == pytest.approx(0.8)


def test_the_first_caller_giving_up_while_it_waits_for_its_slot_lets_the_next_go() -> None:
    """The caller that found no queue sleeps to its slot itself; cancelled there, it passes on."""

    async def main(budget: Budget, now: Callable[[], float]) -> dict[int, float]:
        budget.pause(1.0)  # the first slot is at the pause's end
        tasks, went = await acquire_all(budget, now, 3)
        await asyncio.sleep(0.5)
        tasks[0].cancel()
        await settle(tasks)
        return went

    went = on_virtual_time(main)
    assert list(went) == [1, 2]
    assert went[1] == pytest.approx(1.8)  # its slot, reserved when the first one gave up
