"""Shared pieces of the fake's routes: problem+json errors, JSON pages, cursors, constants.

Every error is problem+json, as the API sends it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import attrs
from aiohttp import web

from areplicate.testing._model import InvalidField
from areplicate.testing._records import PredictionRecord, dumps

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CREATE = "create"
OTHER = "other"
PUBLIC = "public"
ADMIN = "admin"

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
PAGE_SIZE = 100
MIN_CANCEL_AFTER = 5.0
MAX_WAIT = 60

NOT_FOUND = "The requested resource could not be found."
INVALID_VERSION = (
    "The specified version does not exist (or perhaps you don't have permission to use it?)"
)
_BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_HARDWARE = [
    {"sku": "cpu", "name": "CPU"},
    {"sku": "gpu-t4", "name": "Nvidia T4 GPU"},
    {"sku": "gpu-a40-small", "name": "Nvidia A40 GPU"},
    {"sku": "gpu-a40-large", "name": "Nvidia A40 (Large) GPU"},
    {"sku": "gpu-a100-large", "name": "Nvidia A100 (80GB) GPU"},
]
_ACCOUNT = {
    "type": "user",
    "username": "fake-user",
    "name": "Fake Replicate User",
    "github_url": "https://github.com/fake-user",
    "avatar_url": "https://replicate.com/static/avatar.png",
}
_PREDICTION_KEYS = frozenset(
    {"version", "input", "webhook", "webhook_events_filter", "webhook_completed", "stream"}
)
_MODEL_KEYS = _PREDICTION_KEYS - {"version"}


class Problem(Exception):
    """Raised by handlers; the middleware answers it as problem+json."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.headers = headers
        self.extra = extra

    def response(self) -> web.Response:
        body: dict[str, Any] = {}
        if self.title is not None:
            body["title"] = self.title
        body["detail"] = self.detail
        body["status"] = self.status
        body.update(self.extra)
        return web.Response(
            status=self.status,
            body=dumps(body),
            headers=self.headers,
            content_type="application/problem+json",
        )


def _invalid(fields: list[InvalidField]) -> Problem:
    detail = "".join(f"- {f.field}: {f.description}\n" for f in fields)
    return Problem(
        422,
        detail,
        title="Input validation failed",
        invalid_fields=[f.as_json() for f in fields],
    )


def _throttled(wait: float) -> Problem:
    seconds = max(1, math.ceil(wait))
    unit = "second" if seconds == 1 else "seconds"
    return Problem(
        429,
        f"Request was throttled. Expected available in {seconds} {unit}.",
        headers={
            "Retry-After": str(seconds),
            "ratelimit-remaining": "0",
            "ratelimit-reset": str(seconds),
        },
    )


def _json(body: bytes, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, headers=headers, content_type="application/json")


@attrs.frozen
class _Route:
    """The route key (as in ``counts``) and class (create, other, public, admin) of a route."""

    key: str
    cls: str


def _encode_cursor(position: int, *, reverse: bool = False) -> str:
    text = f"r=1&p={position}" if reverse else f"p={position}"
    return base64.b64encode(text.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[int, bool]:
    try:
        fields = parse_qs(base64.b64decode(cursor, validate=True).decode(), strict_parsing=True)
        position = int(fields["p"][0])
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, IndexError):
        raise Problem(404, "Invalid cursor") from None
    if position < 0:
        raise Problem(404, "Invalid cursor")
    return position, fields.get("r") == ["1"]


def _page(results: bytes, next_url: str | None, previous_url: str | None) -> bytes:
    return b"".join(
        [
            b'{"next":',
            dumps(next_url),
            b',"previous":',
            dumps(previous_url),
            b',"results":[',
            results,
            b"]}",
        ]
    )


def _format_event(rec: PredictionRecord, seq: int, event: str, data: str) -> bytes:
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    text = f"event: {event}\nid: {rec.event_id(seq)}\n"
    text += "".join(f"data: {line}\n" for line in lines)
    return (text + "\n").encode()


class _ServerFault(Exception):
    """An injected 5xx: problem+json, or for 502 a proxy's HTML page."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status

    def response(self) -> web.Response:
        if self.status == 502:
            return web.Response(status=502, body=_BAD_GATEWAY_HTML, content_type="text/html")
        detail = {
            500: "An unexpected error occurred. Please try again.",
            503: "The service is temporarily unavailable. Please try again later.",
            504: "The upstream server did not respond in time.",
        }.get(self.status, "Server error.")
        return Problem(self.status, detail).response()


_SKUS = frozenset(h["sku"] for h in _HARDWARE)
_BAD_DESTINATION = "The specified training destination does not exist"
