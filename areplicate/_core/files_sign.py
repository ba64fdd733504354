"""The signature of a file download link (``GET /files/{id}/download``), with no I/O.

Replicate's OpenAPI document describes the ``signature`` query parameter as the base64-encoded
HMAC-SHA256 of the string ``"{owner} {id} {expiry}"`` under the Files API signing secret, with
``expiry`` a Unix timestamp in seconds. Whoever holds the secret (the API; a fake server in tests)
can make and check links; a client only passes a signature along.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["sign_download", "verify_download"]


def _check(owner: str, file_id: str, expiry: int) -> None:
    """Refuse arguments that would make the signed message ambiguous.

    The message joins the parts with spaces, so a space inside ``owner`` or ``file_id`` could make
    two different requests sign alike; a ``bool`` expiry is refused although Python counts it as
    an int.
    """
    if not isinstance(owner, str) or not owner or " " in owner:
        raise ValueError(f"owner must be a user or organization name, got {owner!r}")
    if not isinstance(file_id, str) or not file_id or " " in file_id or "/" in file_id:
        raise ValueError(f"not a file id: {file_id!r}")
    if isinstance(expiry, bool) or not isinstance(expiry, int):
        raise TypeError(f"expiry is a Unix timestamp in whole seconds, got {expiry!r}")


def sign_download(secret: str | bytes, owner: str, file_id: str, expiry: int) -> str:
    """The ``signature`` for downloading file ``file_id`` of ``owner`` until ``expiry``.

    Base64 (standard alphabet, with padding) of HMAC-SHA256 over ``"{owner} {file_id} {expiry}"``,
    keyed with ``secret`` (text is encoded as UTF-8). The gotcha: ``expiry`` is whole Unix
    seconds, and a different rendering of the same moment (``1708515345.0``) signs differently, so
    it must be an ``int``. The result goes into a URL query: let the URL builder percent-encode it
    (it can hold ``+``, ``/`` and ``=``).
    """
    _check(owner, file_id, expiry)
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    message = f"{owner} {file_id} {expiry}".encode()
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode("ascii")


def verify_download(
    secret: str | bytes, owner: str, file_id: str, expiry: int, signature: str, *, now: float
) -> bool:
    """Whether ``signature`` is :func:`sign_download`'s for these values and ``expiry`` is not past.

    ``now`` is the current Unix time (passed in: this module reads no clock). Constant-time
    comparison; a link is valid up to and including its ``expiry`` second.
    """
    expected = sign_download(secret, owner, file_id, expiry)
    return hmac.compare_digest(expected.encode(), signature.encode()) and now <= expiry
