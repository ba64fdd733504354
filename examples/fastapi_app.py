"""A FastAPI app that starts Replicate predictions and receives their webhooks.

One ``areplicate.Client`` lives for the whole app (opened and closed by the lifespan): every request
shares its connection pool and rate budget. ``POST /predictions`` starts a prediction whose webhook
points back at this app; ``POST /webhooks/replicate`` verifies each delivery (400 if it does not
check out) and records the latest state; ``GET /predictions/{id}`` shows what was received. With
``OUTPUT_DIR`` set, the file outputs of every succeeded prediction are saved there in the background
(Replicate deletes them an hour after the prediction ends).

Environment: ``REPLICATE_API_TOKEN`` (and ``REPLICATE_BASE_URL`` for a proxy or the fake server),
``PUBLIC_URL`` (where Replicate can reach this app; https in production), optionally
``REPLICATE_WEBHOOK_SECRET`` (else fetched with ``client.webhooks.default_secret()``) and
``OUTPUT_DIR``.

Try it offline against the fake server::

    python -m areplicate.testing --port 8000 &
    export REPLICATE_API_TOKEN=r8_fake REPLICATE_BASE_URL=http://127.0.0.1:8000/v1
    export PUBLIC_URL=http://127.0.0.1:9000 OUTPUT_DIR=outputs
    uvicorn examples.fastapi_app:app --port 9000 &
    curl -s localhost:9000/predictions -H 'content-type: application/json' \\
         -d '{"model": "demo/pixel", "input": {"prompt": "a llama"}}'
    curl -s localhost:9000/predictions/<id>
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import BackgroundTasks, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

import areplicate
from areplicate import webhooks

logger = logging.getLogger("fastapi_app")

WEBHOOK_PATH = "/webhooks/replicate"


class StartRequest(BaseModel):
    """What to run: ``owner/name`` (official models) or ``owner/name:<version>``, and its input."""

    model: str
    input: dict[str, Any] = Field(default_factory=dict)


class Deliveries:
    """What the webhook receiver has seen. Deliveries can repeat (the final one is retried) and
    arrive out of order, so: each ``webhook-id`` counts once, and a finished state is never
    replaced by an earlier, unfinished one."""

    def __init__(self) -> None:
        self.webhook_ids: set[str] = set()
        self.latest: dict[str, areplicate.Prediction] = {}
        self.saved: dict[str, list[str]] = {}

    def record(self, webhook_id: str, prediction: areplicate.Prediction) -> bool:
        """Remember a delivery; False when it is a duplicate or older than what we have."""
        if webhook_id in self.webhook_ids:
            return False
        self.webhook_ids.add(webhook_id)
        known = self.latest.get(prediction.id)
        if known is not None and known.is_terminal and not prediction.is_terminal:
            return False
        self.latest[prediction.id] = prediction
        return True


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the one Client for the app's lifetime; fetch the webhook secret once."""
    async with areplicate.Client() as client:  # token and base URL from the environment
        app.state.client = client
        app.state.public_url = os.environ.get("PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
        app.state.secret = (
            os.environ.get("REPLICATE_WEBHOOK_SECRET") or await client.webhooks.default_secret()
        )
        app.state.output_dir = os.environ.get("OUTPUT_DIR") or None
        app.state.deliveries = Deliveries()
        yield


app = FastAPI(title="areplicate webhook example", lifespan=lifespan)


@app.post("/predictions", status_code=201)
async def start_prediction(body: StartRequest, request: Request) -> dict[str, Any]:
    """Start a prediction; Replicate calls us back when it starts and when it completes."""
    state = request.app.state
    try:
        prediction = await state.client.predictions.create(
            body.model,
            body.input,
            webhook=state.public_url + WEBHOOK_PATH,
            webhook_events_filter=["start", "completed"],
        )
    except (areplicate.InvalidRequestError, areplicate.NotFoundError, ValueError) as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return {"id": prediction.id, "status": prediction.status}


@app.post(WEBHOOK_PATH)
async def receive_webhook(request: Request, background: BackgroundTasks) -> dict[str, bool]:
    """Verify a delivery (raw body!), record it, answer fast; slow work goes to the background."""
    state = request.app.state
    body = await request.body()
    try:
        webhooks.verify(request.headers, body, state.secret)
        prediction = webhooks.parse(body)
    except areplicate.WebhookVerificationError as exc:
        logger.warning("rejected a webhook: %s", exc)
        raise HTTPException(status_code=400, detail=str(exc)) from None
    fresh = state.deliveries.record(request.headers["webhook-id"], prediction)
    if fresh and state.output_dir and prediction.status == areplicate.Status.SUCCEEDED:
        background.add_task(save_files, request.app, prediction)
    return {"ok": True}


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
