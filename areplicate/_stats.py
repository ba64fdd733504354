"""What a client has done so far and how its request budget stands: ``client.stats``."""

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from areplicate._budget import Budget

__all__ = ["Counters", "Stats"]


class Counters:
    """The session's running counts (mutable, private: users read :class:`Stats`).

    Plain attributes bumped without a lock: only the event loop's thread touches them.
    """

    __slots__ = ("requests", "retries", "throttled")

    def __init__(self) -> None:
        """All counts start at zero; a view made by ``with_options`` shares its root's Counters."""
        self.requests = 0
        self.throttled = 0
        self.retries = 0

    def __repr__(self) -> str:
        """The three counts, for debugging the session."""
        return f"<Counters requests={self.requests} 429s={self.throttled} retries={self.retries}>"


@attrs.frozen
class Stats:
    """A snapshot of one client's activity and request budget, from ``client.stats``.

    It does not change as the client goes on: read ``client.stats`` again for fresh numbers (and
    subtract two snapshots for what happened in between). A 429 is counted in ``throttled`` and not
    in ``retries``: a 429 is waited out and asked again without using up ``max_retries``.
    """

    #: HTTP requests sent to the API (every attempt, streams included).
    requests: int = 0
    #: 429 answers received.
    throttled: int = 0
    #: Requests sent again after a connection error, a 5xx or an unreadable answer.
    retries: int = 0
    #: The pace creates go at now, per minute; None when pacing is off or shared through Redis.
    creates_per_minute: float | None = None
    #: The pace every other request goes at now, per minute (None: off or shared).
    requests_per_minute: float | None = None
    #: Seconds left of the pause a 429 imposed on every request of this client (0.0: none).
    paused_for: float = 0.0
    #: Whether the budget is held in Redis and Redis is answering.
    shared: bool = False

    @classmethod
    def of(cls, counters: Counters, budget: "Budget") -> "Stats":
        """The snapshot of ``counters`` and ``budget`` now.

        The budget's paces are per second; the snapshot gives them per minute, as the limits are set.
        """
        creates = budget.rate(create=True)
        others = budget.rate(create=False)
        return cls(
            requests=counters.requests,
            throttled=counters.throttled,
            retries=counters.retries,
            creates_per_minute=None if creates is None else creates * 60.0,
            requests_per_minute=None if others is None else others * 60.0,
            paused_for=budget.paused_for(),
            shared=budget.shared,
        )

    def __sub__(self, earlier: "Stats") -> "Stats":
        """The counts since ``earlier`` (the budget's state is this snapshot's).

        Pace, pause and ``shared`` are not differences: they are this snapshot's values as they stand.
        """
        return attrs.evolve(
            self,
            requests=self.requests - earlier.requests,
            throttled=self.throttled - earlier.throttled,
            retries=self.retries - earlier.retries,
        )

    def describe(self) -> str:
        """One line for a person: the counts, then the pace and any pause.

        Meant for logs and the CLI's --verbose; its wording may change, so do not parse it.
        """
        parts = [
            _count(self.requests, "request", "requests"),
            _count(self.throttled, "429", "429s"),
            _count(self.retries, "retry", "retries"),
        ]
        if self.shared:
            parts.append("pace shared through Redis")
        elif self.creates_per_minute is not None and self.requests_per_minute is not None:
            parts.append(
                f"pace {self.creates_per_minute:.0f} creates/min, "
                f"{self.requests_per_minute:.0f} other requests/min"
            )
        else:
            parts.append("pacing off")
        if self.paused_for > 0:
            parts.append(f"paused {self.paused_for:.1f} s after a 429")
        return ", ".join(parts)


def _count(n: int, one: str, many: str) -> str:
    """``n`` with the singular or plural noun (``1 retry``, ``2 retries``)."""
    return f"{n} {one if n == 1 else many}"
