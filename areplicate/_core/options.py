"""Checks on create options, made before anything is sent (docs/api-notes.md#creating-predictions).

Pure: each raises ValueError saying what was wrong and what is accepted.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from urllib.parse import urlsplit

from areplicate._core.times import format_duration, parse_duration

__all__ = [
    "MAX_WAIT",
    "WEBHOOK_EVENTS",
    "cancel_after",
    "check_timeout",
    "check_webhook",
    "hold_seconds",
]

#: The events a webhook may be filtered to.
WEBHOOK_EVENTS = frozenset({"start", "output", "logs", "completed"})
#: The longest ``Prefer: wait`` window, in seconds.
MAX_WAIT = 60
_MIN_LIFETIME = 5.0
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def hold_seconds(hold: bool | int) -> int | None:
    """The ``Prefer: wait`` seconds for ``hold`` (True = 60, False = none, or 1-60).

    ``0`` is an error, not "don't hold": say ``False``. The window only holds the create's answer
    back until the prediction ends or the seconds run out; a prediction still running then comes
    back unfinished, to be polled (docs/api-notes.md#prefer-wait).
    """
    if hold is False or hold is None:
        return None
    if hold is True:
        return MAX_WAIT
    if isinstance(hold, int) and 1 <= hold <= MAX_WAIT:
        return hold
    raise ValueError(
        f"hold must be True (hold the create's response up to {MAX_WAIT}s), False, or whole "
        f"seconds from 1 to {MAX_WAIT}; got {hold!r}"
    )


def check_webhook(webhook: str | None, events: Sequence[str] | None) -> None:
    """A webhook must be https (http only on loopback, for testing); events from the known four.

    A bare string for the events is refused even when it names one event (``"completed"``):
    it would otherwise be read as its characters. A filter without a webhook is refused too: it
    could never take effect (docs/api-notes.md#webhook-options).
    """
    if webhook is not None:
        parts = urlsplit(webhook) if isinstance(webhook, str) else None
        ok = parts is not None and bool(parts.hostname)
        if ok and parts is not None and parts.scheme != "https":
            ok = parts.scheme == "http" and parts.hostname in _LOOPBACK
        if not ok:
            raise ValueError(
                "webhook must be an https:// URL (http:// only for localhost testing), "
                f"got {webhook!r}"
            )
    if events is not None:
        if isinstance(events, str) or not events:
            raise ValueError(
                "webhook_events_filter must be a non-empty list drawn from "
                f"{sorted(WEBHOOK_EVENTS)}, got {events!r}"
            )
        unknown = [e for e in events if e not in WEBHOOK_EVENTS]
        if unknown:
            raise ValueError(
                f"unknown webhook event(s) {unknown}; choose from {sorted(WEBHOOK_EVENTS)}"
            )
        if webhook is None:
            raise ValueError("webhook_events_filter was given without a webhook URL")


def cancel_after(lifetime: str | float | dt.timedelta | None) -> str | None:
    """The ``Cancel-After`` header for a lifetime (at least 5 s), or None for no deadline.

    The lifetime counts from the prediction's creation, so time spent queued counts too, and the
    API enforces it: the prediction ends canceled (or aborted, if it never started) even when
    this process is gone (docs/api-notes.md#cancel-after).
    """
    if lifetime is None:
        return None
    seconds = parse_duration(lifetime)
    if seconds < _MIN_LIFETIME:
        raise ValueError(
            f"lifetime must be at least {_MIN_LIFETIME:g}s (the API's minimum), got {lifetime!r}"
        )
    return format_duration(seconds)


def check_timeout(timeout: float | None) -> None:
    """A whole-call deadline is None (none) or seconds >= 0."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise ValueError(
            f"timeout must be seconds >= 0 for the whole call (or None for no deadline), "
            f"got {timeout!r}"
        )
