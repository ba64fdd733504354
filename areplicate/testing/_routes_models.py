"""Model and version routes, and ``QUERY /models`` (the text/plain body is the query)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from areplicate.testing._model import InvalidField
from areplicate.testing._records import dumps
from areplicate.testing._responses import (
    _SKUS,
    NOT_FOUND,
    OTHER,
    Problem,
    _Handler,
    _invalid,
    _json,
    _page,
)
from areplicate.testing._routes_base import RoutesBase
from areplicate.testing._state import _ModelEntry

_CREATE_FIELDS = {
    "owner": True,
    "name": True,
    "visibility": True,
    "hardware": True,
    "description": False,
    "github_url": False,
    "paper_url": False,
    "license_url": False,
    "cover_image_url": False,
}
_UPDATE_FIELDS = ("description", "readme", "github_url", "paper_url", "weights_url", "license_url")


def _string_fields(
    body: dict[str, Any], allowed: dict[str, bool] | tuple[str, ...]
) -> list[InvalidField]:
    """422 fields for a JSON body of optional or required strings (``allowed``: name -> required)."""
    required = allowed if isinstance(allowed, dict) else dict.fromkeys(allowed, False)
    problems = [
        InvalidField("required", "(root)", f"{name} is required")
        for name, needed in required.items()
        if needed and name not in body
    ]
    for name in sorted(body):
        if name not in required:
            problems.append(
                InvalidField(
                    "additional_property_not_allowed",
                    "(root)",
                    f"Additional property {name} is not allowed",
                )
            )
        elif not isinstance(body[name], str):
            problems.append(InvalidField("invalid_type", name, "Invalid type. Expected: string"))
    return problems


class ModelRoutes(RoutesBase):
    """Models and their versions, and the ``QUERY /models`` search."""

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        """GET /models: every model on one page, most recently updated first."""
        entries = sorted(
            self.fake._models.values(),
            key=lambda e: (e.latest_or_none or e).created_at,
            reverse=True,
        )
        results = b",".join(dumps(self._model_json(e)) for e in entries)
        return _json(_page(results, None, None))

    async def get_model(self, request: web.Request) -> web.StreamResponse:
        """GET /models/{owner}/{name}."""
        return _json(dumps(self._model_json(self._model_entry(request))))

    async def list_versions(self, request: web.Request) -> web.StreamResponse:
        """GET /models/{owner}/{name}/versions: newest first, one page."""
        entry = self._model_entry(request)
        results = b",".join(dumps(v.version_json()) for v in reversed(entry.versions))
        return _json(_page(results, None, None))

    async def get_version(self, request: web.Request) -> web.StreamResponse:
        """GET /models/{owner}/{name}/versions/{id}."""
        entry = self._model_entry(request)
        model = self.fake._versions.get(request.match_info["id"])
        if model is None or model.model != f"{entry.owner}/{entry.name}":
            raise Problem(404, NOT_FOUND)
        return _json(dumps(model.version_json()))

    async def search_models(self, request: web.Request) -> web.StreamResponse:
        """QUERY /models: the text/plain body is the query; one page of matching models."""
        query = (await request.read()).decode("utf-8", errors="replace").strip()
        if not query:
            raise Problem(400, "Expected a text/plain body holding the search query")
        results = b",".join(dumps(self._model_json(e)) for e in self.fake._matching_models(query))
        return _json(_page(results, None, None), headers={"Allow": "GET, POST, QUERY"})

    async def create_model(self, request: web.Request) -> web.StreamResponse:
        """POST /models: a model with no versions yet (any ``owner``: the fake has one account).

        Gotcha: it has no version to run until ``add_model`` of the same name (or a training)
        gives it one.
        """
        body = await self._read_json(request)
        problems = _string_fields(body, _CREATE_FIELDS)
        if not problems and body["visibility"] not in ("public", "private"):
            problems.append(
                InvalidField("enum", "visibility", 'visibility must be "public" or "private"')
            )
        if not problems and body["hardware"] not in _SKUS:
            problems.append(
                InvalidField("enum", "hardware", "hardware must be a SKU from GET /hardware")
            )
        if problems:
            raise _invalid(problems)
        ref = f"{body['owner']}/{body['name']}"
        if ref in self.fake._models:
            raise Problem(409, f"A model named {ref} already exists")
        entry = _ModelEntry(
            body["owner"],
            body["name"],
            official=False,
            description=body.get("description"),
            created_at=dt.datetime.fromtimestamp(self.fake.clock.time(), dt.timezone.utc),
            visibility=body["visibility"],
            hardware=body["hardware"],
            github_url=body.get("github_url"),
            paper_url=body.get("paper_url"),
            license_url=body.get("license_url"),
            cover_image_url=body.get("cover_image_url"),
        )
        self.fake._models[ref] = entry
        return _json(dumps(entry.json()), status=201)

    async def update_model(self, request: web.Request) -> web.StreamResponse:
        """PATCH /models/{owner}/{name}: description, readme and the URLs; the updated model."""
        entry = self._model_entry(request)
        body = await self._read_json(request)
        problems = _string_fields(body, _UPDATE_FIELDS)
        if problems:
            raise _invalid(problems)
        for name in _UPDATE_FIELDS:
            if name in body:
                setattr(entry, name, body[name])
        return _json(dumps(entry.json()))

    async def delete_model(self, request: web.Request) -> web.StreamResponse:
        """DELETE /models/{owner}/{name}: 204, for a private model without versions only."""
        entry = self._model_entry(request)
        if entry.visibility != "private":
            raise Problem(403, "Only private models can be deleted")
        if entry.versions:
            raise Problem(
                409, "This model has versions: delete them first (DELETE …/versions/{id})"
            )
        del self.fake._models[f"{entry.owner}/{entry.name}"]
        return web.Response(status=204)

    async def list_examples(self, request: web.Request) -> web.StreamResponse:
        """GET /models/{owner}/{name}/examples: the predictions marked with ``add_example``."""
        entry = self._model_entry(request)
        preds = self.fake._preds
        results = b",".join(preds[pid].body() for pid in entry.examples if pid in preds)
        return _json(_page(results, None, None))

    async def get_readme(self, request: web.Request) -> web.StreamResponse:
        """GET /models/{owner}/{name}/readme: the Markdown as text/plain, 404 without one."""
        entry = self._model_entry(request)
        if entry.readme is None:
            raise Problem(404, "README not found")
        return web.Response(text=entry.readme, content_type="text/plain")

    async def delete_version(self, request: web.Request) -> web.StreamResponse:
        """DELETE /models/{owner}/{name}/versions/{id}: 202; gone at once (the API takes minutes)."""
        entry = self._model_entry(request)
        model = self.fake._versions.get(request.match_info["id"])
        if model is None or model.model != f"{entry.owner}/{entry.name}":
            raise Problem(404, NOT_FOUND)
        if any(d.model is model for d in self.fake._deployments.values()):
            raise Problem(409, "This version is used by a deployment and cannot be deleted")
        entry.versions.remove(model)
        del self.fake._versions[model.version_id]
        return web.Response(status=202)

    def _model_routes(self) -> list[tuple[str, str, _Handler, str]]:
        return [
            ("GET", "/models", self.list_models, OTHER),
            ("POST", "/models", self.create_model, OTHER),
            ("PATCH", "/models/{owner}/{name}", self.update_model, OTHER),
            ("DELETE", "/models/{owner}/{name}", self.delete_model, OTHER),
            ("GET", "/models/{owner}/{name}/examples", self.list_examples, OTHER),
            ("GET", "/models/{owner}/{name}/readme", self.get_readme, OTHER),
            ("DELETE", "/models/{owner}/{name}/versions/{id}", self.delete_version, OTHER),
            ("QUERY", "/models", self.search_models, OTHER),
            ("GET", "/models/{owner}/{name}", self.get_model, OTHER),
            ("GET", "/models/{owner}/{name}/versions", self.list_versions, OTHER),
            ("GET", "/models/{owner}/{name}/versions/{id}", self.get_version, OTHER),
        ]
