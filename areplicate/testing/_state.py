"""The fake's state and the prediction lifecycle: everything but HTTP.

Predictions run as asyncio tasks on the serving loop: ``starting`` (for ``boot_delay`` seconds)
→ ``processing`` (the callable runs) → ``succeeded`` / ``failed`` / ``canceled`` / ``aborted``.
A cancel or a passed deadline finishes the record first and then cancels the task, so the
response already shows the final state and the callable sees ``CancelledError`` at its next await.
Every wait goes through the injected clock (``_clock``), so a test clock makes deadlines instant.
The routes (``_routes_*``) read and change this state; this module knows nothing of them.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import datetime as dt
import json
import math
import pathlib
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import attrs

from areplicate._core.files_sign import sign_download
from areplicate._core.refs import parse_ref
from areplicate.testing._clock import Clock, SystemClock, call_later
from areplicate.testing._limits import FakeRateLimits, FaultDice, Faults, TokenBucket
from areplicate.testing._model import _CURRENT, FakeModel, FileOut, Kind, read_path
from areplicate.testing._records import (
    FileRecord,
    PredictionRecord,
    RequestRecord,
    WebhookDelivery,
    new_id,
    timestamp,
)
from areplicate.testing._webhooks import DEFAULT_EVENTS, WebhookSender

__all__ = ["FakeDeployment", "FakeState"]

_UNSET: Any = object()
#: Seconds a cancel waits for the callable to unwind before answering anyway.
_CANCEL_GRACE = 1.0


@attrs.frozen
class FakeDeployment:
    """A deployment registered with :meth:`FakeReplicate.add_deployment`: a name pinned to a version.

    Its predictions carry ``deployment: "owner/name"`` and the pinned ``version`` id. Gotcha: a
    ``PATCH`` with a new version replaces this object in the fake (it is frozen), so read the
    current one back through ``GET /deployments/{owner}/{name}``.
    """

    owner: str
    name: str
    model: FakeModel
    created_at: dt.datetime

    @property
    def ref(self) -> str:
        """``owner/name`` of the deployment."""
        return f"{self.owner}/{self.name}"


@attrs.define
class _ModelEntry:
    """One model of the fake's catalogue: its API fields and its versions, oldest first.

    Mutable (``run_count``, ``versions``, the fields ``PATCH`` changes), unlike the frozen
    :class:`FakeModel` versions it holds.
    """

    owner: str
    name: str
    official: bool
    description: str | None
    created_at: dt.datetime
    versions: list[FakeModel] = attrs.Factory(list)
    run_count: int = 0
    visibility: str = "public"
    hardware: str | None = None
    github_url: str | None = None
    paper_url: str | None = None
    license_url: str | None = None
    cover_image_url: str | None = None
    weights_url: str | None = None
    readme: str | None = None
    #: Prediction ids shown by ``GET /models/{owner}/{name}/examples``, oldest first.
    examples: list[str] = attrs.Factory(list)

    @property
    def latest(self) -> FakeModel:
        """The newest version; IndexError for a model without any (use :attr:`latest_or_none`)."""
        return self.versions[-1]

    @property
    def latest_or_none(self) -> FakeModel | None:
        """The newest version, or None for a model created without one (as the API allows)."""
        return self.versions[-1] if self.versions else None

    def json(self) -> dict[str, Any]:
        """The API's model object.

        ``default_example`` is always null here: the fake's examples are listed by their own route.
        """
        latest = self.latest_or_none
        body: dict[str, Any] = {
            "url": f"https://replicate.com/{self.owner}/{self.name}",
            "owner": self.owner,
            "name": self.name,
            "description": self.description,
            "visibility": self.visibility,
            "github_url": self.github_url,
            "paper_url": self.paper_url,
            "license_url": self.license_url,
            "cover_image_url": self.cover_image_url,
            "run_count": self.run_count,
            "is_official": self.official,
            "default_example": None,
            "latest_version": latest.version_json() if latest is not None else None,
            "created_at": timestamp(self.created_at.timestamp()),
        }
        if self.weights_url is not None:
            body["weights_url"] = self.weights_url
        return body


@attrs.define
class _Training:
    """One training of the fake: nothing runs it; each ``GET`` advances it a step (starting,
    processing, then succeeded with a new version of the destination).
    """

    id: str
    base: FakeModel
    destination: str
    input: dict[str, Any]
    created_at: float
    webhook: str | None = None
    status: str = "starting"
    started_at: float | None = None
    completed_at: float | None = None
    output: dict[str, Any] | None = None

    def json(self, base_url: str) -> dict[str, Any]:
        url = f"{base_url}/trainings/{self.id}"
        metrics: dict[str, Any] = {}
        if self.completed_at is not None and self.started_at is not None:
            metrics = {"predict_time": round(self.completed_at - self.started_at, 6)}
        return {
            "id": self.id,
            "model": self.base.model,
            "version": self.base.version_id,
            "input": self.input,
            "output": self.output,
            "logs": "",
            "error": None,
            "status": self.status,
            "created_at": timestamp(self.created_at),
            "started_at": timestamp(self.started_at) if self.started_at else None,
            "completed_at": timestamp(self.completed_at) if self.completed_at else None,
            "urls": {"get": url, "cancel": f"{url}/cancel"},
            "metrics": metrics,
            "webhook": self.webhook,
        }


def _matches(entry: _ModelEntry, query: str) -> bool:
    """Whether every word of ``query`` appears (case-folded) in the model's name or description."""
    text = f"{entry.owner}/{entry.name} {entry.description or ''}".casefold()
    return all(word in text for word in query.casefold().split())


class _Sink:
    """Where ``log()`` writes for one prediction; safe to call from worker threads.

    A line logged from another thread is handed to the loop with ``call_soon_threadsafe``, so it
    appears in the prediction's logs a moment later, not at once.
    """

    __slots__ = ("_fake", "_loop", "_rec", "_thread")

    def __init__(self, fake: FakeState, rec: PredictionRecord) -> None:
        """Bind to the running loop and thread: the ones the prediction's callable was started on."""
        self._fake = fake
        self._rec = rec
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    def read_file(self, url: str) -> bytes | None:
        """The bytes of one of this fake's file URLs, for a model reading its file input (None: not ours)."""
        return self._fake._read_own_file(url)

    def write_log(self, text: str) -> None:
        """Append ``text`` to the prediction's logs, from the loop's thread or any other."""
        if threading.get_ident() == self._thread:
            self._fake._append_log(self._rec, text)
        else:
            self._loop.call_soon_threadsafe(self._fake._append_log, self._rec, text)


class FakeState:
    """The data and the lifecycle of one fake (:class:`FakeReplicate` adds the serving).

    Predictions run as tasks on the loop that serves the fake, so a model callable that blocks
    (``time.sleep``) stalls every request to the fake; use ``asyncio.sleep`` or a thread.
    """

    def __init__(
        self,
        token: str | None = None,
        rate_limits: FakeRateLimits | str | None = None,
        faults: Faults | None = None,
        data_ttl: float | None = None,
        public_base_url: str | None = None,
        stream_base_url: str | None = None,
        *,
        webhook_backoff: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4),
        webhook_timeout: float = 5.0,
        record_requests: bool = True,
        record_bodies: bool = False,
        max_upload_size: int = 100 * 1024 * 1024,
        clock: Clock | None = None,
    ) -> None:
        if token is not None and not token.strip():
            raise ValueError("token must be a non-empty string, or None to accept any token")
        if isinstance(rate_limits, str):
            rate_limits = FakeRateLimits.parse(rate_limits)
        elif rate_limits is not None and not isinstance(rate_limits, FakeRateLimits):
            raise ValueError(
                f"rate_limits must be None, 'real', a spec such as '120/10' or FakeRateLimits, "
                f"got {rate_limits!r}"
            )
        if data_ttl is not None and data_ttl < 0:
            raise ValueError(f"data_ttl must be >= 0 seconds or None, got {data_ttl}")
        self.token = token
        self.rate_limits: FakeRateLimits | None = rate_limits
        self._dice: FaultDice | None = None
        self.faults = faults  # the property builds the fault dice
        self.data_ttl = data_ttl
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.stream_base_url = stream_base_url.rstrip("/") if stream_base_url else None
        self.webhook_backoff = tuple(webhook_backoff)
        self.webhook_timeout = webhook_timeout
        self.record_requests = record_requests
        self.record_bodies = record_bodies
        self.max_upload_size = max_upload_size
        #: The signing secret webhooks are signed with (``GET /webhooks/default/secret``).
        self.webhook_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        #: The Files API signing secret download URLs are signed with (see ``file_download_url``).
        self.files_signing_secret = secrets.token_urlsafe(32)
        #: Requests per route key, e.g. ``counts["POST /v1/predictions"]``.
        self.counts: collections.Counter[str] = collections.Counter()
        #: Responses per HTTP status (e.g. ``status_counts[429]``).
        self.status_counts: collections.Counter[int] = collections.Counter()
        #: Every request answered, oldest first (see :class:`RequestRecord`).
        self.requests: list[RequestRecord] = []
        #: Every webhook attempt, oldest first.
        self.webhook_deliveries: list[WebhookDelivery] = []
        #: Unexpected exceptions inside the fake (answered as 500); a test should expect none.
        self.server_errors: list[BaseException] = []
        self._models: dict[str, _ModelEntry] = {}
        self._versions: dict[str, FakeModel] = {}
        self._deployments: dict[str, FakeDeployment] = {}
        self._preds: dict[str, PredictionRecord] = {}
        self._order: list[PredictionRecord] = []
        self._created: list[int] = []  # creation times in whole microseconds, ascending
        self._active: dict[asyncio.Task[None], PredictionRecord] = {}
        self._files: dict[str, FileRecord] = {}
        self._file_seq = 0
        self._deliveries: dict[str, FileOut] = {}
        self._webhooks = WebhookSender(self)
        # Per credential (an account): (creates, others), made on the token's first request.
        self._buckets: dict[str, tuple[TokenBucket, TokenBucket]] = {}
        self._served: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        #: Where every timestamp and timer of the fake takes its time from.
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._collections: dict[str, dict[str, Any]] = {}
        self._trainings: dict[str, _Training] = {}
        # Per deployment ref: its current release's number, hardware and instance counts.
        self._deployment_configs: dict[str, dict[str, Any]] = {}

    # -- registration ---------------------------------------------------------------------

    def add_model(
        self,
        name: str,
        predict: Callable[..., Any],
        input_schema: Mapping[str, Any] | None = None,
        *,
        output_schema: Mapping[str, Any] | None = None,
        components: Mapping[str, Any] | None = None,
        official: bool = True,
        boot_delay: float = 0.0,
        description: str | None = None,
        readme: str | None = None,
    ) -> FakeModel:
        """Register ``predict`` as a new version of model ``name`` (``owner/name``).

        ``predict`` is called with the input as keyword arguments: a function, coroutine function,
        sync generator or async generator (whose yields stream as outputs and give predictions a
        ``urls.stream``). Raising fails the prediction with ``str(exc)`` as ``error``; call
        :func:`log` to write logs; return :class:`FileOut` for files. ``input_schema`` is the Cog
        ``Input`` object schema (``components`` holds schemas it ``$ref``s, e.g. enums); without
        one it is read from the signature (a parameter without a default is required).
        ``official=False`` models are reachable only by version, like community models.
        ``boot_delay`` keeps predictions ``starting`` that many seconds. Gotcha: a sync function
        runs inline on the server's loop; make slow models ``async``. ``readme`` is the Markdown
        ``GET /models/{owner}/{name}/readme`` answers (404 without one).
        """
        ref = parse_ref(name)
        if ref.owner is None or ref.name is None or ref.version is not None:
            raise ValueError(f"model name must be 'owner/name', got {name!r}")
        now = dt.datetime.now(dt.timezone.utc)
        entry = self._models.get(ref.model or "")
        if entry is None:
            entry = _ModelEntry(ref.owner, ref.name, official, description, now, readme=readme)
            self._models[f"{ref.owner}/{ref.name}"] = entry
        else:
            entry.official = official
            entry.description = description if description is not None else entry.description
        if readme is not None:
            entry.readme = readme
        model = FakeModel(
            ref.owner,
            ref.name,
            predict,
            number=len(entry.versions),
            input_schema=input_schema,
            output_schema=output_schema,
            components=components,
            official=official,
            boot_delay=boot_delay,
            created_at=now,
        )
        entry.versions.append(model)
        self._versions[model.version_id] = model
        return model

    def add_deployment(
        self, name: str, model: str | FakeModel, *, version: str | None = None
    ) -> FakeDeployment:
        """Register deployment ``name`` (``owner/name``) running ``model``'s latest version.

        ``model`` is an ``owner/name`` already added (or the FakeModel itself); ``version`` pins
        another version id. Gotcha: the version is pinned now, so a later ``add_model`` of the
        same name does not change what the deployment runs.
        """
        ref = parse_ref(name)
        if ref.owner is None or ref.name is None or ref.version is not None:
            raise ValueError(f"deployment name must be 'owner/name', got {name!r}")
        if isinstance(model, FakeModel):
            target = model
        else:
            entry = self._models.get(model)
            if entry is None:
                raise KeyError(f"no model {model!r}; add it with add_model() first")
            if not entry.versions:
                raise KeyError(f"model {model!r} has no versions to deploy")
            target = entry.latest
        if version is not None:
            target = self._versions[version]
        deployment = FakeDeployment(ref.owner, ref.name, target, dt.datetime.now(dt.timezone.utc))
        self._deployments[deployment.ref] = deployment
        return deployment

    def add_collection(
        self,
        slug: str,
        *,
        name: str | None = None,
        description: str | None = None,
        models: Iterable[str] = (),
    ) -> None:
        """Register a collection ``slug`` holding the given ``owner/name`` models.

        Gotcha: the models are looked up when the collection is requested, so add them to the fake
        (before or after); names it does not know are left out of ``GET /collections/{slug}``.
        """
        self._collections[slug] = {
            "name": name or slug.replace("-", " ").capitalize(),
            "slug": slug,
            "description": description or "",
            "models": list(models),
        }

    def add_example(self, model: str, prediction_id: str) -> None:
        """Show prediction ``prediction_id`` in ``GET /models/{model}/examples`` (oldest first).

        KeyError if the model or the prediction is unknown. Gotcha: the example is the live
        prediction, so it shows its current state (run it to the end first).
        """
        if prediction_id not in self._preds:
            raise KeyError(f"no prediction {prediction_id!r}")
        entry = self._models.get(model)
        if entry is None:
            raise KeyError(f"no model {model!r}; add it with add_model() first")
        entry.examples.append(prediction_id)

    def file_download_url(self, file_id: str, *, expires_in: float = 3600.0) -> str:
        """A signed ``GET /files/{id}/download`` URL for an uploaded file, valid ``expires_in`` s.

        Signed with ``files_signing_secret`` for the fake's account (``fake-user``), as the API
        signs them. Gotcha: it holds the served address, so get it while the fake is serving.
        """
        if file_id not in self._files:
            raise KeyError(f"no file {file_id!r}")
        owner = "fake-user"
        expiry = int(self.clock.time() + expires_in)
        signature = sign_download(self.files_signing_secret, owner, file_id, expiry)
        query = urlencode({"owner": owner, "expiry": expiry, "signature": signature})
        return f"{self._public_base()}/files/{file_id}/download?{query}"

    def _read_own_file(self, url: str) -> bytes | None:
        """The bytes behind one of this fake's file URLs (``urls.get``, a download or delivery).

        Matches by path under the public or the served base, so a URL given through a proxy in front
        of the fake is found too. Any other URL is not ours: None.
        """
        path = urlsplit(url).path
        for base in {self._public_base(), self._served or ""}:
            prefix = urlsplit(base).path if base else None
            if prefix is None or not path.startswith(prefix + "/"):
                continue
            parts = path[len(prefix) + 1 :].split("/")
            if len(parts) >= 2 and parts[0] == "files" and parts[1] in self._files:
                return self._files[parts[1]].data
            if len(parts) == 3 and parts[0] == "delivery" and parts[1] in self._deliveries:
                return self._deliveries[parts[1]].data
        return None

    def _matching_models(self, query: str) -> list[_ModelEntry]:
        """The catalogue entries a search query finds, in catalogue order."""
        return [e for e in self._models.values() if _matches(e, query)]

    # -- inspection -----------------------------------------------------------------------

    @property
    def base_url(self) -> str | None:
        """The served base URL (``http://127.0.0.1:<port>/v1``), or None when not serving."""
        return self._served

    def prediction(self, id: str) -> dict[str, Any]:
        """The current JSON of prediction ``id``, as ``GET /predictions/{id}`` would answer.

        A fresh copy: changing it changes nothing in the fake. KeyError if there is no such id.
        """
        return json.loads(self._preds[id].body())  # type: ignore[no-any-return]

    @property
    def predictions(self) -> list[dict[str, Any]]:
        """The JSON of every prediction, oldest first (fresh copies)."""
        return [json.loads(rec.body()) for rec in self._order]

    @property
    def running(self) -> int:
        """How many prediction callables are still running (their tasks not yet finished)."""
        return len(self._active)

    @property
    def faults(self) -> Faults | None:
        """Install (or with None remove) the injected faults, with a fresh random source."""
        return self._dice.faults if self._dice is not None else None

    @faults.setter
    def faults(self, faults: Faults | None) -> None:
        if faults is not None and not isinstance(faults, Faults):
            raise TypeError(f"faults must be a Faults or None, got {type(faults).__name__}")
        self._dice = FaultDice(faults) if faults is not None else None

    async def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no prediction callable runs and no webhook delivery is pending.

        Raises TimeoutError after ``timeout`` seconds. Gotcha: a webhook retried with backoff
        keeps the fake busy until its last attempt (see ``webhook_backoff``).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while tasks := set(self._active) | self._webhooks.pending():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"{len(tasks)} prediction(s)/webhook(s) still busy after {timeout}s"
                )
            await asyncio.wait(tasks, timeout=remaining)

    def buckets_for(self, credential: str) -> tuple[TokenBucket, TokenBucket] | None:
        """The (creates, others) token buckets of one account's credential; None when unlimited."""
        rl = self.rate_limits
        if rl is None:
            return None
        buckets = self._buckets.get(credential)
        if buckets is None:
            buckets = self._buckets[credential] = (
                TokenBucket(rl.creates_per_minute, rl.creates_burst),
                TokenBucket(rl.others_per_minute, rl.others_burst),
            )
        return buckets

    async def _shutdown(self) -> None:
        """Stop serving: running predictions end ``canceled``, timers stop, webhooks are flushed.

        No completion webhook is sent for those cancels (``_closing``): the receiver is usually being
        torn down too.
        """
        self._closing = True
        for task, rec in list(self._active.items()):
            self._finish(rec, "canceled")
            task.cancel()
        if self._active:
            await asyncio.wait(set(self._active), timeout=2.0)
        for rec in self._order:
            for handle in (rec.deadline_handle, rec.ttl_handle):
                if handle is not None:
                    handle.cancel()
        await self._webhooks.close()

    # -- the prediction lifecycle ---------------------------------------------------------

    def _public_base(self) -> str:
        """The base URL the fake's JSON links name: ``public_base_url`` when set, else the served one."""
        return self.public_base_url or self._served or ""

    def _start_prediction(
        self,
        model: FakeModel,
        value: dict[str, Any],
        *,
        version_label: str,
        deployment: str | None,
        webhook: str | None,
        webhook_filter: list[str] | None,
        lifetime: float | None,
    ) -> PredictionRecord:
        """Record a new prediction and start its callable as a task; return the record.

        ``created_at`` never goes backwards in list order, even on a clock that does (microsecond
        timestamps are bumped to the last one), because clients page by it. A ``lifetime`` arms the
        Cancel-After timer on the fake's clock.
        """
        loop = asyncio.get_running_loop()
        micros = int(self.clock.time() * 1e6)  # what created_at shows, exactly
        if self._created and micros < self._created[-1]:
            micros = self._created[-1]  # keep created_at ordered with list order
        now = micros / 1e6
        pid = new_id()
        base = self._public_base()
        urls = {
            "cancel": f"{base}/predictions/{pid}/cancel",
            "get": f"{base}/predictions/{pid}",
            "web": f"https://replicate.com/p/{pid}",
        }
        if model.kind.streams:
            urls["stream"] = f"{self.stream_base_url or base}/streams/{pid}"
        rec = PredictionRecord(
            id=pid,
            seq=len(self._order),
            model=model.model,
            version=version_label,
            input=value,
            created=now,
            urls=urls,
            streaming=model.kind.streams,
            deadline=now + lifetime if lifetime is not None else None,
            deployment=deployment,
            webhook=webhook,
            webhook_filter=frozenset(webhook_filter)
            if webhook_filter is not None
            else DEFAULT_EVENTS,
            webhook_filter_given=webhook_filter,
        )
        self._preds[pid] = rec
        self._order.append(rec)
        self._created.append(micros)
        self._models[model.model].run_count += 1
        task = loop.create_task(self._run(rec, model), name=f"fake-prediction-{pid}")
        rec.task = task
        self._active[task] = rec
        task.add_done_callback(self._task_done)
        if lifetime is not None:
            rec.deadline_handle = call_later(self.clock, lifetime, lambda: self._expire(rec))
        return rec

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """Forget a finished callable's task (for :attr:`running` and :meth:`wait_idle`)."""
        self._active.pop(task, None)

    async def _run(self, rec: PredictionRecord, model: FakeModel) -> None:
        """Run the model callable for one prediction and finish it with what it returned or raised.

        Generators (sync or async) stream their items as outputs, and the prediction succeeds with the
        list of them; any exception fails it with its message; being cancelled cancels it. A prediction
        cancelled during its boot delay never starts.
        """
        token = _CURRENT.set(_Sink(self, rec))
        try:
            if model.boot_delay:
                await self.clock.sleep(model.boot_delay)
            if rec.terminal:
                return
            rec.mark_started(self.clock.time())
            self._webhooks.notify(rec, "start")
            result = model.call(rec.input)
            if model.kind is Kind.ASYNC_GENERATOR or hasattr(result, "__anext__"):
                try:
                    async for item in result:
                        self._emit_output(rec, item)
                finally:
                    await result.aclose()
                self._finish(rec, "succeeded", output=rec.output if rec.output is not None else [])
            elif model.kind is Kind.GENERATOR or isinstance(result, Iterator):
                try:
                    for item in result:
                        self._emit_output(rec, item)
                        await asyncio.sleep(0)
                finally:
                    result.close()
                self._finish(rec, "succeeded", output=rec.output if rec.output is not None else [])
            else:
                if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                    result = await result
                self._finish(rec, "succeeded", output=self._materialize(rec, result))
        except asyncio.CancelledError:
            self._finish(rec, "canceled")
            raise
        except Exception as exc:  # noqa: BLE001 - a model function's error fails the prediction, as on Replicate
            self._finish(rec, "failed", error=str(exc) or type(exc).__name__)
        finally:
            _CURRENT.reset(token)

    def _materialize(self, rec: PredictionRecord, value: Any) -> Any:
        """Output as JSON values; FileOut (and pathlib.Path) become delivery URLs.

        Delivery URLs name the served address, not ``public_base_url``: the files are served by the
        fake itself. NaN, infinities and non-string dict keys raise TypeError, which fails the
        prediction: they are not JSON.
        """
        if value is None or isinstance(value, (str, bool, int)):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise TypeError(
                    f"model output {value} is not valid JSON (NaN and infinity are not)"
                )
            return value
        if isinstance(value, (list, tuple)):
            return [self._materialize(rec, v) for v in value]
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise TypeError(f"output dict keys must be strings, got {key!r}")
                out[key] = self._materialize(rec, item)
            return out
        if isinstance(value, pathlib.Path):
            value = read_path(value)
        if isinstance(value, FileOut):
            token = new_id()
            self._deliveries[token] = value
            rec.deliveries.append(token)
            return f"{self._served}/delivery/{token}/{quote(value.filename)}"
        raise TypeError(
            f"model output of type {type(value).__name__} is not JSON serializable "
            "(return str, numbers, lists, dicts or FileOut)"
        )

    def _emit_output(self, rec: PredictionRecord, item: Any) -> None:
        """Append one streamed item to the output (an SSE ``output`` event for a streaming model).

        Ignored once the prediction is terminal: a generator that outlives its cancel cannot change it.
        """
        if rec.terminal:
            return
        value = self._materialize(rec, item)
        if rec.output is None:
            rec.output = []
        rec.output.append(value)
        if rec.streaming:
            rec.add_event("output", value if isinstance(value, str) else json.dumps(value))
        else:
            rec.touch()
        self._webhooks.notify(rec, "output")

    def _append_log(self, rec: PredictionRecord, text: str) -> None:
        """Append a log line (newline-terminated) and its SSE ``logs`` event; ignored once terminal."""
        if rec.terminal:
            return
        rec.append_log(text if text.endswith("\n") else text + "\n")
        if rec.streaming:
            rec.add_event("logs", text.removesuffix("\n"))
        self._webhooks.notify(rec, "logs")

    def _finish(
        self, rec: PredictionRecord, status: str, *, output: Any = _UNSET, error: str | None = None
    ) -> None:
        """Move the prediction to a terminal ``status`` (once: later calls are ignored).

        Sets the metrics as the API does: ``predict_time`` only for a prediction that started. Ends the
        SSE stream, wakes waiters, sends the ``completed`` webhook and, with ``data_ttl``, arms the
        removal of its data.
        """
        if rec.terminal:
            return
        now = self.clock.time()
        rec.mark_completed(status, now)
        if output is not _UNSET:
            rec.output = output
        rec.error = error
        if rec.started is not None:
            rec.metrics = {
                "predict_time": round(now - rec.started, 6),
                "total_time": round(now - rec.created, 6),
            }
        else:
            rec.metrics = {"total_time": round(now - rec.created, 6)}
        if rec.deadline_handle is not None:
            rec.deadline_handle.cancel()
            rec.deadline_handle = None
        if rec.streaming:
            if status == "failed":
                rec.add_event("error", json.dumps({"detail": error}))
            reason = {"succeeded": {}, "failed": {"reason": "error"}}.get(
                status, {"reason": "canceled"}
            )
            rec.add_event("done", json.dumps(reason))
        rec.touch()
        if not rec.done.done():
            rec.done.set_result(None)
        if not self._closing:
            self._webhooks.notify(rec, "completed")
            if self.data_ttl is not None and self._loop is not None:
                rec.ttl_handle = call_later(
                    self.clock, self.data_ttl, lambda: self._remove_data(rec)
                )

    def _expire(self, rec: PredictionRecord) -> None:
        """The deadline (Cancel-After) passed.

        A prediction that had started ends ``canceled``; one still booting ends ``aborted``, as the
        API reports them.
        """
        rec.deadline_handle = None
        self._finish(rec, "canceled" if rec.started is not None else "aborted")
        if rec.task is not None:
            rec.task.cancel()

    async def _cancel(self, rec: PredictionRecord) -> None:
        """User cancel: final state now, then stop the callable (waiting briefly for it).

        The prediction is already terminal when this returns, even if its callable ignores the
        cancellation for a while.
        """
        if rec.terminal:
            return
        self._finish(rec, "canceled")
        task = rec.task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=_CANCEL_GRACE)

    def _remove_data(self, rec: PredictionRecord) -> None:
        """What ``data_ttl`` does after completion: input, output, logs and deliveries dropped.

        The prediction itself stays listed with ``data_removed: true``, as the API keeps its record.
        """
        rec.ttl_handle = None
        rec.input = {}
        rec.output = None
        rec.clear_logs()
        rec.events = []
        rec.data_removed = True
        for token in rec.deliveries:
            self._deliveries.pop(token, None)
        rec.deliveries = []
        rec.touch()

    def _new_file(
        self, name: str, content_type: str, data: bytes, metadata: dict[str, Any]
    ) -> FileRecord:
        """Store an upload as a new file record; its ``urls.get`` names the public base."""
        fid = new_id()
        self._file_seq += 1
        rec = FileRecord(
            id=fid,
            seq=self._file_seq,
            name=name,
            content_type=content_type,
            data=data,
            metadata=metadata,
            url=f"{self._public_base()}/files/{fid}",
        )
        self._files[fid] = rec
        return rec
