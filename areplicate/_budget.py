"""The client-wide request budget: paces creates and other requests, learns the account's real
limit, pauses everything on a 429, and (with ``RateLimits(shared=...)``) shares all of that with
every process on the same token through Redis.

The arithmetic is pure (``_core/pace.py``); this module owns the clock, the waiting and the choice
of backend. Redis is imported only when a shared budget is configured.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from areplicate._config import RateLimits
from areplicate._core.pace import Pace, PaceParams, paused, reserve, succeeded, throttled

if TYPE_CHECKING:
    from areplicate._redis_budget import SharedPaces

__all__ = ["Budget", "pace_params"]

logger = logging.getLogger("areplicate")

#: After Redis failed, how long the budget paces alone before it tries Redis again.
RECONNECT_AFTER = 5.0


def pace_params(limits: RateLimits, *, create: bool, share: float = 1.0) -> PaceParams:
    """The pace for one class of request (creates, or everything else) under ``limits``.

    ``share`` scales the ceiling only, not the burst: a process pacing at a fallback share of the
    limits may still start with the same burst.
    """
    per_minute = limits.creates_per_minute if create else limits.requests_per_minute
    return PaceParams(ceiling=per_minute / 60.0 * share, burst=limits.burst)


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    """A ``ratelimit-*`` header as a non-negative finite number; None when absent or unreadable.

    A bad header is ignored rather than raised: it must never fail the request that carried it.
    """
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _allowance(headers: Mapping[str, str]) -> tuple[float | None, float | None]:
    """A 2xx's ``ratelimit-remaining`` and ``ratelimit-reset`` (each None when absent or unreadable)."""
    return (
        _header_number(headers, "ratelimit-remaining"),
        _header_number(headers, "ratelimit-reset"),
    )


class LocalPaces:
    """The two paces (creates, others) of one process, on an injected steady clock.

    A thin stateful shell over the pure functions of ``_core.pace``: all the arithmetic is there.
    """

    def __init__(
        self, limits: RateLimits, *, share: float = 1.0, clock: Callable[[], float]
    ) -> None:
        """Fresh paces for both classes at ``share`` of ``limits``, timed on ``clock``."""
        self._clock = clock
        now = clock()
        self.params = {
            create: pace_params(limits, create=create, share=share) for create in (True, False)
        }
        self.paces = {create: Pace.fresh(self.params[create], now) for create in (True, False)}

    def reserve(self, create: bool) -> float:
        """Take a slot; the seconds to wait for it.

        The slot is taken now even though the request goes later: the caller must sleep the returned
        delay (0.0 or more) before sending, or the pace runs ahead of the limits.
        """
        now = self._clock()
        self.paces[create], go = reserve(self.paces[create], self.params[create], now)
        return go - now

    def observe(self, create: bool, ok: bool, remaining: float | None, reset: float | None) -> None:
        """Learn from one response: ``ok`` (2xx) or a 429.

        ``remaining`` and ``reset`` are the response's ``ratelimit-*`` headers (None when absent),
        which let the pace slow down *before* a 429 when the account's allowance runs low.
        """
        now = self._clock()
        pace, params = self.paces[create], self.params[create]
        if ok:
            self.paces[create] = succeeded(pace, params, now, remaining, reset)
        else:
            self.paces[create] = throttled(pace, params, now)

    def pause(self, seconds: float) -> None:
        """Hold both paces for ``seconds``.

        Both classes pause: the API's 429 does not say which limit was hit.
        """
        until = self._clock() + seconds
        for create in (True, False):
            self.paces[create] = paused(self.paces[create], self.params[create], until)


class _Turns:
    """The queue of one request class under local pacing, served one slot at a time, in order.

    It does what a lock held across "reserve a slot, sleep until it" does, with one wake-up per
    request instead of two: whoever's turn ends reserves the next waiter's slot at that moment and
    wakes it at the slot, not at once only to put it to sleep. So no slot is reserved ahead of the
    turn before it. The reservation comes one pass of the loop sooner than a lock's next holder
    would make it; a 429 handled in between pauses everyone, and a turn that sits out a pause
    takes a fresh slot after it, at the pace the 429 left.
    """

    __slots__ = ("_budget", "_held", "_next", "_timer", "_waiting")

    def __init__(self, budget: Budget) -> None:
        self._budget = budget
        self._held = False  # a turn is in progress: its holder reserved, and has not gone yet
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._next: asyncio.Future[None] | None = None  # the waiter given the current turn
        self._timer: asyncio.TimerHandle | None = None  # wakes ``_next`` at its slot

    async def take(self, local: LocalPaces, create: bool) -> None:
        """Wait for this caller's turn and slot (and any pause), then let the next one have its."""
        if self._held:
            turn = asyncio.get_running_loop().create_future()
            self._waiting.append(turn)
            try:
                await turn
            except BaseException:
                if self._next is turn:  # the turn was ours already: the next waiter must not starve
                    self._pass(local, create)
                elif turn in self._waiting:  # (not there when a turn ended since skipped it)
                    self._waiting.remove(turn)
                raise
        else:
            self._held = True
            try:
                delay = local.reserve(create)
                if delay > 0:
                    await asyncio.sleep(delay)
            except BaseException:
                self._pass(local, create)
                raise
        try:
            budget = self._budget  # a 429 seen meanwhile may have paused (or extended a pause)
            while (wait := budget._resume_at - budget._clock()) > 0:
                await asyncio.sleep(wait)
                # The slot was reserved before the pause: used now, it would go at the pause's end
                # together with the first one reserved after it. Take a fresh one, at the pace the
                # 429 left (the old slot is spent: the pace errs slow).
                if (delay := local.reserve(create)) > 0:
                    await asyncio.sleep(delay)
        finally:
            self._pass(local, create)

    def _pass(self, local: LocalPaces, create: bool) -> None:
        """End the current turn: reserve the first waiter's slot now and wake it there."""
        if self._timer is not None:
            self._timer.cancel()  # the turn was given up before its slot: the next one goes now
            self._timer = None
        self._next = None
        while self._waiting:
            turn = self._waiting.popleft()
            if turn.done():
                continue
            self._next = turn
            delay = local.reserve(create)
            if delay > 0:
                self._timer = asyncio.get_running_loop().call_later(delay, self._wake, turn)
            else:
                turn.set_result(None)
            return
        self._held = False

    def _wake(self, turn: asyncio.Future[None]) -> None:
        """The given turn's slot has come."""
        self._timer = None
        if not turn.done():  # cancelled meanwhile: its owner passes the turn on itself
            turn.set_result(None)


class Budget:
    """The client-wide request budget: paces creates and other requests, and pauses all on a 429.

    ``limits=None``: no pacing (a 429 still pauses every request of this client). With
    ``limits.shared`` set, every client on every process using the same token shares one budget in
    Redis; when Redis cannot be reached this client says so once (a WARNING) and paces itself at
    ``limits.fallback_share`` of the limits until Redis answers again.

    Gotcha: the pace starts at an eighth of the limits and doubles every half second while
    requests succeed; a fresh client reaches full pace within a couple of seconds, not at once.
    """

    def __init__(
        self,
        limits: RateLimits | None,
        *,
        token: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Set up the local or shared backend for ``limits`` (None: no pacing at all).

        ``token`` only names the shared Redis keys (hashed there, never stored in clear); the Redis
        module is imported only when a shared budget is asked for, so redis stays an optional extra.
        """
        self.limits = limits
        self._clock = clock
        self._resume_at = 0.0  # this process's own pause (a 429 it saw), on ``clock``
        self._locks = {True: asyncio.Lock(), False: asyncio.Lock()}
        self._turns = {True: _Turns(self), False: _Turns(self)}
        self._local: LocalPaces | None = None
        self._shared: SharedPaces | None = None
        self._retry_shared_at = 0.0
        self._shared_down = False
        self._background: set[asyncio.Task[None]] = set()
        if limits is not None:
            if limits.shared is None:
                self._local = LocalPaces(limits, clock=clock)
            else:
                from areplicate._redis_budget import SharedPaces

                params = {create: pace_params(limits, create=create) for create in (True, False)}
                self._shared = SharedPaces(params, limits.shared, token)

    def __repr__(self) -> str:
        """The mode (off, local or shared) only; never the token or the Redis address's credentials."""
        mode = "off" if self.limits is None else ("shared" if self._shared else "local")
        return f"<Budget {mode}>"

    @property
    def shared(self) -> bool:
        """Whether this budget is held in Redis (and Redis is answering).

        False while falling back to the local share after a Redis failure, though a shared budget
        was configured.
        """
        return self._shared is not None and not self._shared_down

    # -- backend choice -------------------------------------------------------------------

    def _fallback(self) -> LocalPaces:
        """The local paces used while Redis is down, made on first need at ``fallback_share``."""
        if self._local is None:
            assert self.limits is not None
            self._local = LocalPaces(
                self.limits, share=self.limits.fallback_share, clock=self._clock
            )
        return self._local

    def _use_shared(self) -> SharedPaces | None:
        """The Redis backend, or None when there is none or it failed less than RECONNECT_AFTER ago.

        After that wait the next request tries Redis again; only its answer ends the fallback.
        """
        shared = self._shared
        if shared is None or (self._shared_down and self._clock() < self._retry_shared_at):
            return None
        return shared

    def _shared_failed(self, exc: BaseException) -> None:
        """Note a Redis failure: fall back to local pacing and try Redis again after RECONNECT_AFTER.

        The WARNING is logged once per outage, not per request.
        """
        self._retry_shared_at = self._clock() + RECONNECT_AFTER
        if self._shared_down:
            return
        self._shared_down = True
        assert self._shared is not None
        assert self.limits is not None
        logger.warning(
            "the shared request budget at %s is unreachable (%s: %s); pacing this process alone "
            "at %g%% of the rate limits until it answers again (retrying every %g s)",
            self._shared.where,
            type(exc).__name__,
            exc,
            self.limits.fallback_share * 100,
            RECONNECT_AFTER,
        )

    def _shared_ok(self) -> None:
        """Note that Redis answered; ends (and logs the end of) an outage."""
        if self._shared_down:
            self._shared_down = False
            assert self._shared is not None
            logger.warning("the shared request budget at %s answers again", self._shared.where)

    async def _reserve(self, create: bool) -> float:
        """Seconds to wait for the next slot of ``create``'s class, from Redis or the local paces."""
        shared = self._use_shared()
        if shared is not None:
            try:
                delay = await shared.reserve(create)
            except shared.errors as exc:
                self._shared_failed(exc)
            else:
                self._shared_ok()
                return delay
        local = self._local if self._shared is None else self._fallback()
        return 0.0 if local is None else local.reserve(create)

    # -- the interface the session uses ---------------------------------------------------

    async def acquire(self, *, create: bool) -> None:
        """Wait until one more request may go.

        Requests of one class are served one at a time, in arrival order; the two classes do not wait
        for each other, except during a 429 pause, which holds both.
        """
        if self._shared is None and self._local is not None:
            await self._turns[create].take(self._local, create)
            return
        # Shared (a Redis reservation is awaited, so its turn is a lock held across it) or no
        # pacing at all (only a pause can hold a request).
        lock = self._locks[create]
        if self.limits is None and not lock.locked() and self._resume_at <= self._clock():
            return  # no pacing, no pause, nobody queued: what the lock would find, without it
        # One waiter per class holds the queue: it alone reserves a slot and sleeps until it, so
        # no reservation is ever made far ahead at a pace that a 429 has since cut.
        async with lock:
            delay = 0.0 if self._shared is None else await self._reserve(create)
            if delay > 0:
                await asyncio.sleep(delay)
            # A 429 seen while we slept may push the resume time later: look again on waking.
            while (wait := self._resume_at - self._clock()) > 0:
                await asyncio.sleep(wait)
                # As in _Turns.take: a slot reserved before the pause is not used after it.
                delay = 0.0 if self._shared is None else await self._reserve(create)
                if delay > 0:
                    await asyncio.sleep(delay)

    def learned(self, status: int, headers: Mapping[str, str], *, create: bool) -> bool:
        """Learn from a response at once, when that needs no Redis; False: await :meth:`observe`.

        The session calls this on every response: a local (or no) budget learns here, with no
        coroutine to make; only a shared budget that Redis may answer returns False.
        """
        if self.limits is None or not (status == 429 or 200 <= status < 300):
            return True
        if self._use_shared() is not None:
            return False
        ok = status != 429
        remaining, reset = _allowance(headers) if ok else (None, None)
        local = self._local if self._shared is None else self._fallback()
        if local is not None:
            local.observe(create, ok, remaining, reset)
        return True

    async def observe(self, status: int, headers: Mapping[str, str], *, create: bool) -> None:
        """Learn from a response: a 2xx (and its ``ratelimit-*`` headers) or a 429.

        Any other status (4xx, 5xx) teaches the pace nothing: only the API's own rate answers do.
        """
        if self.learned(status, headers, create=create):
            return
        shared = self._use_shared()
        assert shared is not None  # learned() leaves only what Redis may answer
        ok = status != 429
        remaining, reset = _allowance(headers) if ok else (None, None)
        try:
            await shared.observe(create, ok, remaining, reset)
        except shared.errors as exc:
            self._shared_failed(exc)
            self._fallback().observe(create, ok, remaining, reset)
        else:
            self._shared_ok()

    def pause(self, seconds: float) -> None:
        """Hold every request of this client (and, when shared, of every process) for ``seconds``.

        The local pause applies at once; publishing it to Redis runs in the background, so a slow
        Redis never delays the request that saw the 429.
        """
        self._resume_at = max(self._resume_at, self._clock() + seconds)
        if self._local is not None:
            self._local.pause(seconds)
        shared = self._use_shared()
        if shared is not None:
            task = asyncio.get_running_loop().create_task(self._publish_pause(shared, seconds))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _publish_pause(self, shared: SharedPaces, seconds: float) -> None:
        """Tell the other processes about a pause; a Redis failure only starts the fallback."""
        try:
            await shared.pause(seconds)
        except shared.errors as exc:
            self._shared_failed(exc)

    async def aclose(self) -> None:
        """Finish publishing pauses and close the Redis connection (if any). Idempotent.

        Pending publications get a second at most: a pause that could not be shared in time is only
        lost to the other processes, which will meet their own 429.
        """
        if self._background:
            await asyncio.wait(set(self._background), timeout=1.0)
        if self._shared is not None:
            await self._shared.aclose()

    def snapshot(self, *, create: bool) -> Pace | None:
        """This process's local pace (for tests and diagnostics); None when shared or off.

        During a Redis outage this is the fallback pace.
        """
        local = self._local
        return None if local is None else local.paces[create]

    # -- read-only state, for Client.stats ------------------------------------------------

    def rate(self, *, create: bool) -> float | None:
        """This process's current pace (requests per second) for creates or the rest; None when
        pacing is off or held in Redis (the shared pace lives there)."""
        if self.limits is None or self.shared:
            return None
        local = self._local
        return None if local is None else local.paces[create].rate

    def paused_for(self) -> float:
        """Seconds until this process's pause after a 429 ends (0.0: not paused).

        Only the pause this process saw or set: a pause another process published to Redis does not
        show here.
        """
        return max(0.0, self._resume_at - self._clock())
