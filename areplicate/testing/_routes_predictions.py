"""Prediction routes: the three creates, get, list, cancel, SSE streams and file deliveries.

SSE streams (``/streams/{id}``) and file deliveries (``/delivery/{token}/{name}``) need no
token and are not rate limited: on the real service they are other hosts.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import math
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web

from areplicate._core.refs import parse_ref
from areplicate._core.times import parse_duration, parse_timestamp
from areplicate._errors import InvalidReferenceError
from areplicate.testing._model import FakeModel, InvalidField
from areplicate.testing._records import PredictionRecord
from areplicate.testing._responses import (
    _EPOCH,
    _MODEL_KEYS,
    _PREDICTION_KEYS,
    CREATE,
    INVALID_VERSION,
    MAX_WAIT,
    MIN_CANCEL_AFTER,
    NOT_FOUND,
    OTHER,
    PAGE_SIZE,
    PUBLIC,
    Problem,
    _decode_cursor,
    _encode_cursor,
    _format_event,
    _Handler,
    _invalid,
    _json,
    _page,
)
from areplicate.testing._routes_base import RoutesBase
from areplicate.testing._webhooks import EVENTS


class PredictionRoutes(RoutesBase):
    """Creates (by version, model, deployment), get, list, cancel, SSE streams, deliveries."""

    def _check_body(
        self, body: dict[str, Any], allowed: frozenset[str], required: tuple[str, ...]
    ) -> None:
        fields = [
            InvalidField("required", "(root)", f"{name} is required")
            for name in required
            if name not in body
        ]
        fields += [
            InvalidField(
                "additional_property_not_allowed",
                "(root)",
                f"Additional property {name} is not allowed",
            )
            for name in sorted(body)
            if name not in allowed
        ]

        def wrong(name: str, expected: str) -> None:
            given = type(body[name]).__name__
            names = {"str": "string", "dict": "object", "list": "array", "NoneType": "null"}
            fields.append(
                InvalidField(
                    "invalid_type",
                    name,
                    f"Invalid type. Expected: {expected}, given: {names.get(given, given)}",
                )
            )

        if "input" in body and not isinstance(body["input"], dict):
            wrong("input", "object")
        for name in ("webhook", "webhook_completed"):
            value = body.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                wrong(name, "string")
            else:
                parts = urlsplit(value)
                if parts.scheme not in ("http", "https") or not parts.netloc:
                    fields.append(InvalidField("format", name, "Does not match format 'uri'"))
        events = body.get("webhook_events_filter")
        if events is not None:
            if not isinstance(events, list):
                wrong("webhook_events_filter", "array")
            else:
                for i, event in enumerate(events):
                    if event not in EVENTS:
                        fields.append(
                            InvalidField(
                                "enum",
                                f"webhook_events_filter.{i}",
                                f"webhook_events_filter.{i} must be one of the following: "
                                '"start", "output", "logs", "completed"',
                            )
                        )
        if "stream" in body and not isinstance(body["stream"], bool):
            wrong("stream", "boolean")
        if fields:
            raise _invalid(fields)

    @staticmethod
    def _prefer_wait(header: str | None) -> tuple[float, str] | None:
        if not header:
            return None
        for part in header.split(","):
            name, eq, value = part.strip().partition("=")
            if name.strip().lower() != "wait":
                continue
            if not eq:
                return float(MAX_WAIT), "wait"
            try:
                seconds = int(value.strip())
            except ValueError:
                return None
            if seconds < 1:
                return None
            seconds = min(seconds, MAX_WAIT)
            return float(seconds), f"wait={seconds}"
        return None

    @staticmethod
    def _cancel_after(header: str | None) -> float | None:
        if header is None:
            return None
        try:
            seconds = parse_duration(header)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds):
            raise Problem(
                422,
                f"Cancel-After must be a duration such as 30s, 5m, 1h30m45s or a number of "
                f"seconds, got {header!r}",
                title="Invalid Cancel-After header",
            )
        if seconds < MIN_CANCEL_AFTER:
            raise Problem(
                422,
                f"Cancel-After must be at least 5 seconds, got {header!r}",
                title="Invalid Cancel-After header",
            )
        return seconds

    def _resolve_version(self, value: Any) -> tuple[FakeModel, str]:
        invalid = Problem(422, INVALID_VERSION, title="Invalid version or not permitted")
        if not isinstance(value, str):
            raise invalid
        try:
            ref = parse_ref(value)
        except InvalidReferenceError:
            raise invalid from None
        fake = self.fake
        if ref.version is not None:
            model = fake._versions.get(ref.version)
            if model is None or (ref.model is not None and model.model != ref.model):
                raise invalid
            return model, model.version_id
        entry = fake._models.get(ref.model or "")
        if entry is None or not entry.official or not entry.versions:
            raise invalid
        return entry.latest, "hidden"

    def _prediction(self, request: web.Request) -> PredictionRecord:
        rec = self.fake._preds.get(request.match_info["id"])
        if rec is None:
            raise Problem(404, NOT_FOUND)
        return rec

    async def create_prediction(self, request: web.Request) -> web.StreamResponse:
        """POST /predictions: ``version`` is a 64-hex id, ``owner/name:<id>`` or ``owner/name``."""
        body = await self._read_json(request)
        self._check_body(body, _PREDICTION_KEYS, ("version", "input"))
        model, label = self._resolve_version(body["version"])
        return await self._create(request, body, model, label, None)

    async def create_model_prediction(self, request: web.Request) -> web.StreamResponse:
        """POST /models/{owner}/{name}/predictions: official models only, else 404."""
        entry = self._model_entry(request)
        if not entry.official or not entry.versions:
            raise Problem(404, NOT_FOUND)
        body = await self._read_json(request)
        self._check_body(body, _MODEL_KEYS, ("input",))
        return await self._create(request, body, entry.latest, "hidden", None)

    async def create_deployment_prediction(self, request: web.Request) -> web.StreamResponse:
        """POST /deployments/{owner}/{name}/predictions."""
        name = f"{request.match_info['owner']}/{request.match_info['name']}"
        deployment = self.fake._deployments.get(name)
        if deployment is None:
            raise Problem(404, NOT_FOUND)
        body = await self._read_json(request)
        self._check_body(body, _MODEL_KEYS, ("input",))
        model = deployment.model
        return await self._create(request, body, model, model.version_id, name)

    async def _create(
        self,
        request: web.Request,
        body: dict[str, Any],
        model: FakeModel,
        label: str,
        deployment: str | None,
    ) -> web.StreamResponse:
        prefer = self._prefer_wait(request.headers.get("Prefer"))
        lifetime = self._cancel_after(request.headers.get("Cancel-After"))
        value: dict[str, Any] = body["input"]
        problems = model.validate(value)
        if problems:
            raise _invalid(problems)
        webhook: str | None = body.get("webhook")
        events: list[str] | None = body.get("webhook_events_filter")
        if webhook is None and body.get("webhook_completed"):
            webhook, events = body["webhook_completed"], ["completed"]
        rec = self.fake._start_prediction(
            model,
            value,
            version_label=label,
            deployment=deployment,
            webhook=webhook,
            webhook_filter=events,
            lifetime=lifetime,
        )
        headers = {"Location": rec.urls["get"]}
        if prefer is not None:
            seconds, applied = prefer
            if not rec.terminal:
                await asyncio.wait({rec.done}, timeout=seconds)
            headers["Preference-Applied"] = applied
        return _json(rec.body(), status=201, headers=headers)

    async def list_predictions(self, request: web.Request) -> web.StreamResponse:
        """GET /predictions: newest first, 100 a page, absolute ``next``/``previous`` links."""
        fake = self.fake
        query = request.query
        filters: dict[str, str] = {}
        lo, hi = 0, len(fake._order)
        for name in ("created_after", "created_before"):
            text = query.get(name)
            if text is None:
                continue
            try:
                moment = (parse_timestamp(text) - _EPOCH) // dt.timedelta(microseconds=1)
            except ValueError:
                raise Problem(400, f"{name} must be an ISO 8601 date-time, got {text!r}") from None
            filters[name] = text
            if name == "created_after":
                lo = bisect.bisect_right(fake._created, moment)
            else:
                hi = bisect.bisect_left(fake._created, moment)
        cursor = query.get("cursor")
        if cursor is None:
            upper = hi
            start = max(lo, upper - PAGE_SIZE)
            has_previous = False
        else:
            position, reverse = _decode_cursor(cursor)
            if reverse:
                start = min(max(position, lo), hi)
                upper = min(hi, start + PAGE_SIZE)
            else:
                upper = max(min(position, hi), lo)
                start = max(lo, upper - PAGE_SIZE)
            has_previous = upper < hi
        items = fake._order[start:upper]
        items.reverse()
        base = f"{self._public_base()}/predictions?"
        next_url = (
            base + urlencode({"cursor": _encode_cursor(start), **filters}) if start > lo else None
        )
        previous_url = (
            base + urlencode({"cursor": _encode_cursor(upper, reverse=True), **filters})
            if has_previous
            else None
        )
        # List items carry no ``logs``, as the real API's do not: read one with a GET for those.
        return _json(_page(b",".join(rec.list_body() for rec in items), next_url, previous_url))

    async def get_prediction(self, request: web.Request) -> web.StreamResponse:
        """GET /predictions/{id}."""
        return _json(self._prediction(request).body())

    async def cancel_prediction(self, request: web.Request) -> web.StreamResponse:
        """POST /predictions/{id}/cancel: stops the callable; a finished one comes back unchanged."""
        rec = self._prediction(request)
        await self.fake._cancel(rec)
        return _json(rec.body())

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """GET /streams/{id}: server-sent events, resumable with ``Last-Event-ID``."""
        rec = self._prediction(request)
        if not rec.streaming:
            raise Problem(404, NOT_FOUND)
        index = 0
        last = request.headers.get("Last-Event-ID")
        if last:
            _, _, seq = last.rpartition(":")
            if seq.isdigit():
                index = int(seq) + 1
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        try:
            while True:
                events = rec.events
                if index < len(events):
                    chunk = b"".join(_format_event(rec, *event) for event in events[index:])
                    index = len(events)
                    await response.write(chunk)
                    continue
                if rec.terminal or rec.data_removed:
                    break
                await rec.wait_changed()
            await response.write_eof()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass
        return response

    async def delivery(self, request: web.Request) -> web.StreamResponse:
        """GET /delivery/{token}/{filename}: an output file, no token needed (replicate.delivery)."""
        item = self.fake._deliveries.get(request.match_info["token"])
        if item is None or item.filename != request.match_info["filename"]:
            raise Problem(404, NOT_FOUND)
        return web.Response(
            body=item.data,
            headers={
                "Content-Type": item.media_type,
                "Cache-Control": "public,max-age=3600",
            },
        )

    def _prediction_routes(self) -> list[tuple[str, str, _Handler, str]]:
        return [
            ("POST", "/predictions", self.create_prediction, CREATE),
            ("GET", "/predictions", self.list_predictions, OTHER),
            ("GET", "/predictions/{id}", self.get_prediction, OTHER),
            ("POST", "/predictions/{id}/cancel", self.cancel_prediction, OTHER),
            ("POST", "/models/{owner}/{name}/predictions", self.create_model_prediction, CREATE),
            (
                "POST",
                "/deployments/{owner}/{name}/predictions",
                self.create_deployment_prediction,
                CREATE,
            ),
            ("GET", "/streams/{id}", self.stream, PUBLIC),
            ("GET", "/delivery/{token}/{filename}", self.delivery, PUBLIC),
        ]
