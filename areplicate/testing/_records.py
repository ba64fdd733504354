"""The fake's stored objects: predictions, uploaded files, and the request and webhook logs.

Each record builds its own JSON (docs/api-notes.md#the-prediction-object, #files); nothing here knows the
client's models or converter. A prediction caches its encoded body until it changes, so thousands
of polls cost one ``json.dumps`` per state change, not per request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import secrets
import time
from typing import Any

import attrs

from areplicate._core.status import is_terminal

__all__ = [
    "FileRecord",
    "PredictionRecord",
    "RequestRecord",
    "WebhookDelivery",
    "dumps",
    "new_id",
    "timestamp",
]


def dumps(value: Any) -> bytes:
    """Compact JSON bytes, as the API sends them.

    Non-ASCII text goes out as UTF-8 bytes rather than JSON escapes, so a client's decoding of
    real UTF-8 bodies is exercised.
    """
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"


def new_id() -> str:
    """A prediction or file id like the API's: 26 lowercase base32 characters.

    Random (``secrets``), not sequential: tests must not rely on ids sorting by creation.
    """
    bits = secrets.randbits(130)
    return "".join([_BASE32[(bits >> shift) & 31] for shift in range(0, 130, 5)])


def timestamp(unix: float) -> str:
    """``2024-10-04T18:07:35.262000Z`` for a Unix time.

    The same text as ``_core.times.format_timestamp``, through ``isoformat`` (C, several times
    faster than ``strftime``: this runs three times per prediction).
    """
    moment = dt.datetime.fromtimestamp(unix, dt.timezone.utc)
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


@attrs.define
class RequestRecord:
    """One request the fake answered, for assertions in tests.

    ``route`` is the prefix-independent route key (``"GET /v1/predictions/{id}"``, as in
    ``FakeReplicate.counts``); ``headers`` are the request headers as received, ``Authorization``
    included (so a test can check where the token went). ``fault`` names an injected fault
    (``"429"``, ``"5xx"``, ``"drop"``) and ``body`` holds the response body when the fake was made
    with ``record_bodies=True`` (None for streams). Gotcha: ``status`` of a dropped response is the
    status the client never fully received.
    """

    method: str
    path: str
    route: str
    headers: dict[str, str]
    time: float
    query: str = ""
    status: int = 0
    fault: str | None = None
    body: bytes | None = None
    content_type: str | None = None


@attrs.frozen
class WebhookDelivery:
    """One webhook POST attempt: which prediction, event, attempt number (1-based) and outcome.

    ``status`` is the receiver's HTTP status, or None when the connection failed (``error`` says
    how). Retries of the final webhook share ``webhook_id``.
    """

    prediction_id: str
    event: str
    url: str
    webhook_id: str
    attempt: int
    status: int | None
    error: str | None
    time: float


class WebhookState:
    """Per-prediction webhook bookkeeping: the throttle and the delivery chain (kept in order).

    ``last_task`` is the previous delivery: each new one waits for it, so a receiver never sees
    ``completed`` before an earlier ``output``, however the retries fall.
    """

    __slots__ = ("last_intermediate", "last_task", "pending_event", "timer")

    def __init__(self) -> None:
        """No intermediate event sent yet, no throttle timer, no delivery in flight."""
        self.last_intermediate = float("-inf")
        self.timer: asyncio.Task[None] | None = None
        self.pending_event = "output"
        self.last_task: asyncio.Task[None] | None = None


class PredictionRecord:
    """A prediction's state in the fake. Mutate only through FakeReplicate, then call touch().

    The encoded body is cached between touches: a change made without touch() is invisible to
    ``GET`` and to SSE readers.
    """

    __slots__ = (
        "_body",
        "_completed_at",
        "_created_at",
        "_listed",
        "_logs",
        "_started_at",
        "changed",
        "completed",
        "created",
        "data_removed",
        "deadline",
        "deadline_handle",
        "deliveries",
        "deployment",
        "done",
        "error",
        "events",
        "id",
        "input",
        "metrics",
        "model",
        "output",
        "seq",
        "started",
        "status",
        "streaming",
        "task",
        "ttl_handle",
        "urls",
        "version",
        "webhook",
        "webhook_filter",
        "webhook_filter_given",
        "webhook_state",
    )

    def __init__(
        self,
        *,
        id: str,
        seq: int,
        model: str,
        version: str,
        input: dict[str, Any],
        created: float,
        urls: dict[str, str],
        streaming: bool,
        deadline: float | None,
        deployment: str | None,
        webhook: str | None,
        webhook_filter: frozenset[str],
        webhook_filter_given: list[str] | None,
    ) -> None:
        self.id = id
        self.seq = seq
        self.model = model
        self.version = version
        self.input = input
        self.output: Any = None
        self._logs: list[str] = []
        self.error: str | None = None
        self.status = "starting"
        self.created = created
        self._created_at = timestamp(created)
        self.started: float | None = None
        self._started_at = ""
        self.completed: float | None = None
        self._completed_at = ""
        self.deadline = deadline
        self.deployment = deployment
        self.urls = urls
        self.streaming = streaming
        self.metrics: dict[str, float] = {}
        self.data_removed = False
        self.webhook = webhook
        self.webhook_filter = webhook_filter
        self.webhook_filter_given = webhook_filter_given
        self.webhook_state = WebhookState() if webhook else None
        self.events: list[tuple[int, str, str]] = []  # (seq, event, data) for SSE
        self.changed: asyncio.Event | None = None  # made when an SSE reader waits
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None
        self.deadline_handle: asyncio.Task[None] | None = None
        self.ttl_handle: asyncio.Task[None] | None = None
        self.deliveries: list[str] = []
        self._body: bytes | None = None
        self._listed: bytes | None = None

    @property
    def terminal(self) -> bool:
        """succeeded, failed, canceled or aborted.

        Once true, the lifecycle ignores further outputs, logs and finishes.
        """
        return is_terminal(self.status)

    @property
    def logs(self) -> str:
        """All log text so far.

        Appends are kept as a list and joined on read, so a chatty model costs linear time, not
        quadratic.
        """
        if len(self._logs) > 1:
            self._logs = ["".join(self._logs)]
        return self._logs[0] if self._logs else ""

    def append_log(self, text: str) -> None:
        """Add log text (a newline is expected at its end)."""
        self._logs.append(text)
        self.touch()

    def clear_logs(self) -> None:
        """Forget the logs (data removal)."""
        self._logs = []
        self.touch()

    def mark_started(self, unix: float) -> None:
        """The callable begins: ``processing`` from now on."""
        self.status = "processing"
        self.started = unix
        self._started_at = timestamp(unix)
        self.touch()

    def mark_completed(self, status: str, unix: float) -> None:
        """A terminal status, reached at ``unix`` (call touch() after setting the rest).

        It does not touch() itself, so output, error and metrics can be set first and readers never
        see a terminal status without them.
        """
        self.status = status
        self.completed = unix
        self._completed_at = timestamp(unix)

    def touch(self) -> None:
        """The state changed: drop the cached body and wake SSE readers."""
        self._body = self._listed = None
        if self.changed is not None:
            self.changed.set()
            self.changed = None

    async def wait_changed(self) -> None:
        """Sleep until the next touch().

        One event per change, made on demand: every waiter wakes at the same touch and must call
        again for the next.
        """
        if self.changed is None:
            self.changed = asyncio.Event()
        await self.changed.wait()

    def add_event(self, event: str, data: str) -> None:
        """Record an SSE event (streaming models only) and wake readers."""
        self.events.append((len(self.events), event, data))
        self.touch()

    def event_id(self, seq: int) -> str:
        """``<unix_ts>:<seq>``, the id form the real stream uses.

        ``seq`` counts from 0 over all of the prediction's events, so ``Last-Event-ID`` resumes exactly.
        """
        return f"{int(self.created)}:{seq}"

    def to_json(self) -> dict[str, Any]:
        """The API's prediction object (every OAS-required key, optional ones when known)."""
        body: dict[str, Any] = {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "input": self.input,
            "logs": self.logs,
            "output": self.output,
            "data_removed": self.data_removed,
            "error": self.error,
            "source": "api",
            "status": self.status,
            "created_at": self._created_at,
            "urls": self.urls,
            "metrics": self.metrics,
        }
        if self.started is not None:
            body["started_at"] = self._started_at
        if self.completed is not None:
            body["completed_at"] = self._completed_at
        if self.deadline is not None:
            body["deadline"] = timestamp(self.deadline)
        if self.deployment is not None:
            body["deployment"] = self.deployment
        if self.webhook is not None:
            body["webhook"] = self.webhook
            if self.webhook_filter_given is not None:
                body["webhook_events_filter"] = self.webhook_filter_given
        return body

    def body(self) -> bytes:
        """The encoded JSON, cached until the next touch()."""
        if self._body is None:
            self._body = dumps(self.to_json())
        return self._body

    def list_body(self) -> bytes:
        """The encoded JSON of a list item: as :meth:`body` without ``logs``, which the real
        ``GET /predictions`` leaves out of its items. Cached until the next touch()."""
        if self._listed is None:
            item = self.to_json()
            del item["logs"]
            self._listed = dumps(item)
        return self._listed

    def __repr__(self) -> str:
        """Id, model and status: never the input, which may be megabytes."""
        return f"<PredictionRecord {self.id} {self.model} {self.status}>"


class FileRecord:
    """An uploaded file (``POST /files``).

    ``created`` and ``expires`` (24 h later) are wall-clock times, not the fake's injectable clock.
    """

    __slots__ = (
        "content_type",
        "created",
        "data",
        "expires",
        "id",
        "md5",
        "metadata",
        "name",
        "seq",
        "sha256",
        "url",
    )

    def __init__(
        self,
        *,
        id: str,
        seq: int,
        name: str,
        content_type: str,
        data: bytes,
        metadata: dict[str, Any],
        url: str,
    ) -> None:
        """Hash the data once (``etag`` is its md5, as the API's is) and stamp creation and expiry."""
        self.id = id
        self.seq = seq
        self.name = name
        self.content_type = content_type
        self.data = data
        self.metadata = metadata
        self.url = url
        self.md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()  # the API's etag is the md5
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.created = time.time()
        self.expires = self.created + 24 * 3600

    def to_json(self) -> dict[str, Any]:
        """The API's file object (docs/api-notes.md#files)."""
        return {
            "id": self.id,
            "name": self.name,
            "content_type": self.content_type,
            "size": len(self.data),
            "etag": self.md5,
            "checksums": {"sha256": self.sha256, "md5": self.md5},
            "metadata": self.metadata,
            "created_at": timestamp(self.created),
            "expires_at": timestamp(self.expires),
            "urls": {"get": self.url},
        }
