"""Collections, search, hardware and account routes.

``GET /search?query=&limit=`` matches the query, case-insensitively, against each model's
``owner/name`` and description. Collections come from ``FakeReplicate.add_collection``.
"""

from __future__ import annotations

from aiohttp import web

from areplicate.testing._records import dumps
from areplicate.testing._responses import (
    _ACCOUNT,
    _HARDWARE,
    NOT_FOUND,
    OTHER,
    Problem,
    _Handler,
    _json,
    _page,
)
from areplicate.testing._routes_base import RoutesBase


class CatalogRoutes(RoutesBase):
    """Collections, ``GET /search``, hardware and the account."""

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
        entries = self.fake._matching_models(query)[:limit]
        models = [
            {
                "model": self._model_json(e),
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
            c for c in self.fake._collections.values() if found.intersection(c["models"])
        ]
        body = {"query": query, "models": models, "collections": collections, "pages": []}
        return _json(dumps(body))

    # -- collections --------------------------------------------------------------------------

    async def list_collections(self, request: web.Request) -> web.StreamResponse:
        """GET /collections: every registered collection on one page (without models)."""
        results = b",".join(
            dumps({k: c[k] for k in ("name", "slug", "description")})
            for c in self.fake._collections.values()
        )
        return _json(_page(results, None, None))

    async def get_collection(self, request: web.Request) -> web.StreamResponse:
        """GET /collections/{slug}: the collection with its models."""
        collection = self.fake._collections.get(request.match_info["slug"])
        if collection is None:
            raise Problem(404, NOT_FOUND)
        models = [
            self._model_json(self.fake._models[m])
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

    async def account(self, request: web.Request) -> web.StreamResponse:
        """GET /account."""
        return _json(dumps(_ACCOUNT))

    async def hardware(self, request: web.Request) -> web.StreamResponse:
        """GET /hardware: a bare array."""
        return _json(dumps(_HARDWARE))

    def _catalog_routes(self) -> list[tuple[str, str, _Handler, str]]:
        return [
            ("GET", "/search", self.search, OTHER),
            ("GET", "/collections", self.list_collections, OTHER),
            ("GET", "/collections/{slug}", self.get_collection, OTHER),
            ("GET", "/account", self.account, OTHER),
            ("GET", "/hardware", self.hardware, OTHER),
        ]
