"""RunOptions: the options of one create (and of the wait after it), checked once, carried as one value.

Users pass keyword arguments (``client.run(ref, input, timeout=30, lifetime="5m")``); the public
functions build one :class:`RunOptions` from them at the edge, and from there it travels unchanged
through the fan-out and ``create_and_wait`` down to the request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TypeAlias

import attrs

from areplicate._core.options import (
    WEBHOOK_EVENTS,
    cancel_after,
    check_timeout,
    check_webhook,
    hold_seconds,
)

__all__ = ["Lifetime", "RunOptions"]

#: How long the API may run a prediction before it cancels it: ``"5m"``, ``"1h30m"``, seconds, or
#: a timedelta (at least 5 s).
Lifetime: TypeAlias = str | float | dt.timedelta


def _events(events: Sequence[str] | None) -> tuple[str, ...] | None:
    """The webhook events as a tuple (so the frozen options stay hashable), None kept as None.

    A bare string is refused: ``"completed"`` would otherwise pass as the events ``c``, ``o``, …
    """
    if isinstance(events, str):  # a tuple of its letters would pass for a list of events
        raise ValueError(  # noqa: TRY004 - a ValueError, like every other option check
            "webhook_events_filter must be a non-empty list drawn from "
            f"{sorted(WEBHOOK_EVENTS)}, got {events!r}"
        )
    return None if events is None else tuple(events)


@attrs.frozen(kw_only=True, slots=True)
class RunOptions:
    """How to create a prediction and how long to wait for it. Every value is checked here, once.

    ``hold`` is the API's ``Prefer: wait`` window: True holds the create's response open up to 60 s
    (or 1-60 whole seconds; False: answer at once). It only shortens the round trip for quick
    models: the prediction may still be running when the create answers. ``timeout`` is the whole
    call's deadline in seconds (create and wait together, None: none); when it runs out the remote
    prediction is cancelled (unless ``cancel_on_exit=False``) and WaitTimeoutError is raised.
    ``lifetime`` is the API's own deadline (``Cancel-After``), which holds even if this process dies.

    The default ``hold`` is True, as for ``run``; a bare ``predictions.create`` passes False.
    """

    hold: bool | int = True
    timeout: float | None = None
    lifetime: Lifetime | None = None
    validate: bool = False
    webhook: str | None = None
    webhook_events_filter: tuple[str, ...] | None = attrs.field(default=None, converter=_events)
    cancel_on_exit: bool = True

    def __attrs_post_init__(self) -> None:
        """Check every value once, so a bad option raises ValueError before anything is sent.

        Also runs on ``attrs.evolve``, which is how the options are adjusted on the way down.
        """
        hold_seconds(self.hold)
        check_timeout(self.timeout)
        cancel_after(self.lifetime)
        check_webhook(self.webhook, self.webhook_events_filter)

    @property
    def hold_seconds(self) -> int | None:
        """The ``Prefer: wait`` seconds to send, or None for no header.

        ``hold=True`` is 60 (the API's longest window); False sends none (``0`` is refused).
        """
        return hold_seconds(self.hold)

    @property
    def cancel_after(self) -> str | None:
        """The ``Cancel-After`` header to send, or None for no API-side deadline.

        Recomputed from ``lifetime`` on each read (a few string operations): the value stored is the
        caller's, so a repr shows what they passed.
        """
        return cancel_after(self.lifetime)
