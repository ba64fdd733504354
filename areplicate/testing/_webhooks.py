"""Webhook delivery for the fake server (docs/api-notes.md#webhook-options, #webhooks).

Each delivery is a POST of the prediction JSON as it was at that moment, signed the Standard
Webhooks way with ``_core.webhooks.sign``. Deliveries of one prediction go out in order. ``output``
and ``logs`` share one throttle (at most one every 500 ms; the delayed one carries the latest
state); ``start`` and ``completed`` are always sent. Only the ``completed`` one is retried, with the
same ``webhook-id``, on a connection error or a non-2xx answer (redirects are not followed).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import aiohttp

from areplicate._core.webhooks import sign
from areplicate.testing._clock import Clock, call_later
from areplicate.testing._records import PredictionRecord, WebhookDelivery, new_id

__all__ = ["DEFAULT_EVENTS", "EVENTS", "THROTTLE", "WebhookSender"]

#: Every value ``webhook_events_filter`` accepts.
EVENTS = frozenset({"start", "output", "logs", "completed"})
#: What is sent when no filter is given: new outputs and completion.
DEFAULT_EVENTS = frozenset({"output", "completed"})
#: Seconds between two ``output``/``logs`` deliveries of one prediction.
THROTTLE = 0.5


class WebhookHost(Protocol):
    """What the sender reads from the fake it works for (its settings, clock and log)."""

    webhook_secret: str
    webhook_backoff: tuple[float, ...]
    webhook_timeout: float
    webhook_deliveries: list[WebhookDelivery]
    clock: Clock


class WebhookSender:
    """Sends the webhooks of one fake while it is serving."""

    def __init__(self, fake: WebhookHost) -> None:
        self._fake = fake
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Open the HTTP session (called when the fake starts serving)."""
        timeout = aiohttp.ClientTimeout(total=self._fake.webhook_timeout)
        self._session = aiohttp.ClientSession(timeout=timeout)

    async def close(self) -> None:
        """Stop pending deliveries and close the session."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def pending(self) -> set[asyncio.Task[None]]:
        """Deliveries not finished yet (including retries waiting out their backoff)."""
        return set(self._tasks)

    def notify(self, rec: PredictionRecord, event: str) -> None:
        """Something happened to ``rec``: send (or schedule) a webhook if its filter wants it."""
        state = rec.webhook_state
        if state is None or event not in rec.webhook_filter or self._session is None:
            return
        clock = self._fake.clock
        if event in ("output", "logs"):
            state.pending_event = event
            if state.timer is not None:
                return  # a delayed delivery is due; it will carry this change too
            now = clock.monotonic()
            wait = state.last_intermediate + THROTTLE - now
            if wait > 0:
                state.timer = call_later(clock, wait, lambda: self._flush(rec))
                self._timers.add(state.timer)
                return
            state.last_intermediate = now
            self._enqueue(rec, event, final=False)
            return
        if event == "completed" and state.timer is not None:
            state.timer.cancel()
            self._timers.discard(state.timer)
            state.timer = None
        self._enqueue(rec, event, final=event == "completed")

    def _flush(self, rec: PredictionRecord) -> None:
        """Send the throttled intermediate event now that its timer fired (unless the prediction ended).

        The body sent is the prediction as it is at this moment, not as it was when the event arose.
        """
        state = rec.webhook_state
        if state is None or state.timer is None:
            return
        self._timers.discard(state.timer)
        state.timer = None
        if rec.terminal:
            return  # the completed webhook supersedes it
        state.last_intermediate = self._fake.clock.monotonic()
        self._enqueue(rec, state.pending_event, final=False)

    def _enqueue(self, rec: PredictionRecord, event: str, *, final: bool) -> None:
        """Start one delivery task, chained behind the prediction's previous delivery.

        The body is encoded now, so a later change to the prediction does not alter a queued webhook.
        """
        state = rec.webhook_state
        assert state is not None
        assert rec.webhook is not None
        task = asyncio.get_running_loop().create_task(
            self._deliver(state.last_task, rec.id, rec.webhook, event, rec.body(), final),
            name=f"fake-webhook-{rec.id}-{event}",
        )
        state.last_task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self,
        previous: asyncio.Task[None] | None,
        prediction_id: str,
        url: str,
        event: str,
        body: bytes,
        final: bool,
    ) -> None:
        """POST one webhook, after ``previous`` has finished; only the final one is retried.

        Intermediate events get one attempt; ``completed`` is retried along ``webhook_backoff``, each
        attempt with the same ``webhook-id`` (so a receiver can drop duplicates) and a fresh signature
        and timestamp. A non-2xx answer counts as a failed attempt.
        """
        if previous is not None and not previous.done():
            await asyncio.wait({previous})  # keep one prediction's deliveries in order
        fake = self._fake
        msg_id = f"msg_{new_id()}"
        delays = fake.webhook_backoff if final else ()
        for attempt in range(1, len(delays) + 2):
            session = self._session
            if session is None:
                return
            sent_at = int(fake.clock.time())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "areplicate-fake-webhook/1",
                "webhook-id": msg_id,
                "webhook-timestamp": str(sent_at),
                "webhook-signature": sign(fake.webhook_secret, msg_id, sent_at, body),
            }
            status: int | None = None
            error: str | None = None
            try:
                async with session.post(
                    url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    status = response.status
                    await response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            fake.webhook_deliveries.append(
                WebhookDelivery(
                    prediction_id, event, url, msg_id, attempt, status, error, fake.clock.time()
                )
            )
            if status is not None and 200 <= status < 300:
                return
            if attempt <= len(delays):
                await fake.clock.sleep(delays[attempt - 1])
