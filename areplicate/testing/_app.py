"""The fake's aiohttp application: one middleware (counting, auth, rate limits, faults, errors)
and the routes of every API area (``_routes_*``).

Route keys are prefix-independent (``"GET /v1/predictions/{id}"``) whatever path the API is
served under.
"""

from __future__ import annotations

import asyncio
import hmac

from aiohttp import web

from areplicate.testing._limits import Fault, FaultDice, TokenBucket
from areplicate.testing._records import RequestRecord, dumps
from areplicate.testing._responses import (
    ADMIN,
    CREATE,
    NOT_FOUND,
    OTHER,
    PUBLIC,
    Problem,
    _Handler,
    _json,
    _Route,
    _ServerFault,
    _throttled,
)
from areplicate.testing._routes_catalog import CatalogRoutes
from areplicate.testing._routes_deployments import DeploymentRoutes
from areplicate.testing._routes_files import FileRoutes
from areplicate.testing._routes_models import ModelRoutes
from areplicate.testing._routes_predictions import PredictionRoutes
from areplicate.testing._routes_trainings import TrainingRoutes
from areplicate.testing._routes_webhooks import WebhookRoutes
from areplicate.testing._state import FakeState

__all__ = ["Api", "build_app"]


class Api(
    PredictionRoutes,
    ModelRoutes,
    DeploymentRoutes,
    TrainingRoutes,
    FileRoutes,
    CatalogRoutes,
    WebhookRoutes,
):
    """The handlers of one served fake: one routes class per API area, and the middleware."""

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
                fake.clock.time(),
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
        except Exception as exc:  # noqa: BLE001 - a fake's bug becomes a 500 and is kept for the test to see
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
            "running": fake.running,
        }
        return _json(dumps(body))

    def table(self) -> list[tuple[str, str, _Handler, str]]:
        """(method, path under the prefix, handler, class) for every route."""
        return [
            *self._prediction_routes(),
            *self._model_routes(),
            *self._deployment_routes(),
            *self._training_routes(),
            *self._file_routes(),
            *self._catalog_routes(),
            *self._webhook_routes(),
            ("GET", "/_fake/stats", self.stats, ADMIN),
            ("DELETE", "/_fake/stats", self.stats, ADMIN),
        ]


def build_app(fake: FakeState, prefix: str) -> web.Application:
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
