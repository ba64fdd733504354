"""The wait loop shared by predictions and trainings: poll until the work ends.

A wait ends on a terminal status, on an error, on its own ``timeout`` or when the awaiting task
is cancelled; then (except after a 404) the remote work is cancelled, unless the caller opted out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from areplicate._core.retry import PollSchedule
from areplicate._core.status import Status
from areplicate._errors import NotFoundError, WaitTimeoutError
from areplicate._models import Prediction

__all__ = ["wait_until_done"]

P = TypeVar("P", bound=Prediction)


async def wait_until_done(
    get: Callable[[str], Awaitable[P]],
    cancel: Callable[[str], Awaitable[None]],
    cls: type[P],
    pid: str,
    current: P | None,
    *,
    schedule: PollSchedule,
    timeout: float | None,
    cancel_on_exit: bool,
    elapsed: float = 0.0,
) -> P:
    """Poll ``get(pid)`` until it returns a terminal ``cls``; cancelling as the module docstring says.

    ``current`` is the last state known (None: read it first). ``cancel`` is the shielded remote
    cancel, run on the caller's cancellation or on ``timeout`` when ``cancel_on_exit``. ``elapsed``
    is time already spent (by a create), which the schedule counts from.
    """
    if current is not None and current.is_terminal:
        return current
    loop = asyncio.get_running_loop()
    began = loop.time() - elapsed
    try:
        with anyio.move_on_after(timeout) as scope:
            if current is None:
                current = await get(pid)
            while not current.is_terminal:
                await asyncio.sleep(schedule.interval(loop.time() - began))
                current = await get(pid)
    except BaseException as exc:
        # Cancelled (or failed) while the work may still run: stop it, shielded.
        unfinished = current is None or not current.is_terminal
        if cancel_on_exit and unfinished and not isinstance(exc, NotFoundError):
            await cancel(pid)
        raise
    if current is None or not current.is_terminal:
        # Only the scope's own deadline leaves the loop early.
        assert scope.cancelled_caught
        if cancel_on_exit:
            await cancel(pid)
        last = current if current is not None else cls(id=pid, status=Status.STARTING)
        raise WaitTimeoutError(last, float(timeout or 0.0))
    return current
