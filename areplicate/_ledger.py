"""Which creates of one account are in flight in this process, and which predictions they made.

Orphan clean-up (``_services/_orphans.py``) must never take a prediction another client of the
same account made for its own. Every Client of this process on one token shares one
:class:`Ledger`, so siblings know each other's creates exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from areplicate._models import Prediction

__all__ = ["LATE_GRACE", "UNKNOWN_SKEW", "Intent", "Ledger", "ledger_for", "matches"]

# Prediction ids created through a ledger are remembered this long.
_KNOWN_TTL = 900.0
# An abandoned request may still be read and acted on by the API shortly after we let go of it.
LATE_GRACE = 2.0
# Without any Date header to measure the skew, assume the clocks differ by up to this much.
UNKNOWN_SKEW = 120.0


def matches(
    prediction: Prediction,
    *,
    model: str | None,
    version: str | None,
    deployment: str | None,
    input: Mapping[str, Any],
) -> bool:
    """Whether ``prediction`` could be the one a create of ``model``/``version``/``deployment``
    with ``input`` made (a version the API hides matches any)."""
    if prediction.deployment != deployment and (deployment is not None or prediction.deployment):
        return False  # a deployment's prediction is never a model-route create's, nor the reverse
    if model is not None and prediction.model and prediction.model != model:
        return False
    if version is not None and prediction.version not in (version, "hidden", ""):
        return False
    return prediction.input == input


@attrs.define(eq=False)
class Intent:
    """One create on the wire (or waiting to go): what it asked for and when it left."""

    model: str | None
    version: str | None
    deployment: str | None
    input: dict[str, Any]
    sent_at: float  # Unix time just before the request went out
    sent: list[float] = attrs.Factory(list)  # when the session got it a connection (time.time())
    abandoned_at: float | None = None

    def window(self, offset: tuple[float, float] | None) -> tuple[float, float]:
        """The span of API-clock times in which this create's prediction can have been created."""
        low, high = offset if offset is not None else (-UNKNOWN_SKEW, UNKNOWN_SKEW)
        end = (self.abandoned_at if self.abandoned_at is not None else time.time()) + LATE_GRACE
        # It opens when the attempt still standing got its connection: before that (a wait for
        # the budget, a 429's pause) the API provably had nothing of it.
        start = self.sent[-1] if self.sent else self.sent_at
        return start + low, end + high

    def same_request(self, other: Intent) -> bool:
        """Whether ``other`` asked for exactly what this create did (so their predictions are
        indistinguishable)."""
        return (
            self.model == other.model
            and self.version == other.version
            and self.deployment == other.deployment
            and self.input == other.input
        )

    def could_be(self, prediction: Prediction, offset: tuple[float, float] | None) -> bool:
        """Whether ``prediction`` fits this create: same request, created in its window."""
        if not matches(
            prediction,
            model=self.model,
            version=self.version,
            deployment=self.deployment,
            input=self.input,
        ):
            return False
        if prediction.created_at is None:
            return True  # no time to rule it out with: it stays a candidate
        start, end = self.window(offset)
        return start - 0.001 <= prediction.created_at.timestamp() <= end + 0.001


class Ledger:
    """What the clients of one account in this process have in flight, and what they created.

    Shared by every Client of the process that uses the same token (see :func:`ledger_for`), so a
    worker's clean-up never takes a prediction a sibling client made. Plain data plus wake-ups; no
    I/O, safe to use from several event loops of one thread.
    """

    def __init__(self) -> None:
        self._known: dict[str, float] = {}
        self._oldest = -math.inf  # when the first of _known was noted (-inf: look at the next note)
        self._inflight: set[Intent] = set()
        # Creates abandoned on the wire whose predictions no reaper has judged for good yet. Kept
        # here, not per reaper: two clients (or views) that dropped the same request must judge
        # their orphans together, or each takes the other's prediction for a stranger's.
        self._orphans: list[Intent] = []
        self._waiters: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return f"<Ledger {len(self._inflight)} in flight, {len(self._known)} known>"

    def begin(self, intent: Intent) -> None:
        """Note a create about to be sent (end it with :meth:`finish`, whatever happens)."""
        self._inflight.add(intent)

    def finish(self, intent: Intent, prediction_id: str | None) -> None:
        """The create answered (with the id it made) or failed; wakes reapers waiting on it."""
        self._inflight.discard(intent)
        if prediction_id is not None:
            self.remember(prediction_id)
        if self._waiters:  # seldom: only a reaper waiting for a sibling's create
            self._wake()

    def remember(self, prediction_id: str) -> None:
        """Note a prediction one of these clients created."""
        now = time.monotonic()
        self._known[prediction_id] = now
        # Expired ids leave from the front (insertion order is age order), only once the oldest
        # has expired: one comparison per create, not a look at the dict.
        if now - self._oldest > _KNOWN_TTL:
            known = self._known
            while now - next(iter(known.values())) > _KNOWN_TTL:
                del known[next(iter(known))]
            self._oldest = next(iter(known.values()))

    def known(self, prediction_id: str) -> bool:
        """Whether one of these clients created ``prediction_id`` recently."""
        return prediction_id in self._known

    def orphan(self, intent: Intent) -> None:
        """Note a create abandoned on the wire: its prediction, if the API made one, is ours."""
        self._orphans.append(intent)

    def orphans_like(self, intent: Intent) -> list[Intent]:
        """The unsettled orphans (of any client of this ledger) that asked what ``intent`` did."""
        return [o for o in self._orphans if o.same_request(intent)]

    def settled(self, intent: Intent) -> bool:
        """Whether ``intent`` is no (longer an) orphan: judged for good by some reaper."""
        return all(o is not intent for o in self._orphans)

    def settle(self, intents: Iterable[Intent]) -> None:
        """Orphans judged for good: claimed and cancelled, or left running with a warning."""
        done = set(intents)  # eq=False: by identity
        self._orphans = [o for o in self._orphans if o not in done]

    def busy(self, inputs: Iterable[Mapping[str, Any]]) -> bool:
        """Whether a create with one of these inputs is still on the wire (not abandoned)."""
        wanted = list(inputs)
        return any(i.abandoned_at is None and i.input in wanted for i in self._inflight)

    async def changed(self) -> None:
        """Return at the next :meth:`finish`."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake(self) -> None:
        """Resolve every :meth:`changed` waiter, each on its own loop.

        Clients sharing a ledger may run on different event loops, so each waiter is resolved
        through its own loop (``call_soon_threadsafe`` also wakes a loop idle in its selector)
        rather than by ``set_result`` from whichever loop called :meth:`finish`.
        """
        if not self._waiters:  # the common case: no reaper is waiting (finish runs per create)
            return
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                # A waiter whose loop is closed has nobody left to wake.
                with contextlib.suppress(RuntimeError):
                    waiter.get_loop().call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    """Resolve ``waiter`` on its loop unless it finished meanwhile (cancelled between the schedule
    and the call).
    """
    if not waiter.done():
        waiter.set_result(None)


_LEDGERS: weakref.WeakValueDictionary[str, Ledger] = weakref.WeakValueDictionary()


def ledger_for(token: str) -> Ledger:
    """The ledger shared by this process's clients of ``token``'s account (keyed by its hash)."""
    key = hashlib.sha256(token.encode()).hexdigest()
    ledger = _LEDGERS.get(key)
    if ledger is None:
        ledger = _LEDGERS[key] = Ledger()
    return ledger
