"""The fake's sense of time: a small protocol, the real clock, and a test clock that never waits.

Every timer inside the fake (``Cancel-After`` deadlines, ``data_ttl``, the webhook throttle and
its retry backoff, ``boot_delay``) waits through its clock, so a test that passes
``FakeReplicate(clock=InstantClock())`` sees a five-second deadline pass at once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "InstantClock", "SystemClock", "call_later"]


class Clock(Protocol):
    """What the fake asks of a clock: wall time (timestamps), a monotonic time, and a sleep."""

    def time(self) -> float:
        """Unix seconds, as written into ``created_at`` and friends."""
        ...

    def monotonic(self) -> float:
        """Seconds that never go backwards (throttles and intervals)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock: ``time.time``, ``time.monotonic`` and ``asyncio.sleep`` (the default)."""

    def time(self) -> float:
        """``time.time()``."""
        return time.time()

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep(seconds)``."""
        await asyncio.sleep(seconds)


class InstantClock:
    """A test clock: a sleep returns at once and moves this clock's time forward by its length.

    Sleeps waiting at the same moment wake in order of their deadlines, one per loop turn, so
    a deadline of 5 s passes before one of 30 s. ``time()`` starts at the real time (timestamps
    look real) and only moves when something sleeps. Gotcha: only the fake's own timers follow it;
    a model that calls ``asyncio.sleep`` still waits for real.
    """

    def __init__(self, start: float | None = None) -> None:
        """Start at ``start`` (Unix seconds; default: the real time now) with no sleeper waiting."""
        self._now = time.time() if start is None else start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._scheduled = False

    def time(self) -> float:
        """This clock's Unix seconds."""
        return self._now

    def monotonic(self) -> float:
        """The same as :meth:`time`: it never goes backwards."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` without anyone sleeping.

        Nobody is woken by it: a sleeper whose deadline it passes still wakes only on its loop turn.
        A negative ``seconds`` is taken as 0, so time never goes back.
        """
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        """Return after the sleeps due earlier have woken; time is then ``now + seconds``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (self._now + max(0.0, seconds), next(self._seq), future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._wake)
        await future

    def _wake(self) -> None:
        """Wake the earliest live sleeper, moving time to its deadline, then schedule the next wake.

        One sleeper per loop turn, so whatever it does on waking (a new, shorter sleep) runs before a
        later deadline is reached, as it would on a real clock.
        """
        self._scheduled = False
        while self._sleepers:
            due, _, future = heapq.heappop(self._sleepers)
            if future.done():  # the sleeper was cancelled
                continue
            self._now = max(self._now, due)
            future.set_result(None)
            break
        if self._sleepers:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._wake)


def call_later(clock: Clock, seconds: float, callback: Callable[[], None]) -> asyncio.Task[None]:
    """Run ``callback`` after ``seconds`` of ``clock`` time; cancel the returned task to stop it."""

    async def wait_then_call() -> None:
        """Sleep on ``clock``, then run the callback (not run at all if cancelled first)."""
        await clock.sleep(seconds)
        callback()

    return asyncio.get_running_loop().create_task(wait_then_call())
