"""client.account, client.hardware and client.collections against a mocked API (aioresponses)."""

from __future__ import annotations

import json

import pytest
from aioresponses import aioresponses

import areplicate

from ._mockapi import BASE, client, total_requests


async def test_account_get(api: areplicate.Client, mocked: aioresponses) -> None:
    mocked.get(
        f"{BASE}/account",
        payload={
            "type": "organization",
            "username": "acme",
            "name": "Acme Corp",
            "github_url": "https://github.com/acme",
            "avatar_url": None,
        },
    )
    account = await api.account.get()
    assert (account.type, account.username, account.name) == ("organization", "acme", "Acme Corp")


async def test_account_with_only_the_required_keys(
    api: areplicate.Client, mocked: aioresponses
) -> None:
    mocked.get(f"{BASE}/account", payload={"type": "user", "username": "ann", "plan": "pro"})
    account = await api.account.get()
    assert account.name is None
    assert account.extra == {"plan": "pro"}


async def test_a_bad_token_is_an_authentication_error(
    api: areplicate.Client, mocked: aioresponses
) -> None:
    mocked.get(
        f"{BASE}/account",
        status=401,
        payload={
            "title": "Unauthenticated",
            "detail": "You did not pass a valid authentication token",
            "status": 401,
        },
        content_type="application/problem+json",
    )
    with pytest.raises(areplicate.AuthenticationError, match="valid authentication token"):
        await api.account.get()


async def test_hardware_is_listed_like_everything_else(
    api: areplicate.Client, mocked: aioresponses
) -> None:
    mocked.get(
        f"{BASE}/hardware",
        body=json.dumps(
            [{"sku": "cpu", "name": "CPU"}, {"sku": "gpu-t4", "name": "Nvidia T4 GPU"}]
        ),
    )
    hardware = [h async for h in api.hardware.list()]
    assert [(h.sku, h.name) for h in hardware] == [("cpu", "CPU"), ("gpu-t4", "Nvidia T4 GPU")]


async def test_hardware_that_is_not_a_list_is_an_unexpected_response(
    api: areplicate.Client, mocked: aioresponses
) -> None:
    mocked.get(f"{BASE}/hardware", payload={"results": []})
    with pytest.raises(areplicate.UnexpectedResponseError, match="hardware list"):
        [h async for h in api.hardware.list()]


async def test_collections_list_follows_pages(api: areplicate.Client, mocked: aioresponses) -> None:
    mocked.get(
        f"{BASE}/collections",
        payload={
            "next": "https://api.replicate.com/v1/collections?cursor=x",
            "previous": None,
            "results": [{"name": "Image editing", "slug": "image-editing", "description": "Edit"}],
        },
    )
    mocked.get(
        f"{BASE}/collections?cursor=x",
        payload={"next": None, "previous": None, "results": [{"name": "Audio", "slug": "audio"}]},
    )
    slugs = [c.slug async for c in api.collections.list()]
    assert slugs == ["image-editing", "audio"]


async def test_collection_get_has_its_models(api: areplicate.Client, mocked: aioresponses) -> None:
    mocked.get(
        f"{BASE}/collections/text-to-image",
        payload={
            "name": "Text to image",
            "slug": "text-to-image",
            "description": "Make images",
            "full_description": None,
            "models": [{"owner": "acme", "name": "paint", "run_count": 3}],
        },
    )
    collection = await api.collections.get("text-to-image")
    assert collection.full_description is None
    assert [(m.owner, m.name) for m in collection.models] == [("acme", "paint")]


@pytest.mark.parametrize("slug", ["", "a/b", "  "])
async def test_collection_slug_is_checked(
    api: areplicate.Client, mocked: aioresponses, slug: str
) -> None:
    with pytest.raises(ValueError, match="slug"):
        await api.collections.get(slug)
    assert total_requests(mocked) == 0


def test_services_are_one_per_client() -> None:
    c = client()
    assert c.models is c.models
    assert c.deployments.predictions is c.deployments.predictions
    assert c.models.versions is c.models.versions
    for service in (c.models, c.deployments, c.trainings, c.collections, c.hardware, c.account):
        assert BASE in repr(service)
