"""The signature of a file download URL (``GET /files/{id}/download?owner=&expiry=&signature=``).

Replicate's OpenAPI document describes it as a base64-encoded HMAC-SHA256 of the string
``"{owner} {id} {expiry}"`` under the Files API signing secret. Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["sign_download"]


def sign_download(secret: str | bytes, owner: str, file_id: str, expiry: int) -> str:
    """The ``signature`` query value for downloading ``file_id`` of ``owner`` until ``expiry``.

    ``secret`` is the signing secret (text is UTF-8 encoded, used as is: it is not base64
    decoded); ``expiry`` is a Unix time in whole seconds. The result is standard base64 (with
    ``+``, ``/`` and ``=``), so it must be percent-encoded in a URL. Compare signatures with
    ``hmac.compare_digest``, never ``==``.
    """
    if isinstance(expiry, bool) or not isinstance(expiry, int):
        raise TypeError(f"expiry must be a Unix time in whole seconds (int), got {expiry!r}")
    key = secret.encode() if isinstance(secret, str) else secret
    message = f"{owner} {file_id} {expiry}".encode()
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
