"""Predictions: create, get, list, cancel, wait, stream, run.

See docs/api-notes.md (creating, waiting, errors, listing, streaming).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Mapping,
    Sequence,
)
from typing import Any
from urllib.parse import quote

import anyio
import attrs

from areplicate import _otel
from areplicate._convert import structure, structure_created
from areplicate._core.ids import object_id
from areplicate._core.refs import ModelRef, parse_ref
from areplicate._core.sse import SSEDecoder
from areplicate._core.status import Status
from areplicate._core.times import format_timestamp
from areplicate._errors import APIConnectionError, NotFoundError, ReplicateError
from areplicate._inputs import plain_input
from areplicate._ledger import matches
from areplicate._models import (
    Page,
    Prediction,
    PredictionFailedError,
    StreamEvent,
    WaitTimeoutError,
)
from areplicate._options import Lifetime, RunOptions
from areplicate._services._orphans import Reaper
from areplicate._services._paging import paginate
from areplicate._services._sweep import Sweeper
from areplicate._services._waiting import wait_until_done
from areplicate._session import Session
from areplicate._webhooks import Receiver

__all__ = ["Predictions", "mark_unknown_target", "unknown_target"]


def _route(ref: ModelRef) -> tuple[str, str | None, str]:
    """A reference's create path, the version its body names (None: none), and what a 404 names."""
    if ref.version is None:
        return f"models/{ref.owner}/{ref.name}/predictions", None, f"model {ref}"
    return (
        "predictions",
        ref.version,
        (f"model {ref}" if ref.model is not None else f"version {ref}"),
    )


@functools.lru_cache(maxsize=256)  # a fan-out creates on the same reference once per item
def _plan(ref: str) -> tuple[ModelRef, str, str | None, str, str | None]:
    """What a create of ``ref`` needs, worked out once per reference string: the parsed reference,
    its :func:`_route` (path, body version, 404 target) and its ``owner/name`` (None for a bare
    version id). Only successes are cached: a malformed reference raises at every call."""
    parsed = parse_ref(ref)
    path, version, target = _route(parsed)
    return parsed, path, version, target, parsed.model


logger = logging.getLogger("areplicate")

# Extra read time on top of a ``Prefer: wait`` window before the client gives up on the response.
_WAIT_GRACE = 10.0
# How long a shielded best-effort cancel may take when the caller has given up.
_CANCEL_TIMEOUT = 10.0
# Stream connections in a row that may bring no new event before the stream gives up.
_STREAM_RECONNECTS = 5

PredictionLike = Prediction | str
InputHook = Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]
Validator = Callable[[str, Mapping[str, Any]], Awaitable[object]]


def mark_unknown_target(error: NotFoundError, target: str) -> None:
    """Note that ``error`` is a create's own 404 (or its schema look-up's): ``target`` (``"model
    acme/hello"``), what it creates on, does not exist. Its message names it from then on."""
    error.target = target


def unknown_target(error: BaseException) -> bool:
    """Whether ``error`` is the 404 a create got because its model, version or deployment does not
    exist (or is not visible to this token): every create of that ref gets the same answer. A 404
    on an existing prediction's poll is not one (that prediction is gone, the model is not)."""
    return isinstance(error, NotFoundError) and error.target is not None


def _aware(when: dt.datetime) -> dt.datetime:
    """``when`` as an aware datetime: a naive one is taken as UTC (as the API's timestamps are).

    Only for comparing against ``created_at``; what the API is sent keeps the caller's value.
    """
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)


class Predictions:
    """Everything you do with one prediction. Reached as ``client.predictions``.

    Creates here are never retried after an ambiguous failure, and a create abandoned by its
    caller is reaped (found and cancelled) in the background when it is provably this client's:
    see :class:`Reaper`. Waits share the client's request budget with everything else.
    """

    def __init__(
        self,
        session: Session,
        *,
        validator: Validator | None = None,
        input_hook: InputHook | None = None,
        receiver: Receiver | None = None,
        listen: Callable[[], None] | None = None,
    ) -> None:
        """Wire the service to a session and the client's optional hooks.

        ``validator`` checks an input against the model schema (``validate=True``), ``input_hook``
        uploads or encodes files in an input, ``receiver`` and ``listen`` make waits end at a webhook
        delivery instead of a poll. All are None for a bare service.
        """
        self._session = session
        # Webhook-driven waits: creates carry the receiver's URL, waits end at its delivery.
        self._receiver = receiver
        self._listen = listen
        self._validator = validator
        self._input_hook = input_hook
        self._last_headers: tuple[RunOptions, Mapping[str, str], float | None] | None = None
        self._reaper = Reaper(
            session.ledger,
            lister=self._listed_since,
            canceller=self._cancel_quietly,
            spawn=session.spawn,
            offset=session.clock_offset,
        )

    def __repr__(self) -> str:
        """The base URL only; the session and its token stay out."""
        return f"<Predictions {self._session.config.base_url}>"

    # -- create ------------------------------------------------------------------------------

    async def create(
        self,
        ref: str,
        input: Mapping[str, Any],
        *,
        hold: bool | int = False,
        lifetime: Lifetime | None = None,
        webhook: str | None = None,
        webhook_events_filter: Sequence[str] | None = None,
        validate: bool = False,
        wait: bool | int | None = None,
    ) -> Prediction:
        """Start a prediction and return it as the API first describes it.

        ``ref`` is ``owner/name`` (official models), ``owner/name:<version>`` or a bare version id.
        ``hold=True`` (or 1–60 s) asks the API to hold the response open until the prediction ends
        or the window passes (``Prefer: wait``): the result may still be running, so use
        :meth:`wait`, :meth:`create_and_wait` or :meth:`run` when you need it finished.
        ``lifetime`` (``"5m"``, seconds, a timedelta; at least 5 s) is a deadline after which the
        API cancels it. ``validate=True`` checks the input against the model's schema first and
        raises InputValidationError without sending anything.

        A create is never retried after an ambiguous failure (a 500 or a timeout after sending): it
        raises instead, so nothing is billed twice. ``wait=`` is the first wave's spelling of
        ``hold=`` (same meaning), still accepted; give one of the two.
        """
        if wait is not None:
            if hold is not False:
                raise TypeError("give hold= or its older spelling wait=, not both")
            hold = wait
        options = RunOptions(
            hold=hold,
            lifetime=lifetime,
            webhook=webhook,
            webhook_events_filter=webhook_events_filter,
            validate=validate,
        )
        return await self._create(ref, input, options)

    def _create(
        self, ref: str, input: Mapping[str, Any], options: RunOptions
    ) -> Coroutine[Any, Any, Prediction]:
        """The create of ``ref`` on its route: a model's own, or ``predictions`` with a version.

        A plain function handing back :meth:`_create_at`'s coroutine (one frame less on every
        create of a fan-out). Parsing ``ref`` first means a malformed one raises
        InvalidReferenceError at the call, before any request.
        """
        if type(ref) is not str:
            parse_ref(ref)  # raises InvalidReferenceError, naming the accepted forms
        parsed, path, version, target, model = _plan(ref)
        return self._create_at(
            path,
            {} if version is None else {"version": version},
            input,
            options,
            target=target,
            ref_for_validation=str(parsed) if options.validate else None,
            model=model,
            version=parsed.version,
        )

    async def _create_at(
        self,
        path: str,
        body: dict[str, Any],
        input: Mapping[str, Any],
        options: RunOptions,
        *,
        target: str,
        ref_for_validation: str | None = None,
        model: str | None = None,
        version: str | None = None,
        deployment: str | None = None,
    ) -> Prediction:
        """POST a create to ``path`` (any of the three create routes). ``options`` were checked when
        built; ``target`` names what the create runs on, for a 404's message; ``model``,
        ``version`` and ``deployment`` are what the orphan clean-up matches its prediction by."""
        if type(input) is not dict and not isinstance(input, Mapping):  # dict: no ABC check
            raise TypeError(
                f"input must be a mapping of input names to values, not {type(input).__name__}"
            )
        if options.webhook is None and self._receiver is not None:
            # The client's Receiver gets the deliveries that end this prediction's waits.
            options = attrs.evolve(
                options, webhook=self._receiver.url, webhook_events_filter=self._receiver.events
            )
        if ref_for_validation is not None and self._validator is not None:
            try:
                await self._validator(ref_for_validation, input)
            except NotFoundError as exc:  # the model or version to check against is unknown
                mark_unknown_target(exc, target)
                raise
        payload = dict(body)
        if self._input_hook is None or plain_input(input):  # no file to upload: no coroutine
            payload["input"] = dict(input)
        else:
            payload["input"] = await self._input_hook(input)
        if options.webhook is not None:
            payload["webhook"] = options.webhook
        if options.webhook_events_filter is not None:
            payload["webhook_events_filter"] = list(options.webhook_events_filter)
        headers, read_timeout = self._create_headers(options)
        intent = self._reaper.intent(payload["input"], model, version, deployment)
        ledger = self._session.ledger
        # Closing the client under this create gives it up, as a cancelled caller would.
        undo = self._session.on_close(self._reaper.abandon, intent)
        try:
            response = await self._session.request(
                "POST",
                path,
                json_body=payload,
                headers=headers,
                create=True,
                read_timeout=read_timeout,
                sent=intent.sent,
            )
        except asyncio.CancelledError:
            undo()
            # The caller gave up after the create reached the wire: a prediction we will never
            # hear of may be running. Find and cancel it, in the background, if provably ours.
            # (After a dropped connection we do not: the caller is told to look it up.)
            self._reaper.abandon(intent)
            raise
        except BaseException as exc:
            undo()
            ledger.finish(intent, None)
            if isinstance(exc, NotFoundError):
                mark_unknown_target(exc, target)
            raise
        undo()
        try:
            prediction = structure_created(response, Prediction, what="create response")
        except BaseException:
            ledger.finish(intent, None)
            raise
        ledger.finish(intent, prediction.id)
        if intent.abandoned_at is not None:
            # The client closed while the answer was on its way: the reaper, already looking,
            # now knows this id as ours-and-answered and would pass it by, so cancel it here.
            ledger.settle([intent])
            if not prediction.is_terminal and not self._session.closed:
                self._session.spawn(self._cancel_quietly(prediction.id))
        return prediction

    def _create_headers(self, options: RunOptions) -> tuple[Mapping[str, str], float | None]:
        """A create's headers (``Prefer``, ``Cancel-After``) and read timeout for ``options``.

        Kept for the last options seen: a fan-out passes the same ones with every item. The
        headers are shared, so nothing downstream may change them (the session copies them).
        """
        last = self._last_headers
        if last is not None and last[0] is options:
            return last[1], last[2]
        headers: dict[str, str] = {}
        read_timeout = None
        seconds = options.hold_seconds
        if seconds is not None:
            headers["Prefer"] = f"wait={seconds}"
            read_timeout = max(self._session.config.request_timeout, seconds + _WAIT_GRACE)
        deadline = options.cancel_after
        if deadline is not None:
            headers["Cancel-After"] = deadline
        self._last_headers = (options, headers, read_timeout)
        return headers, read_timeout

    async def _listed_since(self, since: dt.datetime) -> list[Prediction]:
        """Every prediction created since ``since``, for the reaper's search for an abandoned create.

        Unpaced, like the cancels that follow it: a create cut off during a long 429 pause would
        otherwise be looked up only after the pause, long after the reaper stopped waiting.
        """
        params = {"created_after": format_timestamp(since)}
        found: list[Prediction] = []
        async with contextlib.aclosing(self._scan(params, _aware(since), paced=False)) as pages:
            async for page in pages:
                found.extend(page.results)
        return found

    async def find(
        self,
        input: Mapping[str, Any],
        *,
        created_after: dt.datetime,
        model: str | None = None,
        version: str | None = None,
    ) -> list[Prediction]:
        """Predictions created after ``created_after`` with exactly this input (and model/version).

        Used to recover a prediction whose create response never arrived, instead of creating it
        again. Lists newest first and stops at the first older page.
        """
        wanted = dict(input)
        return [
            p
            async for p in self.list(created_after=created_after)
            if matches(p, model=model, version=version, deployment=None, input=wanted)
        ]

    # -- read ------------------------------------------------------------------------------------

    async def get(self, prediction: PredictionLike) -> Prediction:
        """The prediction's current state. NotFoundError if there is no such prediction.

        One GET, retried like any read; for a prediction some other token made, the API also answers
        404 (not 403).
        """
        pid = object_id(prediction, "prediction")
        response = await self._session.request("GET", f"predictions/{quote(pid, safe='')}")
        return structure(response.json(), Prediction, what=f"prediction {pid}")

    async def cancel(self, prediction: PredictionLike) -> Prediction:
        """Ask the API to cancel a prediction; returns its state after the request.

        Cancelling one that already ended is harmless and returns it unchanged.
        """
        pid = object_id(prediction, "prediction")
        response = await self._session.request("POST", f"predictions/{quote(pid, safe='')}/cancel")
        return structure(response.json(), Prediction, what=f"prediction {pid}")

    async def pages(
        self,
        *,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
        source: str | None = None,
    ) -> AsyncIterator[Page[Prediction]]:
        """Whole pages of your predictions, newest first (the API sends 100 a page).

        ``next`` links are followed on this client's own base URL, never on the host they name.
        With ``created_after`` the scan stops at the first page that reaches older predictions
        (leaving those out), whatever the API's links say; a naive datetime is taken as UTC.
        ``source="web"`` keeps only predictions made on the website (the API supports no other
        value yet, and then lists only the last 14 days); None lists both web and API ones.
        """
        params: dict[str, str] = {}
        if source is not None:
            if not isinstance(source, str) or not source:
                raise ValueError(f"source is a string such as 'web', got {source!r}")
            params["source"] = source
        cutoff = None
        if created_after is not None:
            params["created_after"] = format_timestamp(created_after)
            cutoff = _aware(created_after)
        if created_before is not None:
            params["created_before"] = format_timestamp(created_before)
        async with contextlib.aclosing(self._scan(params, cutoff)) as pages:
            async for page in pages:
                yield page

    async def _scan(
        self, params: dict[str, str], cutoff: dt.datetime | None, *, paced: bool = True
    ) -> AsyncGenerator[Page[Prediction], None]:
        """:meth:`pages` once its filters are checked: the listing, cut at ``cutoff``."""
        async with contextlib.aclosing(
            paginate(
                self._session,
                "predictions",
                Prediction,
                what="prediction page",
                params=params,
                paced=paced,
            )
        ) as pages:
            async for page in pages:
                if cutoff is None:
                    yield page
                    continue
                # Newest first: once a page reaches older predictions, no later page has newer.
                newer = [p for p in page.results if p.created_at is None or p.created_at >= cutoff]
                if len(newer) == len(page.results):
                    yield page
                    continue
                yield attrs.evolve(page, results=newer, next=None)
                return

    async def list(
        self,
        *,
        created_after: dt.datetime | None = None,
        created_before: dt.datetime | None = None,
        source: str | None = None,
    ) -> AsyncIterator[Prediction]:
        """Every prediction, newest first, following cursor pages as you iterate (filters as in
        :meth:`pages`)."""
        pages = self.pages(
            created_after=created_after, created_before=created_before, source=source
        )
        async for page in pages:
            for prediction in page.results:
                yield prediction

    # -- wait -------------------------------------------------------------------------------------

    async def wait(
        self,
        prediction: PredictionLike,
        *,
        timeout: float | None = None,
        cancel_on_exit: bool = True,
    ) -> Prediction:
        """Poll until the prediction ends (succeeded, failed, canceled or aborted); return it.

        Failure is a result here, not an exception (see :meth:`run` for that). Polls start quick and
        thin out (``Client(poll=PollSchedule(...))``) and share the client's request budget.

        A poll that fails in a way the next may not (a 5xx, an unreadable 2xx body, a broken
        connection, a 429) does not end the wait: it backs off and polls again, as long as it
        takes. A definitive answer (401, 403, 404, ...) is raised, and the prediction is left
        running. On ``timeout`` it raises WaitTimeoutError with the last state read; then, or when
        the awaiting task is cancelled, the remote prediction is cancelled too, unless
        ``cancel_on_exit=False``. Nothing else cancels it: pass ``timeout`` to bound a wait.
        """
        return await self._wait(prediction, timeout=timeout, cancel_on_exit=cancel_on_exit)

    def _wait(
        self,
        prediction: PredictionLike,
        *,
        timeout: float | None,
        cancel_on_exit: bool,
        elapsed: float = 0.0,
    ) -> Coroutine[Any, Any, Prediction]:
        """:meth:`wait` with ``elapsed``: time already spent on this call (the create, for run).

        A webhook receiver is used only when the prediction delivers to its URL; any other prediction
        (one made before the client had a receiver, or by someone else) is polled as usual. Not a
        coroutine of its own: it hands back the wait loop's, so a wait holds one frame fewer.
        """
        current = prediction if isinstance(prediction, Prediction) else None
        receiver = self._receiver
        if receiver is not None and (current is None or current.webhook != receiver.url):
            receiver = None  # a prediction that does not deliver to us: poll it as usual
        if receiver is not None and self._listen is not None:
            self._listen()
        return wait_until_done(
            self,
            Prediction,
            object_id(prediction, "prediction"),
            current,
            schedule=self._session.config.poll if receiver is None else receiver.fallback,
            timeout=timeout,
            cancel_on_exit=cancel_on_exit,
            elapsed=elapsed,
            delivered=receiver,
            # Without webhooks, many waits at once are checked by list pages (_sweep.py).
            sweeper=self._sweeper() if receiver is None else None,
            on_close=self._session.on_close,
        )

    def _sweeper(self) -> Sweeper:
        """The client's one sweeper (shared by its views), made on the first wait."""
        sweeper: Sweeper | None = self._session.shared.get("sweeper")
        if sweeper is None:
            limits = self._session.config.rate_limits
            sweeper = self._session.shared["sweeper"] = Sweeper(
                lambda after, before: self.pages(created_after=after, created_before=before),
                schedule=self._session.config.poll,
                per_second=None if limits is None else limits.requests_per_minute / 60.0,
            )
        return sweeper

    async def _cancel_shielded(self, pid: str) -> None:
        """Best-effort remote cancel that outlives the caller's cancellation.

        The cancel runs as a session task, so even if this await is cut short, close() still waits
        for it. It never raises: a cancel that fails is logged.
        """
        task = self._session.spawn(self._cancel_quietly(pid))
        with anyio.CancelScope(shield=True):
            await asyncio.shield(task)

    async def _cancel_quietly(self, pid: str) -> None:
        """Send one cancel, bounded by ``_CANCEL_TIMEOUT``, logging (not raising) a failure.

        ``paced=False``: a clean-up cancel must not queue behind the request budget it may be
        relieving, or a cancelled fan-out would leave its predictions running for minutes.
        """
        try:
            with anyio.fail_after(_CANCEL_TIMEOUT):
                await self._session.request(
                    "POST", f"predictions/{quote(pid, safe='')}/cancel", paced=False
                )
        except (
            ReplicateError,
            TimeoutError,
            RuntimeError,
        ) as exc:  # RuntimeError: closed meanwhile
            logger.warning("could not cancel prediction %s: %r", pid, exc)

    # -- create and wait -------------------------------------------------------------------------

    async def run(
        self,
        ref: str,
        input: Mapping[str, Any],
        *,
        hold: bool | int = True,
        timeout: float | None = None,
        lifetime: Lifetime | None = None,
        validate: bool = False,
    ) -> Any:
        """Create, wait, and return the output; a prediction that did not succeed raises.

        That is ``(await create_and_wait(...)).raise_for_status().output``: PredictionFailedError
        carries the model's error and the prediction id (``.prediction`` is attached);
        PredictionCanceledError for canceled or aborted ones. ``timeout`` covers the whole call;
        when it runs out (or the task is cancelled) the remote prediction is cancelled.
        """
        options = RunOptions(hold=hold, timeout=timeout, lifetime=lifetime, validate=validate)
        prediction = await self._create_and_wait(ref, input, options)
        return prediction.raise_for_status().output

    async def create_and_wait(
        self,
        ref: str,
        input: Mapping[str, Any],
        *,
        hold: bool | int = True,
        timeout: float | None = None,
        lifetime: Lifetime | None = None,
        validate: bool = False,
        cancel_on_exit: bool = True,
        webhook: str | None = None,
        webhook_events_filter: Sequence[str] | None = None,
    ) -> Prediction:
        """Create and wait; return the terminal Prediction whatever its status (failure included).

        A failed model is a result here, not an exception: check ``.status``, or call
        ``.raise_for_status()`` on it (which is what :meth:`run` does). ``timeout`` is the whole
        call's deadline, the create included: when it runs out WaitTimeoutError is raised and the
        prediction is cancelled (unless ``cancel_on_exit=False``). The fan-out helpers run this for
        each input.
        """
        options = RunOptions(
            hold=hold,
            timeout=timeout,
            lifetime=lifetime,
            validate=validate,
            cancel_on_exit=cancel_on_exit,
            webhook=webhook,
            webhook_events_filter=webhook_events_filter,
        )
        return await self._create_and_wait(ref, input, options)

    def _create_and_wait(
        self, ref: str, input: Mapping[str, Any], options: RunOptions
    ) -> Awaitable[Prediction]:
        """:meth:`_create_then_wait`, in a prediction span when tracing records one."""
        waiting = self._create_then_wait(ref, input, options)
        tracer = _otel.recording()
        if tracer is None:
            return waiting
        return _otel.traced_prediction(tracer, ref, waiting)

    async def _create_then_wait(
        self, ref: str, input: Mapping[str, Any], options: RunOptions
    ) -> Prediction:
        """Create, then wait, under one deadline (``options.timeout``) for both.

        The ``Prefer: wait`` hold is shortened to fit the deadline. Timing out during the create raises
        WaitTimeoutError carrying a placeholder prediction with an empty id: no id is known yet (the
        reaper cancels the prediction if it was made).
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        timeout = options.timeout
        if timeout is not None and options.hold is not False:
            # Hold the create no longer than the caller will wait, so it is not cut off mid-way.
            hold = min(options.hold_seconds or 0, int(timeout - 1)) or False
            options = attrs.evolve(options, hold=hold)
        prediction: Prediction | None = None
        if timeout is None:  # no cancel scope to build: this runs once per item of a fan-out
            prediction = await self._create(ref, input, options)
        else:
            with anyio.move_on_after(timeout):
                prediction = await self._create(ref, input, options)
        if prediction is None:
            # Timed out during the create itself: the abandoned create is reaped in the background.
            raise WaitTimeoutError(Prediction(id="", status=Status.STARTING), float(timeout or 0.0))
        if prediction.is_terminal and self._receiver is None:
            return prediction  # finished within the hold: the wait would return it as it is
        # The wait's deadline is the whole call's: it counts the create's time (``elapsed``).
        waiting = self._wait(
            prediction,
            timeout=timeout,
            cancel_on_exit=options.cancel_on_exit,
            elapsed=loop.time() - started,
        )
        # The wait keeps the newest state it has seen; this frame must not keep the first one too
        # (about 1 KB a prediction while thousands wait).
        del prediction
        return await waiting

    # -- stream -----------------------------------------------------------------------------------

    async def stream(
        self, prediction: PredictionLike, *, cancel_on_exit: bool = True
    ) -> AsyncIterator[StreamEvent]:
        """Server-sent events of a running prediction: ``output`` tokens, ``logs``, then ``done``.

        Reconnects with ``Last-Event-ID`` if the connection drops, ends or stays silent for the
        client's ``request_timeout`` before ``done`` (no event is delivered twice); after a few
        connections in a row that bring no new event, with a growing pause between them, it
        raises (ReplicateError, or the last connection error). An ``error`` event raises
        PredictionFailedError. A model that cannot stream has no stream URL: that raises
        ReplicateError at once. The token is sent along only when the stream is served from the
        API's own host.

        A consumer that stops before ``done`` (``break``, an exception in its loop, a cancelled
        task, a web client that went away) cancels the remote prediction, shielded from the
        cancellation that caused it, unless ``cancel_on_exit=False``. Gotcha: after a bare
        ``break`` that happens when the generator is closed, at once with
        ``contextlib.aclosing(...)``, else when it is garbage-collected.
        """
        current = prediction if isinstance(prediction, Prediction) else await self.get(prediction)
        url = current.urls.stream
        if not url:
            raise ReplicateError(
                f"prediction {current.id} has no stream URL: its model does not stream output "
                "(use wait() or run() instead)"
            )
        ended = False
        try:
            async with contextlib.aclosing(self._events(current, url)) as events:
                async for event in events:
                    ended = event.event == "done"
                    yield event
            ended = True
        except (GeneratorExit, asyncio.CancelledError):
            # The consumer gave up (or was cancelled) with the prediction still running.
            if cancel_on_exit and not ended:
                await self._cancel_shielded(current.id)
            raise

    async def _events(self, current: Prediction, url: str) -> AsyncGenerator[StreamEvent, None]:
        """The stream's events, reconnecting as :meth:`stream` describes.

        Progress is counted per event id: a reconnect that only replays what was already delivered
        counts as a failed connection, so a server looping on the same events ends in ReplicateError.
        """
        decoder = SSEDecoder()
        # Events delivered per id. Events without an id line carry the previous one forward, so
        # one id may cover several events (and events before the first id have none: None is a
        # key like any other); after a reconnect, a server that replays from the start sends them
        # again and we skip as many as were delivered.
        delivered: dict[str | None, int] = {}
        replayed: dict[str | None, int] = {}
        # Connections in a row that ended (or failed) without bringing a new event.
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
            if decoder.last_event_id is not None:
                headers["Last-Event-ID"] = decoder.last_event_id
            try:
                # The read timeout is the client's ``request_timeout``: a stream silent for
                # that long counts as a failed connection, like a dropped one.
                async with self._session.stream(url, headers=headers) as resp:
                    async for chunk in resp.content.iter_any():
                        for event in decoder.feed(chunk):
                            count = replayed[event.id] = replayed.get(event.id, 0) + 1
                            if count <= delivered.get(event.id, 0):
                                continue  # a replay of one already delivered: not progress
                            delivered[event.id] = count
                            failures = 0
                            if event.event == "error":
                                latest = await self.get(current.id)
                                raise PredictionFailedError(
                                    latest,
                                    f"prediction {current.id} failed while streaming: {event.data}",
                                )
                            yield StreamEvent(event.event, event.data, event.id)
                            if event.event == "done":
                                return
            except APIConnectionError:
                failures += 1
                if failures > _STREAM_RECONNECTS:
                    raise
            else:
                failures += 1
                if failures > _STREAM_RECONNECTS:
                    raise ReplicateError(
                        f"stream of prediction {current.id} kept ending before its 'done' event: "
                        f"{failures} connections in a row brought no new event (use wait() for "
                        "its result)"
                    )
            decoder.close()
            replayed.clear()
            await asyncio.sleep(min(2.0, 0.1 * 2 ** (failures - 1)))
