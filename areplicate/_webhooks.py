"""Webhooks: verifying and reading deliveries, and the Receiver that ends waits with them.

The public face is :mod:`areplicate.webhooks`; the code lives here so that the Receiver builds on
``verify`` and ``parse`` without two modules importing each other.

Webhook-driven waiting: a :class:`Receiver` given to a Client (``Client(webhooks=receiver)``) makes each create carry the
receiver's URL, and each wait listen for that prediction's delivery instead of polling. The app feeds
deliveries in through :meth:`Receiver.handle`, from whatever framework serves the route. Deliveries
can be lost, duplicated or early (a quick model's delivery can beat its create's answer), so:

- every ``webhook-id`` is acted on once;
- a terminal delivery nobody awaits yet is kept for a while, for the wait that is about to start;
- waits still poll, slowly (:attr:`Receiver.fallback`), so a lost delivery costs latency, never a hang.

With a shared Redis budget configured on the client, deliveries are also published to the other
processes on the account, so a delivery that lands on worker 2 ends a wait in worker 1.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import attrs

from areplicate._convert import structure
from areplicate._core import webhooks as _core
from areplicate._core.options import check_webhook
from areplicate._core.problems import decode_json
from areplicate._core.retry import PollSchedule, header
from areplicate._core.webhooks import DEFAULT_TOLERANCE
from areplicate._errors import ReplicateError, UnexpectedResponseError, WebhookVerificationError
from areplicate._models import Prediction

__all__ = ["DEFAULT_TOLERANCE", "Receiver", "Reply", "parse", "sign", "verify"]


def verify(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check a delivery's signature and timestamp; raise WebhookVerificationError if it fails.

    ``headers`` is any mapping of the request's headers: a dict (names in any case), aiohttp's
    ``request.headers`` or Starlette's / FastAPI's. ``body`` must be the raw bytes (or text) exactly
    as received: parsing the JSON and dumping it again changes the bytes and fails the check.
    Timestamps more than ``tolerance`` seconds (default 300) from ``now`` (default: the current
    time) are rejected, so a captured delivery cannot be replayed later; a ``tolerance`` that is not
    a finite number >= 0 (``float("inf")``, NaN) raises ValueError rather than switch that off. A
    secret with nothing after ``whsec_`` is refused like any other malformed secret.
    """
    _core.verify(
        headers,
        body,
        secret,
        tolerance=tolerance,
        now=time.time() if now is None else now,
    )


def parse(body: bytes | str) -> Prediction:
    """The Prediction a delivery carries (its state when the webhook was sent).

    Verify first: parsing does not check anything but the shape. A body that is not JSON, or not a
    prediction object, raises WebhookVerificationError (answer such a request with 400). Trainings
    deliver training objects, which read as Predictions too.
    """
    try:
        data = decode_json(body)  # never a RecursionError, however deeply the body nests
    except ValueError as exc:
        raise WebhookVerificationError(f"webhook body is not a JSON prediction ({exc})") from None
    if not isinstance(data, dict):
        raise WebhookVerificationError(
            f"webhook body is JSON but not a prediction object (got {type(data).__name__})"
        )
    try:
        return structure(data, Prediction, what="webhook body")
    except UnexpectedResponseError as exc:
        raise WebhookVerificationError(exc.detail or str(exc)) from None


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``webhook-signature`` value for a delivery: for testing your own receiver.

    ``timestamp`` is Unix seconds and must also be sent as ``webhook-timestamp``; ``body`` must be
    the exact bytes the test then posts, since the signature covers them byte for byte.
    """
    return _core.sign(secret, msg_id, timestamp, body)


logger = logging.getLogger("areplicate")

#: The slow polls a webhook-driven wait still makes, in case its delivery is lost: the first after
#: 30 s, then thinning out to one every 2 minutes.
DEFAULT_FALLBACK = PollSchedule(first=30.0, ratio=0.5, cap=120.0)
# Terminal deliveries nobody awaited are kept this long (for a wait about to start) ...
_EARLY_TTL = 600.0
# ... and at most this many; webhook ids are remembered for de-duplication up to this many.
_EARLY_MAX = 10_000
_SEEN_MAX = 50_000

SecretSource = Callable[[], Awaitable[str]]
Unclaimed = Callable[[Prediction], "Awaitable[object] | object"]


@attrs.frozen
class Reply:
    """What the webhook route should answer: an HTTP status and a short plain-text body.

    200 means "received, do not send again"; 400 a delivery that failed verification (Replicate
    does not retry those); 500 a delivery we could not take now (the ``on_unclaimed`` callback
    failed), which Replicate retries.
    """

    status: int
    body: str

    @property
    def ok(self) -> bool:
        """True for a 2xx reply."""
        return 200 <= self.status < 300


class Receiver:
    """Ends waits from webhook deliveries. Give it to ``Client(webhooks=...)``, and call
    :meth:`handle` from the route at ``url``.

    ``url`` is where Replicate delivers (https; http only on loopback, for tests). ``secret`` is the
    ``whsec_…`` signing secret; left out, it is fetched once from the API through the client.
    ``events`` are the webhook events creates ask for (``completed`` is enough to end waits; add
    ``output``/``logs`` only if ``on_unclaimed`` wants them). ``on_unclaimed`` is called (and
    awaited, if it returns an awaitable) with each verified delivery no wait of this process is
    waiting for: store-and-forward for predictions started elsewhere, or by a process that has gone.
    ``fallback`` is the slow poll schedule that covers lost deliveries.

    The trap: the route must hand over the raw body bytes (``await request.body()`` in FastAPI,
    ``await request.read()`` in aiohttp), not parsed JSON; re-encoding breaks the signature.
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        events: Sequence[str] = ("completed",),
        on_unclaimed: Unclaimed | None = None,
        fallback: PollSchedule = DEFAULT_FALLBACK,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> None:
        check_webhook(url, list(events))
        if secret is not None and not isinstance(secret, str):
            raise TypeError("secret must be the 'whsec_…' string (or None to fetch it)")
        self.url = url
        self.events: tuple[str, ...] = tuple(events)
        self.fallback = fallback
        self._secret = secret
        self._secret_source: SecretSource | None = None
        self._secret_lock = asyncio.Lock()
        self._on_unclaimed = on_unclaimed
        self._tolerance = tolerance
        self._waiters: dict[str, list[asyncio.Future[Prediction]]] = {}
        self._early: collections.OrderedDict[str, tuple[float, Prediction]] = (
            collections.OrderedDict()
        )
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._publish: Callable[[bytes], Awaitable[None]] | None = None
        self.deliveries = 0
        self.duplicates = 0
        self.rejected = 0

    def __repr__(self) -> str:
        waiting = sum(len(w) for w in self._waiters.values())
        return f"<Receiver {self.url} {waiting} waiting, {self.deliveries} delivered>"

    # -- wiring (called by the Client) ------------------------------------------------------------

    def bind(self, secret_source: SecretSource) -> None:
        """Where to fetch the signing secret when none was given (the client's webhooks service).

        The first binding wins: a Receiver shared by several clients keeps fetching through the
        first, and a secret given to the constructor is never replaced by a fetched one.
        """
        if self._secret_source is None:
            self._secret_source = secret_source

    def relay(self, publish: Callable[[bytes], Awaitable[None]] | None) -> None:
        """Also send each verified delivery's raw body to ``publish`` (the account's other
        processes, which hand it to :meth:`deliver_relayed`)."""
        self._publish = publish

    def deliver_relayed(self, body: bytes) -> None:
        """Act on a delivery another process verified and relayed (see :meth:`relay`).

        Not verified again (the relay carries the body, not the headers), so it must only be fed
        from the account's own relay channel. A body that does not parse is logged and dropped:
        there is no sender to answer.
        """
        try:
            prediction = parse(body)
        except WebhookVerificationError as exc:
            logger.warning("ignored a relayed webhook delivery: %s", exc)
            return
        self.deliver(prediction)

    # -- the route's one call -------------------------------------------------------------------

    async def handle(self, headers: Mapping[str, str], body: bytes | str) -> Reply:
        """Verify one delivery and act on it; return what the route should answer.

        Never raises for a bad delivery (that is a 400 :class:`Reply`); raises ReplicateError only
        when the receiver cannot verify anything (no secret given and none could be fetched).
        """
        secret = await self._get_secret()
        try:
            verify(headers, body, secret, tolerance=self._tolerance)
            prediction = parse(body)
        except WebhookVerificationError as exc:
            self.rejected += 1
            logger.warning("rejected a webhook delivery: %s", exc)
            return Reply(400, "webhook verification failed")
        webhook_id = header(headers, "webhook-id") or ""
        if webhook_id in self._seen:
            self.duplicates += 1
            return Reply(200, "duplicate")
        claimed = self.deliver(prediction)
        if not claimed and self._on_unclaimed is not None:
            try:
                result = self._on_unclaimed(prediction)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("on_unclaimed failed for prediction %s", prediction.id)
                return Reply(500, "could not take the delivery now")
        # Remembered only once acted on: a delivery whose callback failed is taken again on retry.
        self._remember(webhook_id)
        self.deliveries += 1
        if self._publish is not None:
            try:
                await self._publish(body if isinstance(body, bytes) else body.encode())
            except Exception as exc:  # noqa: BLE001 - the local waits are served; the others fall back to polls
                logger.warning("could not relay the delivery of %s: %r", prediction.id, exc)
        return Reply(200, "ok")

    def deliver(self, prediction: Prediction) -> bool:
        """End the waits for ``prediction`` if it is terminal; True when some wait took it.

        Also the entry point for deliveries relayed from other processes.
        """
        if not prediction.is_terminal:
            return bool(self._waiters.get(prediction.id))
        waiters = self._waiters.pop(prediction.id, [])
        live = [w for w in waiters if not w.done()]
        for waiter in live:
            waiter.set_result(prediction)
        if not live:
            self._keep_early(prediction)
        return bool(live)

    # -- waiting --------------------------------------------------------------------------------

    async def result(self, prediction_id: str, timeout: float | None) -> Prediction | None:
        """The terminal state of ``prediction_id`` once delivered, or None after ``timeout`` s.

        A delivery that came before the wait began is served from the early store at once. None
        is not "not finished": the delivery may be lost or late, so the caller polls then. Any
        number of waits on one id all get the same delivery.
        """
        early = self._early.pop(prediction_id, None)
        if early is not None:
            return early[1]
        waiter: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(prediction_id, []).append(waiter)
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            waiters = self._waiters.get(prediction_id)
            if waiters is not None:
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    del self._waiters[prediction_id]

    # -- internals ------------------------------------------------------------------------------

    async def _get_secret(self) -> str:
        """The signing secret: the one given, else fetched once through the Client and kept.

        The lock makes a burst of first deliveries share one fetch. A failed fetch is not cached:
        its error reaches the caller of :meth:`handle`, and the next delivery tries again.
        """
        if self._secret is not None:
            return self._secret
        async with self._secret_lock:
            if self._secret is None:
                if self._secret_source is None:
                    raise ReplicateError(
                        "this Receiver has no webhook secret: pass Receiver(url, secret='whsec_…') "
                        "or give it to a Client (Client(webhooks=receiver)) to fetch it"
                    )
                self._secret = await self._secret_source()
        return self._secret

    def _keep_early(self, prediction: Prediction) -> None:
        """Keep a terminal delivery that no wait has claimed yet, for a wait that is about to start.

        A fast prediction can finish, and its webhook arrive, before ``create`` has returned and the
        caller begun to wait. Entries are dropped oldest first past ``_EARLY_MAX`` or ``_EARLY_TTL``
        seconds (monotonic clock), so deliveries for predictions nobody waits on cannot grow memory.
        """
        now = time.monotonic()
        early = self._early
        early[prediction.id] = (now, prediction)
        early.move_to_end(prediction.id)
        while early and (
            len(early) > _EARLY_MAX or now - next(iter(early.values()))[0] > _EARLY_TTL
        ):
            early.popitem(last=False)

    def _remember(self, webhook_id: str) -> None:
        """Note a delivery's ``webhook-id`` so a redelivery of it counts as a duplicate.

        Bounded to ``_SEEN_MAX`` ids, oldest forgotten first; deliveries without an id cannot be
        de-duplicated and are not recorded.
        """
        if not webhook_id:
            return
        self._seen[webhook_id] = None
        if len(self._seen) > _SEEN_MAX:
            self._seen.popitem(last=False)
