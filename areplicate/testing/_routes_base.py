"""The base class the routes of each API area build on."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from areplicate.testing._responses import (
    NOT_FOUND,
    Problem,
    _Route,
)
from areplicate.testing._state import FakeState, _ModelEntry


class RoutesBase:
    """What every area's routes share: the fake's state, the prefix, and small lookups."""

    def __init__(self, fake: FakeState, prefix: str) -> None:
        self.fake = fake
        self.prefix = prefix
        self.routes: dict[Any, _Route] = {}

    def _public_base(self) -> str:
        return self.fake._public_base()

    async def _read_json(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw.strip() else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise Problem(400, f"JSON parse error - {exc}", title="Invalid JSON") from None
        if not isinstance(body, dict):
            kind = "nothing" if body is None else type(body).__name__
            raise Problem(400, f"Invalid data. Expected a JSON object, but got {kind}.")
        return body

    def _model_entry(self, request: web.Request) -> _ModelEntry:
        entry = self.fake._models.get(f"{request.match_info['owner']}/{request.match_info['name']}")
        if entry is None:
            raise Problem(404, NOT_FOUND)
        return entry

    def _model_json(self, entry: _ModelEntry) -> dict[str, Any]:
        return entry.json()
