"""``data:`` URIs: checking, splitting and decoding them, with no I/O.

Decoded the way browsers do (the WHATWG fetch "data: URL processor"): the payload is percent-decoded
first, ``;base64`` ends the media type (any case, spaces before it), and base64 may carry whitespace
and omit its ``=`` padding. What cannot be read raises ValueError saying what is wrong, so a bad
input is refused before it is sent (and paid for) rather than failing inside a model.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

__all__ = ["bad_data_uri", "check_data_uris", "data_uri_parts", "decode_data_uri"]

_BASE64_PARAM = re.compile(r";[ \t]*base64[ \t]*$", re.IGNORECASE)
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/]*")
_ASCII_SPACE = re.compile(rb"[\t\n\f\r ]+")
_DATA_URI_FORM = (
    "data:[<media type>][;base64],<data> (for example 'data:image/png;base64,iVBORw0K…')"
)


def bad_data_uri(url: str, problem: str) -> ValueError:
    """The ValueError for a data URI that cannot be read: the URI (cut short), what is wrong, the form."""
    shown = url[:60] + ("…" if len(url) > 60 else "")
    return ValueError(f"malformed data: URI {shown!r}: {problem}; a data URI is {_DATA_URI_FORM}")


def decode_data_uri(url: str) -> tuple[bytes, str]:
    """The bytes and media type of a ``data:`` URI (base64 or percent-encoded).

    ValueError saying what is wrong when it cannot be read. The media type comes without its
    parameters (``text/plain`` for ``text/plain;charset=utf-8``), and is ``text/plain`` when the
    URI names none, as browsers assume.
    """
    media_type, data, is_base64 = data_uri_parts(url)
    if not is_base64:
        return data, media_type
    return base64.b64decode(data + b"=" * (-len(data) % 4), validate=True), media_type


def data_uri_parts(url: str) -> tuple[str, bytes, bool]:
    """A data URI checked and split: media type, payload (base64 text without padding, or the
    bytes) and whether it is base64. ValueError saying what is wrong when it cannot be read.

    Checking costs no base64 decoding, so a large inline file is checked cheaply.
    """
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise bad_data_uri(url, "it has no ',' before the data")
    base64_match = _BASE64_PARAM.search(header)
    if base64_match is not None:
        header = header[: base64_match.start()]
    media_type = header.split(";", 1)[0].strip() or "text/plain"
    data = unquote_to_bytes(payload)
    if base64_match is None:
        return media_type, data, False
    text = _ASCII_SPACE.sub(b"", data)
    if len(text) % 4 == 0 and text.endswith(b"="):
        text = text[:-2] if text.endswith(b"==") else text[:-1]
    if len(text) % 4 == 1:
        raise bad_data_uri(url, "its base64 data is cut short (one character too many or few)")
    if _BASE64_TEXT.fullmatch(text) is None:
        raise bad_data_uri(
            url,
            "its base64 data has characters base64 does not use (only A-Z, a-z, 0-9, '+', '/' and "
            "'=' at the end; URL-safe '-' and '_' must be converted)",
        )
    return media_type, text, True


def check_data_uris(input: Mapping[str, Any]) -> None:
    """Raise ValueError, naming the input field, for a ``data:`` string value that cannot be read.

    Without this the API would get it and answer with a 422 about the model's input, or a model
    would fail on it after being paid for. Iterative, so no input is too deep for it.
    """
    stack: list[tuple[str, Any]] = [(repr(key), value) for key, value in input.items()]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if value.startswith("data:"):
                try:
                    data_uri_parts(value)
                except ValueError as exc:
                    raise ValueError(f"input {where} is a {exc}") from None
        elif isinstance(value, Mapping):
            stack.extend((f"{where}[{key!r}]", item) for key, item in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{where}[{index}]", item) for index, item in enumerate(value))
