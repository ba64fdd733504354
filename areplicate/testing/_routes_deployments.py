"""Deployment routes: list, create, get, update (a new release), delete.

Deployments created over HTTP belong to the fake account (``fake-user``); their hardware and
instance counts are remembered and echoed back.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from areplicate.testing._model import FakeModel
from areplicate.testing._records import dumps, timestamp
from areplicate.testing._responses import (
    _ACCOUNT,
    _SKUS,
    NOT_FOUND,
    OTHER,
    Problem,
    _Handler,
    _json,
    _page,
)
from areplicate.testing._routes_base import RoutesBase
from areplicate.testing._state import FakeDeployment


class DeploymentRoutes(RoutesBase):
    """Deployment CRUD; each deployment's release (number, hardware, instances) lives in the state."""

    async def get_deployment(self, request: web.Request) -> web.StreamResponse:
        """GET /deployments/{owner}/{name}: the current release, as list and PATCH show it."""
        return _json(dumps(self._deployment_json(self._deployment(request))))

    def _deployment_json(self, deployment: FakeDeployment) -> dict[str, Any]:
        config = self.fake._deployment_configs.get(
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
        body = await self._read_json(request)
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
        self.fake._deployment_configs[ref] = {
            "hardware": self._hardware(body),
            "min_instances": self._instances(body, "min_instances", 5),
            "max_instances": self._instances(body, "max_instances", 20),
            "number": 1,
        }
        return _json(dumps(self._deployment_json(deployment)))

    async def update_deployment(self, request: web.Request) -> web.StreamResponse:
        """PATCH /deployments/{owner}/{name}: a new release with the fields given."""
        deployment = self._deployment(request)
        body = await self._read_json(request)
        config = dict(
            self.fake._deployment_configs.get(
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
        self.fake._deployment_configs[deployment.ref] = config
        return _json(dumps(self._deployment_json(deployment)))

    async def delete_deployment(self, request: web.Request) -> web.StreamResponse:
        """DELETE /deployments/{owner}/{name}: 204."""
        deployment = self._deployment(request)
        del self.fake._deployments[deployment.ref]
        self.fake._deployment_configs.pop(deployment.ref, None)
        return web.Response(status=204)

    def _deployment_routes(self) -> list[tuple[str, str, _Handler, str]]:
        return [
            ("GET", "/deployments", self.list_deployments, OTHER),
            ("POST", "/deployments", self.create_deployment, OTHER),
            ("GET", "/deployments/{owner}/{name}", self.get_deployment, OTHER),
            ("PATCH", "/deployments/{owner}/{name}", self.update_deployment, OTHER),
            ("DELETE", "/deployments/{owner}/{name}", self.delete_deployment, OTHER),
        ]
