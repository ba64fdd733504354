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

from areplicate._core.webhooks import DEFAULT_TOLERANCE
from areplicate._webhooks import Receiver, Reply, parse, sign, verify

__all__ = ["DEFAULT_TOLERANCE", "Receiver", "Reply", "parse", "sign", "verify"]

for _obj in (Receiver, Reply, parse, sign, verify):
    _obj.__module__ = __name__
del _obj
