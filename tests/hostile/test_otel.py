"""OpenTelemetry spans: one per prediction's life and one per API request, under the caller's span,
across a fan-out; a failing item and a retried 429 show in them; never the token, inputs or outputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from aiohttp import web

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

import areplicate
from tests.hostile.server import TOKEN, Hostile, prediction_body, problem

CREATE = "/v1/models/acme/m/predictions"
SECRET_INPUT = "a prompt nobody else may read"
SECRET_OUTPUT = "an output nobody else may read"
_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the global provider can be set once only
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def _creates() -> Any:
    """Creates answered at once (``Prefer: wait``): item 7 fails; the very first create gets a 429."""
    count = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal count
        count += 1
        if count == 1:
            return await problem(429, "Too Many Requests", "", **{"Retry-After": "0"})(request)
        item = json.loads(await request.read())["input"]["i"]
        failed = item == 7
        body = prediction_body(
            f"p{item}",
            status="failed" if failed else "succeeded",
            output=SECRET_OUTPUT,
            error="model crashed" if failed else None,
            input={"i": item, "prompt": SECRET_INPUT},
            created_at="2026-12-01T00:00:00.000000Z",
            started_at="2026-12-01T00:00:02.500000Z",
            metrics={"predict_time": 1.25},
        )
        return web.json_response(body, status=201)

    return handler


def _texts(span: ReadableSpan) -> list[str]:
    texts = [span.name, repr(span.status.description)]
    texts += [f"{k}={v}" for k, v in (span.attributes or {}).items()]
    for event in span.events:
        texts += [event.name, *(f"{k}={v}" for k, v in (event.attributes or {}).items())]
    return texts


async def test_a_fan_out_traced_under_the_callers_span(
    hostile: Hostile, client: areplicate.Client, spans: InMemorySpanExporter
) -> None:
    hostile.on("POST", CREATE, _creates())
    inputs = [{"i": i, "prompt": SECRET_INPUT} for i in range(100)]
    tracer = trace.get_tracer("the app")
    with tracer.start_as_current_span("nightly batch") as parent:
        with anyio.fail_after(60):
            done = [d async for d in areplicate.as_completed(client, "acme/m", inputs)]
    assert len(done) == 100
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    predictions = [s for s in finished if s.name == "areplicate.prediction"]
    requests = [s for s in finished if s.kind == trace.SpanKind.CLIENT]

    assert len(predictions) == 100
    for span in predictions:
        assert span.parent is not None
        assert span.parent.span_id == parent.get_span_context().span_id
        assert span.attributes is not None
        assert span.attributes["areplicate.model"] == "acme/m"
        assert span.attributes["areplicate.prediction.predict_time"] == 1.25
        assert span.attributes["areplicate.prediction.queue_time"] == 2.5
    (failed,) = [s for s in predictions if s.status.status_code == trace.StatusCode.ERROR]
    assert failed.attributes is not None
    assert failed.attributes["areplicate.prediction.id"] == "p7"
    assert failed.attributes["areplicate.prediction.status"] == "failed"

    assert len(requests) == 100  # one per create: the 429 was asked again inside its request
    for span in requests:
        assert span.name == "POST /v1/models/{owner}/{name}/predictions"
        assert span.parent is not None
        assert by_id[span.parent.span_id].name == "areplicate.prediction"
        assert span.attributes is not None
        assert span.attributes["http.response.status_code"] == 201
    (throttled,) = [s for s in requests if s.attributes and s.attributes["areplicate.throttled"]]
    assert [e.name for e in throttled.events] == ["areplicate.throttled"]

    for span in finished:
        for text in _texts(span):
            assert TOKEN not in text
            assert SECRET_INPUT not in text
            assert SECRET_OUTPUT not in text


async def test_a_retried_request_counts_its_retries(
    hostile: Hostile, client: areplicate.Client, spans: InMemorySpanExporter
) -> None:
    from tests.hostile.server import json_response, sequence

    hostile.on(
        "GET",
        "/v1/predictions/p1",
        sequence(problem(503, ""), json_response(prediction_body("p1"))),
    )
    with anyio.fail_after(10):
        await client.predictions.get("p1")
    (span,) = spans.get_finished_spans()
    assert span.name == "GET /v1/predictions/{prediction_id}"
    assert span.attributes is not None
    assert span.attributes["areplicate.retries"] == 1
    assert span.attributes["http.response.status_code"] == 200
    assert [e.name for e in span.events] == ["areplicate.retry"]
    assert span.events[0].attributes is not None
    assert span.events[0].attributes["areplicate.reason"] == "HTTP 503"


async def test_an_error_is_the_spans_status_without_its_detail(
    hostile: Hostile, client: areplicate.Client, spans: InMemorySpanExporter
) -> None:
    hostile.on("GET", "/v1/predictions/p1", problem(404, "Not found", f"no {SECRET_INPUT}"))
    with anyio.fail_after(10), pytest.raises(areplicate.NotFoundError):
        await client.predictions.get("p1")
    (span,) = spans.get_finished_spans()
    assert span.status.status_code == trace.StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "404"
    assert all(SECRET_INPUT not in text for text in _texts(span))


async def test_a_request_span_names_the_apis_request_id(
    hostile: Hostile, client: areplicate.Client, spans: InMemorySpanExporter
) -> None:
    from tests.hostile.server import json_response

    hostile.on(
        "GET",
        "/v1/predictions/p1",
        json_response(prediction_body("p1"), headers={"X-Request-Id": "req-123"}),
    )
    hostile.on(
        "GET", "/v1/predictions/p2", problem(404, "Not found", **{"X-Request-Id": "req-404"})
    )
    with anyio.fail_after(10):
        await client.predictions.get("p1")
        with pytest.raises(areplicate.NotFoundError):
            await client.predictions.get("p2")
    ok, failed = spans.get_finished_spans()
    assert ok.attributes is not None
    assert ok.attributes["areplicate.request_id"] == "req-123"
    assert failed.attributes is not None
    assert failed.attributes["areplicate.request_id"] == "req-404"
