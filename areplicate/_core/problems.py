"""HTTP error responses → areplicate exceptions (docs/api-notes.md#errors).

``error_for(status, headers, body)`` is the whole mapping: the session raises what it returns. It
reads RFC 7807 problem+json bodies (``title``, ``detail``, ``status``, ``invalid_fields``), the older
``{"detail": …}`` form, and tolerates HTML or empty bodies (a proxy's 502 page becomes ServerError).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
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

__all__ = ["decode_json", "error_for", "fast_loads", "request_id"]

_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    402: PaymentRequiredError,
    404: NotFoundError,
    422: InvalidRequestError,
    429: RateLimitError,
}
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "cf-ray")
_MAX_TEXT = 300
# A non-JSON body is read for a message only this far: a title or a 300-character excerpt is found
# near the start of any real error page, and scanning a 100 MB body for one would block the loop.
_PLAIN_PREFIX = 64 * 1024
_HTML = re.compile(r"<\s*(?:!doctype\s+html|html|head|body|title)\b", re.IGNORECASE)
# Searched literally, never as one ``<title…>(.*?)</title>`` pattern: that pattern backtracks from
# every unclosed ``<title>`` to the end of the text, quadratic on a page full of them.
_TITLE_OPEN = re.compile(r"<title", re.IGNORECASE)
_TITLE_CLOSE = re.compile(r"</title\s*>", re.IGNORECASE)


# msgspec (the ``fast`` extra) reads a response in about a quarter of the time json takes, the
# largest single cost of reading a prediction. Whatever it reads, it reads as json does: integers of
# any size exactly, ``1`` as an int and ``1.0`` as a float, nesting as deep as the interpreter's
# recursion limit lets json go. It refuses a few bodies json accepts (NaN, Infinity, a number past
# the float range, a byte-order mark, a lone surrogate, UTF-16): json reads those, so the result is
# always json's, with no check of the body first. (orjson, used before, turns an integer past 64
# bits into a float, which took a scan of every body for long runs of digits: as many instructions
# as the parse itself.)
_UNRESOLVED: Any = object()
_msgspec_loads: Any = _UNRESOLVED
# What msgspec raises for a body it will not read (its errors are ValueErrors only since 0.19).
_refused: tuple[type[BaseException], ...] = (ValueError, RecursionError)


def fast_loads() -> Callable[[bytes | str], Any] | None:
    """msgspec's JSON reader when msgspec is installed, else None (looked up on first use, not
    at import)."""
    global _msgspec_loads, _refused  # noqa: PLW0603 - a once-only lookup of an optional extra
    if _msgspec_loads is _UNRESOLVED:
        try:
            import msgspec  # optional, and not paid for by `import areplicate`
        except ImportError:
            _msgspec_loads = None
        else:
            _refused = (*_refused, msgspec.MsgspecError)
            _msgspec_loads = msgspec.json.Decoder().decode
    return _msgspec_loads  # type: ignore[no-any-return]


def decode_json(body: bytes | str) -> Any:
    """Parse a JSON body; raises ValueError (with a short excerpt) when it is not JSON.

    A document nested too deeply for the parser (``[[[[…`` a hundred thousand levels) is a
    ValueError too, never a RecursionError: to the caller it is just a body it cannot read.
    """
    loads = _msgspec_loads if _msgspec_loads is not _UNRESOLVED else fast_loads()
    if loads is not None:
        try:
            return loads(body)
        except _refused:  # msgspec's refusal: json accepts it or says why not
            pass
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"response is not JSON: {_excerpt(body)!r}") from exc
    except RecursionError:
        pass
    # Raised here, outside the handler, so the RecursionError is not even its __context__.
    raise ValueError(f"response JSON is nested too deeply to read: {_excerpt(body)!r}")


def _excerpt(body: bytes | str) -> str:
    """The first 80 characters of a body, as text, for an error message about it.

    Cut before decoding, so a huge body is never decoded whole; a multi-byte character split at
    the cut shows as a replacement character, which is harmless in a message.
    """
    return body[:80] if isinstance(body, str) else body[:80].decode("utf-8", "replace")


def request_id(headers: Mapping[str, str]) -> str | None:
    """The API's request id from the response headers, if any.

    ``x-request-id`` first, then ``request-id``; Cloudflare's ``cf-ray`` last, since an error
    made by the proxy in front of the API may carry only that.
    """
    for name in _REQUEST_ID_HEADERS:
        if (value := header(headers, name)) is not None:
            return value
    return None


def _text(value: Any) -> str | None:
    """A problem field as one message string: JSON for a non-string, trimmed, capped at ``_MAX_TEXT``.

    Blank text counts as absent, so the caller falls back to the next field or the status line
    instead of printing an empty message.
    """
    if value is None:
        return None
    text = (value if isinstance(value, str) else json.dumps(value)).strip()
    if not text:  # "" or "  ": no message rather than "HTTP 500: "
        return None
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"


def _title(text: str) -> str | None:
    """The text of the first ``<title …>…</title>``, if it is closed; one pass, no backtracking."""
    opening = _TITLE_OPEN.search(text)
    if opening is None:
        return None
    start = text.find(">", opening.end())
    if start < 0:
        return None
    closing = _TITLE_CLOSE.search(text, start + 1)
    return None if closing is None else text[start + 1 : closing.start()]


def _strip_tags(text: str) -> str:
    """``text`` with each ``<…>`` replaced by a space (an unclosed ``<`` stays): one pass."""
    out: list[str] = []
    pos = 0
    while (lt := text.find("<", pos)) >= 0 and (gt := text.find(">", lt)) >= 0:
        out.append(text[pos:lt])
        out.append(" ")
        pos = gt + 1
    out.append(text[pos:])
    return "".join(out)


def _plain(body: bytes) -> str | None:
    """A non-JSON body as one line: an HTML error page becomes its title (or its text).

    Only the first :data:`_PLAIN_PREFIX` bytes are read, and every step is linear in them.
    """
    text = body[:_PLAIN_PREFIX].decode("utf-8", "replace")
    if _HTML.search(text):
        title = _title(text)
        text = title if title and title.strip() else _strip_tags(text)
        import html  # here: html.entities' tables are large, and only an HTML error page needs them

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
            detail = _text(_plain(body))
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
