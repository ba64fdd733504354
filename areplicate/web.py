"""Helpers for web apps that run predictions on behalf of their HTTP clients.

Two things go wrong quietly in a web handler. A plain handler (FastAPI does not cancel those) keeps
waiting, and the prediction keeps running and billing, after the browser went away: wrap the wait
in :func:`until_disconnected`. And a prediction's events proxied to the browser as server-sent
events must stop, and the prediction be cancelled, when the browser leaves: :func:`sse` encodes
the events, and ``predictions.stream`` cancels the prediction when the response is torn down.

FastAPI / Starlette::

    @app.post("/run")
    async def run(body: RunRequest, request: Request) -> dict[str, Any]:
        client = request.app.state.client
        output = await web.until_disconnected(client.run(body.model, body.input), request)
        return {"output": output}

    @app.get("/stream")
    async def stream(prompt: str, request: Request) -> StreamingResponse:
        client = request.app.state.client
        prediction = await client.predictions.create("owner/chat", {"prompt": prompt})
        return StreamingResponse(web.sse(client.predictions.stream(prediction)),
                                 media_type="text/event-stream")

Nothing here imports a web framework: anything with an ``async is_disconnected()`` works.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from typing import Protocol, TypeVar

import anyio

from areplicate._errors import ReplicateError
from areplicate._models import StreamEvent

__all__ = ["Connection", "Disconnected", "encode_event", "sse", "until_disconnected"]

T = TypeVar("T")

#: How often :func:`until_disconnected` asks whether the client is still there, in seconds.
DEFAULT_CHECK_EVERY = 0.2


class Connection(Protocol):
    """What :func:`until_disconnected` needs of a request: Starlette's ``Request`` has it."""

    async def is_disconnected(self) -> bool:
        """True once the HTTP client has gone away."""
        ...


class Disconnected(ReplicateError):
    """The HTTP client went away, so the work done for it was cancelled (remote prediction too).

    Nobody is left to read an answer: let it propagate (the framework logs it) or catch it to
    record the fact.
    """


async def until_disconnected(
    work: Awaitable[T], request: Connection, *, check_every: float = DEFAULT_CHECK_EVERY
) -> T:
    """Await ``work`` while ``request``'s client is connected; cancel it if the client leaves.

    ``work`` is typically ``client.run(...)`` or ``client.predictions.wait(...)``: cancelling it
    cancels the remote prediction (shielded) before :class:`Disconnected` is raised, so nothing
    keeps running for a browser that is gone. Gotcha: Starlette learns of a disconnect by reading
    the request's message stream, so read the body first (FastAPI does, for a body parameter).
    """
    if check_every <= 0:
        raise ValueError(f"check_every must be a positive number of seconds, got {check_every!r}")
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=check_every)
            if done:
                return task.result()
            if await request.is_disconnected():
                break
    finally:
        if not task.done():
            task.cancel()
            # Let its clean-up (the remote cancel) finish, whatever cancels us meanwhile.
            with anyio.CancelScope(shield=True):
                await asyncio.gather(task, return_exceptions=True)
    raise Disconnected("the HTTP client disconnected; its prediction was cancelled")


async def sse(events: AsyncIterable[StreamEvent]) -> AsyncIterator[bytes]:
    """``events`` (a prediction's stream) as ``text/event-stream`` bytes, one chunk per event.

    Passing ``client.predictions.stream(prediction)`` keeps its cancellation: when the web
    response is torn down (the browser left), the prediction is cancelled.
    """
    async with contextlib.AsyncExitStack() as stack:
        close = getattr(events, "aclose", None)
        if close is not None:  # close the stream with us, not whenever it is garbage-collected
            stack.push_async_callback(close)
        async for event in events:
            yield encode_event(event)


def encode_event(event: StreamEvent) -> bytes:
    """One event in the server-sent events wire format (multi-line data split into lines).

    Each line of ``data`` gets its own ``data:`` field, since a newline inside one would end it;
    empty data still sends one empty ``data:`` line, so the browser dispatches the event. The
    ``retry`` field is not passed on: the reconnection delay is the web app's to choose.
    """
    lines = [f"event: {event.event}"]
    if event.id is not None:
        lines.append(f"id: {event.id}")
    lines.extend(f"data: {line}" for line in event.data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()
