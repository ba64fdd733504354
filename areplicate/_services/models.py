"""Models and versions: get, list, search, create; and each version's input schema, for validation.

See docs/api-notes.md#endpoints (models, versions, ``QUERY /models``, ``GET /search``) and
#listing-and-pagination. Input checks are pure (``_core/schema.py``); this module fetches and caches
the schemas they run on.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

from areplicate._convert import structure
from areplicate._core.refs import ModelRef, parse_ref
from areplicate._core.schema import InputCheck, InputSchema
from areplicate._errors import InputValidationError, InvalidReferenceError, NotFoundError
from areplicate._models import Model, Page, Prediction, SearchResults, Version
from areplicate._services._paging import paginate
from areplicate._session import Session

__all__ = ["LATEST_VERSION_TTL", "Models", "Versions", "model_path"]

logger = logging.getLogger("areplicate")

T = TypeVar("T")
V = TypeVar("V")

#: Seconds an ``owner/name`` → latest-version lookup is reused before the model is fetched again.
LATEST_VERSION_TTL = 60.0
# Distinct (version, warning) pairs logged per Models service before it stops logging new ones.
_MAX_LOGGED_WARNINGS = 256


def model_path(ref: str, *, what: str = "model") -> tuple[ModelRef, str]:
    """Parse ``owner/name`` into its ref and its API path ``models/owner/name``.

    Raises InvalidReferenceError for anything else (a bare version id names no model; a
    ``:version`` suffix belongs to the version calls).
    """
    parsed = parse_ref(ref)
    if parsed.model is None or parsed.version is not None:
        raise InvalidReferenceError(
            f"{what} must be given as 'owner/name', got {ref!r}"
            + ("; for a version use client.models.versions.get" if parsed.version else "")
        )
    return parsed, f"models/{parsed.owner}/{parsed.name}"


class Versions:
    """A model's versions. Reached as ``client.models.versions``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def __repr__(self) -> str:
        return f"<Versions {self._session.config.base_url}>"

    @staticmethod
    def _split(model: str, version_id: str | None) -> tuple[str, str]:
        """The model path and version id from either calling form, ``(ref, None)`` or ``(ref, id)``.

        With one argument it must be ``owner/name:<id>``; with two, ``model`` must be a plain
        ``owner/name`` and ``version_id`` a bare id. A version id in the wrong slot (or a model name
        passed as the id) is refused here, before a request that would only 404.
        """
        if version_id is None:
            parsed = parse_ref(model)
            if parsed.model is None or parsed.version is None:
                raise InvalidReferenceError(
                    f"give the version as get('owner/name', '<version id>') or "
                    f"get('owner/name:<version id>'), got {model!r}"
                )
            return f"models/{parsed.owner}/{parsed.name}", parsed.version
        _, path = model_path(model)
        if parse_ref(version_id).owner is not None:
            raise InvalidReferenceError(
                f"not a version id: {version_id!r} (expected 64 lowercase hex characters)"
            )
        return path, version_id.strip()

    async def get(self, model: str, version_id: str | None = None) -> Version:
        """One version, with its ``openapi_schema``: ``get("owner/name", id)`` or
        ``get("owner/name:id")``. NotFoundError when the model or version does not exist."""
        path, vid = self._split(model, version_id)
        response = await self._session.request("GET", f"{path}/versions/{vid}")
        return structure(response.json(), Version, what=f"version {vid}")

    def pages(self, model: str) -> AsyncIterator[Page[Version]]:
        """Whole pages of a model's versions, newest first."""
        _, path = model_path(model)
        return paginate(self._session, f"{path}/versions", Version, what="version page")

    async def list(self, model: str) -> AsyncIterator[Version]:
        """Every version of ``owner/name``, newest first, following pages as you iterate."""
        async for page in self.pages(model):
            for version in page.results:
                yield version

    async def delete(self, model: str, version_id: str | None = None) -> None:
        """Delete a version of one of your models (the API answers 202 and deletes it later)."""
        path, vid = self._split(model, version_id)
        await self._session.request("DELETE", f"{path}/versions/{vid}")


class Models:
    """Models: get, list, search, create, update, delete; their versions; input schemas.

    Reached as ``client.models``. :meth:`input_schema` and :meth:`validate_input` cache each
    version's compiled schema for the life of the client, so a fan-out fetches it once.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self.versions = Versions(session)
        """The versions of a model: ``client.models.versions.get/list/delete``."""
        self._schemas: dict[str, InputSchema] = {}
        self._latest: dict[str, tuple[float, str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._logged: set[tuple[int, str]] = set()

    def __repr__(self) -> str:
        return f"<Models {self._session.config.base_url}>"

    # -- reading ----------------------------------------------------------------------------------

    async def get(self, model: str) -> Model:
        """The model ``owner/name`` with its ``latest_version`` (None for a model never pushed).

        NotFoundError when there is no such model, or you may not see it.
        """
        _, path = model_path(model)
        response = await self._session.request("GET", path)
        return structure(response.json(), Model, what=f"model {model}")

    def pages(
        self,
        *,
        sort_by: Literal["model_created_at", "latest_version_created_at"] | None = None,
        sort_direction: Literal["asc", "desc"] | None = None,
    ) -> AsyncIterator[Page[Model]]:
        """Whole pages of public models (the API sorts by latest version, newest first)."""
        params: dict[str, str] = {}
        if sort_by is not None:
            params["sort_by"] = sort_by
        if sort_direction is not None:
            params["sort_direction"] = sort_direction
        return paginate(self._session, "models", Model, what="model page", params=params)

    async def list(
        self,
        *,
        sort_by: Literal["model_created_at", "latest_version_created_at"] | None = None,
        sort_direction: Literal["asc", "desc"] | None = None,
    ) -> AsyncIterator[Model]:
        """Every public model, following cursor pages as you iterate (there are many: ``break``)."""
        async for page in self.pages(sort_by=sort_by, sort_direction=sort_direction):
            for model in page.results:
                yield model

    def search_pages(self, query: str) -> AsyncIterator[Page[Model]]:
        """Whole pages of models matching ``query`` (``QUERY /models`` with a text/plain body)."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"search query must be non-empty text, got {query!r}")
        return paginate(
            self._session,
            "models",
            Model,
            what="model search page",
            method="QUERY",
            data=query.encode(),
            headers={"Content-Type": "text/plain"},
        )

    async def search(self, query: str) -> AsyncIterator[Model]:
        """Models matching ``query``, best first, following pages as you iterate.

        Uses the HTTP ``QUERY`` method, which some proxies do not pass on; :meth:`search_all`
        (``GET /search``) is the alternative.
        """
        async for page in self.search_pages(query):
            for model in page.results:
                yield model

    async def search_all(self, query: str, *, limit: int | None = None) -> SearchResults:
        """Models, collections and docs pages matching ``query`` in one call (``GET /search``).

        ``limit`` (1–50, the API's default 20) caps the models. The API marks this endpoint beta:
        its shape may change, which is why the results keep unknown keys in ``extra``.
        """
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"search query must be non-empty text, got {query!r}")
        params = {"query": query}
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50:
                raise ValueError(f"limit must be a whole number from 1 to 50, got {limit!r}")
            params["limit"] = str(limit)
        response = await self._session.request("GET", "search", params=params)
        return structure(response.json(), SearchResults, what="search results")

    async def examples(self, model: str) -> AsyncIterator[Prediction]:
        """The example predictions the model's author picked, following pages."""
        _, path = model_path(model)
        async for page in paginate(
            self._session, f"{path}/examples", Prediction, what="example page"
        ):
            for prediction in page.results:
                yield prediction

    async def readme(self, model: str) -> str:
        """The model's README as Markdown text. NotFoundError when it has none."""
        _, path = model_path(model)
        response = await self._session.request(
            "GET", f"{path}/readme", headers={"Accept": "text/plain"}
        )
        return response.body.decode("utf-8", errors="replace")

    # -- writing ----------------------------------------------------------------------------------

    async def create(
        self,
        model: str,
        *,
        visibility: Literal["public", "private"],
        hardware: str,
        description: str | None = None,
        github_url: str | None = None,
        paper_url: str | None = None,
        license_url: str | None = None,
        cover_image_url: str | None = None,
    ) -> Model:
        """Create the model ``owner/name`` (owner: you or your organization) with no versions yet.

        ``hardware`` is a SKU from ``client.hardware.list()``. Not retried after an ambiguous
        failure: look the model up with :meth:`get` instead of creating it again.
        """
        parsed, _ = model_path(model)
        body: dict[str, Any] = {
            "owner": parsed.owner,
            "name": parsed.name,
            "visibility": visibility,
            "hardware": hardware,
        }
        optional = {
            "description": description,
            "github_url": github_url,
            "paper_url": paper_url,
            "license_url": license_url,
            "cover_image_url": cover_image_url,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        response = await self._session.request("POST", "models", json_body=body, create=True)
        return structure(response.json(), Model, what=f"model {model}")

    async def update(
        self,
        model: str,
        *,
        description: str | None = None,
        readme: str | None = None,
        github_url: str | None = None,
        paper_url: str | None = None,
        weights_url: str | None = None,
        license_url: str | None = None,
    ) -> Model:
        """Change some of a model's details; only the arguments you give are sent.

        ``None`` means "leave as is", so a field cannot be cleared to null this way. Calling it
        with nothing to change raises ValueError rather than sending an empty PATCH.
        """
        _, path = model_path(model)
        fields = {
            "description": description,
            "readme": readme,
            "github_url": github_url,
            "paper_url": paper_url,
            "weights_url": weights_url,
            "license_url": license_url,
        }
        body = {k: v for k, v in fields.items() if v is not None}
        if not body:
            raise ValueError("update() needs at least one field to change")
        response = await self._session.request("PATCH", path, json_body=body)
        return structure(response.json(), Model, what=f"model {model}")

    async def delete(self, model: str) -> None:
        """Delete a model. The API allows it only for private models without versions."""
        _, path = model_path(model)
        await self._session.request("DELETE", path)

    # -- input schemas and validation -------------------------------------------------------------

    async def input_schema(self, ref: str) -> dict[str, Any]:
        """The ``Input`` schema of a version, with ``$ref``s inlined (so enums are visible).

        ``ref`` is ``owner/name`` (its latest version) or ``owner/name:<version>``; a bare version
        id cannot be looked up (the API serves versions under their model). ``{}`` when the version
        publishes no schema. Cached per version for the life of the client; the latest version of
        ``owner/name`` is looked up again after :data:`LATEST_VERSION_TTL` seconds.
        """
        compiled = await self._compiled(ref)
        return copy.deepcopy(compiled.schema)

    async def check_input(self, ref: str, input: Mapping[str, Any]) -> InputCheck:
        """Check ``input`` for ``ref`` and return every error and warning, without raising."""
        compiled = await self._compiled(ref)
        return compiled.check(input)

    async def validate_input(self, ref: str, input: Mapping[str, Any]) -> builtins.list[str]:
        """Raise InputValidationError listing every problem with ``input``; else return warnings.

        Warnings (an input name the model does not have, so the API would ignore it; ``null`` for
        an optional input) do not stop anything. They are returned and also logged once per
        version on the ``areplicate`` logger, since ``predictions.create(validate=True)`` does not
        hand them back.
        """
        compiled = await self._compiled(ref)
        result = compiled.check(input)
        if result.errors:
            raise InputValidationError(ref, result.errors)
        for warning in result.warnings:
            key = (id(compiled), warning)
            if key not in self._logged and len(self._logged) < _MAX_LOGGED_WARNINGS:
                self._logged.add(key)
                logger.warning("input for %s: %s", ref, warning)
        return list(result.warnings)

    async def _compiled(self, ref: str) -> InputSchema:
        """The compiled input schema for ``ref``, fetching the version (and, for ``owner/name``, the
        model first) at most once per client.

        A bare version id is refused: the API serves versions only under their model, so there is
        no URL to fetch its schema from.
        """
        parsed = parse_ref(ref)
        if parsed.model is None:
            raise InvalidReferenceError(
                f"cannot fetch the input schema of a bare version id ({ref!r}): the API serves "
                f"versions under their model, so pass 'owner/name:{parsed.version}'"
            )
        version = parsed.version or await self._latest_version(parsed.model)
        return await self._once(
            f"version:{version}",
            lambda: self._schemas.get(version),
            lambda: self._fetch_schema(parsed.model or "", version),
        )

    async def _fetch_schema(self, model: str, version: str) -> InputSchema:
        """Fetch one version and cache its compiled schema by version id (versions never change)."""
        fetched = await self.versions.get(model, version)
        compiled = InputSchema(fetched.openapi_schema)
        self._schemas[version] = compiled
        return compiled

    async def _latest_version(self, model: str) -> str:
        """The id of ``model``'s latest version, reused for :data:`LATEST_VERSION_TTL` seconds.

        The latest version moves when the owner pushes, so unlike a version's schema it is cached
        only briefly: long enough that a fan-out validating thousands of inputs fetches the model
        once, short enough that a long-lived client soon notices a push. The TTL runs on
        the event loop's clock, so it is immune to wall-clock jumps.
        """
        loop = asyncio.get_running_loop()

        def cached() -> str | None:
            hit = self._latest.get(model)
            return hit[1] if hit is not None and hit[0] > loop.time() else None

        async def fetch() -> str:
            found = await self.get(model)
            latest = found.latest_version
            if latest is None:
                raise NotFoundError(
                    404,
                    "No version",
                    f"model {model} has no published version, so it has no input schema",
                )
            # The model response carries the latest version's schema: no second request.
            if latest.openapi_schema and latest.id not in self._schemas:
                self._schemas[latest.id] = InputSchema(latest.openapi_schema)
            self._latest[model] = (loop.time() + LATEST_VERSION_TTL, latest.id)
            return latest.id

        return await self._once(f"model:{model}", cached, fetch)

    async def _once(
        self, key: str, cached: Callable[[], V | None], fetch: Callable[[], Awaitable[V]]
    ) -> V:
        """``cached()`` if it has a value, else ``fetch()`` by one caller at a time per ``key``.

        Concurrent callers wait for the first; if it fails or is cancelled, the next one tries.
        """
        if (value := cached()) is not None:
            return value
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if (value := cached()) is not None:
                return value
            return await fetch()
