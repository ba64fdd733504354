"""When to check many running predictions with list pages (a sweep) instead of one GET each.

``GET /predictions`` answers 100 predictions a page, newest first, from ``created_after`` on: one
page reports on up to 100 running predictions for the price of one request. A sweep lists from just
before the oldest prediction being waited on until it has seen them all. It pays when the waits'
own polls would cost more requests a second than the sweep's pages; the numbers behind the
defaults are in benchmarks/README.md ("Polls: sweep vs per-prediction").

Pure arithmetic: no clock, no I/O. Times are seconds; ``elapsed`` values are how long each wait has
been polling.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence

from areplicate._core.retry import PollSchedule

__all__ = [
    "MIN_WAITERS",
    "PAGE_SIZE",
    "page_limit",
    "pages_for",
    "poll_rate",
    "should_sweep",
    "sweep_period",
    "window_start",
]

#: Predictions a list page holds.
PAGE_SIZE = 100
#: Fewest waits worth a sweep: below this the waits poll on their own, as they always did. Measured:
#: a sweep costs as much as the polls of about three long-running waits (see benchmarks/README.md);
#: a margin above that keeps a handful of short waits from starting and stopping sweeps.
MIN_WAITERS = 8
#: The longest sweep period, as a fraction of the poll schedule's cap (2 s for the default 5 s
#: cap): long predictions' completions are noticed well before their own capped polls would.
PERIOD_OF_CAP = 0.4
#: Share of the request budget (non-create requests) a sweep's pages may take, leaving the rest to
#: the GET each finished prediction costs, fallback polls and everything else the client does.
BUDGET_SHARE = 0.5
#: How far before the oldest waited-on ``created_at`` a sweep lists from. Both sides are the API's
#: own clock (no skew to allow for); this covers ``created_after`` being exclusive on some servers
#: and timestamps rounded when formatted.
WINDOW_MARGIN = 1.0
#: Most pages one sweep reads, whatever the listing holds (an account whose other work floods the
#: listing must not make a sweep read for ever: the waits it did not reach poll on their own).
MAX_PAGES = 200


def window_start(oldest: dt.datetime, margin: float = WINDOW_MARGIN) -> dt.datetime:
    """The ``created_after`` of a sweep whose oldest waited-on prediction was created at ``oldest``.

    A naive ``oldest`` is taken as UTC, as the API's timestamps are.
    """
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.timezone.utc)
    return oldest - dt.timedelta(seconds=max(0.0, margin))


def pages_for(listed: int) -> int:
    """Pages a listing of ``listed`` predictions takes (at least one: an empty listing is a page)."""
    return max(1, math.ceil(max(0, listed) / PAGE_SIZE))


def page_limit(watched: int, listed: int) -> int:
    """Most pages one sweep may read: twice what the waits (or the last sweep's listing, if
    longer) need, plus two for creates racing the sweep, never above :data:`MAX_PAGES`."""
    return min(MAX_PAGES, 2 * pages_for(max(watched, listed)) + 2)


def sweep_period(
    schedule: PollSchedule, elapsed: Sequence[float], pages: int, per_second: float | None
) -> float:
    """Seconds between sweeps for waits ``elapsed`` seconds into each.

    The interval the median wait would poll at on its own (young waits want news soon, old ones
    less often), at most :data:`PERIOD_OF_CAP` of ``schedule.cap``; longer when ``pages`` a sweep
    would exceed :data:`BUDGET_SHARE` of a budget of ``per_second`` requests (None: no budget).
    """
    ordered = sorted(elapsed)
    typical = schedule.interval(ordered[len(ordered) // 2]) if ordered else schedule.cap
    period = max(schedule.first, min(PERIOD_OF_CAP * schedule.cap, typical))
    if per_second is not None and per_second > 0:
        period = max(period, pages / (BUDGET_SHARE * per_second))
    return period


def poll_rate(schedule: PollSchedule, elapsed: Iterable[float]) -> float:
    """Requests a second the waits, ``elapsed`` seconds into each, would make polling on their own."""
    return sum(1.0 / schedule.interval(e) for e in elapsed)


def should_sweep(waiters: int, rate: float, pages: int, period: float, *, sweeping: bool) -> bool:
    """Whether ``waiters`` waits whose own polls would cost ``rate`` requests a second are better
    checked by a sweep of ``pages`` pages every ``period`` seconds.

    A sweep starts when it costs no more than the polls it replaces and keeps going until it costs
    twice as much (hysteresis: waits thinning out, or one slow listing, do not flap it on and off).
    """
    if waiters < MIN_WAITERS or period <= 0:
        return False
    cost = pages / period
    return cost <= (2.0 if sweeping else 1.0) * rate
