"""The wait loop shared by predictions and trainings: poll until the work ends, whatever the API
answers in between.

A wait ends on a terminal status, on a definitive error, on its own ``timeout`` or when the
awaiting task is cancelled. A poll that fails in a way the next one may not (a 5xx, a 2xx whose
body cannot be read, a broken connection, a 429), after the session's own retries, is absorbed:
the wait backs off and polls again. Only the caller giving up (cancellation) or the wait's own
timeout cancels the remote work; a failed poll never does, because the work it asked about is
still running and paid for.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeAlias, TypeVar

import anyio

from areplicate._core.retry import PollSchedule
from areplicate._core.status import Status
from areplicate._errors import (
    APIConnectionError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
)
from areplicate._models import Prediction, WaitTimeoutError

__all__ = ["AGAIN", "TRANSIENT", "Again", "poll_delay", "wait_until_done"]

logger = logging.getLogger("areplicate")

#: Poll failures a later poll may not repeat. Everything else the API answers (401, 402, 403, 404,
#: 422, ...) says the same thing every time, so it ends the wait.
TRANSIENT = (ServerError, UnexpectedResponseError, APIConnectionError, RateLimitError)
# Consecutive failed polls before the wait says so at WARNING level (and every so many after).
_WARN_EVERY = 10


class _NoDeadline:
    """The deadline of a wait without a timeout: a context manager that does nothing.

    Not ``contextlib.nullcontext``: a ``with`` block holds its manager's bound ``__exit__`` for
    as long as it runs (~64 bytes a wait); a static one binds to nothing.
    """

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    @staticmethod
    def __exit__(*exc: object) -> None:
        return None


_NO_DEADLINE = _NoDeadline()

P = TypeVar("P", bound=Prediction)
P_co = TypeVar("P_co", bound=Prediction, covariant=True)


class Again(enum.Enum):
    """A hook's answer "I slept and was woken: ask me again" (the sweeper's, which keeps no
    coroutine of its own while a wait sleeps)."""

    AGAIN = "again"


AGAIN = Again.AGAIN


class Polled(Protocol[P_co]):
    """What a wait polls: the service (predictions, trainings) itself, not two bound methods
    (which a wait would hold for as long as it runs)."""

    def get(self, pid: str, /) -> Awaitable[P_co]:
        """The current state of ``pid``."""
        ...

    def _cancel_shielded(self, pid: str, /) -> Coroutine[Any, Any, None]:
        """Cancel ``pid`` remotely, outliving the caller's cancellation; never raises."""
        ...


# The session's ``on_close``: registers a clean-up for close() to run, returns its undo.
OnClose: TypeAlias = Callable[[Callable[[str], Coroutine[Any, Any, None]], str], Callable[[], None]]


class Deliveries(Protocol):
    """A hook awaited instead of each sleep between polls: a webhook Receiver, a sweep's watch."""

    def result(self, pid: str, timeout: float, /) -> Awaitable[Prediction | Again | None]:
        """Within ``timeout`` seconds: a terminal state, a running one read for us, or None;
        ``AGAIN`` to be asked again (for the same sleep)."""
        ...


class Watch(Deliveries, Protocol):
    """A wait's registration with the sweeper: its hook, left when the wait ends."""

    def leave(self) -> None:
        """The wait is over."""
        ...


class Sweeps(Protocol):
    """The client's sweeper, as a wait sees it."""

    def watch(self, prediction: Prediction | None, /) -> Watch | None:
        """Register a wait on ``prediction``; None when it cannot be swept."""
        ...


def poll_delay(
    schedule: PollSchedule, elapsed: float, failures: int, error: BaseException | None
) -> float:
    """Seconds before the next poll: the schedule's interval, or after ``failures`` failed polls in
    a row at least ``first * 2**failures`` (capped at the schedule's ``cap``) and at least the
    ``Retry-After`` a 429 asked for."""
    delay = schedule.interval(elapsed)
    if failures:
        delay = max(delay, min(schedule.cap, schedule.first * 2.0 ** min(failures, 64)))
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            delay = max(delay, error.retry_after)
    return delay


async def wait_until_done(
    polled: Polled[P],
    cls: type[P],
    pid: str,
    current: P | None,
    *,
    schedule: PollSchedule,
    timeout: float | None,
    cancel_on_exit: bool,
    elapsed: float = 0.0,
    delivered: Deliveries | None = None,
    sweeper: Sweeps | None = None,
    on_close: OnClose | None = None,
) -> P:
    """Poll ``polled.get(pid)`` until it returns a terminal ``cls``, by the module docstring's rules.

    ``current`` is the last state known (None: read it first). ``polled._cancel_shielded`` is the
    remote cancel, run on the caller's cancellation or on ``timeout`` when ``cancel_on_exit``.
    ``elapsed`` is time already spent (by a create): the schedule and ``timeout`` both count from
    the start of the whole call, so WaitTimeoutError reports the ``timeout`` the caller gave.
    ``delivered.result(pid, s)``, when given (a webhook Receiver), is awaited instead of each sleep
    between polls: a terminal state it returns within ``s`` seconds ends the wait at once, a running
    one stands for the poll it replaces (a sweep read it), None means "poll now", and ``AGAIN``
    "ask me again" (the hook slept); the polls are the fallback for a lost delivery or a prediction
    no sweep reached. Without it, ``sweeper`` (when given) watches ``current`` from the wait's
    start to its end, and its watch is the hook. ``on_close`` (the session's) has the remote
    cancel sent if the client closes under the wait, which could not go on (``cancel_on_exit``).
    """
    if current is not None and current.is_terminal:
        return current
    # Registered here, not by the caller: a wait that never starts leaves nothing watched.
    watch = None if sweeper is None or delivered is not None else sweeper.watch(current)
    if watch is not None:
        delivered = watch
    undo = on_close(polled._cancel_shielded, pid) if on_close and cancel_on_exit else None
    loop = asyncio.get_running_loop()
    began = loop.time() - elapsed
    failures = 0
    error: BaseException | None = None
    try:
        try:
            left = None if timeout is None else max(0.0, timeout - elapsed)
            # No cancel scope without a deadline: one costs ~0.6 KB for as long as the wait runs.
            scope = None if left is None else anyio.move_on_after(left)
            with _NO_DEADLINE if scope is None else scope:
                while current is None or not current.is_terminal:
                    if current is not None or failures:
                        delay = poll_delay(schedule, loop.time() - began, failures, error)
                        if delivered is None:
                            await asyncio.sleep(delay)
                        else:
                            got = await delivered.result(pid, delay)
                            while got is AGAIN:  # the hook slept: it decides again (same sleep)
                                got = await delivered.result(pid, delay)
                            if got is not None and isinstance(got, cls):
                                # Terminal: the wait is over. Running: someone just read it for
                                # us (a sweep's list page), so this poll is spared.
                                current, failures, error = got, 0, None
                                if got.is_terminal:
                                    break
                                continue
                    try:
                        current = await polled.get(pid)
                    except TRANSIENT as exc:
                        failures, error = failures + 1, exc
                        level = logging.WARNING if failures % _WARN_EVERY == 0 else logging.DEBUG
                        logger.log(
                            level, "poll %d of %s failed, polling again: %s", failures, pid, exc
                        )
                        continue
                    failures, error = 0, None
        except BaseException as exc:
            if watch is not None:
                watch.leave()  # before the cancel: the sweeps go on without this wait meanwhile
            # The caller gave up (cancelled, interrupted) while the work may still run: stop it,
            # shielded. A definitive error from a poll (an Exception) leaves it alone.
            unfinished = current is None or not current.is_terminal
            if cancel_on_exit and unfinished and not isinstance(exc, Exception):
                await polled._cancel_shielded(pid)
            raise
        if current is None or not current.is_terminal:
            # Only the scope's own deadline leaves the loop early.
            assert scope is not None
            assert scope.cancelled_caught
            if watch is not None:
                watch.leave()
            if cancel_on_exit:
                await polled._cancel_shielded(pid)
            last = current if current is not None else cls(id=pid, status=Status.STARTING)
            raise WaitTimeoutError(last, float(timeout or 0.0))
        return current
    finally:
        if watch is not None:
            watch.leave()  # (a second leave does nothing)
        if undo is not None:
            undo()
