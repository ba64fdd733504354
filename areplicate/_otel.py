"""OpenTelemetry spans, when ``opentelemetry-api`` is installed (``pip install 'areplicate[otel]'``).

One CLIENT span per API request (``GET /v1/predictions/{prediction_id}``: method, route template,
status, retries, 429s waited out) and one span per prediction's life (model, prediction id, final
status, ``predict_time``, queue time), each a child of the caller's current span; a fan-out's
predictions are children of the span current where the fan-out started (its tasks copy the
context). Never the token, the inputs, the outputs, the query string or error details (they may
quote an input): errors show as the span's status and ``error.type``.

Without ``opentelemetry-api``, or with it installed but never imported by the application, nothing
is imported and each hook costs one check. With it but no tracer provider installed (the API's
no-op one), spans are skipped altogether: they would record nothing, and starting and entering them
cost more than the rest of a request's bookkeeping.
"""

from __future__ import annotations

import contextvars
import os
import re
import sys
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from areplicate._core.problems import request_id as _request_id

if TYPE_CHECKING:
    from areplicate._models import Prediction

__all__ = [
    "recording",
    "route_template",
    "throttled",
    "traced_prediction",
    "traced_request",
    "tracer",
]

_UNRESOLVED: Any = object()
_tracer: Any = _UNRESOLVED
_trace: Any = None  # the opentelemetry.trace module, once imported
_live = False  # an application installed a tracer provider (it cannot be uninstalled)
# OpenTelemetry can also build its provider from this environment variable on first use.
_PROVIDER_FROM_ENV = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ

T = TypeVar("T")


def tracer() -> Any:
    """areplicate's tracer, or None when opentelemetry-api is not installed (looked up once)."""
    global _tracer, _trace  # noqa: PLW0603 - a lazy, once-only lookup of an optional extra
    if _tracer is _UNRESOLVED:
        try:
            from opentelemetry import trace
        except ImportError:
            _tracer = None
        else:
            _trace = trace
            # A ProxyTracer until an SDK provider is set, then that provider's: safe to keep.
            from areplicate._version import package_version

            _tracer = trace.get_tracer("areplicate", package_version())
    return _tracer


def recording() -> Any:
    """areplicate's tracer when an application installed a tracer provider; None otherwise.

    Asked at every span, not once, while none is installed (one can be, later). Once one is, the
    answer stays: OpenTelemetry lets the global provider be set only once. An application that
    never imported ``opentelemetry.trace`` cannot have installed one (short of the environment
    variable), so until it does, nothing of OpenTelemetry is imported here: its modules would
    only add to every garbage collection's work.
    """
    global _live  # noqa: PLW0603 - remembers a once-only global event of the OpenTelemetry API
    if not _live and not _PROVIDER_FROM_ENV:
        api = sys.modules.get("opentelemetry.trace")
        if api is None or getattr(api, "_TRACER_PROVIDER", _UNRESOLVED) is None:
            return None
    tr = tracer()
    if tr is None or _live:
        return tr
    # The API's own global; reading it costs far less than get_tracer_provider(), which consults
    # os.environ on every call. Without it (another API version) ask the public function.
    if getattr(_trace, "_TRACER_PROVIDER", _UNRESOLVED) is None and not _PROVIDER_FROM_ENV:
        return None
    provider = _trace.get_tracer_provider()
    if isinstance(provider, (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider)):
        return None  # the API's no-op: its spans record nothing
    _live = True
    return tr


# -- route templates ----------------------------------------------------------------------------

_ONE = {
    "predictions": "{prediction_id}",
    "trainings": "{training_id}",
    "files": "{file_id}",
    "collections": "{collection_slug}",
    "versions": "{version_id}",
}
_OWNED = ("models", "deployments")
_VERBS = frozenset({"cancel", "predictions", "versions", "trainings", "readme", "examples"})
_PREFIX = re.compile(r"^https?://[^/]+")


def route_template(url: str, base_url: str) -> str:
    """The path of ``url`` with its ids replaced by placeholders: ``/v1/predictions/{prediction_id}``
    (a span name must not grow with every prediction)."""
    path = url[len(base_url) :] if url.startswith(base_url) else _PREFIX.sub("", url)
    path = path.partition("?")[0]
    segments = [s for s in path.split("/") if s]
    out: list[str] = []
    i = 0
    while i < len(segments):
        seg = segments[i]
        out.append(seg)
        rest = segments[i + 1 :]
        if seg in _OWNED and len(rest) >= 2:
            out += ["{owner}", "{name}"]
            i += 3
            continue
        if seg in _ONE and rest and rest[0] not in _VERBS:
            out.append(_ONE[seg])
            i += 2
            continue
        i += 1
    prefix = _PREFIX.sub("", base_url).rstrip("/")
    return f"{prefix}/{'/'.join(out)}"


# -- request spans ------------------------------------------------------------------------------


class _Request:
    """What one request span collects while the request runs: retries and 429s waited out.

    Reached through a context variable rather than passed along, because the retry loop that
    reports them sits inside the session, below the wrapped call.
    """

    __slots__ = ("retries", "span", "throttled")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.retries = 0
        self.throttled = 0


_REQUEST: contextvars.ContextVar[_Request | None] = contextvars.ContextVar(
    "areplicate_otel_request", default=None
)


def retried(reason: str, attempt: int, delay: float) -> None:
    """The current request is being retried (an event on its span, and the count)."""
    current = _REQUEST.get()
    if current is not None:
        current.retries += 1
        current.span.add_event(
            "areplicate.retry",
            {"areplicate.reason": reason, "areplicate.attempt": attempt, "areplicate.delay": delay},
        )


def throttled(pause: float) -> None:
    """The current request got a 429 and waits ``pause`` seconds to ask again."""
    current = _REQUEST.get()
    if current is not None:
        current.throttled += 1
        current.span.add_event("areplicate.throttled", {"areplicate.delay": pause})


def _error_status(span: Any, exc: BaseException) -> None:
    """Mark ``span`` as failed by ``exc``: the HTTP status when the error has one, else its class.

    ``error.type`` is the status as text (``"503"``) or the exception's class name, following
    OpenTelemetry's HTTP conventions.
    """
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        span.set_attribute("http.response.status_code", status)
    request_id = getattr(exc, "request_id", None)
    if isinstance(request_id, str):
        span.set_attribute("areplicate.request_id", request_id)
    span.set_attribute("error.type", str(status) if isinstance(status, int) else type(exc).__name__)
    # Only the class name: messages may quote an input or the API's detail text.
    span.set_status(_trace.Status(_trace.StatusCode.ERROR, type(exc).__name__))


async def traced_request(tr: Any, session: Any, method: str, path: str, sending: Awaitable[T]) -> T:
    """``sending`` (a not yet started ``Session.request``) inside a CLIENT span named by method and
    route template; the session calls this only when :func:`recording` gives a tracer.

    The session hands over its coroutine rather than being wrapped by a decorator: a wrapper that
    forwards ``*args, **kwargs`` builds a tuple and a dict on every request, traced or not. The
    span's status is set by hand (``set_status_on_exception=False``), so a cancelled or failed
    request never records the exception's message, which may quote an input. The context variable
    is reset in ``finally`` so a retry reported after the call cannot land on a finished span.
    """
    base = session.config.base_url
    route = route_template(session.url(path), base)
    attributes = {
        "http.request.method": method,
        "url.template": route,
        "server.address": urlsplit(base).hostname or "",
    }
    with tr.start_as_current_span(
        f"{method} {route}",
        kind=_trace.SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        record = _Request(span)
        token = _REQUEST.set(record)
        try:
            response: Any = await sending
        except BaseException as exc:
            _error_status(span, exc)
            raise
        else:
            span.set_attribute("http.response.status_code", response.status)
            if (request_id := _request_id(response.headers)) is not None:
                span.set_attribute("areplicate.request_id", request_id)
            return response  # type: ignore[no-any-return]
        finally:
            _REQUEST.reset(token)
            span.set_attribute("areplicate.retries", record.retries)
            span.set_attribute("areplicate.throttled", record.throttled)


# -- prediction spans ---------------------------------------------------------------------------


def _finished(span: Any, prediction: Prediction) -> None:
    """Record a prediction's end on its span: id, status, ``predict_time`` and time spent queued.

    Any status other than ``succeeded`` marks the span as an error, ``canceled`` included: the
    caller asked for an output and did not get one. Queue time is ``started_at - created_at`` on
    the API's clock, clamped at 0.
    """
    status: Any = prediction.status
    span.set_attribute("areplicate.prediction.id", prediction.id)
    span.set_attribute("areplicate.prediction.status", str(getattr(status, "value", status)))
    predict_time = prediction.metrics.get("predict_time") if prediction.metrics else None
    if isinstance(predict_time, (int, float)) and not isinstance(predict_time, bool):
        span.set_attribute("areplicate.prediction.predict_time", float(predict_time))
    if prediction.created_at is not None and prediction.started_at is not None:
        queued = (prediction.started_at - prediction.created_at).total_seconds()
        span.set_attribute("areplicate.prediction.queue_time", max(0.0, queued))
    if str(getattr(status, "value", status)) != "succeeded":
        span.set_status(_trace.Status(_trace.StatusCode.ERROR, f"prediction {status}"))


async def traced_prediction(tr: Any, ref: str, waiting: Awaitable[T]) -> T:
    """``waiting`` (one create-and-wait, not yet started) inside a span named
    ``areplicate.prediction``; called only when :func:`recording` gives a tracer.

    When the call raises, the prediction's id is still recorded if the error carries the
    prediction (a failed or timed-out one), so the span can be matched to the API's record.
    """
    with tr.start_as_current_span(
        "areplicate.prediction",
        attributes={"areplicate.model": str(ref)},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            prediction: Any = await waiting
        except BaseException as exc:
            _error_status(span, exc)
            found: Any = getattr(exc, "prediction", None)
            pid: Any = getattr(found, "id", None)
            if isinstance(pid, str) and pid:
                span.set_attribute("areplicate.prediction.id", pid)
            raise
        _finished(span, prediction)
        return prediction  # type: ignore[no-any-return]
