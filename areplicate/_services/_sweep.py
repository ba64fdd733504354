"""The sweeper: one client's many running predictions checked with list pages, not a GET each.

Every wait on a prediction whose ``created_at`` is known registers here (:meth:`Sweeper.watch`).
While enough are registered that list pages cost fewer requests than their own polls
(``_core.sweep.should_sweep``), sweeps run every few seconds: one cuts the waited-on predictions
into spans of about 100 by ``created_at`` and lists ``GET /predictions`` with ``created_after`` and
``created_before`` for up to ten spans at once (a page or two each, at most a few). Each wait hands
its sleeps between polls to the registration's ``result``, the same hook a webhook Receiver offers,
and then:

- a prediction a sweep saw finished ends its wait at once: delivered as listed when the list item is
  complete, else (the real API's list items carry no ``logs``) the wait reads it with one GET now;
- a prediction a sweep saw still running skips its next poll: the sweep has just read it;
- a wait whose poll falls due while a sweep that lists it is under way waits for that sweep's news
  (up to ``_JOIN_PERIODS``), instead of adding a GET just when listing is slow;
- a prediction the sweep missed (another account's, a listing that races new creates, a page that
  failed) is polled by its own wait on its normal schedule, so nothing hangs on the sweeper.

There is no background task: the waits take turns. One of them holds the sweep timer and runs the
sweep when it is due, inside its own sleep; when it leaves (its poll is due, it ended, it was
cancelled), another takes over. So sweeping starts with the waits and stops with the last of them,
and cancelling a wait mid-sweep only cuts that sweep short. Sweeps are paced by the client's
request budget like every request, and a failed sweep (5xx, 429, an unreadable or endless listing)
is logged and retried later: it never ends or cancels a wait.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import heapq
import itertools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable

from areplicate._core import sweep as _core
from areplicate._core.retry import PollSchedule
from areplicate._models import Page, Prediction
from areplicate._services._waiting import AGAIN, Again

__all__ = ["Sweeper", "Watching", "complete"]

logger = logging.getLogger("areplicate")

#: A sleeping wait's future: resolves to ``AGAIN`` when the sleep ends or a sweep wakes it.
Waker = asyncio.Future["Prediction | Again | None"]
Pages = Callable[[dt.datetime, dt.datetime | None], AsyncIterator[Page[Prediction]]]

# A wait whose poll is due while sweeps run waits at most this many sweep periods (or twice as
# long as the last sweep took, if longer), from the start of its sleep, for one to report on it
# before it polls on its own (a sweep queued behind a busy budget must not hold it for long).
_GRACE_PERIODS = 3.0
# ...unless a sweep that lists it is under way: then its wait joins that sweep, since its end (news or
# none) wakes the wait, for up to this many periods from the sweep's start. Polling alone instead
# would add a GET per wait just when listing is slow (a loaded API or budget); the sweep's own
# requests are bounded by the client's timeouts, and this bounds the rest.
_JOIN_PERIODS = 30.0
# Longest pause after failed sweeps in a row, in sweep periods.
_MAX_BACKOFF_PERIODS = 30.0
# Spans a sweep lists at once. Each page in flight holds a hundred predictions' JSON and states
# (~0.1 MB) until its span reads it; with every span at once, a sweep of 10,000 briefly held a
# second copy of all of them, which stayed in the process's RSS as freed, fragmented heap. Ten
# (a thousand predictions) still fill a paced budget's share, and a sweep of up to a thousand
# waits still takes one request's time.
_SPANS_AT_ONCE = 10


def complete(prediction: Prediction) -> bool:
    """Whether a listed prediction says all a GET would: the real API's list items leave out
    ``logs`` (a GET always carries them, ``""`` at least), so those are read once more."""
    return prediction.logs is not None


class _Watch:
    """What the sweeper knows of one waited-on prediction (shared by the waits on it)."""

    __slots__ = (
        "began",
        "created_at",
        "finished",
        "listing",
        "missed",
        "more",
        "overdue",
        "pid",
        "ready",
        "seen",
        "state",
        "sweeper",
        "waits",
        "waker",
    )

    def __init__(self, sweeper: Sweeper, pid: str, created_at: dt.datetime, began: float) -> None:
        self.sweeper = sweeper
        self.pid = pid
        self.created_at = created_at
        self.began = began  # loop time the first wait on it registered
        self.waits = 0  # waits registered on this id
        self.seen = 0  # number of the latest sweep that listed it
        self.missed = 0  # number of the latest sweep that should have listed it and did not
        self.listing = 0  # number of the latest sweep that set out to list it
        self.state: Prediction | None = None  # its state in that listing, when still running
        self.finished: Prediction | None = None  # its complete terminal state, once listed
        self.ready = False  # listed finished but incomplete: its wait should read it now
        self.overdue = False  # its poll is due and it waits for a sweep's news
        # The sleeps of its waits: nearly always one, so one slot, and a list only for the rest.
        self.waker: Waker | None = None
        self.more: list[Waker] | None = None


class _Wait:
    """One wait's registration with the sweeper: its hook (:meth:`result`), left when it ends.

    No coroutine of its own: ``result`` decides at once and hands back what to await, a finished
    future (the answer) or the sleep's future, which resolves to ``AGAIN`` when the sleep ends or
    a sweep wakes it; the wait then asks again, in the same turn. A coroutine per wait held ~0.33 KB
    for as long as the wait slept; these few fields are what it kept.
    """

    __slots__ = ("began", "left", "since", "sleeping", "timeout", "watch")

    def __init__(self, watch: _Watch) -> None:
        self.watch = watch
        self.timeout: float | None = None  # the turn's timeout; None between turns
        self.began = 0.0  # loop time the turn began
        self.since = 0  # sweeps started before the turn: only later ones are news
        self.sleeping: Waker | None = None  # the turn's sleep, while it sleeps
        self.left = False

    def __enter__(self) -> _Wait:
        return self

    def __exit__(self, *exc: object) -> None:
        self.leave()

    def leave(self) -> None:
        """The wait is over (ended, failed or cancelled); a second call does nothing."""
        if self.left:
            return
        self.left = True
        self._woke()
        if self.timeout is not None:
            self._end_turn()
        self.watch.sweeper._leave(self.watch)

    def result(
        self,
        pid: str,  # noqa: ARG002 - a Receiver's signature
        timeout: float,
    ) -> Awaitable[Prediction | Again | None]:
        """Sleep until the wait's next poll is due; what the sweeps learned meanwhile.

        A terminal prediction (ends the wait), a running one (the wait skips this poll), None
        (the wait polls now, as it would have without sweeps), or ``AGAIN``: the sleep ended,
        ask again. The signature is a webhook Receiver's ``result``, so the wait loop treats both
        alike.
        """
        self._woke()
        watch = self.watch
        sweeper = watch.sweeper
        loop = asyncio.get_running_loop()
        if self.timeout is None:
            if sweeper._watched.get(watch.pid) is not watch:
                return asyncio.sleep(timeout)  # not watched: a plain sleep, then a poll
            self.timeout = timeout
            self.began = loop.time()
            self.since = sweeper._round
        elif sweeper._watched.get(watch.pid) is not watch:
            return self._answer(loop, None)  # no longer watched: poll as usual
        return sweeper._turn(self, loop)

    def _sleep(self, loop: asyncio.AbstractEventLoop, until: float) -> Waker:
        """The turn's sleep until loop time ``until`` or a wake."""
        watch = self.watch
        waker: Waker = loop.create_future()
        watch.sweeper._alarms.add(loop, until, waker)
        if watch.waker is None:
            watch.waker = waker
        elif watch.more is None:
            watch.more = [waker]
        else:
            watch.more.append(waker)
        self.sleeping = waker
        return waker

    def _woke(self) -> None:
        waker = self.sleeping
        if waker is not None:
            self.sleeping = None
            watch = self.watch
            if watch.waker is waker:
                watch.waker = None
            elif watch.more is not None:
                watch.more.remove(waker)

    def _answer(self, loop: asyncio.AbstractEventLoop, answer: Prediction | None) -> Waker:
        self._end_turn()
        done: Waker = loop.create_future()
        done.set_result(answer)
        return done

    def _end_turn(self) -> None:
        self.timeout = None
        self.watch.overdue = False
        sweeper = self.watch.sweeper
        if sweeper._timer is self:
            sweeper._timer = sweeper._timer_watch = None
            sweeper._wake_one()  # another sleeping wait takes the timer over


#: What :meth:`Sweeper.watch` hands a wait: its registration and hook.
Watching = _Wait


class _Alarms:
    """One loop timer for the sleeps of every wait, instead of one each.

    A loop timer holds a handle, its arguments and a copy of the context (~0.25 KB), for as long
    as its wait sleeps; an entry here is a tuple. A sleep woken early (a sweep's news) leaves its
    entry until its time, as a cancelled loop timer would.
    """

    __slots__ = ("_at", "_handle", "_heap", "_order")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Waker]] = []
        self._order = itertools.count()  # ties of equal times: never compare two futures
        self._handle: asyncio.TimerHandle | None = None
        self._at = math.inf  # when the loop timer goes off

    def add(self, loop: asyncio.AbstractEventLoop, when: float, waker: Waker) -> None:
        """Complete ``waker`` (if it is not done by then) at loop time ``when``."""
        heapq.heappush(self._heap, (when, next(self._order), waker))
        if when < self._at:
            if self._handle is not None:
                self._handle.cancel()
            self._at, self._handle = when, loop.call_at(when, self._ring, loop)

    def _ring(self, loop: asyncio.AbstractEventLoop) -> None:
        heap = self._heap
        now = loop.time()
        while heap and (heap[0][0] <= now or heap[0][2].done()):
            _done(heapq.heappop(heap)[2])
        if heap:
            self._at = heap[0][0]
            self._handle = loop.call_at(self._at, self._ring, loop)
        else:
            self._at, self._handle = math.inf, None


class Sweeper:
    """Checks many running predictions of one client with list pages (module docstring).

    ``pages(created_after, created_before)`` lists predictions newest first (``Predictions.pages``); ``schedule``
    is the client's poll schedule and ``per_second`` its budget for non-create requests (None: no
    budget), which together set the sweep period.
    """

    def __init__(self, pages: Pages, *, schedule: PollSchedule, per_second: float | None) -> None:
        self._pages = pages
        self._schedule = schedule
        self._per_second = per_second
        self._watched: dict[str, _Watch] = {}
        self._round = 0  # sweeps started
        self._pages_used = 0  # pages the last sweep read
        self._period = _core.sweep_period(schedule, (), 1, per_second)
        self._next = 0.0  # loop time the next sweep is due
        self._busy = False  # a sweep is running
        self._timer: _Wait | None = None  # the wait whose sleep runs the next sweep when due
        self._timer_watch: _Watch | None = None  # whose sleep that is
        self._alarms = _Alarms()  # the ends of the waits' sleeps
        self._failures = 0  # failed sweeps in a row
        self._healthy = True  # the last sweep succeeded
        self._took = 0.0  # seconds the last sweep took (a loaded machine or budget slows them)
        self._started = 0.0  # loop time the last sweep started
        self.sweeping = False
        #: Sweeps made, pages read, sweeps failed and how waits' sleeps ended: delivered (a sweep
        #: listed it finished), read (listed finished, incomplete: the wait GETs it), spared (listed
        #: running: no poll), missed / late / alone (no news: the wait polls): for tests, benchmarks.
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.sweeps = 0
        self.pages = 0
        self.failures = 0

    def __repr__(self) -> str:
        state = "sweeping" if self.sweeping else "idle"
        return f"<Sweeper {state}, {len(self._watched)} watched, {self.sweeps} sweeps>"

    # -- registration ---------------------------------------------------------------------

    def watch(self, prediction: Prediction | None) -> Watching | None:
        """Register a wait on ``prediction``; None when it cannot be swept (no ``created_at``, or
        already finished). Use the result as a context manager around the wait."""
        if prediction is None or prediction.created_at is None or prediction.is_terminal:
            return None
        pid = prediction.id
        watch = self._watched.get(pid)
        if watch is None:
            now = asyncio.get_running_loop().time()
            watch = self._watched[pid] = _Watch(self, pid, prediction.created_at, now)
        watch.waits += 1
        return _Wait(watch)

    def _leave(self, watch: _Watch) -> None:
        if watch.waits <= 0:
            return
        watch.waits -= 1
        if watch.waits == 0:
            if self._watched.get(watch.pid) is watch:
                del self._watched[watch.pid]
            _wake(watch)
            if self.sweeping and len(self._watched) < _core.MIN_WAITERS:
                self.sweeping = False  # too few for sweeps: the rest poll alone, from now
                self._wake_all()

    # -- the waits' side --------------------------------------------------------------------

    def _turn(
        self, wait: _Wait, loop: asyncio.AbstractEventLoop
    ) -> Awaitable[Prediction | Again | None]:
        """What ``wait``'s turn does now: answer, lead a sweep that is due, or sleep."""
        watch = wait.watch
        if watch.finished is not None:
            self.outcomes["delivered"] += 1
            return wait._answer(loop, watch.finished)
        if watch.ready:
            watch.ready = False  # once per sweep that saw it: a failing GET cannot spin
            self.outcomes["read"] += 1
            return wait._answer(loop, None)
        now = loop.time()
        if self._due(now):
            return self._leading(now)
        timeout = wait.timeout
        assert timeout is not None
        since = wait.since
        due = wait.began + timeout
        if now >= due:
            if watch.seen > since:
                self.outcomes["spared"] += 1
                return wait._answer(loop, watch.state)
            if watch.missed > since or not (self.sweeping and self._healthy):
                self.outcomes["missed" if watch.missed > since else "alone"] += 1
                return wait._answer(loop, None)
            # A sweep is under way or due: give it a little time before polling alone.
            grace = max(_GRACE_PERIODS * self._period, 2.0 * self._took)
            until = wait.began + max(timeout, grace)
            if self._busy and watch.listing == self._round > since:
                until = max(until, self._started + _JOIN_PERIODS * self._period)
            if now >= until:
                self.outcomes["late"] += 1
                return wait._answer(loop, None)
            watch.overdue = True
        else:
            until = due
        if len(self._watched) >= _core.MIN_WAITERS and self._timer in (None, wait):
            self._timer, self._timer_watch = wait, watch  # runs the next sweep when due
            if not self._busy:  # (the sweep running now wakes it when it ends)
                until = min(until, max(self._next, now))
        # A plain future rather than ``wait_for``, which on Python 3.11 swallows the caller's
        # cancellation when the future completes at the same moment, as a wake often does.
        return wait._sleep(loop, max(until, now))

    async def _leading(self, now: float) -> Again:
        """Lead the sweep that is due, in the wait's own task; then the wait asks again."""
        await self._lead(now)
        return AGAIN

    def _due(self, now: float) -> bool:
        return not self._busy and len(self._watched) >= _core.MIN_WAITERS and now >= self._next

    async def _lead(self, now: float) -> None:
        """Decide whether to sweep, and sweep: run by whichever wait found the sweep due."""
        self._busy = True
        was = self.sweeping
        try:
            pages = max(_core.pages_for(len(self._watched)), self._pages_used)
            elapsed = [now - w.began for w in self._watched.values()]
            period = _core.sweep_period(self._schedule, elapsed, pages, self._per_second)
            self._period = period
            rate = _core.poll_rate(self._schedule, elapsed)
            self.sweeping = _core.should_sweep(
                len(self._watched), rate, pages, period, sweeping=self.sweeping
            )
            self._next = now + period
            if not self.sweeping:
                return
            loop = asyncio.get_running_loop()
            self._started = now
            try:
                await self._sweep()
            except Exception as exc:  # noqa: BLE001 - a failed sweep only means polls for now
                self._failures += 1
                self.failures += 1
                self._healthy = False
                level = logging.WARNING if self._failures % 10 == 1 else logging.DEBUG
                logger.log(
                    level,
                    "sweep of running predictions failed (%d in a row), they poll alone: %r",
                    self._failures,
                    exc,
                )
                backoff = min(_MAX_BACKOFF_PERIODS, 2.0 ** min(self._failures, 16))
                self._next = loop.time() + backoff * period
            else:
                self._failures = 0
                self._healthy = True
                self._took = loop.time() - now
        finally:
            self._busy = False
            if was != self.sweeping or not self._healthy:
                self._wake_all()  # overdue waits stop waiting for news that will not come
            elif self._timer_watch is not None:
                _wake(self._timer_watch)  # the timer's sleep now aims at the next sweep

    async def _sweep(self) -> None:
        """One sweep: every span of watched predictions listed, ``_SPANS_AT_ONCE`` at a time."""
        self._round += 1
        number = self._round
        watched = dict(self._watched)
        for watch in watched.values():
            watch.listing = number  # a wait whose poll falls due meanwhile joins this sweep
        order = sorted(watched, key=lambda pid: watched[pid].created_at)
        spans = _core.ranges([watched[pid].created_at for pid in order])
        unseen = set(watched)
        try:
            turns = asyncio.Semaphore(_SPANS_AT_ONCE)
            outcomes = await asyncio.gather(
                *(
                    self._span(after, before, watched, unseen, number, turns)
                    for after, before in spans
                ),
                return_exceptions=True,
            )
        finally:
            # What it did not reach (a failure, the page limit) its waits poll for themselves.
            for pid in unseen:
                watch = watched[pid]
                watch.missed = number
                if watch.overdue:
                    _wake(watch)
        self.sweeps += 1
        self._pages_used = sum(o for o in outcomes if isinstance(o, int))
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _span(
        self,
        after: dt.datetime,
        before: dt.datetime | None,
        watched: dict[str, _Watch],
        unseen: set[str],
        number: int,
        turns: asyncio.Semaphore,
    ) -> int:
        """List one span, at most ``PAGES_PER_SPAN`` pages, in one of ``turns``; the pages read."""
        pages = 0
        async with turns:
            listing = self._pages(after, before)
            try:
                async for page in listing:
                    pages += 1
                    self.pages += 1
                    for prediction in page.results:
                        watch = watched.get(prediction.id)
                        if watch is not None:
                            unseen.discard(prediction.id)
                            self._report(watch, prediction, number)
                    if pages >= _core.PAGES_PER_SPAN:
                        break
            finally:
                close = getattr(listing, "aclose", None)
                if close is not None:
                    await close()
        return pages

    def _report(self, watch: _Watch, prediction: Prediction, number: int) -> None:
        watch.seen = number
        if prediction.is_terminal:
            if complete(prediction):
                watch.finished = prediction
            else:
                watch.ready = True
            _wake(watch)
        else:
            # Unchanged since the last listing (the common case): keep the state the wait was
            # handed then and holds, not a second copy of each prediction while its wait sleeps.
            if watch.state is None or watch.state != prediction:
                watch.state = prediction
            if watch.overdue:
                _wake(watch)

    def _wake_one(self) -> None:
        """Wake one sleeping wait (to take the sweep timer over)."""
        if len(self._watched) < _core.MIN_WAITERS:
            return
        for watch in self._watched.values():
            waker = watch.waker
            if waker is not None and not waker.done():
                waker.set_result(AGAIN)
                return
            for waker in watch.more or ():
                if not waker.done():
                    waker.set_result(AGAIN)
                    return

    def _wake_all(self) -> None:
        for watch in self._watched.values():
            _wake(watch)


def _wake(watch: _Watch) -> None:
    waker = watch.waker
    if waker is not None and not waker.done():
        waker.set_result(AGAIN)
    for waker in watch.more or ():
        if not waker.done():
            waker.set_result(AGAIN)


def _done(waker: Waker) -> None:
    if not waker.done():
        waker.set_result(AGAIN)
