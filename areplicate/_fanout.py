"""Fan-out: run many predictions (or many steps) at once under a concurrency limit and the budget.

``as_completed`` is an async iterator that owns its worker tasks outright (no task group spans a
``yield``): breaking out of it, leaving its ``async with``, an exception, or the caller being
cancelled all cancel the workers, and each worker cancels its remote prediction on the way out.
Inputs are pulled lazily, one per free slot, so a generator of a million inputs is never
materialised; results wait in a queue no longer than the concurrency.

There is one code path: every form runs a *step* per item. The one-model form's step creates a
prediction of that model and waits for it; the mixed-model form's step does the same with the
model each :class:`Job` names; a user's step is any ``async def step(client, item)``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
)
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, overload

import anyio
import attrs

from areplicate._core.refs import parse_ref
from areplicate._core.status import Status, is_terminal
from areplicate._errors import AuthenticationError, NotFoundError, PaymentRequiredError
from areplicate._models import Prediction
from areplicate._options import Lifetime, RunOptions
from areplicate._services.predictions import unknown_target

if TYPE_CHECKING:
    # A default lets ``Completed`` / ``FanOut`` be written bare (meaning the one-model form's
    # Prediction) under ``mypy --strict``; at run time a plain TypeVar is enough.
    from typing_extensions import TypeVar as _DefaultedTypeVar

    from areplicate._client import Client

    T = _DefaultedTypeVar("T", default=Prediction)
else:
    T = TypeVar("T")

Item = TypeVar("Item")

__all__ = [
    "Completed",
    "FanOut",
    "Job",
    "Progress",
    "Stage",
    "as_completed",
    "gather_predictions",
    "stops_everything",
]

Inputs = Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]]
DEFAULT_CONCURRENCY = 32
# Errors that may fail every item the same way; which of them do is `stops_everything`'s call.
# (A step lets these through for the fan-out to decide.)
_FATAL = (AuthenticationError, PaymentRequiredError, NotFoundError)


def stops_everything(error: BaseException) -> bool:
    """Whether ``error`` would fail every item of a fan-out alike, so it stops them all at once.

    A 401 (the token) or 402 (the account's credit) does, from any request; a 404 does only when
    it answered a create (the model, version or deployment is unknown). A 404 on an existing
    prediction's poll belongs to that one item. The same rule holds for what a step raises.
    """
    if isinstance(error, NotFoundError):
        return unknown_target(error)
    return isinstance(error, (AuthenticationError, PaymentRequiredError))


def _check_model(_instance: object, _attribute: object, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"Job.model must be a model reference string, got {type(value).__name__}")
    parse_ref(value)


def _check_input(_instance: object, _attribute: object, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(
            f"Job.input must be a mapping of input names to values, got {type(value).__name__}"
        )


@attrs.frozen
class Job:
    """One item of a mixed-model fan-out: the model to run and its input.

    Pass an iterable of these to :func:`gather_predictions` / :func:`as_completed` with ``None``
    in place of the model: ``gather_predictions(client, None, [Job("a/b", {...}), ...])``. A
    mapping ``{"model": "owner/name", "input": {...}}`` is read as a Job too (what a JSON line
    holds). The model reference is checked here (InvalidReferenceError), not at the create.
    Giving a model argument *and* Jobs is an error: the fan-out would not know which to run.
    """

    model: str = attrs.field(validator=_check_model)
    input: Mapping[str, Any] = attrs.field(factory=dict, validator=_check_input)

    @classmethod
    def of(cls, item: object) -> Job:
        """``item`` as a Job: a Job as it is, a ``{"model": ..., "input": ...}`` mapping converted.

        Anything else (a bare input mapping, a mapping with other keys) is a TypeError saying
        what a mixed-model item must look like.
        """
        if isinstance(item, Job):
            return item
        if isinstance(item, Mapping) and "model" in item and set(item) <= {"model", "input"}:
            return cls(item["model"], item.get("input", {}))
        if isinstance(item, Mapping):
            raise TypeError(
                "with no model given, each item must name its own: a Job(model, input) or a "
                f'mapping {{"model": "owner/name", "input": {{...}}}}; got keys {sorted(item)!r}'
            )
        raise TypeError(
            "with no model given, each item must be a Job(model, input) or a mapping "
            f'{{"model": "owner/name", "input": {{...}}}}, not a {type(item).__name__}'
        )


@attrs.frozen
class Completed(Generic[T]):
    """One finished item of a fan-out.

    ``result`` is what the item's step returned: with a model (or with :class:`Job` items) the
    terminal Prediction, whatever its status (a model's failure is a result, not an error); with
    your own step, that step's return value. ``prediction`` is ``result`` when it is a Prediction,
    else None. When the item ended with an exception it is in ``error`` and ``result`` is None.
    """

    index: int
    input: Any
    result: T | None = None
    error: BaseException | None = None

    @property
    def prediction(self) -> Prediction | None:
        """``result`` when it is a Prediction (always so in the model forms), else None."""
        return self.result if isinstance(self.result, Prediction) else None

    @property
    def ok(self) -> bool:
        """True when the item's step returned and its result is not a finished, unsuccessful
        Prediction.

        False both for an item that raised (``error`` is set) and for a model's own failure or a
        cancel (``prediction.status`` says which): ``ok`` alone does not tell the two apart.
        """
        return self.error is None and not _unsuccessful(self.result)


def _unsuccessful(result: object) -> bool:
    """A returned Prediction that ended other than succeeded (what Progress counts as failed)."""
    return (
        isinstance(result, Prediction)
        and is_terminal(result.status)
        and result.status != Status.SUCCEEDED
    )


@attrs.frozen
class Progress:
    """A snapshot for ``on_progress``: counts so far.

    ``errors`` counts items that ended with an exception; ``failed`` those whose result is a
    finished Prediction that did not succeed (failed, canceled, aborted); ``succeeded`` every other
    result (with your own step, any value it returned, a still-running Prediction included).
    ``total`` is None when the inputs have no ``len()`` (a generator, an async iterable).
    """

    done: int
    total: int | None
    succeeded: int
    failed: int
    errors: int
    in_flight: int


class Stage:
    """A named limit on how many items are inside one step of a pipeline at once, with counts.

    Use it inside a fan-out's step, one Stage object per stage shared by every item::

        draw, describe = Stage("draw", 8), Stage("describe", 32)

        async def pipeline(client, prompt):
            async with draw:
                image = await client.run("acme/draw", {"prompt": prompt})
            async with describe:
                return await client.run("acme/describe", {"image": image})

    Items move through the stages independently, so item 1 can be describing while item 40 is
    still drawing. Every request still goes through the client's one budget: a Stage only bounds
    how many items are inside it. The fan-out's ``concurrency`` bounds items in progress across
    all stages; give it at least the sum of the stages' limits, or the stages cannot all be full.
    ``waiting``, ``running``, ``done`` and ``errors`` are live counts (read them from
    ``on_progress``; ``str(stage)`` prints them). A Stage belongs to the event loop it first
    waited on: make a new one per ``asyncio.run``.
    """

    def __init__(self, name: str, limit: int) -> None:
        """``limit``: at most this many items inside the stage at once (a whole number >= 1)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"Stage limit must be a whole number >= 1, got {limit!r}")
        self.name = name
        self.limit = limit
        self.waiting = 0
        self.running = 0
        self.done = 0
        self.errors = 0
        self._slots = asyncio.Semaphore(limit)

    async def __aenter__(self) -> Stage:
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Free the slot; count the item as done, or as an error when its body raised.

        A cancelled body (the fan-out stopping) counts as neither. Exceptions are never swallowed.
        """
        self.running -= 1
        self._slots.release()
        if exc is None:
            self.done += 1
        elif not isinstance(exc, asyncio.CancelledError):
            self.errors += 1

    def __str__(self) -> str:
        return (
            f"{self.name}: {self.running} running, {self.waiting} waiting, "
            f"{self.done} done, {self.errors} errors"
        )

    def __repr__(self) -> str:
        return f"<Stage {self}, limit {self.limit}>"


class _Sentinel:
    """The type of ``_END``, the marker the last worker queues after the last result.

    A class of its own (not None or a bare object()) so the queue's item type stays exact for mypy.
    """


_END = _Sentinel()
_CLOSED = (
    "the areplicate Client was closed while this fan-out was running, so its unfinished items "
    "were cancelled; close the client after the fan-out ends"
)

# One finished item as the workers queue it: (index, input, result, error).
_Raw = tuple[int, Any, Any, BaseException | None]

# What a worker runs per item: (index, item) -> result. Every form is turned into one of these.
_Work = Callable[[int, Any], Awaitable[Any]]


def _mapping_input(index: int, item: object) -> Mapping[str, Any]:
    """The one-model form's item check: an input mapping, or that item's TypeError."""
    if type(item) is not dict and not isinstance(item, Mapping):  # an ABC check costs a call
        raise TypeError(f"input #{index} is a {type(item).__name__}, not a mapping of input names")
    return item


def _work_for(
    client: Client,
    model: str | Callable[[Client, Any], Awaitable[Any]] | None,
    options: RunOptions,
) -> _Work:
    """Turn the fan-out's model argument (a reference, None for Jobs, or a step) into its work.

    Checks that need no request happen here, at the call: a malformed reference, a step given
    options it cannot use.
    """
    if callable(model):
        if options != RunOptions():
            raise ValueError(
                "hold, timeout, lifetime and validate apply to the fan-out's own creates; with a "
                "step, pass them to the calls inside the step"
            )
        step = model

        async def run_step(_index: int, item: Any) -> Any:
            return await step(client, item)

        return run_step
    if model is None:

        def run_job(_index: int, item: Any) -> Awaitable[Any]:
            job = Job.of(item)
            return client.predictions._create_and_wait(job.model, job.input, options)

        return run_job
    if not isinstance(model, str):
        raise TypeError(
            "the model must be a reference string ('owner/name[:version]'), None (each item a "
            f"Job), or an async step(client, item); got {type(model).__name__}"
        )
    ref = model
    parse_ref(ref)

    # Plain functions handing back the create's coroutine: one frame less for every item.
    def run_model(index: int, item: Any) -> Awaitable[Any]:
        if isinstance(item, Job):
            raise TypeError(
                f"input #{index} is a Job, but the fan-out was given the model {ref!r}: pass None "
                "as the model to run each Job's own"
            )
        return client.predictions._create_and_wait(ref, _mapping_input(index, item), options)

    return run_model


class _Run(Generic[T]):
    """The machinery of one fan-out. Its tasks hold references to it, never to the handle the
    caller iterates (:class:`FanOut`), so dropping the handle can cancel them."""

    def __init__(
        self,
        client: Client,
        model: str | Callable[[Client, Any], Awaitable[T]] | None,
        inputs: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int,
        options: RunOptions,
        on_progress: Callable[[Progress], object] | None = None,
    ) -> None:
        """Check the arguments and set up the queue and slots; nothing starts until the first :meth:`next`.

        The checks (``concurrency``, a single mapping passed as ``inputs``, the model reference) raise
        here, at the call to ``as_completed``, not at the first iteration.
        """
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
        if isinstance(inputs, (Mapping, Job)):
            raise TypeError("inputs must be an iterable of items, not a single mapping or Job")
        self._work = _work_for(client, model, options)
        self._client = client
        self._inputs = inputs
        self._concurrency = concurrency
        self._options = options
        self._on_progress = on_progress
        self._total: int | None = len(inputs) if hasattr(inputs, "__len__") else None  # type: ignore[arg-type]
        # The results waiting for the consumer: a deque and two kinds of future instead of an
        # asyncio.Queue, whose put and get cost a dozen Python calls per item between them. There
        # is one consumer (waiting on ``_getter``) and up to ``concurrency`` workers (waiting on
        # ``_putters`` while ``concurrency`` results wait).
        self._results: deque[_Raw | _Sentinel | BaseException] = deque()
        self._getter: asyncio.Future[None] | None = None
        self._putters: deque[asyncio.Future[None]] = deque()
        # A step runs each item in a task of its own, so a context variable it sets stays that
        # item's; the model forms run in the worker itself (their own code sets none for good).
        self._isolate = callable(model)
        self._workers: set[asyncio.Task[None]] = set()
        self._source: Iterator[Any] | AsyncIterator[Any] | None = None  # made at the first next()
        self._pulling: asyncio.Lock | None = None  # one reader at a time of an async iterable
        self._exhausted = False  # the inputs ended (or failed): no worker reads them again
        self._index = 0  # the next input's position
        self._busy = 0  # items taken from the inputs whose result is not yet queued
        self._live = 0  # workers that have not ended
        self._started = self._closed = False
        self._awaited = False  # the consumer is waiting in next() for the next result
        # Whether the consumer may stop at any result it is handed, or only at an error (see the
        # worker's hand-over); gather_predictions narrows it.
        self._stops_at_any = True
        self._stops_at_error = True
        self._done = self._succeeded = self._failed = self._errors = 0

    async def next(self) -> Completed[T]:
        """The next finished item; StopAsyncIteration when all are done (see :meth:`next_raw`)."""
        index, item, result, error = await self.next_raw()
        return Completed(index, item, result, error)

    async def next_raw(self) -> _Raw:
        """The next finished item as ``(index, input, result, error)``; StopAsyncIteration when
        all are done. :func:`gather_predictions` reads these: it has no use for a Completed.

        The first call starts the workers. A fatal error (see :func:`stops_everything`) or a failing
        inputs iterable arrives here as an exception: it is raised after everything is stopped. Being
        cancelled while waiting stops the whole fan-out too.
        """
        if self._closed:
            raise StopAsyncIteration
        if not self._started:
            if self._client._session._root._closing:  # before any input is read: each would fail
                raise RuntimeError(
                    "this areplicate Client is closed, so a fan-out cannot start on it; create a "
                    "new Client (or use `async with Client()`)"
                )
            self._start()
        results = self._results
        if not results and self._getter is not None:  # raised outside: the fan-out goes on
            raise RuntimeError(
                "a fan-out has one consumer: another task is already waiting for its next item "
                "(share the results through a queue of your own instead)"
            )
        try:
            if not results:  # results already waiting are taken without a suspension
                getter = self._getter = asyncio.get_running_loop().create_future()
                self._awaited = True
                try:
                    await getter
                finally:
                    self._awaited = False
                    self._getter = None
            item = results.popleft()
            putters = self._putters
            while putters:  # a worker waiting for room takes this one
                putter = putters.popleft()
                if not putter.done():
                    putter.set_result(None)
                    break
        except BaseException:
            await self.aclose()
            raise
        if isinstance(item, _Sentinel):
            await self.aclose()
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            await self.aclose()
            raise item
        self._count(item[2], item[3])
        return item

    async def aclose(self) -> None:
        """Stop: cancel unstarted and running work, remote predictions included, and wait for it.

        The wait is shielded, so a caller cancelled during it still lets each worker finish its remote
        cancel. Idempotent.
        """
        if self._closed and not self._workers:
            return
        self._closed = True
        tasks = [t for t in self._workers if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            with anyio.CancelScope(shield=True):
                await asyncio.gather(*tasks, return_exceptions=True)

    def cancel_now(self) -> None:
        """Cancel every task without waiting (each worker still cancels its remote prediction).

        For ``__del__``, which cannot await: the remote cancels run as the cancelled tasks unwind, and
        the client's close() waits for them.
        """
        self._closed = True
        for task in self._workers:
            if not task.done():
                task.cancel()

    # -- the work -------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Items started and not yet handed to the consumer.

        An item counts until its result is queued, so this can lag behind the server's own state.
        """
        return self._busy

    def _count(self, result: Any, error: BaseException | None) -> None:
        """Update the counts for an item the consumer is about to receive, then call ``on_progress``.

        Counted as items are handed out, not as they finish, so progress never runs ahead of what the
        caller has seen. ``on_progress`` runs inline: a slow callback slows the consumer.
        """
        self._done += 1
        if error is not None:
            self._errors += 1
        elif _unsuccessful(result):
            self._failed += 1
        else:
            self._succeeded += 1
        if self._on_progress is not None:
            self._on_progress(
                Progress(
                    self._done,
                    self._total,
                    self._succeeded,
                    self._failed,
                    self._errors,
                    self._busy,
                )
            )

    def _start(self) -> None:
        """Start the workers: one per slot, or one per input when there are fewer.

        Each takes the next input, runs it and queues its result, then takes another, so a free
        slot is filled by the worker that freed it: no task, wake-up or semaphore per item.
        """
        self._started = True
        inputs = self._inputs
        try:
            if isinstance(inputs, AsyncIterable):
                self._source = inputs.__aiter__()
                self._pulling = asyncio.Lock()
            else:
                self._source = iter(inputs)
        except Exception as exc:  # noqa: BLE001 - the inputs iterable itself failed
            self._exhausted = True
            self._keep(exc)
            return
        total = len(inputs) if self._total is not None else None  # type: ignore[arg-type]
        count = self._concurrency if total is None else min(self._concurrency, total)
        if count == 0:
            self._keep(_END)
            return
        spawn = self._client._session.spawn  # the client's: Client.aclose() waits for clean-up
        for _ in range(count):
            task = spawn(self._worker(), work=True)
            self._workers.add(task)
            task.add_done_callback(self._ended)
        self._live = count

    async def _pull(self) -> tuple[bool, Any]:
        """The next input of an async iterable, ``(False, None)`` at its end; one reader at a time."""
        assert self._pulling is not None
        async with self._pulling:
            if self._exhausted:
                return False, None
            try:
                return True, await self._source.__anext__()  # type: ignore[union-attr]
            except StopAsyncIteration:
                self._exhausted = True
                return False, None

    def _stopping(self) -> bool:
        """Whether this fan-out's work must end: closed, its client closing, or (3.11+) the
        current worker's own task asked to cancel."""
        if self._closed or self._client._session._root._closing:
            return True
        task = asyncio.current_task()
        cancelling = getattr(task, "cancelling", None)  # Task.cancelling is new in 3.11
        return cancelling is not None and cancelling() > 0

    async def _step(self, index: int, item: Any) -> Any:
        """Run a step's item in a task of its own, so a context variable it sets stays its own.

        The task is the client's work, as the worker is: close() cancels it, and the calls inside
        leave their clean-up to that cancel.
        """
        coro = cast("Coroutine[Any, Any, Any]", self._work(index, item))
        task = self._client._session.spawn(coro, work=True)
        try:
            value = await task
        except asyncio.CancelledError:
            if task.done() and not task.cancelled() and task.exception() is None:
                # The step had returned when this worker's cancel came: its value is a result
                # like any other (a prediction that finished), not to be lost to the close.
                self._keep((index, item, task.result(), None))
            raise
        if self._stopping():
            # The step returned while the fan-out was stopping (it may have swallowed the cancel
            # meant for it): hand its value over, and end this worker as the cancel asked.
            self._keep((index, item, value, None))
            raise asyncio.CancelledError
        return value

    async def _worker(self) -> None:
        """Run inputs one after another until they end (:meth:`_ended` says what comes after).

        Freeing the slot (taking the next input) only after the queue accepts the result is what
        bounds the results waiting for a slow consumer to ``concurrency``. An exception from the
        inputs iterable itself, or a fatal error, is queued bare, for :meth:`next` to raise.
        """
        results = self._results
        work = self._work
        source = self._source
        sync = self._pulling is None
        while not (self._exhausted or self._closed):
            try:
                if sync:
                    item = next(source)  # type: ignore[arg-type]
                else:
                    more, item = await self._pull()
                    if not more:
                        break
            except StopIteration:
                self._exhausted = True
                break
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # the inputs iterable itself failed
                self._exhausted = True
                await self._put(exc)
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise  # asyncio stops the loop for these: not only in a queue
                return
            if not sync and self._stopping():
                raise asyncio.CancelledError  # the async inputs swallowed this worker's cancel
            index = self._index
            self._index = index + 1
            self._busy += 1
            try:
                try:
                    if self._isolate:
                        value = await self._step(index, item)
                    else:
                        value = await work(index, item)
                    # A plain tuple: a frozen Completed costs a method call per field, and
                    # gather() never needs one (next() builds it for as_completed's consumers).
                    result: _Raw = (index, item, value, None)
                except asyncio.CancelledError as exc:
                    if self._stopping():
                        raise
                    # Not this worker's cancel: the step raised CancelledError of its own (it
                    # awaited something cancelled). That is its item's error; the others go on.
                    result = (index, item, None, exc)
                except Exception as exc:  # noqa: BLE001 - every failure becomes a result unless it stops everything
                    if stops_everything(exc):
                        await self._put(exc)
                        return
                    result = (index, item, None, exc)
                except BaseException as exc:
                    # Not an error but control flow (a framework's exit, pytest.fail): it
                    # ends the whole fan-out, raised from next().
                    await self._put(exc)
                    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                        raise  # asyncio stops the loop for these: not only in a queue
                    return
                if len(results) < self._concurrency:  # _keep, inline: no call per item
                    results.append(result)
                    getter = self._getter
                    if getter is not None and not getter.done():
                        getter.set_result(None)
                else:
                    await self._put(result)
            finally:
                self._busy -= 1
            if self._awaited and (
                self._stops_at_any or (self._stops_at_error and result[3] is not None)
            ):
                # The consumer was waiting for this result: let it have it before this
                # worker takes another input, as a consumer that stops here (a break, an
                # error raised) must find no new create started. A consumer that cannot stop
                # here (gather's, at a success) costs no loop pass.
                await asyncio.sleep(0)

    async def _put(self, item: _Raw | BaseException) -> None:
        """Hand ``item`` to the consumer once fewer than ``concurrency`` results wait.

        Cancelled while waiting, it is handed over all the same (see :meth:`_keep`): a result
        waiting here is a prediction that finished (and was paid for), and an error is what the
        consumer must be told; neither is dropped because the client closed meanwhile.
        """
        try:
            while len(self._results) >= self._concurrency:
                putter = asyncio.get_running_loop().create_future()
                self._putters.append(putter)
                await putter
        except asyncio.CancelledError:
            self._keep(item)
            raise
        self._keep(item)

    def _keep(self, item: _Raw | _Sentinel | BaseException) -> None:
        """Hand ``item`` to the consumer now, past the ``concurrency`` bound if need be.

        Only what cannot wait goes past it: the start's own error or end, a worker's last result
        as it is cancelled, and the end the last worker leaves; at most one per worker.
        """
        self._results.append(item)
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A worker's task is done: the last one leaves the consumer the end, or why there is no
        more.

        A done callback, not the worker's own ``finally``: a task cancelled before its first step
        (the client closed as the fan-out started) never runs its coroutine at all. A worker that
        returned ended with the inputs or after queuing what ends the fan-out.
        """
        self._workers.discard(task)
        self._live -= 1
        if self._live == 0:
            finished = not task.cancelled() or self._closed
            self._keep(_END if finished else self._gone())

    def _gone(self) -> BaseException:
        """The error for a consumer whose workers were cancelled from outside the fan-out."""
        if self._client._session._root._closing:
            return RuntimeError(_CLOSED)
        return RuntimeError(
            "this fan-out's workers were cancelled from outside it, so its unfinished items "
            "were cancelled"
        )


class FanOut(AsyncIterator[Completed[T]]):
    """What :func:`as_completed` returns: an async iterator of :class:`Completed` items, and an
    async context manager that stops the fan-out on exit. Dropped without either (a bare
    ``break``), it cancels its work when garbage-collected.

    Made by :func:`as_completed` (build it through that, not by hand). ``FanOut[str]`` is a
    fan-out whose step returns ``str``; bare ``FanOut`` is the model form's (Predictions).
    """

    @overload
    def __init__(
        self: FanOut[Prediction],
        client: Client,
        ref: str | None,
        inputs: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int,
        options: RunOptions,
        on_progress: Callable[[Progress], object] | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        client: Client,
        ref: Callable[[Client, Any], Awaitable[T]],
        inputs: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int,
        options: RunOptions,
        on_progress: Callable[[Progress], object] | None = None,
    ) -> None: ...

    def __init__(
        self,
        client: Client,
        ref: str | Callable[[Client, Any], Awaitable[T]] | None,
        inputs: Iterable[Any] | AsyncIterable[Any],
        *,
        concurrency: int,
        options: RunOptions,
        on_progress: Callable[[Progress], object] | None = None,
    ) -> None:
        """Build the :class:`_Run` behind this handle; arguments are checked here, nothing is sent yet."""
        self._run: _Run[T] = _Run(
            client,
            ref,
            inputs,
            concurrency=concurrency,
            options=options,
            on_progress=on_progress,
        )

    @property
    def options(self) -> RunOptions:
        """The options every item is created and waited for with (the model forms only)."""
        return self._run._options

    def __aiter__(self) -> FanOut[T]:
        return self

    def __anext__(self) -> Awaitable[Completed[T]]:
        return self._run.next()  # the coroutine itself: no frame of our own per item

    async def __aenter__(self) -> FanOut[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the fan-out: any work still running is cancelled, remote predictions included.

        An exception in the ``async with`` body is never swallowed.
        """
        await self._run.aclose()

    async def aclose(self) -> None:
        """Stop: cancel unstarted and running work, remote predictions included, and wait for it."""
        await self._run.aclose()

    @property
    def in_flight(self) -> int:
        """Items started and not yet handed to the consumer."""
        return self._run.in_flight

    def __del__(self) -> None:
        """Cancel the work of a handle dropped without ``aclose`` (a bare ``break`` out of the loop).

        The tasks hold the :class:`_Run`, not this handle, which is what lets it be collected.
        """
        run = getattr(self, "_run", None)
        if run is not None:
            run.cancel_now()


@overload
def as_completed(
    client: Client,
    model: str,
    inputs: Inputs,
    *,
    concurrency: int = ...,
    hold: bool | int = ...,
    timeout: float | None = ...,
    lifetime: Lifetime | None = ...,
    validate: bool = ...,
    on_progress: Callable[[Progress], object] | None = ...,
) -> FanOut[Prediction]: ...


@overload
def as_completed(
    client: Client,
    model: None,
    inputs: Iterable[Job | Mapping[str, Any]] | AsyncIterable[Job | Mapping[str, Any]],
    *,
    concurrency: int = ...,
    hold: bool | int = ...,
    timeout: float | None = ...,
    lifetime: Lifetime | None = ...,
    validate: bool = ...,
    on_progress: Callable[[Progress], object] | None = ...,
) -> FanOut[Prediction]: ...


@overload
def as_completed(
    client: Client,
    model: Callable[[Client, Item], Awaitable[T]],
    inputs: Iterable[Item] | AsyncIterable[Item],
    *,
    concurrency: int = ...,
    on_progress: Callable[[Progress], object] | None = ...,
) -> FanOut[T]: ...


def as_completed(
    client: Client,
    model: str | Callable[[Client, Any], Awaitable[Any]] | None,
    inputs: Iterable[Any] | AsyncIterable[Any],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    hold: bool | int = True,
    timeout: float | None = None,
    lifetime: Lifetime | None = None,
    validate: bool = False,
    on_progress: Callable[[Progress], object] | None = None,
) -> FanOut[Any]:
    """Run one prediction (or one step) per input, at most ``concurrency`` at once; yield each as
    it finishes.

    ``model`` is one of:

    - a model reference ``"owner/name[:version]"``: each input is that model's input mapping;
    - ``None``: each input names its own model, a :class:`Job` or ``{"model": ..., "input": ...}``
      (mixed models in one fan-out and one budget);
    - an async ``step(client, item)``: run once per item (any objects), e.g. a chain of models;
      its return value is the item's ``.result``. Cancelling the fan-out cancels the step, and with
      it every prediction the step's ``client.run`` / ``create_and_wait`` calls have running.

    Each item is a :class:`Completed` with ``.index`` (position in ``inputs``), ``.input``,
    ``.result`` (the terminal Prediction in the model forms, whatever its status; the step's
    value with a step), ``.prediction`` and ``.error`` (an exception that item ended with, e.g. a
    422 for bad input, or a 404 for a prediction that vanished). Errors that would fail every item
    (401, 402, a create's 404: an unknown model; see :func:`stops_everything`), from a step too,
    are raised instead. ``inputs`` may be any iterable or async iterable; it is read lazily.

    ``hold``, ``timeout``, ``lifetime`` and ``validate`` apply to each item's create and wait as in
    ``predictions.create_and_wait`` (the model forms only; a step passes its own): ``timeout`` is
    each item's own deadline, not the whole fan-out's. They are checked (ValueError) here, before
    anything is sent.

    Breaking out early, an exception or cancellation stops the rest and cancels their remote
    predictions; for that to happen at once (not at garbage collection), use it as
    ``async with as_completed(...) as results: async for item in results: ...``. Closing the
    client under a running fan-out cancels its work too, and its consumer's next ``next()``
    raises RuntimeError once the items that had finished are handed out. Read it from one task:
    a second task asking for the next item while the first waits gets RuntimeError.
    """
    return FanOut(
        client,
        model,
        inputs,
        concurrency=concurrency,
        options=RunOptions(hold=hold, timeout=timeout, lifetime=lifetime, validate=validate),
        on_progress=on_progress,
    )


@overload
async def gather_predictions(
    client: Client,
    model: str,
    inputs: Inputs,
    *,
    concurrency: int = ...,
    return_exceptions: Literal[False] = ...,
    hold: bool | int = ...,
    timeout: float | None = ...,
    lifetime: Lifetime | None = ...,
    validate: bool = ...,
    on_progress: Callable[[Progress], object] | None = ...,
) -> list[Prediction]: ...


@overload
async def gather_predictions(
    client: Client,
    model: str,
    inputs: Inputs,
    *,
    concurrency: int = ...,
    return_exceptions: Literal[True],
    hold: bool | int = ...,
    timeout: float | None = ...,
    lifetime: Lifetime | None = ...,
    validate: bool = ...,
    on_progress: Callable[[Progress], object] | None = ...,
) -> list[Prediction | BaseException]: ...


@overload
async def gather_predictions(
    client: Client,
    model: None,
    inputs: Iterable[Job | Mapping[str, Any]] | AsyncIterable[Job | Mapping[str, Any]],
    *,
    concurrency: int = ...,
    return_exceptions: Literal[False] = ...,
    hold: bool | int = ...,
    timeout: float | None = ...,
    lifetime: Lifetime | None = ...,
    validate: bool = ...,
    on_progress: Callable[[Progress], object] | None = ...,
) -> list[Prediction]: ...


@overload
async def gather_predictions(
    client: Client,
    model: None,
    inputs: Iterable[Job | Mapping[str, Any]] | AsyncIterable[Job | Mapping[str, Any]],
    *,
    concurrency: int = ...,
    return_exceptions: Literal[True],
    hold: bool | int = ...,
    timeout: float | None = ...,
    lifetime: Lifetime | None = ...,
    validate: bool = ...,
    on_progress: Callable[[Progress], object] | None = ...,
) -> list[Prediction | BaseException]: ...


@overload
async def gather_predictions(
    client: Client,
    model: Callable[[Client, Item], Awaitable[T]],
    inputs: Iterable[Item] | AsyncIterable[Item],
    *,
    concurrency: int = ...,
    return_exceptions: Literal[False] = ...,
    on_progress: Callable[[Progress], object] | None = ...,
) -> list[T]: ...


@overload
async def gather_predictions(
    client: Client,
    model: Callable[[Client, Item], Awaitable[T]],
    inputs: Iterable[Item] | AsyncIterable[Item],
    *,
    concurrency: int = ...,
    return_exceptions: Literal[True],
    on_progress: Callable[[Progress], object] | None = ...,
) -> list[T | BaseException]: ...


async def gather_predictions(
    client: Client,
    model: str | Callable[[Client, Any], Awaitable[Any]] | None,
    inputs: Iterable[Any] | AsyncIterable[Any],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    return_exceptions: bool = False,
    hold: bool | int = True,
    timeout: float | None = None,
    lifetime: Lifetime | None = None,
    validate: bool = False,
    on_progress: Callable[[Progress], object] | None = None,
) -> list[Any]:
    """Run one prediction (or one step) per input and return the results in input order.

    ``model`` is a reference, ``None`` (each input a :class:`Job`) or an async
    ``step(client, item)``, as in :func:`as_completed`. The i-th result belongs to ``inputs[i]``:
    in the model forms a terminal Prediction (failed and canceled ones included; check
    ``.status``), with a step the step's return value; with ``return_exceptions=True`` the
    exception that item ended with. Without it, the first exception cancels the rest (and their
    remote predictions) and is raised. Cancelling the awaiting task does the same.
    """
    results: list[Any] = []
    filled: list[bool] = []
    fan: FanOut[Any] = FanOut(
        client,
        model,
        inputs,
        concurrency=concurrency,
        options=RunOptions(hold=hold, timeout=timeout, lifetime=lifetime, validate=validate),
        on_progress=on_progress,
    )
    run = fan._run
    # Only an error can stop this consumer (and not even that with return_exceptions), unless a
    # progress callback raises.
    run._stops_at_any = on_progress is not None
    run._stops_at_error = run._stops_at_any or not return_exceptions
    async with fan:
        while True:
            try:
                index, _, result, error = await run.next_raw()
            except StopAsyncIteration:
                break
            if error is not None and not return_exceptions:
                raise error
            if index >= len(results):
                grow = index + 1 - len(results)
                results.extend([None] * grow)
                filled.extend([False] * grow)
            results[index] = result if error is None else error
            filled[index] = True
    # A step may return None, so "filled" (not the value) says which indexes came back.
    return [r for r, f in zip(results, filled, strict=True) if f]


# Resolve string annotations while these classes still belong to this module (the package renames
# ``__module__`` to ``areplicate`` on export, after which ``typing.get_type_hints`` would fail).
for _cls in (Completed, Progress, Job):
    attrs.resolve_types(_cls, globalns=globals())
    _cls.__annotations__ = {a.name: a.type for a in attrs.fields(_cls)}
del _cls
