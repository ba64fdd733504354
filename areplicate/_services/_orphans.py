"""Clean-up after abandoned creates: cancel the prediction a cancelled caller will never hear of,
but only when it is provably ours.

A caller cancelled while its create is on the wire leaves a prediction running that nobody will
see: the API made it, the answer was never read. The reaper finds it in ``GET /predictions`` and
cancels it. The danger is the other way round: another client on the same account (another worker,
another host) may have sent the same input at the same moment, and cancelling *its* prediction is
far worse than leaving ours running. So a match must be exact:

- same model (or version, or deployment) and same input;
- not a prediction any client sharing the :class:`Ledger` created (every ``Client`` of this process
  on the same token shares one; with a shared Redis budget, every process does);
- created inside the window in which our create was on the wire, read on the API's clock: the
  skew between our clock and the API's is bounded from the ``Date`` header of a recent response;
- and exactly as many such predictions as creates of that request we dropped (the orphans of
  every client sharing the ledger, judged together). More candidates than orphans (ours and a
  stranger's, or two strangers') are left running, with one WARNING naming them.

The listing is read only once the API can no longer be registering any of the group's creates
(``LATE_GRACE`` after each was given up): a prediction of ours missing from it could otherwise
make the count match with a stranger's. What the rule cannot tell apart is a create of ours the
API never made and a stranger's identical one made inside our window (a few seconds): that risk is
taken only when the counts match exactly.

A create that never left this process (still waiting for the budget or a connection) is no orphan:
the session reports a create as sent once it has a connection, and takes that back when the API
answers 429 (not processed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from areplicate._errors import ReplicateError
from areplicate._ledger import LATE_GRACE, UNKNOWN_SKEW, Intent, Ledger
from areplicate._models import Prediction

__all__ = ["Reaper"]

logger = logging.getLogger("areplicate")

# The shortest pause before a round (each also waits for its orphans' LATE_GRACE to pass).
_REAP_DELAY = 0.5
# How long the reaper waits for a sibling create (same input, still on the wire) to answer.
_SIBLING_WAIT = 70.0
_LOOKUP_TIMEOUT = 30.0
# Remote cancels issued at once (they skip the request budget: they stop work).
_CANCEL_CONCURRENCY = 16


Lister = Callable[[dt.datetime], Awaitable[list[Prediction]]]
Canceller = Callable[[str], Awaitable[None]]
Spawner = Callable[[Any], "asyncio.Task[None]"]


class Reaper:
    """Queues abandoned creates and cancels, in one background task, those provably ours."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        lister: Lister,
        canceller: Canceller,
        spawn: Spawner,
        offset: Callable[[], tuple[float, float] | None],
    ) -> None:
        """Wire the reaper to its ledger and to the client through callables, not the client itself.

        ``lister`` lists predictions created since a time, ``canceller`` cancels one by id (outside
        the request budget, and never raising), ``spawn`` starts the background task as the
        client's clean-up, which closing the client waits for, and ``offset`` gives the bounds of
        the API's clock minus ours, or ``None`` before any response has carried a ``Date`` header.
        """
        self._ledger = ledger
        self._list = lister
        self._cancel = canceller
        self._spawn = spawn
        self._offset = offset
        self._orphans: list[Intent] = []
        self._task: asyncio.Task[None] | None = None

    def intent(
        self,
        input: dict[str, Any],
        model: str | None,
        version: str | None,
        deployment: str | None,
    ) -> Intent:
        """Register a create about to be sent (finish it with :meth:`Ledger.finish`)."""
        # Positional, every field: attrs' __init__ by keyword costs three times as much, and a
        # default from a factory costs a check more, once per create.
        intent = Intent(model, version, deployment, input, time.time(), [], None)
        self._ledger.begin(intent)
        return intent

    def abandon(self, intent: Intent) -> None:
        """The caller gave up on ``intent``: if it reached the wire, find and cancel its prediction.

        Once per create: a create given up by close() may be given up again by its own caller
        (or the other way round), and counting it twice would make its own prediction ambiguous.
        """
        if intent.abandoned_at is not None:
            return
        intent.abandoned_at = time.time()
        self._ledger.finish(intent, None)
        if not intent.sent:
            return
        self._ledger.orphan(intent)
        self._orphans.append(intent)
        if self._task is None or self._task.done():
            self._task = self._spawn(self._reap())

    async def _reap(self) -> None:
        """The background task: drain the queue of orphans in rounds until it is empty.

        A round lists only once the API can no longer be registering any prediction it judges
        (``LATE_GRACE`` after its create was given up): then every prediction of ours that exists
        is in the listing, so matching counts mean what they say. Orphans abandoned while a round
        runs, and a group the round had to leave for them, join the next. A failed lookup drops
        that round's orphans with a warning instead of retrying: cleaning up is best effort, and a
        retry loop against a failing API would only add load.
        """
        try:
            await self._rounds()
        finally:
            # Ended early (the client closed, the loop went away): nobody will judge these now,
            # and left in the shared ledger they would skew the next judgment of their request.
            self._ledger.settle(self._orphans)
            self._orphans = []

    async def _rounds(self) -> None:
        """:meth:`_reap`'s rounds, until no orphan is left."""
        while self._orphans:
            due = max(
                (x.abandoned_at or 0.0) + LATE_GRACE
                for o in self._orphans
                for x in self._ledger.orphans_like(o) or [o]
            )
            await asyncio.sleep(max(_REAP_DELAY, due - time.time()))
            await self._await_siblings()
            # An orphan a sibling's reaper (same ledger) already judged is not judged twice.
            orphans = [o for o in self._orphans if not self._ledger.settled(o)]
            if not orphans:
                self._orphans = []
                continue
            try:
                claimed, again = await self._claim(orphans)
            except (ReplicateError, TimeoutError, RuntimeError) as exc:  # RuntimeError: closed
                logger.warning("could not look up %d abandoned create(s): %r", len(orphans), exc)
                self._ledger.settle(orphans)
                self._orphans = [o for o in self._orphans if o not in orphans]
                continue
            # Those abandoned during the round stay queued; the round's own are judged or again.
            self._orphans = [o for o in self._orphans if o not in orphans] + again
            limit = anyio.Semaphore(_CANCEL_CONCURRENCY)
            async with anyio.create_task_group() as group:
                for pid in claimed:
                    group.start_soon(self._cancel_one, pid, limit)

    async def _await_siblings(self) -> None:
        """Wait (bounded) until no create with an orphan's input awaits its answer: its id then
        becomes known, so it is never taken for the orphan."""
        inputs = [o.input for o in self._orphans]
        with anyio.move_on_after(_SIBLING_WAIT):
            while self._ledger.busy(inputs):
                await self._ledger.changed()

    async def _claim(self, orphans: list[Intent]) -> tuple[list[str], list[Intent]]:
        """The ids of the predictions provably made by ``orphans``, and those of ``orphans`` to
        judge again in a later round (with others of their request, abandoned meanwhile)."""
        # Orphans with the same request compete for the same predictions, this reaper's and those
        # of any client sharing the ledger alike: they are judged together, as one group.
        batches: list[list[Intent]] = []
        for orphan in orphans:
            batch = next((b for b in batches if b[0].same_request(orphan)), None)
            if batch is None:
                batches.append([orphan])
            else:
                batch.append(orphan)
        everyone = [o for b in batches for o in self._ledger.orphans_like(b[0])]
        offset = self._offset()
        low = offset[0] if offset is not None else -UNKNOWN_SKEW
        since = dt.datetime.fromtimestamp(
            min(o.sent_at for o in everyone or orphans) + low - 1.0, dt.timezone.utc
        )
        listed_at = time.time()
        with anyio.fail_after(_LOOKUP_TIMEOUT):
            listed = await self._list(since)
        offset = self._offset()  # the listing itself brought a fresh Date header
        candidates = [p for p in listed if not self._ledger.known(p.id)]
        claimed: list[str] = []
        again: list[Intent] = []
        for batch in batches:
            group = self._ledger.orphans_like(batch[0]) or batch  # as it stands now
            # A create of ours with this input still awaiting its answer (sent during the
            # listing, or one the sibling wait gave up on) may be in the listing, not yet known.
            if self._ledger.busy([batch[0].input]) or any(
                (o.abandoned_at or 0.0) + LATE_GRACE > listed_at for o in group
            ):
                # One of them (given up during the listing, or by a sibling) may be registered
                # after the listing was cut: counting it could make a stranger's look like ours.
                again.extend(batch)
                continue
            fits = [p for p in candidates if any(o.could_be(p, offset) for o in group)]
            if len(fits) == len(group) and _one_each(group, fits, offset):
                # As many candidates as creates we dropped, each in the window of its own create,
                # none made by a sibling: all ours.
                claimed.extend(p.id for p in fits if not p.is_terminal)
            elif fits:
                logger.warning(
                    "not canceling after an abandoned create of %s: %d prediction(s) match it "
                    "(%s) and %d create(s) of ours were dropped, so which are ours is unknown; "
                    "cancel the right one yourself if it is still running",
                    group[0].model or group[0].deployment or group[0].version,
                    len(fits),
                    ", ".join(p.id for p in fits),
                    len(group),
                )
            self._ledger.settle(group)
        return claimed, again

    async def _cancel_one(self, pid: str, limit: anyio.Semaphore) -> None:
        """Cancel one claimed prediction, at most ``_CANCEL_CONCURRENCY`` at a time."""
        async with limit:
            logger.info("canceling abandoned prediction %s", pid)
            await self._cancel(pid)


def _one_each(
    orphans: list[Intent], fits: list[Prediction], offset: tuple[float, float] | None
) -> bool:
    """Whether every orphan can be paired with a prediction of its own inside its window.

    Equal counts alone are not enough: two predictions inside the first create's window and none
    in the second's mean one of them is a stranger's (the second create was never made). A
    matching by augmenting paths; groups are a handful of creates, so its cost does not matter.
    """
    owner: dict[int, int] = {}  # fit index -> orphan index

    def place(i: int, seen: set[int]) -> bool:
        for j, fit in enumerate(fits):
            if j in seen or not orphans[i].could_be(fit, offset):
                continue
            seen.add(j)
            if j not in owner or place(owner[j], seen):
                owner[j] = i
                return True
        return False

    return all(place(i, set()) for i in range(len(orphans)))
