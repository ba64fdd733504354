"""The shared timer behind every request's whole-response deadline (Python 3.11+)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from areplicate._session import _Deadline, _Deadlines

pytestmark = pytest.mark.skipif(sys.version_info < (3, 11), reason="3.10 uses an anyio scope")


async def _hang() -> None:
    await asyncio.Event().wait()


async def _held(deadlines: _Deadlines, seconds: float) -> None:
    with _Deadline(deadlines) as deadline:
        deadline.reschedule(asyncio.get_running_loop().time() + seconds)
        await _hang()


async def test_a_due_deadline_raises_timeout_error() -> None:
    async with asyncio.timeout(5):
        with pytest.raises(TimeoutError):
            await _held(_Deadlines(), 0.02)


async def test_each_request_runs_out_at_its_own_deadline_on_one_timer() -> None:
    deadlines = _Deadlines()
    async with asyncio.timeout(5):
        late = asyncio.create_task(_held(deadlines, 0.3))
        soon = asyncio.create_task(_held(deadlines, 0.02))
        with pytest.raises(TimeoutError):
            await soon
        assert not late.done(), "the later deadline must not be cut with the earlier one"
        with pytest.raises(TimeoutError):
            await late


async def test_an_earlier_deadline_moves_the_timer_forward() -> None:
    deadlines = _Deadlines()
    async with asyncio.timeout(5):
        late = asyncio.create_task(_held(deadlines, 30))
        await asyncio.sleep(0)  # the timer is now set 30 s ahead
        with pytest.raises(TimeoutError):
            await _held(deadlines, 0.02)
        assert not late.done()
        late.cancel()
        with pytest.raises(asyncio.CancelledError):
            await late


async def test_a_callers_cancel_stays_a_cancel() -> None:
    deadlines = _Deadlines()
    task = asyncio.create_task(_held(deadlines, 30))
    await asyncio.sleep(0)
    task.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not deadlines._pending, "an ended request is no longer watched"


async def test_a_cancel_arriving_with_the_deadline_is_not_swallowed() -> None:
    # As with asyncio.timeout: when the caller cancels too, the caller's cancel wins.
    deadlines = _Deadlines()
    started = asyncio.Event()

    async def held() -> None:
        with _Deadline(deadlines) as deadline:
            deadline.reschedule(asyncio.get_running_loop().time() + 30)
            started.set()
            await _hang()

    task = asyncio.create_task(held())
    async with asyncio.timeout(5):
        await started.wait()
        (deadline,) = deadlines._pending
        deadline.expire()  # the timer fires...
        task.cancel()  # ...and the caller gives up in the same turn of the loop
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_request_that_ends_in_time_is_untouched() -> None:
    deadlines = _Deadlines()
    async with asyncio.timeout(5):
        with _Deadline(deadlines) as deadline:
            deadline.reschedule(asyncio.get_running_loop().time() + 0.05)
        await asyncio.sleep(0.1)  # past the deadline: the timer fires and finds nothing due
    assert not deadline.expired()
    assert not deadlines._pending
