"""When to check many running predictions with list pages (a sweep) instead of one GET each.

``GET /predictions`` answers 100 predictions a page, newest first, filtered by ``created_after`` and
``created_before``: one page reports on up to 100 running predictions for the price of one
request. A sweep cuts the waited-on predictions, by ``created_at``, into spans of about 100
(:func:`ranges`) and lists many spans at once. It pays when the waits' own polls would cost more
requests a second than the sweep's pages; the numbers behind the defaults are in
benchmarks/README.md ("Polls: sweep vs per-prediction").

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
    "ranges",
    "pages_for",
    "poll_rate",
    "should_sweep",
    "sweep_period",
    "window_start",
]

#: Predictions a list page holds.
PAGE_SIZE = 100
#: Fewest waits worth a sweep: below this the waits poll on their own, as they always did. With the
#: default schedule a one-page sweep every 2 s costs what the capped polls (one every 5 s) of 2.5
#: long-running waits cost; the margin above that keeps a handful of waits from starting and
#: stopping sweeps, and ``should_sweep`` still compares the costs above it.
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
#: Most pages a sweep reads of one span, whatever it holds (an account whose other work floods
#: the listing must not make a sweep read for ever: the waits it did not reach poll on their own).
PAGES_PER_SPAN = 3
#: How much neighbouring spans overlap, in seconds.
SEAM = 0.001


def window_start(oldest: dt.datetime, margin: float = WINDOW_MARGIN) -> dt.datetime:
    """The ``created_after`` of a listing that must include a prediction created at ``oldest``.

    A naive ``oldest`` is taken as UTC, as the API's timestamps are.
    """
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=dt.timezone.utc)
    return oldest - dt.timedelta(seconds=max(0.0, margin))


def ranges(
    created: Sequence[dt.datetime], *, size: int = PAGE_SIZE, margin: float = WINDOW_MARGIN
) -> list[tuple[dt.datetime, dt.datetime | None]]:
    """``(created_after, created_before)`` spans covering predictions created at ``created``
    (ascending), about ``size`` of them each, newest span open-ended (``None``).

    A sweep lists many spans at once, so it takes a request's time, not one per page, and skips
    what lies between the spans (predictions that finished, or not waited on). Spans overlap by
    :data:`SEAM` so none falls through a gap whatever the server's bounds are (inclusive or not);
    the oldest starts :data:`WINDOW_MARGIN` early. Equal timestamps never straddle two spans.
    """
    seam = dt.timedelta(seconds=SEAM)
    spans: list[tuple[dt.datetime, dt.datetime | None]] = []
    size = max(1, size)
    i, n = 0, len(created)
    while i < n:
        j = min(n, i + size)
        while j < n and created[j] == created[j - 1]:
            j += 1
        after = window_start(created[i], margin) if i == 0 else _aware(created[i]) - seam
        before = None if j == n else _aware(created[j - 1]) + seam
        spans.append((after, before))
        i = j
    return spans


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)


def pages_for(listed: int) -> int:
    """Pages a listing of ``listed`` predictions takes (at least one: an empty listing is a page)."""
    return max(1, math.ceil(max(0, listed) / PAGE_SIZE))


def sweep_period(
    schedule: PollSchedule, elapsed: Sequence[float], pages: int, per_second: float | None
) -> float:
    """Seconds between sweeps for waits ``elapsed`` seconds into each.

    The interval the wait three quarters of the way from the youngest to the oldest would poll at
    on its own (young waits want news soon, old ones less often; the median instead cost a 20 s
    model 0.36 pages a prediction where this costs 0.25, see benchmarks/README.md), at most
    :data:`PERIOD_OF_CAP` of ``schedule.cap``; longer when ``pages`` a sweep would exceed
    :data:`BUDGET_SHARE` of a budget of ``per_second`` requests (None: no budget).
    """
    ordered = sorted(elapsed)
    typical = schedule.interval(ordered[len(ordered) * 3 // 4]) if ordered else schedule.cap
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
