"""HTTP error responses → areplicate exceptions (docs/api-notes.md#errors).

``error_for(status, headers, body)`` is the whole mapping: the session raises what it returns. It
reads RFC 7807 problem+json bodies (``title``, ``detail``, ``status``, ``invalid_fields``), the older
``{"detail": …}`` form, and tolerates HTML or empty bodies (a proxy's 502 page becomes ServerError).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

from areplicate._core.retry import header, retry_after_from
from areplicate._errors import (
    APIError,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    ServerError,
)

__all__ = ["decode_json", "error_for", "request_id"]

_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    402: PaymentRequiredError,
    404: NotFoundError,
    422: InvalidRequestError,
    429: RateLimitError,
}
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "cf-ray")
_MAX_TEXT = 300
_HTML = re.compile(r"<\s*(?:!doctype\s+html|html|head|body|title)\b", re.I)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.I | re.S)
_TAG = re.compile(r"<[^>]*>")


def decode_json(body: bytes) -> Any:
    """Parse a JSON body; raises ValueError (with a short excerpt) when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        excerpt = body[:80].decode("utf-8", "replace")
        raise ValueError(f"response is not JSON: {excerpt!r}") from exc


def request_id(headers: Mapping[str, str]) -> str | None:
    """The API's request id from the response headers, if any."""
    for name in _REQUEST_ID_HEADERS:
        if (value := header(headers, name)) is not None:
            return value
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = (value if isinstance(value, str) else json.dumps(value)).strip()
    if not text:  # "" or "  ": no message rather than "HTTP 500: "
        return None
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"


def _plain(text: str) -> str | None:
    """A non-JSON body as one line: an HTML error page becomes its title (or its text)."""
    if _HTML.search(text):
        title = _TITLE.search(text)
        text = title.group(1) if title and title.group(1).strip() else _TAG.sub(" ", text)
        text = html.unescape(text)
    return " ".join(text.split()) or None


def error_for(
    status: int, headers: Mapping[str, str], body: bytes, *, now: float = 0.0
) -> APIError | None:
    """The exception for an HTTP response, or None for a 2xx.

    A 3xx is an error too: the API does not redirect, and following one could carry the token to
    another host, so the client never does (the error names where it pointed). ``now`` (Unix
    time) is used only to read a ``Retry-After`` given as an HTTP date.
    """
    if status < 300:
        return None
    if status < 400:
        location = header(headers, "location")
        return APIError(
            status,
            "Unexpected redirect",
            f"the API answered {status} pointing to {location or 'nowhere'}; "
            "redirects are not followed (check the client's base_url)",
            request_id=request_id(headers),
        )
    parsed: Any = None
    title = detail = None
    if body.strip():
        try:
            parsed = decode_json(body)
        except ValueError:
            detail = _text(_plain(body.decode("utf-8", "replace")))
    if isinstance(parsed, dict):
        title = _text(parsed.get("title"))
        detail = _text(parsed.get("detail"))
        if detail is None and "error" in parsed:
            detail = _text(parsed.get("error"))
    elif parsed is not None:
        detail = _text(parsed)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    retry_after = retry_after_from(headers, parsed, now=now) if status == 429 else None
    return cls(
        status,
        title,
        detail,
        request_id=request_id(headers),
        body=parsed,
        retry_after=retry_after,
    )
