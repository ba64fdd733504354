"""Trainings: fine-tune a model version into a new version of a destination model.

See docs/api-notes.md#endpoints (the trainings row): ``POST
/models/{o}/{n}/versions/{id}/trainings``, ``GET /trainings``, ``GET /trainings/{id}``, ``POST
/trainings/{id}/cancel``. Trainings are shaped like predictions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import anyio

from areplicate._convert import structure, structure_created
from areplicate._core.ids import object_id
from areplicate._core.options import check_webhook
from areplicate._core.refs import parse_ref
from areplicate._errors import (
    InvalidReferenceError,
    ReplicateError,
)
from areplicate._models import Page, Training
from areplicate._services._paging import paginate
from areplicate._services._waiting import wait_until_done
from areplicate._session import Session

__all__ = ["Trainings"]

logger = logging.getLogger("areplicate")

_EVENTS = frozenset({"start", "output", "logs", "completed"})
_CANCEL_TIMEOUT = 10.0

TrainingLike = Training | str


class Trainings:
    """Create, get, list, cancel and wait for trainings. Reached as ``client.trainings``.

    Trainings are not reaped like predictions: a create cut short by a timeout or a cancel may
    leave a training running, which :meth:`list` shows. The wait loop is the predictions' own.
    """

    def __init__(
        self,
        session: Session,
        *,
        input_hook: Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        """Wire the service to a session; ``input_hook`` prepares file values as for predictions."""
        self._session = session
        # Turns file values (paths, bytes, file objects, FileOutputs) into what the API accepts,
        # as for predictions; without it the input must already be plain JSON.
        self._input_hook = input_hook

    def __repr__(self) -> str:
        """The base URL only; the session and its token stay out."""
        return f"<Trainings {self._session.config.base_url}>"

    async def create(
        self,
        ref: str,
        *,
        destination: str,
        input: Mapping[str, Any],
        webhook: str | None = None,
        webhook_events_filter: Sequence[str] | None = None,
    ) -> Training:
        """Start training ``ref`` (``owner/name:<version>``: trainings always start from a
        version) into ``destination`` (``owner/name``, a model you own that must already exist).

        File values in ``input`` (a ``Path`` to a zip archive, bytes, a file object, a FileOutput)
        are sent as for predictions: uploaded or inlined (see ``Client(file_encoding=)``).
        Billed like a prediction, so never retried after an ambiguous failure. A destination that
        does not exist gives NotFoundError ("The specified training destination does not exist").
        """
        parsed = parse_ref(ref)
        if parsed.model is None or parsed.version is None:
            raise InvalidReferenceError(
                f"a training starts from a version: pass 'owner/name:<version id>', got {ref!r}"
            )
        target = parse_ref(destination)
        if target.model is None or target.version is not None:
            raise InvalidReferenceError(
                f"destination must be a model as 'owner/name', got {destination!r}"
            )
        if not isinstance(input, Mapping):
            raise TypeError(f"input must be a mapping, not {type(input).__name__}")
        check_webhook(webhook, webhook_events_filter)
        prepared = await self._input_hook(input) if self._input_hook else dict(input)
        body: dict[str, Any] = {"destination": target.model, "input": prepared}
        if webhook is not None:
            body["webhook"] = webhook
        if webhook_events_filter is not None:
            body["webhook_events_filter"] = list(webhook_events_filter)
        response = await self._session.request(
            "POST",
            f"models/{parsed.owner}/{parsed.name}/versions/{parsed.version}/trainings",
            json_body=body,
            create=True,
        )
        return structure_created(response, Training, what="training create response")

    async def get(self, training: TrainingLike) -> Training:
        """The training as it is now. NotFoundError if there is no such training.

        ``output`` holds the new version (``{"version": ..., "weights": ...}``) only once it succeeded.
        """
        tid = object_id(training, "training")
        response = await self._session.request("GET", f"trainings/{quote(tid, safe='')}")
        return structure(response.json(), Training, what=f"training {tid}")

    async def cancel(self, training: TrainingLike) -> Training:
        """Ask the API to stop the training; returns it as the API then describes it.

        The answer may still say ``processing``: the stop takes effect later, so :meth:`wait` for the
        terminal state if you need it. Cancelling a finished training changes nothing.
        """
        tid = object_id(training, "training")
        response = await self._session.request("POST", f"trainings/{quote(tid, safe='')}/cancel")
        return structure(response.json(), Training, what=f"training {tid}")

    def pages(self) -> AsyncIterator[Page[Training]]:
        """Whole pages of your trainings, newest first.

        ``next`` links are followed on this client's base URL, never on the host they name.
        """
        return paginate(self._session, "trainings", Training, what="training page")

    async def list(self) -> AsyncIterator[Training]:
        """Every training you started, newest first, following pages as you iterate.

        Pages are fetched as you go: stopping early costs no more requests.
        """
        async for page in self.pages():
            for training in page.results:
                yield training

    async def wait(
        self,
        training: TrainingLike,
        *,
        timeout: float | None = None,
        cancel_on_exit: bool = True,
    ) -> Training:
        """Poll ``/trainings/{id}`` until the training ends (succeeded, failed, canceled, aborted).

        A failed training is returned, not raised. Polls follow the client's PollSchedule (they
        thin out to its cap, since trainings run for minutes). A poll that fails in a way the next
        may not (5xx, unreadable body, broken connection, 429) is retried with a backoff; a
        definitive error (401, 404, ...) is raised and leaves the training running. On ``timeout``
        it raises WaitTimeoutError; then, or if the awaiting task is cancelled, the training is
        cancelled too unless ``cancel_on_exit=False`` (a training is expensive: pass False to leave
        it running).
        """
        return await wait_until_done(
            self,
            Training,
            object_id(training, "training"),
            training if isinstance(training, Training) else None,
            schedule=self._session.config.poll,
            timeout=timeout,
            cancel_on_exit=cancel_on_exit,
            on_close=self._session.on_close,
        )

    async def _cancel_shielded(self, tid: str) -> None:
        """Best-effort remote cancel that outlives the caller's cancellation (close() awaits it).

        Never raises: a failed cancel is logged by :meth:`_cancel_quietly`.
        """
        task = self._session.spawn(self._cancel_quietly(tid))
        with anyio.CancelScope(shield=True):
            await asyncio.shield(task)

    async def _cancel_quietly(self, tid: str) -> None:
        """Send one unpaced cancel bounded by ``_CANCEL_TIMEOUT``; log, never raise, a failure."""
        try:
            with anyio.fail_after(_CANCEL_TIMEOUT):
                # Unpaced: clean-up must not queue behind the work it stops.
                await self._session.request(
                    "POST", f"trainings/{quote(tid, safe='')}/cancel", paced=False
                )
        except (ReplicateError, TimeoutError, RuntimeError) as exc:  # RuntimeError: closed
            logger.warning("could not cancel training %s: %s", tid, exc)
