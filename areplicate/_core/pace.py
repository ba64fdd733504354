"""The request budget's arithmetic: a token bucket that makes callers wait, and a pace that learns.

Pure: every function takes the time (``now``, seconds on any steady clock) and returns a new
:class:`Pace`; nothing here sleeps or reads a clock. The same arithmetic runs in Python for one
process and as a Lua script inside Redis for many (``areplicate/_redis_budget.py`` mirrors it line
by line; a test runs both on the same events and compares).

The bucket is a GCRA ("virtual scheduling"): ``tat`` is the theoretical time the next request is
due; a request may go ``burst`` seconds before that, so after a quiet spell ``burst`` seconds' worth
of requests go at once, then one every ``1 / rate`` seconds. A caller is given the time it may go
(it waits) rather than a refusal.

The rate learns like TCP's congestion window (AIMD): it starts at ``start`` and doubles every
``doubling`` seconds while requests succeed (slow start) until the first sign of the real limit;
a 429 then halves it (``decrease``) and it climbs back additively, regaining the cut in
``recover`` seconds. ``ratelimit-remaining`` / ``ratelimit-reset`` headers act before any 429: when
fewer than ``low`` seconds' worth of requests (or a quarter of the most ever seen) remain, the pace
drops to the refill rate they imply and stops growing until the account has room again.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import attrs

__all__ = ["Pace", "PaceParams", "reserve", "succeeded", "throttled", "paused", "refill_rate"]


@attrs.frozen
class PaceParams:
    """The knobs of one pace (requests per second unless said otherwise).

    ``ceiling`` is the configured limit, never exceeded; ``floor`` the slowest the pace ever gets
    (a 429 storm never stops the client altogether).
    """

    ceiling: float
    burst: float = 5.0
    floor: float = 1.0 / 60.0
    start: float | None = None  # None: ceiling / 8
    decrease: float = 0.5
    recover: float = 20.0
    doubling: float = 0.5
    hold: float = 1.0
    low: float = 1.0
    #: The floor, never above the ceiling. Worked out once: every paced request clamps to it.
    lowest: float = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        """Refuse a pace that could never send: a zero ceiling would also divide by zero in :func:`reserve`."""
        if not self.ceiling > 0 or not self.burst > 0:
            raise ValueError(f"a pace needs a positive ceiling and burst, got {self!r}")
        object.__setattr__(self, "lowest", min(self.floor, self.ceiling))

    @property
    def first(self) -> float:
        """The rate a fresh pace starts at."""
        start = self.ceiling / 8.0 if self.start is None else self.start
        return min(self.ceiling, max(self.floor, start))


class Pace(NamedTuple):
    """The state of one pace. ``threshold`` < 0 means still in slow start (no limit seen yet).

    A named tuple rather than a frozen attrs class: one is made for every paced request and again
    for every response, and a frozen attrs class sets each field through ``object.__setattr__``
    (a fresh one cost 14k instructions against 6k for the tuple, built positionally).
    """

    rate: float
    threshold: float = -1.0
    step: float = 0.0  # additive increase, requests/second per second
    tat: float = 0.0
    grown: float = 0.0  # when the rate last grew (or was set)
    cut: float = -math.inf  # when it was last cut (one cut per ``hold`` seconds)
    resume: float = 0.0  # nothing goes before this (a 429's Retry-After)
    peak: float = 0.0  # the most ``ratelimit-remaining`` ever seen, plus one

    @classmethod
    def fresh(cls, params: PaceParams, now: float) -> Pace:
        """A new pace at ``params.first``, its bucket holding ``doubling`` seconds' worth.

        Starting with a full ``burst`` would send a flood into an account whose limit is unknown.
        """
        held = max(params.doubling, 1.0 / params.first)  # at least one request goes at once
        return cls(rate=params.first, tat=now + max(params.burst - held, 0.0), grown=now)


def reserve(pace: Pace, params: PaceParams, now: float) -> tuple[Pace, float]:
    """Take the next slot: the new pace and the time the request may go (>= ``now``).

    A generic cell rate algorithm: ``tat`` is the theoretical arrival time of the next request,
    and up to ``burst`` seconds' worth may go at once. The slot is taken on return, so a caller
    that gives up before its time still used it (the pace errs slow, never fast).
    """
    rate = min(params.ceiling, max(params.lowest, pace.rate))
    interval = 1.0 / rate
    tolerance = max(params.burst, interval)
    base = max(pace.tat, now)
    if pace.resume > now:
        # After a pause the requests resume at pace, not as a burst into the same limit.
        base = max(base, pace.resume + tolerance - interval)
    tat = base + interval
    # Positional: the keyword form costs half as much again, on every paced request.
    next_pace = Pace(
        rate, pace.threshold, pace.step, tat, pace.grown, pace.cut, pace.resume, pace.peak
    )
    return next_pace, max(now, tat - tolerance)


def paused(pace: Pace, params: PaceParams, until: float) -> Pace:
    """Hold every request until ``until`` (never shortens a pause already in force).

    The time the pause holds everything is no credit: the bucket is left as if a burst had just
    been sent at ``until``, so the requests resume at pace even when the first slot is asked for
    only once the pause is over (the budget's queue holder sits the pause out, holding the queue).
    """
    resume = max(pace.resume, until)
    interval = 1.0 / min(params.ceiling, max(params.lowest, pace.rate))
    tat = max(pace.tat, resume + max(params.burst, interval) - interval)
    return pace._replace(resume=resume, tat=tat)


def _cut(pace: Pace, params: PaceParams, now: float, rate: float) -> Pace:
    """Cut the rate to ``rate`` and start additive recovery from there.

    The cut rate becomes the ``threshold`` (leaving slow start for good), and ``step`` is set so
    that the rate lost is regained over ``params.recover`` seconds: a deep cut recovers faster in
    absolute terms than a shallow one. Both clocks restart now. The Lua script in the shared budget
    mirrors this function line for line; change both together.
    """
    rate = min(params.ceiling, max(params.lowest, rate))
    regain = max(pace.rate - rate, params.lowest)
    return pace._replace(
        rate=rate, threshold=rate, step=regain / params.recover, cut=now, grown=now
    )


def throttled(pace: Pace, params: PaceParams, now: float) -> Pace:
    """A 429: cut the rate by ``decrease`` (once per ``hold``: a burst of 429s is one signal)."""
    if now - pace.cut < params.hold:
        return pace
    return _cut(pace, params, now, pace.rate * params.decrease)


def refill_rate(peak: float, remaining: float, reset: float) -> float:
    """The account's refill rate that ``ratelimit-remaining`` / ``-reset`` imply.

    ``reset`` is the seconds until the account's bucket is full again, so it refills
    ``peak - remaining`` requests in that time, ``peak`` being the fullest it was ever seen.
    """
    return max(peak - remaining, 1.0) / max(reset, 1e-3)


def succeeded(
    pace: Pace,
    params: PaceParams,
    now: float,
    remaining: float | None = None,
    reset: float | None = None,
) -> Pace:
    """A request succeeded (with the account's ``ratelimit-*`` headers when it sent them).

    Without headers the rate grows: doubling in slow start, additively after the first cut,
    never by more than one second's worth per success (a quiet spell proves nothing). With
    headers it also slows down *before* a 429 when ``remaining`` runs low, toward the refill
    rate they imply. ``reset`` is in seconds, as the API sends it (docs/api-notes.md#rate-limits).
    """
    peak = pace.peak
    cap = params.ceiling
    if remaining is not None:
        peak = max(peak, remaining + 1.0)
        if peak != pace.peak:  # seldom: once the account's fullest has been seen, never again
            pace = pace._replace(peak=peak)
        low = min(pace.rate * params.low, peak / 4.0)
        if remaining < low:
            # The account is nearly out: go at what it refills, no faster (and never cut more
            # than a 429 would: ``reset`` is whole seconds, so the refill it implies is a floor).
            if reset is None:
                return pace._replace(grown=now)
            if reset <= 1.0 and peak < 4.0:
                # A burst of one or two is always "nearly out", and a reset of one whole second
                # says nothing about how fast it refills: grow additively, let 429s tell.
                step = max(pace.step, pace.rate / params.recover)
                rate = pace.rate + step * min(max(now - pace.grown, 0.0), 1.0)
                return pace._replace(rate=min(params.ceiling, rate), grown=now)
            target = refill_rate(peak, remaining, reset)
            if target < pace.rate:
                if now - pace.cut < params.hold:
                    return pace._replace(grown=now)
                return _cut(pace, params, now, max(target, pace.rate * params.decrease))
            cap = target
        elif remaining < 2.0 * low:
            return pace._replace(grown=now)
    # A quiet spell proves nothing about the limit: at most one second of growth per success.
    elapsed = min(max(now - pace.grown, 0.0), 1.0)
    rate = pace.rate
    if pace.threshold < 0:
        rate = rate * 2.0 ** (elapsed / params.doubling)
    else:
        # Additive, but never slower than 5 % a second: a pace cut to the floor by a storm of
        # 429s must not take hours to climb back.
        rate = rate + max(pace.step, rate / params.recover) * elapsed
    rate = max(pace.rate, min(cap, params.ceiling, rate))
    return Pace(rate, pace.threshold, pace.step, pace.tat, now, pace.cut, pace.resume, pace.peak)
