"""Receive Replicate webhooks: check the signature, then read the prediction.

::

    from areplicate import webhooks

    body = await request.body()                       # the raw bytes, before any JSON parsing
    try:
        webhooks.verify(request.headers, body, secret)  # secret: await client.webhooks.default_secret()
        prediction = webhooks.parse(body)
    except areplicate.WebhookVerificationError:
        return Response(status_code=400)

Replicate signs deliveries the Standard Webhooks (Svix) way: ``webhook-id``, ``webhook-timestamp``
and ``webhook-signature`` headers, HMAC-SHA256 over ``"{id}.{timestamp}.{body}"``
(docs/api-notes.md#webhooks). Deliveries can arrive more than once (the final one is retried):
use ``webhook-id`` or the prediction id to make your handler idempotent.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from areplicate._convert import structure
from areplicate._core import webhooks as _core
from areplicate._core.problems import decode_json
from areplicate._core.webhooks import DEFAULT_TOLERANCE
from areplicate._errors import UnexpectedResponseError, WebhookVerificationError
from areplicate._models import Prediction

__all__ = ["DEFAULT_TOLERANCE", "parse", "sign", "verify"]


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
    """The ``webhook-signature`` value for a delivery: for testing your own receiver."""
    return _core.sign(secret, msg_id, timestamp, body)
