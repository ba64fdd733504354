"""Webhook signatures, the Standard Webhooks (Svix) way (docs/api-notes.md#webhooks).

Signed content is ``f"{webhook-id}.{webhook-timestamp}.{raw body}"``; the key is the base64 text after
``whsec_``; each signature is ``v1,<base64 HMAC-SHA256>`` and a header may carry several, separated by
spaces. Pure: the clock comes in as ``now``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Mapping

from areplicate._errors import WebhookVerificationError

__all__ = ["DEFAULT_TOLERANCE", "check_tolerance", "sign", "signing_key", "verify"]

#: Seconds a webhook timestamp may differ from now (the Standard Webhooks convention: 5 minutes).
DEFAULT_TOLERANCE = 300

_PREFIX = "whsec_"


def signing_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret; WebhookVerificationError when it is not one.

    An empty key (``"whsec_"`` alone) is refused: anyone can compute an HMAC with an empty key, so
    a signature made with it proves nothing.
    """
    if not isinstance(secret, str) or not secret.startswith(_PREFIX):
        raise WebhookVerificationError(
            "the webhook secret must start with 'whsec_' (get it from "
            "`await client.webhooks.default_secret()`)"
        )
    try:
        key = base64.b64decode(secret[len(_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError(
            "the webhook secret is not valid base64 after 'whsec_'; copy it again"
        ) from None
    if not key:
        raise WebhookVerificationError(
            "the webhook secret is empty after 'whsec_': no delivery can be verified with it; "
            "copy the whole secret (`await client.webhooks.default_secret(refresh=True)`)"
        )
    return key


def check_tolerance(tolerance: float) -> float:
    """``tolerance`` as a float; ValueError unless it is a finite number of seconds >= 0.

    NaN would make every timestamp look fresh (each comparison with it is false) and infinity
    accepts a replay from any year, so both are refused rather than quietly turning the check off.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)):
        raise TypeError(f"tolerance must be a number of seconds, not {type(tolerance).__name__}")
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(
            f"tolerance must be a finite number of seconds >= 0 (default {DEFAULT_TOLERANCE}), "
            f"got {tolerance!r}"
        )
    return float(tolerance)


def _as_bytes(body: bytes | bytearray | memoryview | str) -> bytes:
    """The body exactly as signed: text is encoded as UTF-8, byte-like values copied as they are.

    Anything else (a dict from a framework's JSON parser, most often) is refused with the reason,
    because re-serialising it would almost never reproduce the bytes the sender signed.
    """
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    raise WebhookVerificationError(
        f"the body must be the raw request bytes or text, not {type(body).__name__} "
        "(re-encoding parsed JSON changes the bytes and breaks the signature)"
    )


def _digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    """HMAC-SHA256 over ``id.timestamp.body``, the Standard Webhooks scheme Replicate signs with.

    The timestamp is used as the header's text, not re-formatted from a number, so what is
    checked is exactly what was signed.
    """
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``webhook-signature`` value (``v1,<base64>``) for a delivery."""
    digest = _digest(signing_key(secret), msg_id, str(timestamp), _as_bytes(body))
    return "v1," + base64.b64encode(digest).decode()


def _header(headers: Mapping[str, str], name: str) -> str:
    """A required header's value, trimmed; looked up as given, then case-insensitively.

    Plain dicts are accepted, not only case-insensitive multidicts, which is why the second pass
    exists. A missing or blank header raises :class:`WebhookVerificationError`, which usually means
    the request is not a webhook delivery at all.
    """
    value = headers.get(name)
    if value is None:
        for key, val in headers.items():
            if key.lower() == name:
                value = val
                break
    if value is None or not str(value).strip():
        raise WebhookVerificationError(f"missing {name} header; is this a Replicate webhook?")
    return str(value).strip()


def verify(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float,
) -> None:
    """Check a delivery's signature and timestamp; raise WebhookVerificationError if it fails.

    ``headers`` may be any mapping (names are matched case-insensitively); ``body`` must be the raw
    bytes (or text) as received. ``now`` is the current Unix time. A ``tolerance`` or ``now`` that
    is not a finite number raises ValueError (a mistake in the caller, not in the delivery).
    """
    tolerance = check_tolerance(tolerance)
    if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
        raise ValueError(f"now must be the current Unix time as a finite number, got {now!r}")
    msg_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    key = signing_key(secret)
    raw = _as_bytes(body)
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise WebhookVerificationError(
            f"webhook-timestamp must be whole Unix seconds, got {timestamp[:40]!r}"
        ) from None
    if sent_at < now - tolerance:
        raise WebhookVerificationError(
            f"webhook timestamp is {now - sent_at:.0f}s old (tolerance {tolerance:g}s): "
            "a replay, or this machine's clock is off"
        )
    if sent_at > now + tolerance:
        raise WebhookVerificationError(
            f"webhook timestamp is {sent_at - now:.0f}s in the future (tolerance {tolerance:g}s): "
            "check this machine's clock"
        )
    expected = _digest(key, msg_id, timestamp, raw)
    seen_v1 = False
    for part in signatures.split():
        version, comma, value = part.partition(",")
        if not comma:
            raise WebhookVerificationError(
                f"malformed webhook-signature entry {part[:40]!r}: expected 'v1,<base64>'"
            )
        if version != "v1":
            continue
        seen_v1 = True
        try:
            candidate = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(candidate, expected):
            return
    if not seen_v1:
        raise WebhookVerificationError("webhook-signature carries no 'v1,' signature")
    raise WebhookVerificationError(
        "webhook signature does not match: wrong secret, or the body was changed "
        "(verify the raw bytes, before any JSON parsing)"
    )
