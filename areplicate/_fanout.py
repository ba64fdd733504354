"""Fan-out: run many predictions at once under a concurrency limit and the client's request budget.

``as_completed`` is an async iterator that owns its worker tasks outright (no task group spans a
``yield``): breaking out of it, leaving its ``async with``, an exception, or the caller being
cancelled all cancel the workers, and each worker cancels its remote prediction on the way out.
Inputs are pulled lazily, one per free slot, so a generator of a million inputs is never
materialised; results wait in a queue no longer than the concurrency.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

import anyio
import attrs

from areplicate._core.refs import parse_ref
from areplicate._core.status import Status
from areplicate._errors import AuthenticationError, NotFoundError, PaymentRequiredError
from areplicate._models import Prediction
from areplicate._options import Lifetime, RunOptions
from areplicate._services.predictions import unknown_target

if TYPE_CHECKING:
    from areplicate._client import Client

__all__ = [
    "Completed",
    "FanOut",
    "Progress",
    "Runner",
    "as_completed",
    "gather_predictions",
    "stops_everything",
]

Inputs = Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]]
DEFAULT_CONCURRENCY = 32
#: Runs one item to a terminal Prediction (default: create + wait). The batch CLI supplies its own,
#: which journals each create and re-attaches to predictions a previous run started.
Runner = Callable[[int, Mapping[str, Any]], Awaitable[Prediction]]
# Errors that may fail every item the same way; which of them do is `stops_everything`'s call.
# (A runner lets these through for the fan-out to decide.)
_FATAL = (AuthenticationError, PaymentRequiredError, NotFoundError)


def stops_everything(error: BaseException) -> bool:
    """Whether ``error`` would fail every item of a fan-out alike, so it stops them all at once.

    A 401 (the token) or 402 (the account's credit) does, from any request; a 404 does only when
    it answered a create (the model, version or deployment is unknown). A 404 on an existing
    prediction's poll belongs to that one item.
    """
    if isinstance(error, NotFoundError):
        return unknown_target(error)
    return isinstance(error, (AuthenticationError, PaymentRequiredError))


@attrs.frozen
class Completed:
    """One finished item of a fan-out.

    ``prediction`` is the terminal Prediction (succeeded, failed, canceled or aborted: a model's
    failure is a result) or None when the item ended with an exception, which is then in ``error``.
    """

    index: int
    input: Mapping[str, Any]
    prediction: Prediction | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """True when the prediction succeeded.

        False both for an item that raised (``error`` is set) and for a model's own failure or a
        cancel (``prediction.status`` says which): ``ok`` alone does not tell the two apart.
        """
        return self.prediction is not None and self.prediction.status == Status.SUCCEEDED


@attrs.frozen
class Progress:
    """A snapshot for ``on_progress``: counts so far.

    ``total`` is None when the inputs have no ``len()`` (a generator, an async iterable).
    """

    done: int
    total: int | None
    succeeded: int
    failed: int
    errors: int
    in_flight: int


class _Sentinel:
    """The type of ``_END``, the marker the feeder queues after the last result.

    A class of its own (not None or a bare object()) so the queue's item type stays exact for mypy.
    """


_END = _Sentinel()


class _Run:
    """The machinery of one fan-out. Its tasks hold references to it, never to the handle the
    caller iterates (:class:`FanOut`), so dropping the handle can cancel them."""

    def __init__(
        self,
        client: Client,
        ref: str,
        inputs: Inputs,
        *,
        concurrency: int,
        options: RunOptions,
        on_progress: Callable[[Progress], object] | None = None,
        runner: Runner | None = None,
    ) -> None:
        """Check the arguments and set up the queue and slots; nothing starts until the first :meth:`next`.

        The checks (``concurrency``, a single mapping passed as ``inputs``, the model reference) raise
        here, at the call to ``as_completed``, not at the first iteration.
        """
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
        if isinstance(inputs, Mapping):
            raise TypeError("inputs must be an iterable of input mappings, not a single mapping")
        parse_ref(ref)
        self._client = client
        self._ref = ref
        self._inputs = inputs
        self._concurrency = concurrency
        self._options = options
        self._on_progress = on_progress
        self._runner = runner
        self._total: int | None = len(inputs) if hasattr(inputs, "__len__") else None  # type: ignore[arg-type]
        self._queue: asyncio.Queue[Completed | _Sentinel | BaseException] = asyncio.Queue(
            maxsize=concurrency
        )
        self._slots = asyncio.Semaphore(concurrency)
        self._workers: set[asyncio.Task[None]] = set()
        self._feeder: asyncio.Task[None] | None = None
        self._closed = False
        self._done = self._succeeded = self._failed = self._errors = 0

    async def next(self) -> Completed:
        """The next finished item; StopAsyncIteration when all are done.

        The first call starts the feeder. A fatal error (see :func:`stops_everything`) or a failing
        inputs iterable arrives here as an exception: it is raised after everything is stopped. Being
        cancelled while waiting stops the whole fan-out too.
        """
        if self._closed:
            raise StopAsyncIteration
        if self._feeder is None:
            # Tasks belong to the client's session, so Client.aclose() waits for their clean-up.
            self._feeder = self._client._session.spawn(self._feed(), work=True)
        try:
            item = await self._queue.get()
        except BaseException:
            await self.aclose()
            raise
        if isinstance(item, _Sentinel):
            await self.aclose()
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            await self.aclose()
            raise item
        self._count(item)
        return item

    async def aclose(self) -> None:
        """Stop: cancel unstarted and running work, remote predictions included, and wait for it.

        The wait is shielded, so a caller cancelled during it still lets each worker finish its remote
        cancel. Idempotent.
        """
        if self._closed and not self._workers and (self._feeder is None or self._feeder.done()):
            return
        self._closed = True
        tasks = [t for t in (self._feeder, *self._workers) if t is not None and not t.done()]
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
        for task in (self._feeder, *self._workers):
            if task is not None and not task.done():
                task.cancel()

    # -- the work -------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Items started and not yet handed to the consumer.

        An item counts until its result is queued, so this can lag behind the server's own state.
        """
        return len(self._workers)

    def _count(self, item: Completed) -> None:
        """Update the counts for an item the consumer is about to receive, then call ``on_progress``.

        Counted as items are handed out, not as they finish, so progress never runs ahead of what the
        caller has seen. ``on_progress`` runs inline: a slow callback slows the consumer.
        """
        self._done += 1
        if item.error is not None:
            self._errors += 1
        elif item.ok:
            self._succeeded += 1
        else:
            self._failed += 1
        if self._on_progress is not None:
            self._on_progress(
                Progress(
                    self._done,
                    self._total,
                    self._succeeded,
                    self._failed,
                    self._errors,
                    len(self._workers),
                )
            )

    async def _feed(self) -> None:
        """Pull inputs one per free slot and start a worker for each; queue ``_END`` after the last.

        A non-mapping input becomes that item's TypeError (the rest go on); an exception from the
        inputs iterable itself is queued and ends the fan-out.
        """
        index = 0
        try:
            async for item in _aiter(self._inputs):
                await self._slots.acquire()
                if not isinstance(item, Mapping):
                    self._slots.release()
                    error = TypeError(
                        f"input #{index} is a {type(item).__name__}, not a mapping of input names"
                    )
                    await self._queue.put(Completed(index, {}, None, error))
                else:
                    task = self._client._session.spawn(self._run_one(index, item), work=True)
                    self._workers.add(task)
                    task.add_done_callback(self._workers.discard)
                index += 1
            # Wait for the last workers before signalling the end.
            while self._workers:
                await asyncio.gather(*list(self._workers), return_exceptions=True)
            await self._queue.put(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - the inputs iterable itself failed
            await self._queue.put(exc)

    async def _run_one(self, index: int, item: Mapping[str, Any]) -> None:
        """Run one item and queue its :class:`Completed`; its slot is freed once the result is queued.

        Freeing the slot only after the queue accepts the result is what bounds the results waiting
        for a slow consumer to ``concurrency``. A fatal error is queued bare, for :meth:`next` to raise.
        """
        try:
            if self._runner is not None:
                prediction = await self._runner(index, item)
            else:
                prediction = await self._client.predictions._create_and_wait(
                    self._ref, item, self._options
                )
            result = Completed(index, item, prediction, None)
        except asyncio.CancelledError:
            self._slots.release()
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a result unless it stops everything
            if stops_everything(exc):
                self._slots.release()
                await self._queue.put(exc)
                return
            result = Completed(index, item, None, exc)
        try:
            await self._queue.put(result)
        finally:
            self._slots.release()


class FanOut(AsyncIterator[Completed]):
    """What :func:`as_completed` returns: an async iterator, and an async context manager that
    stops the fan-out on exit. Dropped without either (a bare ``break``), it cancels its work when
    garbage-collected.

    Made by :func:`as_completed` (build it through that, not by hand). ``runner`` replaces the
    default create-and-wait of each item (the batch CLI journals its creates through it).
    """

    def __init__(
        self,
        client: Client,
        ref: str,
        inputs: Inputs,
        *,
        concurrency: int,
        options: RunOptions,
        on_progress: Callable[[Progress], object] | None = None,
        runner: Runner | None = None,
    ) -> None:
        """Build the :class:`_Run` behind this handle; arguments are checked here, nothing is sent yet."""
        self._run = _Run(
            client,
            ref,
            inputs,
            concurrency=concurrency,
            options=options,
            on_progress=on_progress,
            runner=runner,
        )

    @property
    def options(self) -> RunOptions:
        """The options every item is created and waited for with."""
        return self._run._options

    def __aiter__(self) -> FanOut:
        return self

    async def __anext__(self) -> Completed:
        return await self._run.next()

    async def __aenter__(self) -> FanOut:
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


async def _aiter(inputs: Inputs) -> AsyncIterator[object]:
    """Iterate a sync or an async iterable alike, lazily.

    A sync iterable is read on the loop: a generator that blocks stalls every worker.
    """
    if isinstance(inputs, AsyncIterable):
        async for item in inputs:
            yield item
    else:
        for item in inputs:
            yield item


def as_completed(
    client: Client,
    ref: str,
    inputs: Inputs,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    hold: bool | int = True,
    timeout: float | None = None,
    lifetime: Lifetime | None = None,
    validate: bool = False,
    on_progress: Callable[[Progress], object] | None = None,
) -> FanOut:
    """Run one prediction per input, at most ``concurrency`` at once; yield each as it finishes.

    Each item is a :class:`Completed` with ``.index`` (position in ``inputs``), ``.input``,
    ``.prediction`` (terminal, whatever its status) and ``.error`` (an exception that item ended
    with, e.g. a 422 for bad input, or a 404 for a prediction that vanished). Errors that would
    fail every item (401, 402, a create's 404: an unknown model) are raised instead. ``inputs``
    may be any iterable or async iterable; it is read lazily.

    ``hold``, ``timeout``, ``lifetime`` and ``validate`` apply to each item as in
    ``predictions.create_and_wait``: ``timeout`` is each item's own deadline, not the whole
    fan-out's. They are checked (ValueError) here, before anything is sent.

    Breaking out early, an exception or cancellation stops the rest and cancels their remote
    predictions; for that to happen at once (not at garbage collection), use it as
    ``async with as_completed(...) as results: async for item in results: ...``.
    """
    return FanOut(
        client,
        ref,
        inputs,
        concurrency=concurrency,
        options=RunOptions(hold=hold, timeout=timeout, lifetime=lifetime, validate=validate),
        on_progress=on_progress,
    )


@overload
async def gather_predictions(
    client: Client,
    ref: str,
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
    ref: str,
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


async def gather_predictions(
    client: Client,
    ref: str,
    inputs: Inputs,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    return_exceptions: bool = False,
    hold: bool | int = True,
    timeout: float | None = None,
    lifetime: Lifetime | None = None,
    validate: bool = False,
    on_progress: Callable[[Progress], object] | None = None,
) -> list[Prediction] | list[Prediction | BaseException]:
    """Run one prediction per input and return them in input order.

    The i-th result belongs to ``inputs[i]``: a terminal Prediction (failed and canceled ones
    included; check ``.status``), or with ``return_exceptions=True`` the exception that item ended
    with. Without it, the first exception cancels the rest (and their remote predictions) and is
    raised. Cancelling the awaiting task does the same.
    """
    results: list[Prediction | BaseException | None] = []
    async with as_completed(
        client,
        ref,
        inputs,
        concurrency=concurrency,
        hold=hold,
        timeout=timeout,
        lifetime=lifetime,
        validate=validate,
        on_progress=on_progress,
    ) as fan:
        async for item in fan:
            if item.error is not None and not return_exceptions:
                raise item.error
            if item.index >= len(results):
                results.extend([None] * (item.index + 1 - len(results)))
            results[item.index] = item.prediction if item.error is None else item.error
    return [r for r in results if r is not None]


# Resolve string annotations while these classes still belong to this module (the package renames
# ``__module__`` to ``areplicate`` on export, after which ``typing.get_type_hints`` would fail).
for _cls in (Completed, Progress):
    attrs.resolve_types(_cls)
    _cls.__annotations__ = {a.name: a.type for a in attrs.fields(_cls)}
del _cls
