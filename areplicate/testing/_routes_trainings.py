"""Training routes.

Trainings do not run the model. Gotcha: they advance one step per ``GET /trainings/{id}``
(``starting`` → ``processing`` → ``succeeded``), so a client's poll loop sees every state without
timers; on success the destination model gains a new version running the trained model's code.
"""

from __future__ import annotations

from aiohttp import web

from areplicate._core.refs import parse_ref
from areplicate._errors import InvalidReferenceError
from areplicate.testing._records import dumps, new_id
from areplicate.testing._responses import (
    _BAD_DESTINATION,
    CREATE,
    NOT_FOUND,
    OTHER,
    Problem,
    _Handler,
    _json,
    _page,
)
from areplicate.testing._routes_base import RoutesBase
from areplicate.testing._state import _Training


class TrainingRoutes(RoutesBase):
    """Trainings: create, list, get (one step per GET), cancel."""

    def _training(self, request: web.Request) -> _Training:
        training = self.fake._trainings.get(request.match_info["id"])
        if training is None:
            raise Problem(404, NOT_FOUND)
        return training

    def _respond(self, training: _Training, status: int = 200) -> web.Response:
        return _json(dumps(training.json(self.fake._public_base())), status=status)

    async def create_training(self, request: web.Request) -> web.StreamResponse:
        """POST /models/{owner}/{name}/versions/{id}/trainings: ``destination`` and ``input``."""
        entry = self._model_entry(request)
        base = self.fake._versions.get(request.match_info["id"])
        if base is None or base.model != f"{entry.owner}/{entry.name}":
            raise Problem(404, NOT_FOUND)
        body = await self._read_json(request)
        destination = body.get("destination")
        try:
            ok = isinstance(destination, str) and parse_ref(destination).version is None
        except InvalidReferenceError:
            ok = False
        if not ok or destination not in self.fake._models:
            raise Problem(404, _BAD_DESTINATION)
        inp = body.get("input", {})
        if not isinstance(inp, dict):
            raise Problem(400, "input must be a JSON object")
        webhook = body.get("webhook")
        training = _Training(
            new_id(),
            base,
            str(destination),
            inp,
            self.fake.clock.time(),
            webhook=webhook if isinstance(webhook, str) else None,
        )
        self.fake._trainings[training.id] = training
        return self._respond(training, status=201)

    async def list_trainings(self, request: web.Request) -> web.StreamResponse:
        """GET /trainings: newest first, one page."""
        base = self.fake._public_base()
        results = b",".join(
            dumps(t.json(base)) for t in reversed(list(self.fake._trainings.values()))
        )
        return _json(_page(results, None, None))

    async def get_training(self, request: web.Request) -> web.StreamResponse:
        """GET /trainings/{id}: also moves the training one step along (see the module doc)."""
        training = self._training(request)
        now = self.fake.clock.time()
        if training.status == "starting":
            training.status, training.started_at = "processing", now
        elif training.status == "processing":
            self._succeed(training, now)
        return self._respond(training)

    def _succeed(self, training: _Training, now: float) -> None:
        schemas = training.base.openapi_schema["components"]["schemas"]
        new = self.fake.add_model(
            training.destination,
            training.base.fn,
            schemas["Input"],
            output_schema=schemas["Output"],
            components={k: v for k, v in schemas.items() if k not in ("Input", "Output")},
            official=self.fake._models[training.destination].official,
        )
        training.status, training.completed_at = "succeeded", now
        training.output = {
            "version": new.ref,
            "weights": f"{self.fake._public_base()}/files/weights-{training.id}.tar",
        }

    async def cancel_training(self, request: web.Request) -> web.StreamResponse:
        """POST /trainings/{id}/cancel: canceled unless it already ended."""
        training = self._training(request)
        if training.status in ("starting", "processing"):
            training.status, training.completed_at = "canceled", self.fake.clock.time()
        return self._respond(training)

    def _training_routes(self) -> list[tuple[str, str, _Handler, str]]:
        return [
            (
                "POST",
                "/models/{owner}/{name}/versions/{id}/trainings",
                self.create_training,
                CREATE,
            ),
            ("GET", "/trainings", self.list_trainings, OTHER),
            ("GET", "/trainings/{id}", self.get_training, OTHER),
            ("POST", "/trainings/{id}/cancel", self.cancel_training, OTHER),
        ]
