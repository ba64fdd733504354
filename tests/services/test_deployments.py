"""client.deployments against a mocked API (aioresponses)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aioresponses import aioresponses

import areplicate

from ._mockapi import BASE, sent, total_requests

VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
NEW_VERSION = "b" * 64

SCHEMA: dict[str, Any] = {
    "components": {
        "schemas": {
            "Input": {
                "type": "object",
                "required": ["prompt"],
                "properties": {
                    "prompt": {"type": "string", "x-order": 0},
                    "size": {"allOf": [{"$ref": "#/components/schemas/size"}], "x-order": 1},
                },
            },
            "size": {"enum": ["small", "large"], "type": "string"},
        }
    }
}


def deployment_body(version: str = VERSION) -> dict[str, Any]:
    return {
        "owner": "acme",
        "name": "painter",
        "current_release": {
            "number": 3,
            "model": "acme/paint",
            "version": version,
            "created_at": "2024-02-15T16:32:57.018467Z",
            "created_by": {"type": "organization", "username": "acme"},
            "configuration": {"hardware": "gpu-t4", "min_instances": 1, "max_instances": 5},
        },
    }


def prediction_body(pid: str = "p1", status: str = "starting") -> dict[str, Any]:
    return {
        "id": pid,
        "model": "acme/paint",
        "version": VERSION,
        "input": {"prompt": "a cat"},
        "output": None,
        "logs": "",
        "error": None,
        "status": status,
        "created_at": "2024-02-15T16:33:00Z",
        "urls": {
            "get": f"https://api.replicate.com/v1/predictions/{pid}",
            "cancel": f"https://api.replicate.com/v1/predictions/{pid}/cancel",
        },
        "deployment": "acme/painter",
    }


class TestDeployments:
    async def test_get_returns_the_current_release(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(f"{BASE}/deployments/acme/painter", payload=deployment_body())
        deployment = await api.deployments.get("acme/painter")
        assert (deployment.owner, deployment.name) == ("acme", "painter")
        assert deployment.current_release is not None
        assert deployment.current_release.configuration.hardware == "gpu-t4"

    async def test_list_follows_pages(self, api: areplicate.Client, mocked: aioresponses) -> None:
        mocked.get(
            f"{BASE}/deployments",
            payload={
                "next": "https://api.replicate.com/v1/deployments?cursor=2",
                "previous": None,
                "results": [deployment_body()],
            },
        )
        mocked.get(
            f"{BASE}/deployments?cursor=2",
            payload={"next": None, "previous": None, "results": [deployment_body(NEW_VERSION)]},
        )
        found = [d async for d in api.deployments.list()]
        assert [d.current_release.version for d in found if d.current_release] == [
            VERSION,
            NEW_VERSION,
        ]

    async def test_create_sends_every_setting(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.post(f"{BASE}/deployments", payload=deployment_body())
        await api.deployments.create(
            "painter",
            model="acme/paint",
            version=VERSION,
            hardware="gpu-t4",
            min_instances=1,
            max_instances=5,
        )
        (call,) = sent(mocked, "POST", f"{BASE}/deployments")
        assert json.loads(call["data"]) == {
            "name": "painter",
            "model": "acme/paint",
            "version": VERSION,
            "hardware": "gpu-t4",
            "min_instances": 1,
            "max_instances": 5,
        }

    @pytest.mark.parametrize(
        ("model", "version"), [("paint", VERSION), ("acme/paint", "latest"), (VERSION, VERSION)]
    )
    async def test_create_refuses_bad_model_or_version(
        self, api: areplicate.Client, mocked: aioresponses, model: str, version: str
    ) -> None:
        with pytest.raises(areplicate.InvalidReferenceError):
            await api.deployments.create(
                "painter",
                model=model,
                version=version,
                hardware="cpu",
                min_instances=0,
                max_instances=1,
            )
        assert total_requests(mocked) == 0

    async def test_update_sends_only_what_changes(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.patch(f"{BASE}/deployments/acme/painter", payload=deployment_body(NEW_VERSION))
        updated = await api.deployments.update("acme/painter", version=NEW_VERSION)
        assert updated.current_release is not None
        assert updated.current_release.version == NEW_VERSION
        (call,) = sent(mocked, "PATCH", f"{BASE}/deployments/acme/painter")
        assert json.loads(call["data"]) == {"version": NEW_VERSION}
        with pytest.raises(ValueError, match="at least one"):
            await api.deployments.update("acme/painter")

    async def test_delete(self, api: areplicate.Client, mocked: aioresponses) -> None:
        mocked.delete(f"{BASE}/deployments/acme/painter", status=204)
        await api.deployments.delete("acme/painter")
        assert total_requests(mocked) == 1

    @pytest.mark.parametrize("name", ["painter", f"acme/painter:{VERSION}", "a/b/c"])
    async def test_names_other_than_owner_name_are_refused(
        self, api: areplicate.Client, mocked: aioresponses, name: str
    ) -> None:
        with pytest.raises(areplicate.InvalidReferenceError, match="owner/name"):
            await api.deployments.get(name)
        assert total_requests(mocked) == 0


class TestDeploymentPredictions:
    async def test_create_posts_to_the_deployment_route_with_options(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        url = f"{BASE}/deployments/acme/painter/predictions"
        mocked.post(url, status=201, payload=prediction_body())
        prediction = await api.deployments.predictions.create(
            "acme/painter",
            {"prompt": "a cat"},
            hold=5,
            lifetime="1m",
            webhook="https://example.com/hook",
            webhook_events_filter=["completed"],
        )
        assert prediction.id == "p1"
        assert prediction.deployment == "acme/painter"
        (call,) = sent(mocked, "POST", url)
        assert json.loads(call["data"]) == {
            "input": {"prompt": "a cat"},
            "webhook": "https://example.com/hook",
            "webhook_events_filter": ["completed"],
        }
        assert call["headers"]["Prefer"] == "wait=5"
        assert call["headers"]["Cancel-After"] == "1m"

    async def test_validate_raises_before_anything_is_created(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(f"{BASE}/deployments/acme/painter", payload=deployment_body())
        mocked.get(
            f"{BASE}/models/acme/paint/versions/{VERSION}",
            payload={"id": VERSION, "openapi_schema": SCHEMA},
        )
        with pytest.raises(areplicate.InputValidationError) as caught:
            await api.deployments.predictions.create(
                "acme/painter", {"size": "huge"}, validate=True
            )
        assert caught.value.problems == [
            "prompt: required, but missing",
            'size: "huge" is not an allowed value; allowed: "small", "large"',
        ]
        assert sent(mocked, "POST", f"{BASE}/deployments/acme/painter/predictions") == []

    async def test_validate_looks_the_release_up_once_for_many_creates(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        url = f"{BASE}/deployments/acme/painter/predictions"
        mocked.get(f"{BASE}/deployments/acme/painter", payload=deployment_body())
        mocked.get(
            f"{BASE}/models/acme/paint/versions/{VERSION}",
            payload={"id": VERSION, "openapi_schema": SCHEMA},
        )
        mocked.post(url, status=201, payload=prediction_body(), repeat=True)
        for size in ("small", "large", "small"):
            await api.deployments.predictions.create(
                "acme/painter", {"prompt": "a cat", "size": size}, validate=True
            )
        assert len(sent(mocked, "POST", url)) == 3
        assert total_requests(mocked) == 5  # 1 deployment + 1 version + 3 creates

    async def test_validate_without_a_release_is_an_unexpected_response(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(
            f"{BASE}/deployments/acme/painter",
            payload={"owner": "acme", "name": "painter", "current_release": None},
        )
        with pytest.raises(areplicate.UnexpectedResponseError, match="no current release"):
            await api.deployments.predictions.create("acme/painter", {"prompt": "x"}, validate=True)
        assert sent(mocked, "POST", f"{BASE}/deployments/acme/painter/predictions") == []
