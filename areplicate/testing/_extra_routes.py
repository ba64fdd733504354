"""Routes the core fake leaves out: model search, collections, deployment CRUD and trainings.

Wire them into the app with :func:`extra_table` beside ``Api.table()`` (see ``build_app``). They
follow the same rules as every other route: counted under a key like ``"GET /v1/collections"``,
token required, problem+json errors (docs/api-notes.md#endpoints, #errors).

- ``QUERY /models`` (text/plain body) and ``GET /search?query=&limit=`` match the query,
  case-insensitively, against each model's ``owner/name`` and description.
- Collections come from :func:`add_collection`; none are registered by default.
- Deployments created over HTTP belong to the fake account (``fake-user``); their hardware and
  instance counts are remembered and echoed back.
- Trainings do not run the model. Gotcha: they advance one step per ``GET /trainings/{id}``
  (``starting`` → ``processing`` → ``succeeded``), so a client's poll loop sees every state without
  timers; on success the destination model gains a new version running the trained model's code.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterable
from typing import Any

import attrs
from aiohttp import web

from areplicate._core.refs import parse_ref
from areplicate._errors import InvalidReferenceError
from areplicate.testing._fake import FakeDeployment, FakeReplicate, _ModelEntry
from areplicate.testing._http import (
    _ACCOUNT,
    _HARDWARE,
    CREATE,
    NOT_FOUND,
    OTHER,
    Api,
    Problem,
    _Handler,
    _json,
    _page,
)
from areplicate.testing._model import FakeModel
from areplicate.testing._records import dumps, new_id, timestamp

__all__ = ["add_collection", "extra_table"]

_SKUS = frozenset(h["sku"] for h in _HARDWARE)
_BAD_DESTINATION = "The specified training destination does not exist"


@attrs.define
class _Training:
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


@attrs.define
class _State:
    collections: dict[str, dict[str, Any]] = attrs.Factory(dict)
    trainings: dict[str, _Training] = attrs.Factory(dict)
    configs: dict[str, dict[str, Any]] = attrs.Factory(dict)


_STATES: weakref.WeakKeyDictionary[FakeReplicate, _State] = weakref.WeakKeyDictionary()


def _state(fake: FakeReplicate) -> _State:
    state = _STATES.get(fake)
    if state is None:
        state = _STATES[fake] = _State()
    return state


def add_collection(
    fake: FakeReplicate,
    slug: str,
    *,
    name: str | None = None,
    description: str | None = None,
    models: Iterable[str] = (),
) -> None:
    """Register a collection ``slug`` on ``fake`` holding the given ``owner/name`` models.

    Gotcha: the models are looked up when the collection is requested, so add them to the fake
    (before or after); names it does not know are left out of ``GET /collections/{slug}``.
    """
    _state(fake).collections[slug] = {
        "name": name or slug.replace("-", " ").capitalize(),
        "slug": slug,
        "description": description or "",
        "models": list(models),
    }


def _matches(entry: _ModelEntry, query: str) -> bool:
    text = f"{entry.owner}/{entry.name} {entry.description or ''}".casefold()
    return all(word in text for word in query.casefold().split())


class _Extra:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.fake = api.fake
        self.state = _state(api.fake)

    def _entries(self, query: str) -> list[_ModelEntry]:
        return [e for e in self.fake._models.values() if _matches(e, query)]

    # -- search -------------------------------------------------------------------------------

    async def search_models(self, request: web.Request) -> web.StreamResponse:
        """QUERY /models: the text/plain body is the query; one page of matching models."""
        query = (await request.read()).decode("utf-8", errors="replace").strip()
        if not query:
            raise Problem(400, "Expected a text/plain body holding the search query")
        results = b",".join(dumps(self.api._model_json(e)) for e in self._entries(query))
        return _json(_page(results, None, None), headers={"Allow": "GET, POST, QUERY"})

    async def search(self, request: web.Request) -> web.StreamResponse:
        """GET /search?query=…&limit=1..50: models with metadata, collections, no docs pages."""
        query = request.query.get("query", "").strip()
        if not query:
            raise Problem(400, 'Query parameter "query" is required')
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 50:
            raise Problem(400, "limit must be an integer from 1 to 50")
        entries = self._entries(query)[:limit]
        models = [
            {
                "model": self.api._model_json(e),
                "metadata": {
                    "generated_description": e.description or f"The {e.name} model by {e.owner}.",
                    "tags": [],
                    "score": round(1.0 / (rank + 1), 6),
                },
            }
            for rank, e in enumerate(entries)
        ]
        found = {f"{e.owner}/{e.name}" for e in entries}
        collections = [
            c for c in self.state.collections.values() if found.intersection(c["models"])
        ]
        body = {"query": query, "models": models, "collections": collections, "pages": []}
        return _json(dumps(body))

    # -- collections --------------------------------------------------------------------------

    async def list_collections(self, request: web.Request) -> web.StreamResponse:
        """GET /collections: every registered collection on one page (without models)."""
        results = b",".join(
            dumps({k: c[k] for k in ("name", "slug", "description")})
            for c in self.state.collections.values()
        )
        return _json(_page(results, None, None))

    async def get_collection(self, request: web.Request) -> web.StreamResponse:
        """GET /collections/{slug}: the collection with its models."""
        collection = self.state.collections.get(request.match_info["slug"])
        if collection is None:
            raise Problem(404, NOT_FOUND)
        models = [
            self.api._model_json(self.fake._models[m])
            for m in collection["models"]
            if m in self.fake._models
        ]
        body = {
            "name": collection["name"],
            "slug": collection["slug"],
            "description": collection["description"],
            "full_description": None,
            "models": models,
        }
        return _json(dumps(body))

    # -- deployments --------------------------------------------------------------------------

    def _deployment_json(self, deployment: FakeDeployment) -> dict[str, Any]:
        config = self.state.configs.get(
            deployment.ref, {"hardware": "cpu", "min_instances": 0, "max_instances": 1, "number": 1}
        )
        return {
            "owner": deployment.owner,
            "name": deployment.name,
            "current_release": {
                "number": config["number"],
                "model": deployment.model.model,
                "version": deployment.model.version_id,
                "created_at": timestamp(deployment.created_at.timestamp()),
                "created_by": {"type": _ACCOUNT["type"], "username": _ACCOUNT["username"]},
                "configuration": {
                    k: config[k] for k in ("hardware", "min_instances", "max_instances")
                },
            },
        }

    def _deployment(self, request: web.Request) -> FakeDeployment:
        name = f"{request.match_info['owner']}/{request.match_info['name']}"
        deployment = self.fake._deployments.get(name)
        if deployment is None:
            raise Problem(404, NOT_FOUND)
        return deployment

    @staticmethod
    def _instances(body: dict[str, Any], key: str, maximum: int) -> int | None:
        value = body.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
            raise Problem(400, f"{key} must be an integer from 0 to {maximum}")
        return value

    def _hardware(self, body: dict[str, Any]) -> str | None:
        sku = body.get("hardware")
        if sku is not None and sku not in _SKUS:
            raise Problem(400, f"Unknown hardware {sku!r}; see GET /hardware")
        return sku if isinstance(sku, str) else None

    def _version(self, model: str, version: Any) -> FakeModel:
        target = self.fake._versions.get(version) if isinstance(version, str) else None
        if target is None or target.model != model:
            raise Problem(400, f"Version {version!r} does not belong to model {model!r}")
        return target

    async def list_deployments(self, request: web.Request) -> web.StreamResponse:
        """GET /deployments: every deployment on one page."""
        results = b",".join(
            dumps(self._deployment_json(d)) for d in self.fake._deployments.values()
        )
        return _json(_page(results, None, None))

    async def create_deployment(self, request: web.Request) -> web.StreamResponse:
        """POST /deployments: name, model, version, hardware, min_instances, max_instances."""
        body = await self.api._read_json(request)
        missing = [
            k
            for k in ("name", "model", "version", "hardware", "min_instances", "max_instances")
            if k not in body
        ]
        if missing:
            raise Problem(400, f"Missing required field(s): {', '.join(missing)}")
        name, model = body["name"], body["model"]
        if (
            not isinstance(name, str)
            or not isinstance(model, str)
            or model not in self.fake._models
        ):
            raise Problem(400, f"Unknown model {model!r}")
        target = self._version(model, body["version"])
        ref = f"{_ACCOUNT['username']}/{name}"
        if ref in self.fake._deployments:
            raise Problem(409, f"A deployment named {ref} already exists")
        try:
            deployment = self.fake.add_deployment(ref, target)
        except ValueError as exc:
            raise Problem(400, str(exc)) from None
        self.state.configs[ref] = {
            "hardware": self._hardware(body),
            "min_instances": self._instances(body, "min_instances", 5),
            "max_instances": self._instances(body, "max_instances", 20),
            "number": 1,
        }
        return _json(dumps(self._deployment_json(deployment)))

    async def update_deployment(self, request: web.Request) -> web.StreamResponse:
        """PATCH /deployments/{owner}/{name}: a new release with the fields given."""
        deployment = self._deployment(request)
        body = await self.api._read_json(request)
        config = dict(
            self.state.configs.get(
                deployment.ref,
                {"hardware": "cpu", "min_instances": 0, "max_instances": 1, "number": 1},
            )
        )
        if "version" in body:
            target = self._version(deployment.model.model, body["version"])
            deployment = self.fake.add_deployment(deployment.ref, target)
        if (sku := self._hardware(body)) is not None:
            config["hardware"] = sku
        for key, maximum in (("min_instances", 5), ("max_instances", 20)):
            if (value := self._instances(body, key, maximum)) is not None:
                config[key] = value
        config["number"] += 1
        self.state.configs[deployment.ref] = config
        return _json(dumps(self._deployment_json(deployment)))

    async def delete_deployment(self, request: web.Request) -> web.StreamResponse:
        """DELETE /deployments/{owner}/{name}: 204."""
        deployment = self._deployment(request)
        del self.fake._deployments[deployment.ref]
        self.state.configs.pop(deployment.ref, None)
        return web.Response(status=204)

    # -- trainings ----------------------------------------------------------------------------

    def _training(self, request: web.Request) -> _Training:
        training = self.state.trainings.get(request.match_info["id"])
        if training is None:
            raise Problem(404, NOT_FOUND)
        return training

    def _respond(self, training: _Training, status: int = 200) -> web.Response:
        return _json(dumps(training.json(self.fake._public_base())), status=status)

    async def create_training(self, request: web.Request) -> web.StreamResponse:
        """POST /models/{owner}/{name}/versions/{id}/trainings: ``destination`` and ``input``."""
        entry = self.api._model_entry(request)
        base = self.fake._versions.get(request.match_info["id"])
        if base is None or base.model != f"{entry.owner}/{entry.name}":
            raise Problem(404, NOT_FOUND)
        body = await self.api._read_json(request)
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
            time.time(),
            webhook=webhook if isinstance(webhook, str) else None,
        )
        self.state.trainings[training.id] = training
        return self._respond(training, status=201)

    async def list_trainings(self, request: web.Request) -> web.StreamResponse:
        """GET /trainings: newest first, one page."""
        base = self.fake._public_base()
        results = b",".join(
            dumps(t.json(base)) for t in reversed(list(self.state.trainings.values()))
        )
        return _json(_page(results, None, None))

    async def get_training(self, request: web.Request) -> web.StreamResponse:
        """GET /trainings/{id}: also moves the training one step along (see the module doc)."""
        training = self._training(request)
        now = time.time()
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
            training.status, training.completed_at = "canceled", time.time()
        return self._respond(training)


def extra_table(api: Api) -> list[tuple[str, str, _Handler, str]]:
    """(method, path under the prefix, handler, class) for the extra routes, as ``Api.table``."""
    extra = _Extra(api)
    return [
        ("QUERY", "/models", extra.search_models, OTHER),
        ("GET", "/search", extra.search, OTHER),
        ("GET", "/collections", extra.list_collections, OTHER),
        ("GET", "/collections/{slug}", extra.get_collection, OTHER),
        ("GET", "/deployments", extra.list_deployments, OTHER),
        ("POST", "/deployments", extra.create_deployment, OTHER),
        ("PATCH", "/deployments/{owner}/{name}", extra.update_deployment, OTHER),
        ("DELETE", "/deployments/{owner}/{name}", extra.delete_deployment, OTHER),
        (
            "POST",
            "/models/{owner}/{name}/versions/{id}/trainings",
            extra.create_training,
            CREATE,
        ),
        ("GET", "/trainings", extra.list_trainings, OTHER),
        ("GET", "/trainings/{id}", extra.get_training, OTHER),
        ("POST", "/trainings/{id}/cancel", extra.cancel_training, OTHER),
    ]
