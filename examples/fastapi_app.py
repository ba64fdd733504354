"""A FastAPI app that runs Replicate predictions for its users, without polling.

One ``areplicate.Client`` lives for the whole app (opened and closed by the lifespan): every request
shares its connection pool and request budget. It is given a webhook ``Receiver``, so each create
carries this app's webhook URL and each wait ends when the verified delivery arrives; a slow
fallback poll covers a lost delivery.

- ``POST /run`` runs a model and answers with its output. If the HTTP client disconnects first, the
  wait is cancelled and so is the prediction (``web.until_disconnected``).
- ``GET /stream?prompt=...`` proxies a language model's tokens to the browser as server-sent
  events; a browser that goes away cancels the prediction.
- ``POST /predictions`` starts a prediction and returns at once (store and forward): its deliveries
  nobody awaits are recorded by the receiver's ``on_unclaimed`` callback, ``GET /predictions/{id}``
  shows the latest, and with ``OUTPUT_DIR`` set the file outputs of each succeeded one are saved
  there in the background (Replicate deletes them an hour after the prediction ends).
- ``POST /webhooks/replicate`` is the one line the receiver needs: ``receiver.handle(...)``.

Many workers (``uvicorn --workers 4``, gunicorn): a delivery lands on any worker. Set
``AREPLICATE_REDIS_URL`` (the shared request budget, see the README's "Running many workers") and
the receiver relays each delivery to the worker whose wait it ends.

Environment: ``REPLICATE_API_TOKEN`` (and ``REPLICATE_BASE_URL`` for a proxy or the fake server),
``PUBLIC_URL`` (where Replicate can reach this app; https in production), optionally
``REPLICATE_WEBHOOK_SECRET`` (else fetched once with ``client.webhooks.default_secret()``),
``OUTPUT_DIR``, ``AREPLICATE_REDIS_URL`` and ``CHAT_MODEL`` (for ``/stream``).

Try it offline against the fake server::

    python -m areplicate.testing --port 8000 &
    export REPLICATE_API_TOKEN=r8_fake REPLICATE_BASE_URL=http://127.0.0.1:8000/v1
    export PUBLIC_URL=http://127.0.0.1:9000 OUTPUT_DIR=outputs
    uvicorn examples.fastapi_app:app --port 9000 &
    curl -s localhost:9000/run -H 'content-type: application/json' \\
         -d '{"model": "demo/pixel", "input": {"prompt": "a llama"}}'
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

import areplicate
from areplicate import web
from areplicate.webhooks import Receiver

logger = logging.getLogger("fastapi_app")

WEBHOOK_PATH = "/webhooks/replicate"


class RunRequest(BaseModel):
    """What to run: ``owner/name`` (official models) or ``owner/name:<version>``, and its input."""

    model: str
    input: dict[str, Any] = Field(default_factory=dict)


class Deliveries:
    """What the receiver handed over for predictions nobody in this process awaits. The receiver
    already acts once per ``webhook-id``; deliveries can still arrive out of order, so a finished
    state is never replaced by an earlier, unfinished one."""

    def __init__(self) -> None:
        self.latest: dict[str, areplicate.Prediction] = {}
        self.saved: dict[str, list[str]] = {}

    def record(self, prediction: areplicate.Prediction) -> bool:
        """Remember a delivery; False when it is older than what we have."""
        known = self.latest.get(prediction.id)
        if known is not None and known.is_terminal and not prediction.is_terminal:
            return False
        self.latest[prediction.id] = prediction
        return True


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the one Client (with its webhook receiver) for the app's lifetime."""
    public_url = os.environ.get("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    deliveries = Deliveries()
    output_dir = os.environ.get("OUTPUT_DIR") or None

    saving: set[asyncio.Task[None]] = set()

    async def unclaimed(prediction: areplicate.Prediction) -> None:
        if deliveries.record(prediction) and output_dir and prediction.status == "succeeded":
            # Answer the webhook at once; the download runs in the background.
            task = asyncio.create_task(save_files(app, prediction))
            saving.add(task)
            task.add_done_callback(saving.discard)

    receiver = Receiver(
        public_url + WEBHOOK_PATH,
        secret=os.environ.get("REPLICATE_WEBHOOK_SECRET") or None,
        events=["start", "completed"],
        on_unclaimed=unclaimed,
    )
    async with areplicate.Client(webhooks=receiver) as client:  # token, base URL, Redis: env
        app.state.client = client
        app.state.receiver = receiver
        app.state.deliveries = deliveries
        app.state.output_dir = output_dir
        yield


app = FastAPI(title="areplicate webhook example", lifespan=lifespan)


@app.post("/run")
async def run(body: RunRequest, request: Request) -> dict[str, Any]:
    """Run a model and answer with its output; a client that leaves cancels the prediction."""
    client: areplicate.Client = request.app.state.client
    try:
        output = await web.until_disconnected(
            client.run(body.model, body.input, hold=False), request
        )
    except (areplicate.InvalidRequestError, areplicate.NotFoundError, ValueError) as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    except areplicate.PredictionFailedError as exc:
        raise HTTPException(status_code=502, detail=str(exc)) from None
    return {"output": output}


@app.get("/stream")
async def stream(prompt: str, request: Request) -> StreamingResponse:
    """A language model's tokens as server-sent events; a browser that leaves cancels it."""
    client: areplicate.Client = request.app.state.client
    model = os.environ.get("CHAT_MODEL", "demo/chat")
    prediction = await client.predictions.create(model, {"prompt": prompt})
    events = client.predictions.stream(prediction)  # cancel_on_exit=True: torn down = canceled
    return StreamingResponse(web.sse(events), media_type="text/event-stream")


@app.post("/predictions", status_code=201)
async def start_prediction(body: RunRequest, request: Request) -> dict[str, Any]:
    """Start a prediction and return at once; its webhooks reach ``Deliveries``."""
    client: areplicate.Client = request.app.state.client
    try:
        prediction = await client.predictions.create(body.model, body.input)
    except (areplicate.InvalidRequestError, areplicate.NotFoundError, ValueError) as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return {"id": prediction.id, "status": prediction.status}


@app.post(WEBHOOK_PATH)
async def receive_webhook(request: Request) -> Response:
    """Every delivery goes to the receiver: it verifies (400 if it does not check out), acts once
    per delivery, ends the waits it belongs to, and says what to answer."""
    receiver: Receiver = request.app.state.receiver
    reply = await receiver.handle(request.headers, await request.body())  # the raw body
    return Response(reply.body, status_code=reply.status, media_type="text/plain")


async def save_files(app: FastAPI, prediction: areplicate.Prediction) -> None:
    """Download the prediction's file outputs before Replicate deletes them."""
    state = app.state
    try:
        paths = await areplicate.save_outputs(state.client, [prediction], state.output_dir)
    except areplicate.ReplicateError as exc:
        logger.warning("could not save the outputs of %s: %s", prediction.id, exc)
        return
    state.deliveries.saved[prediction.id] = [str(path) for path in paths]


@app.get("/predictions/{prediction_id}")
async def show_prediction(prediction_id: str, request: Request) -> dict[str, Any]:
    """The latest state a webhook brought us (404 until the first delivery)."""
    deliveries: Deliveries = request.app.state.deliveries
    prediction = deliveries.latest.get(prediction_id)
    if prediction is None:
        raise HTTPException(status_code=404, detail="no webhook received for this prediction yet")
    return {
        "id": prediction.id,
        "status": prediction.status,
        "output": prediction.output,
        "error": prediction.error,
        "saved": deliveries.saved.get(prediction_id, []),
    }
