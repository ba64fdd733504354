"""Model and version routes, and ``QUERY /models`` (the text/plain body is the query)."""

from __future__ import annotations

from aiohttp import web

from areplicate.testing._records import dumps
from areplicate.testing._responses import (
    NOT_FOUND,
    OTHER,
    Problem,
    _Handler,
    _json,
    _page,
)
from areplicate.testing._routes_base import RoutesBase


class ModelRoutes(RoutesBase):
    """Models and their versions, and the ``QUERY /models`` search."""

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        """GET /models: every model on one page, most recently updated first."""
        entries = sorted(
            self.fake._models.values(), key=lambda e: e.latest.created_at, reverse=True
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

    def _model_routes(self) -> list[tuple[str, str, _Handler, str]]:
        return [
            ("GET", "/models", self.list_models, OTHER),
            ("QUERY", "/models", self.search_models, OTHER),
            ("GET", "/models/{owner}/{name}", self.get_model, OTHER),
            ("GET", "/models/{owner}/{name}/versions", self.list_versions, OTHER),
            ("GET", "/models/{owner}/{name}/versions/{id}", self.get_version, OTHER),
        ]
