"""The fake's aiohttp application: one middleware (counting, auth, rate limits, faults, errors)
and one handler per route. Every error is problem+json (docs/api-notes.md#errors).

Route keys are prefix-independent (``"GET /v1/predictions/{id}"``) whatever path the API is
served under. SSE streams (``/streams/{id}``) and file deliveries (``/delivery/{token}/{name}``)
need no token and are not rate limited: on the real service they are other hosts.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import datetime as dt
import hmac
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import attrs
from aiohttp import web

from areplicate._core.refs import parse_ref
from areplicate._core.times import parse_duration, parse_timestamp
from areplicate._errors import InvalidReferenceError
from areplicate.testing._fake import FakeReplicate, _ModelEntry
from areplicate.testing._limits import Fault, FaultDice, TokenBucket
from areplicate.testing._model import FakeModel, InvalidField
from areplicate.testing._records import PredictionRecord, RequestRecord, dumps, timestamp
from areplicate.testing._webhooks import EVENTS

__all__ = ["build_app"]

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


class Api:
    """The handlers of one served FakeReplicate."""

    def __init__(self, fake: FakeReplicate, prefix: str) -> None:
        self.fake = fake
        self.prefix = prefix
        self.routes: dict[Any, _Route] = {}

    # -- the middleware -------------------------------------------------------------------

    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Count, record, authenticate, rate-limit, inject faults, and turn errors into problems."""
        fake = self.fake
        info = self.routes.get(request.match_info.route)
        key = info.key if info is not None else f"{request.method} (unmatched)"
        cls = info.cls if info is not None else OTHER
        if cls == ADMIN:
            return await handler(request)
        fake.counts[key] += 1
        record: RequestRecord | None = None
        if fake.record_requests:
            record = RequestRecord(
                request.method,
                request.path,
                key,
                dict(request.headers),
                time.time(),
                request.query_string,
            )
            fake.requests.append(record)
        dice = fake._dice
        faulty = dice is not None and dice.faults.applies_to(key, api=cls != PUBLIC)
        fault: str | None = None
        bucket: TokenBucket | None = None
        response: web.StreamResponse
        try:
            if dice is not None and faulty:
                delay = dice.latency()
                if delay > 0:
                    await asyncio.sleep(delay)
            if info is None:
                response = await handler(request)  # aiohttp's own 404/405, converted below
            else:
                if cls != PUBLIC:
                    self._authenticate(request)
                    bucket = self._take(cls, request)
                if dice is not None and faulty:
                    fault = dice.before()
                    self._inject(fault, dice)
                response = await handler(request)
                if cls != PUBLIC:
                    response.headers["ratelimit-remaining"] = str(
                        bucket.remaining if bucket else (599 if cls == CREATE else 2999)
                    )
                    response.headers["ratelimit-reset"] = str(bucket.reset if bucket else 1)
        except Problem as exc:
            response = exc.response()
        except _ServerFault as exc:
            response = exc.response()
        except web.HTTPException as exc:
            response = self._http_exception(exc)
        except Exception as exc:
            fake.server_errors.append(exc)
            response = Problem(
                500, f"The fake server failed: {type(exc).__name__}: {exc}", title="Internal error"
            ).response()
        drop = dice is not None and faulty and fault is None and isinstance(response, web.Response)
        if drop and dice is not None and dice.drop():
            fault = Fault.DROP
        else:
            drop = False
        fake.status_counts[response.status] += 1
        if record is not None:
            record.status = response.status
            record.fault = fault
            record.content_type = response.content_type
            if fake.record_bodies and isinstance(response, web.Response):
                body = response.body
                record.body = body if isinstance(body, bytes) else None
        if drop:
            assert isinstance(response, web.Response)
            return await self._drop(request, response)
        return response

    def _take(self, cls: str, request: web.Request) -> TokenBucket | None:
        """Take a token from the route's bucket of this request's account, or raise the API's 429."""
        credential = request.headers.get("Authorization", "").partition(" ")[2].strip()
        buckets = self.fake.buckets_for(credential)
        if buckets is None:
            return None
        bucket = buckets[0 if cls == CREATE else 1]
        wait = bucket.take()
        if wait is not None:
            raise _throttled(wait)
        return bucket

    @staticmethod
    def _inject(fault: str | None, dice: FaultDice) -> None:
        if fault == Fault.RATE_LIMIT:
            raise _throttled(1.0)
        if fault == Fault.SERVER_ERROR:
            raise _ServerFault(dice.status_5xx())

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "").strip()
        if not header:
            raise Problem(401, "You did not pass an authentication token", title="Unauthenticated")
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        expected = self.fake.token
        valid = scheme.lower() in ("bearer", "token") and bool(credential)
        if valid and expected is not None:
            valid = hmac.compare_digest(credential.encode(), expected.encode())
        if not valid:
            raise Problem(
                401, "You did not pass a valid authentication token", title="Unauthenticated"
            )

    def _http_exception(self, exc: web.HTTPException) -> web.Response:
        if exc.status == 405:
            allowed = exc.headers.get("Allow", "")
            return Problem(
                405, "Method not allowed.", headers={"Allow": allowed} if allowed else None
            ).response()
        if exc.status == 404:
            return Problem(404, NOT_FOUND).response()
        return Problem(exc.status, exc.reason).response()

    async def _drop(self, request: web.Request, response: web.Response) -> web.StreamResponse:
        body = response.body if isinstance(response.body, bytes) else b""
        partial = web.StreamResponse(status=response.status, headers=response.headers)
        partial.content_length = len(body)
        await partial.prepare(request)
        await partial.write(body[: len(body) // 2])
        transport = request.transport
        if transport is not None:
            transport.abort()
        return partial

    # -- helpers --------------------------------------------------------------------------

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
        if entry is None or not entry.official:
            raise invalid
        return entry.latest, "hidden"

    def _prediction(self, request: web.Request) -> PredictionRecord:
        rec = self.fake._preds.get(request.match_info["id"])
        if rec is None:
            raise Problem(404, NOT_FOUND)
        return rec

    def _model_entry(self, request: web.Request) -> _ModelEntry:
        entry = self.fake._models.get(f"{request.match_info['owner']}/{request.match_info['name']}")
        if entry is None:
            raise Problem(404, NOT_FOUND)
        return entry

    # -- predictions ----------------------------------------------------------------------

    async def create_prediction(self, request: web.Request) -> web.StreamResponse:
        """POST /predictions: ``version`` is a 64-hex id, ``owner/name:<id>`` or ``owner/name``."""
        body = await self._read_json(request)
        self._check_body(body, _PREDICTION_KEYS, ("version", "input"))
        model, label = self._resolve_version(body["version"])
        return await self._create(request, body, model, label, None)

    async def create_model_prediction(self, request: web.Request) -> web.StreamResponse:
        """POST /models/{owner}/{name}/predictions: official models only, else 404."""
        entry = self._model_entry(request)
        if not entry.official:
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
        return _json(_page(b",".join(rec.body() for rec in items), next_url, previous_url))

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

    # -- models and deployments -----------------------------------------------------------

    def _model_json(self, entry: _ModelEntry) -> dict[str, Any]:
        return {
            "url": f"https://replicate.com/{entry.owner}/{entry.name}",
            "owner": entry.owner,
            "name": entry.name,
            "description": entry.description,
            "visibility": "public",
            "github_url": None,
            "paper_url": None,
            "license_url": None,
            "cover_image_url": None,
            "run_count": entry.run_count,
            "is_official": entry.official,
            "default_example": None,
            "latest_version": entry.latest.version_json(),
            "created_at": timestamp(entry.created_at.timestamp()),
        }

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        """GET /models: every model on one page, most recently updated first."""
        entries = sorted(
            self.fake._models.values(), key=lambda e: e.latest.created_at, reverse=True
        )
        results = b",".join(dumps(self._model_json(e)) for e in entries)
        return _json(_page(results, None, None))

    async def get_model(self, request: web.Request) -> web.StreamResponse:
        """GET /models/{owner}/{name}."""
        return _json(dumps(self._model_json(self._model_entry(request))))

    async def list_versions(self, request: web.Request) -> web.StreamResponse:
        """GET /models/{owner}/{name}/versions: newest first, one page."""
        entry = self._model_entry(request)
        results = b",".join(dumps(v.version_json()) for v in reversed(entry.versions))
        return _json(_page(results, None, None))

    async def get_version(self, request: web.Request) -> web.StreamResponse:
        """GET /models/{owner}/{name}/versions/{id}."""
        entry = self._model_entry(request)
        model = self.fake._versions.get(request.match_info["id"])
        if model is None or model.model != f"{entry.owner}/{entry.name}":
            raise Problem(404, NOT_FOUND)
        return _json(dumps(model.version_json()))

    async def get_deployment(self, request: web.Request) -> web.StreamResponse:
        """GET /deployments/{owner}/{name}."""
        name = f"{request.match_info['owner']}/{request.match_info['name']}"
        deployment = self.fake._deployments.get(name)
        if deployment is None:
            raise Problem(404, NOT_FOUND)
        body = {
            "owner": deployment.owner,
            "name": deployment.name,
            "current_release": {
                "number": 1,
                "model": deployment.model.model,
                "version": deployment.model.version_id,
                "created_at": timestamp(deployment.created_at.timestamp()),
                "created_by": {"type": _ACCOUNT["type"], "username": _ACCOUNT["username"]},
                "configuration": {"hardware": "cpu", "min_instances": 0, "max_instances": 1},
            },
        }
        return _json(dumps(body))

    # -- files ----------------------------------------------------------------------------

    async def create_file(self, request: web.Request) -> web.StreamResponse:
        """POST /files (multipart): ``content`` part, optional ``filename``, ``type``, ``metadata``."""
        if not request.content_type.startswith("multipart/"):
            raise Problem(400, "Expected a multipart/form-data body with a 'content' part")
        reader = await request.multipart()
        limit = self.fake.max_upload_size
        data: bytearray | None = None
        part_name: str | None = None
        part_type: str | None = None
        fields: dict[str, str] = {}
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, aiohttp.BodyPartReader):
                continue
            if part.name == "content":
                data = bytearray()
                while chunk := await part.read_chunk(65536):
                    data += chunk
                    if len(data) > limit:
                        raise Problem(413, "Files must be less than 100MB in size")
                part_name = part.filename
                part_type = part.headers.get("Content-Type")
            elif part.name in ("filename", "type", "metadata"):
                fields[part.name] = await part.text()
            else:
                await part.release()
        if data is None:
            raise _invalid([InvalidField("required", "(root)", "content is required")])
        name = fields.get("filename") or part_name or "file"
        if len(name.encode()) > 255:
            raise _invalid(
                [
                    InvalidField(
                        "string_lte", "filename", "String length must be less than or equal to 255"
                    )
                ]
            )
        content_type = fields.get("type") or part_type or "application/octet-stream"
        metadata: Any = {}
        if fields.get("metadata"):
            try:
                metadata = json.loads(fields["metadata"])
            except ValueError:
                metadata = None
            if not isinstance(metadata, dict):
                raise _invalid(
                    [InvalidField("invalid_type", "metadata", "Invalid type. Expected: object")]
                )
        rec = self.fake._new_file(name, content_type, bytes(data), metadata)
        return _json(dumps(rec.to_json()), status=201)

    async def list_files(self, request: web.Request) -> web.StreamResponse:
        """GET /files: newest first, 100 a page."""
        files = sorted(self.fake._files.values(), key=lambda f: f.seq, reverse=True)
        cursor = request.query.get("cursor")
        if cursor is not None:
            position, _ = _decode_cursor(cursor)
            files = [f for f in files if f.seq < position]
        page, rest = files[:PAGE_SIZE], files[PAGE_SIZE:]
        next_url = None
        if rest:
            next_url = f"{self._public_base()}/files?" + urlencode(
                {"cursor": _encode_cursor(page[-1].seq)}
            )
        return _json(_page(b",".join(dumps(f.to_json()) for f in page), next_url, None))

    def _file(self, request: web.Request) -> Any:
        rec = self.fake._files.get(request.match_info["id"])
        if rec is None:
            raise Problem(404, "File not found")
        return rec

    async def get_file(self, request: web.Request) -> web.StreamResponse:
        """GET /files/{id}."""
        return _json(dumps(self._file(request).to_json()))

    async def delete_file(self, request: web.Request) -> web.StreamResponse:
        """DELETE /files/{id}: 204; afterwards the file is 404."""
        rec = self._file(request)
        del self.fake._files[rec.id]
        return web.Response(status=204, content_type="text/plain")

    async def download_file(self, request: web.Request) -> web.StreamResponse:
        """GET /files/{id}/download: the bytes."""
        rec = self._file(request)
        return web.Response(
            body=rec.data,
            content_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{rec.name}"'},
        )

    # -- account ----------------------------------------------------------------------------

    async def webhook_secret(self, request: web.Request) -> web.StreamResponse:
        """GET /webhooks/default/secret."""
        return _json(dumps({"key": self.fake.webhook_secret}))

    async def account(self, request: web.Request) -> web.StreamResponse:
        """GET /account."""
        return _json(dumps(_ACCOUNT))

    async def hardware(self, request: web.Request) -> web.StreamResponse:
        """GET /hardware: a bare array."""
        return _json(dumps(_HARDWARE))

    # -- the fake's own admin route ---------------------------------------------------------

    async def stats(self, request: web.Request) -> web.StreamResponse:
        """GET /_fake/stats: counters for a separate process (benchmarks); DELETE resets them.

        Not part of Replicate's API: no token, not counted, never faulted.
        """
        fake = self.fake
        if request.method == "DELETE":
            fake.counts.clear()
            fake.status_counts.clear()
            return web.Response(status=204)
        body = {
            "counts": dict(fake.counts),
            "statuses": {str(k): v for k, v in sorted(fake.status_counts.items())},
            "predictions": len(fake._order),
            "running": fake.running(),
        }
        return _json(dumps(body))

    def table(self) -> list[tuple[str, str, _Handler, str]]:
        """(method, path under the prefix, handler, class) for every route.

        The core routes below, then search, collections, deployment management and trainings
        from ``_extra_routes`` (imported here: that module builds on this one).
        """
        from areplicate.testing._extra_routes import extra_table

        return [*self._core_table(), *extra_table(self)]

    def _core_table(self) -> list[tuple[str, str, _Handler, str]]:
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
            ("GET", "/deployments/{owner}/{name}", self.get_deployment, OTHER),
            ("GET", "/models", self.list_models, OTHER),
            ("GET", "/models/{owner}/{name}", self.get_model, OTHER),
            ("GET", "/models/{owner}/{name}/versions", self.list_versions, OTHER),
            ("GET", "/models/{owner}/{name}/versions/{id}", self.get_version, OTHER),
            ("POST", "/files", self.create_file, OTHER),
            ("GET", "/files", self.list_files, OTHER),
            ("GET", "/files/{id}", self.get_file, OTHER),
            ("DELETE", "/files/{id}", self.delete_file, OTHER),
            ("GET", "/files/{id}/download", self.download_file, OTHER),
            ("GET", "/webhooks/default/secret", self.webhook_secret, OTHER),
            ("GET", "/account", self.account, OTHER),
            ("GET", "/hardware", self.hardware, OTHER),
            ("GET", "/streams/{id}", self.stream, PUBLIC),
            ("GET", "/delivery/{token}/{filename}", self.delivery, PUBLIC),
            ("GET", "/_fake/stats", self.stats, ADMIN),
            ("DELETE", "/_fake/stats", self.stats, ADMIN),
        ]


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


def build_app(fake: FakeReplicate, prefix: str) -> web.Application:
    """The aiohttp application serving ``fake`` under ``prefix`` (``""`` or ``/v1`` …)."""
    api = Api(fake, prefix)

    @web.middleware
    async def middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
        return await api.middleware(request, handler)

    app = web.Application(middlewares=[middleware], client_max_size=16 * 1024 * 1024)
    for method, path, handler, cls in api.table():
        route = app.router.add_route(method, prefix + path, handler)
        api.routes[route] = _Route(f"{method} /v1{path}", cls)
    return app
