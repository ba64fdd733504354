"""When to retry, how long to wait, and how often to poll (docs/api-notes.md#retries).

Reads, deletes and cancels are retried on connection errors, 429, 5xx and a 2xx body that cannot
be read. A create is retried only when it provably was not processed: a 429, or a connection that
failed before the request was sent. Anything ambiguous (a 5xx, a timeout after sending, an unreadable
2xx) is raised, marked as possibly created (:func:`maybe_processed`), so nothing is billed twice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from areplicate._core.times import parse_http_date
from areplicate._errors import (
    APIConnectionError,
    APIError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
)

__all__ = [
    "MAX_RETRY_AFTER",
    "PollSchedule",
    "header",
    "maybe_processed",
    "parse_retry_after",
    "retry_after_from",
    "retry_decision",
]

#: The longest single pause a 429's ``Retry-After`` gets: a longer one is waited this long and the
#: request asked again (so one absurd header cannot freeze the client, yet the work still finishes).
MAX_RETRY_AFTER = 120.0

_RETRYABLE_5XX = frozenset({500, 502, 503, 504})
_DETAIL_SECONDS = re.compile(
    r"(?:available in|resets in)\s*~?\s*(\d+(?:\.\d+)?)\s*s", re.IGNORECASE
)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup over any mapping (plain dicts included)."""
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for key, val in headers.items():
        if key.lower() == lower:
            return val
    return None


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date.

    ``now`` is the current Unix time (for dates). Past dates give 0; garbage gives None.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        when = parse_http_date(text)
        if when is None:
            return None
        seconds = when - now
    if not math.isfinite(seconds):  # NaN or infinite
        return None
    return max(0.0, seconds)


def retry_after_from(headers: Mapping[str, str], body: Any, *, now: float) -> float | None:
    """The wait a 429 asks for: ``Retry-After`` header, else ``retry_after`` or the ``detail`` text."""
    seconds = parse_retry_after(header(headers, "retry-after"), now=now)
    if seconds is not None:
        return seconds
    if isinstance(body, dict):
        value = body.get("retry_after")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            return float(value)
        detail = body.get("detail")
        if isinstance(detail, str) and (m := _DETAIL_SECONDS.search(detail)):
            return float(m.group(1))
    return None


def maybe_processed(error: BaseException) -> bool:
    """Whether the request that failed with ``error`` may have been acted on by the API.

    True for a connection that broke after sending, a 5xx, a 3xx and a 2xx whose body could not be
    read; False for a 4xx (the API refused it) and a connection that never opened. For a create this
    is the difference between "nothing happened" and "the prediction may exist".
    """
    if isinstance(error, APIConnectionError):
        return error.sent
    if isinstance(error, APIError):
        return not 400 <= error.status < 500
    return False


def retry_decision(error: BaseException, *, idempotent: bool) -> bool | float:
    """Whether to retry after ``error``: False, True (use the backoff), or the seconds to wait.

    ``idempotent`` is False for a create: then only a 429 or a connection that never sent is retried.
    A 429 is always retried; its wait is capped at :data:`MAX_RETRY_AFTER`.
    """
    if isinstance(error, RateLimitError):
        if error.retry_after is None:
            return True
        return min(error.retry_after, MAX_RETRY_AFTER)
    if isinstance(error, APIConnectionError):
        return idempotent or not error.sent
    if isinstance(error, ServerError):
        return idempotent and error.status in _RETRYABLE_5XX
    if isinstance(error, UnexpectedResponseError):
        # A 2xx body that is not JSON or was cut short: a read may simply ask again.
        return idempotent and 200 <= error.status < 300
    return False


@attrs.frozen
class PollSchedule:
    """How long to sleep between polls of a running prediction.

    The interval is ``first + ratio * elapsed``, capped at ``cap``: a quick first look, then polls that
    thin out as a prediction runs long, so completion is noticed within about ``first`` plus
    ``ratio`` of its run time. The client-wide request budget may delay a poll further.
    """

    first: float = 0.1
    ratio: float = 0.1
    cap: float = 5.0

    def __attrs_post_init__(self) -> None:
        """Refuse a schedule that would poll in a tight loop (``first <= 0``), shrink its intervals
        as time passes (``ratio < 0``), or cap them below its own first interval."""
        if self.first <= 0 or self.ratio < 0 or self.cap < self.first:
            raise ValueError(
                "PollSchedule needs first > 0, ratio >= 0 and cap >= first; "
                f"got first={self.first}, ratio={self.ratio}, cap={self.cap}"
            )

    def interval(self, elapsed: float) -> float:
        """Seconds to sleep before the next poll, ``elapsed`` seconds after waiting began."""
        return min(self.cap, self.first + self.ratio * max(0.0, elapsed))
