"""Deployments: a fixed model version on chosen hardware, and predictions made through one.

See docs/api-notes.md#endpoints (the deployments rows and ``POST /deployments/{o}/{n}/predictions``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from areplicate._convert import structure, structure_created
from areplicate._core.refs import ModelRef, parse_ref
from areplicate._errors import InvalidReferenceError, UnexpectedResponseError
from areplicate._models import Deployment, Page, Prediction
from areplicate._options import Lifetime, RunOptions
from areplicate._services._paging import paginate
from areplicate._services.models import LATEST_VERSION_TTL, Models
from areplicate._session import Session

if TYPE_CHECKING:
    from areplicate._services.predictions import Predictions

__all__ = ["DeploymentPredictions", "Deployments"]


def _deployment_path(deployment: str) -> tuple[ModelRef, str]:
    """The parsed ``owner/name`` of a deployment and its API path; InvalidReferenceError otherwise.

    A ``:version`` is refused with its own hint: a deployment pins its version server-side, so
    a caller naming one has mistaken a deployment for a model.
    """
    parsed = parse_ref(deployment) if isinstance(deployment, str) else None
    if parsed is None or parsed.model is None or parsed.version is not None:
        raise InvalidReferenceError(
            f"a deployment is named 'owner/name', got {deployment!r}"
            + (
                ""
                if parsed is None or parsed.version is None
                else " (deployments have no :version)"
            )
        )
    return parsed, f"deployments/{parsed.owner}/{parsed.name}"


def _release_ref(deployment: Deployment) -> ModelRef:
    """``owner/name:<version>`` of the deployment's current release.

    Raises UnexpectedResponseError (labelled 200) when the API's answer names no release: only
    validation needs it, and a deployment without one cannot have its input checked.
    """
    release = deployment.current_release
    model, version = (release.model, release.version) if release else ("", "")
    if not model or not version:
        raise UnexpectedResponseError(
            200,
            "Unexpected response",
            f"deployment {deployment.owner}/{deployment.name} names no current release "
            "model and version, so its input cannot be validated",
        )
    return parse_ref(f"{model}:{version}")


class DeploymentPredictions:
    """Predictions made through a deployment. Reached as ``client.deployments.predictions``.

    Only ``create`` lives here: the result is an ordinary prediction, so waiting, streaming and
    cancelling go through ``client.predictions``.
    """

    def __init__(
        self, deployments: Deployments, models: Models, predictions: Callable[[], Predictions]
    ) -> None:
        """Wire to the deployments (for the release cache) and models (for schemas) of one client.

        ``predictions`` is a callable, not the service, because the client builds the predictions
        service after this one (and may swap it for a webhook-aware one).
        """
        self._deployments = deployments
        self._models = models
        self._predictions = predictions

    def __repr__(self) -> str:
        """A fixed label: there is nothing of its own to show (and never the token)."""
        return "<DeploymentPredictions>"

    async def create(
        self,
        deployment: str,
        input: Mapping[str, Any],
        *,
        hold: bool | int = False,
        lifetime: Lifetime | None = None,
        webhook: str | None = None,
        webhook_events_filter: Sequence[str] | None = None,
        validate: bool = False,
    ) -> Prediction:
        """Start a prediction on the deployment ``owner/name``; the options match
        ``client.predictions.create`` (then use ``client.predictions.wait`` on the result).

        ``validate=True`` checks the input against the schema of the deployment's current release
        before sending: that costs one ``GET /deployments/...`` (reused for a minute) plus the
        version's schema (cached), and raises InputValidationError with every problem.
        """
        options = RunOptions(
            hold=hold,
            lifetime=lifetime,
            webhook=webhook,
            webhook_events_filter=webhook_events_filter,
            validate=validate,
        )
        parsed, path = _deployment_path(deployment)
        match: ModelRef | None = None
        if validate:
            match = await self._deployments._current_ref(deployment)
            await self._models.validate_input(str(match), input)
        return await self._predictions()._create_at(
            f"{path}/predictions",
            {},
            input,
            options,
            target=f"deployment {parsed.model}",
            model=None if match is None else match.model,
            version=None if match is None else match.version,
            deployment=parsed.model,
        )


class Deployments:
    """Your deployments: get, list, create, update, delete, and ``predictions.create``.

    Reached as ``client.deployments``.
    """

    def __init__(
        self, session: Session, models: Models, predictions: Callable[[], Predictions]
    ) -> None:
        """Wire the service to a session; ``_releases`` caches each deployment's current release.

        The cache serves only ``validate=True`` on deployment creates, so a stale entry costs at
        worst a minute of validating against the previous release's schema.
        """
        self._session = session
        self._releases: dict[str, tuple[float, ModelRef]] = {}
        self.predictions = DeploymentPredictions(self, models, predictions)
        """Predictions through a deployment: ``client.deployments.predictions.create(...)``."""

    def __repr__(self) -> str:
        """The base URL only; the session and its token stay out."""
        return f"<Deployments {self._session.config.base_url}>"

    async def get(self, deployment: str) -> Deployment:
        """The deployment ``owner/name`` with its ``current_release`` (model, version, hardware,
        instances) as raw JSON. NotFoundError when there is no such deployment."""
        _, path = _deployment_path(deployment)
        response = await self._session.request("GET", path)
        return self._remember(structure(response.json(), Deployment, what=f"deployment {path}"))

    def pages(self) -> AsyncIterator[Page[Deployment]]:
        """Whole pages of your deployments.

        ``next`` links are followed on this client's base URL, never on the host they name.
        """
        return paginate(self._session, "deployments", Deployment, what="deployment page")

    async def list(self) -> AsyncIterator[Deployment]:
        """Every deployment you own, following pages as you iterate.

        Pages are fetched as you go: stopping early costs no more requests.
        """
        async for page in self.pages():
            for deployment in page.results:
                yield deployment

    async def create(
        self,
        name: str,
        *,
        model: str,
        version: str,
        hardware: str,
        min_instances: int,
        max_instances: int,
    ) -> Deployment:
        """Create deployment ``name`` (under your account) running ``model`` (``owner/name``) at
        ``version`` on ``hardware`` (a SKU from ``client.hardware.list()``).

        Not retried after an ambiguous failure: :meth:`get` it rather than creating it again.
        """
        model_ref = parse_ref(model)
        if model_ref.model is None or model_ref.version is not None:
            raise InvalidReferenceError(f"model must be 'owner/name', got {model!r}")
        if parse_ref(version).owner is not None:
            raise InvalidReferenceError(f"version must be a 64-hex version id, got {version!r}")
        body = {
            "name": name,
            "model": model_ref.model,
            "version": version,
            "hardware": hardware,
            "min_instances": min_instances,
            "max_instances": max_instances,
        }
        response = await self._session.request("POST", "deployments", json_body=body, create=True)
        return self._remember(structure_created(response, Deployment, what="deployment"))

    async def update(
        self,
        deployment: str,
        *,
        version: str | None = None,
        hardware: str | None = None,
        min_instances: int | None = None,
        max_instances: int | None = None,
    ) -> Deployment:
        """Change a deployment (a new release); only the arguments you give are sent.

        ValueError when none is given. Predictions already running keep the release they started on.
        """
        _, path = _deployment_path(deployment)
        fields = {
            "version": version,
            "hardware": hardware,
            "min_instances": min_instances,
            "max_instances": max_instances,
        }
        body = {k: v for k, v in fields.items() if v is not None}
        if not body:
            raise ValueError("update() needs at least one field to change")
        response = await self._session.request("PATCH", path, json_body=body)
        return self._remember(structure(response.json(), Deployment, what=f"deployment {path}"))

    async def delete(self, deployment: str) -> None:
        """Delete a deployment (the API allows it once it has been idle for a while).

        A refusal (a deployment still busy) is the API's error, raised as is; the cached release is
        dropped either way.
        """
        _, path = _deployment_path(deployment)
        self._releases.pop(path, None)
        await self._session.request("DELETE", path)

    def _remember(self, deployment: Deployment) -> Deployment:
        """Cache the release of a deployment the API just described, for :meth:`_current_ref`.

        An answer that names no usable release is returned as is, uncached: it is not an error here,
        only validation needs the release.
        """
        try:
            ref = _release_ref(deployment)
        except (UnexpectedResponseError, InvalidReferenceError):
            return deployment
        expires = asyncio.get_running_loop().time() + LATEST_VERSION_TTL
        self._releases[f"deployments/{deployment.owner}/{deployment.name}"] = (expires, ref)
        return deployment

    async def _current_ref(self, deployment: str) -> ModelRef:
        """The current release's ``owner/name:<version>``, fetched at most once a minute.

        Any get, create or update of the deployment through this client refreshes the cache too.
        """
        _, path = _deployment_path(deployment)
        hit = self._releases.get(path)
        if hit is not None and hit[0] > asyncio.get_running_loop().time():
            return hit[1]
        return _release_ref(await self.get(deployment))
