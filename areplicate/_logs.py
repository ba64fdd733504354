"""Log lines a person can read: one ``areplicate`` WARNING per retried request, saying what was
retried, why, which attempt comes next and after how long.

stamina logs every retry it schedules as a bare ``stamina.retry_scheduled`` line. Its hooks are
process-wide, so muting its logger would also mute the retries of the user's own code. Instead a
gate (:class:`_Gate`) is installed among stamina's retry hooks: a retry scheduled inside one of
areplicate's retry loops (a context variable says so) is reported here, any other goes on to the
hooks that were installed before, unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from areplicate import _otel
from areplicate._errors import APIConnectionError, APIError

if TYPE_CHECKING:
    from stamina.instrumentation import RetryDetails

__all__ = ["log_throttled", "reason", "retrying", "shown_url"]

logger = logging.getLogger("areplicate")


def shown_url(url: str) -> str:
    """``url`` as a log line shows it: without its query (a signed link's key lives there)."""
    base, sep, _ = url.partition("?")
    return f"{base}?…" if sep else base.partition("#")[0]


def reason(error: BaseException) -> str:
    """Why a request failed, in a few words: the status and title, or the transport error."""
    if isinstance(error, APIError):
        return f"HTTP {error.status}" + (f" {error.title}" if error.title else "")
    if isinstance(error, APIConnectionError):
        # The message starts with "METHOD url: ", which the line already says.
        text = str(error)
        return text.split(": ", 1)[1] if ": " in text else text
    return type(error).__name__


class _Retrying:
    """What the current task's areplicate retry loop is retrying."""

    __slots__ = ("attempts", "method", "url")

    def __init__(self, method: str, url: str, attempts: int) -> None:
        self.method = method
        self.url = url
        self.attempts = attempts


_RETRYING: contextvars.ContextVar[_Retrying | None] = contextvars.ContextVar(
    "areplicate_retrying", default=None
)


class _Gate:
    """A stamina retry hook: areplicate's retries are logged here, everyone else's by ``inner``."""

    def __init__(self, inner: tuple[object, ...]) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return f"<areplicate retry log gate before {self.inner!r}>"

    def __call__(self, details: RetryDetails) -> contextlib.AbstractContextManager[None] | None:
        """Handle one scheduled retry: log ours as one readable line, pass anyone else's on.

        A retry of ours is not shown to the hooks that were there before, on purpose: it is already
        logged here, and a second, bare line per retry is exactly the noise this module removes. The
        others' hooks get the retry untouched, and any context managers they return are combined so
        stamina exits them all when the retried block ends.
        """
        ours = _RETRYING.get()
        if ours is not None:
            why = reason(details.caused_by)
            _otel.retried(why, details.retry_num + 1, details.wait_for)
            logger.warning(
                "%s %s: %s; retrying in %.2f s (attempt %d of %d)",
                ours.method,
                shown_url(ours.url),
                why,
                details.wait_for,
                details.retry_num + 1,
                ours.attempts,
            )
            return None
        stack = contextlib.ExitStack()
        for hook in self.inner:
            result = hook(details)  # type: ignore[operator]
            if isinstance(result, contextlib.AbstractContextManager):
                stack.enter_context(result)
        # stamina "enters" it (a no-op) and exits it, and with it the hooks' own, at the end.
        return cast("contextlib.AbstractContextManager[None]", stack)


def _install() -> None:
    """Put the gate in front of whatever hooks stamina has now (again, if someone replaced it)."""
    # Imported here, at the first retry: `import areplicate` does not pay for stamina.
    from stamina.instrumentation import get_on_retry_hooks, set_on_retry_hooks

    hooks = get_on_retry_hooks()
    if not any(isinstance(hook, _Gate) for hook in hooks):
        set_on_retry_hooks([_Gate(hooks)])


@contextlib.contextmanager
def retrying(method: str, url: str, attempts: int) -> Iterator[None]:
    """Inside: the retries stamina schedules are areplicate's, for ``method url``."""
    _install()
    token = _RETRYING.set(_Retrying(method, url, attempts))
    try:
        yield
    finally:
        _RETRYING.reset(token)


def log_throttled(method: str, url: str, error: APIError, in_a_row: int, pause: float) -> None:
    """The line for a 429 that is waited out (it uses up no retry, so it is INFO, not WARNING)."""
    _otel.throttled(pause)
    logger.info(
        "%s %s: %s (%d in a row); asking again in %.2f s (a 429 uses up no retry)",
        method,
        shown_url(url),
        reason(error),
        in_a_row,
        pause,
    )
