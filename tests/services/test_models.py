"""client.models and client.models.versions against a mocked API (aioresponses)."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from typing import Any

import pytest
from aioresponses import aioresponses

import areplicate
from areplicate._core.schema import InputCheck

from ._mockapi import BASE, sent, total_requests

VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
OTHER_VERSION = "a" * 64

SCHEMA: dict[str, Any] = {
    "openapi": "3.0.2",
    "components": {
        "schemas": {
            "Input": {
                "type": "object",
                "title": "Input",
                "required": ["prompt"],
                "properties": {
                    "prompt": {"type": "string", "x-order": 0},
                    "steps": {"type": "integer", "minimum": 1, "maximum": 50, "x-order": 1},
                    "scheduler": {
                        "allOf": [{"$ref": "#/components/schemas/scheduler"}],
                        "default": "DDIM",
                        "x-order": 2,
                    },
                },
            },
            "scheduler": {"enum": ["DDIM", "K_EULER"], "type": "string", "title": "scheduler"},
        }
    },
}


def version_body(vid: str = VERSION, schema: dict[str, Any] | None = SCHEMA) -> dict[str, Any]:
    return {
        "id": vid,
        "created_at": "2024-01-02T03:04:05.123456Z",
        "cog_version": "0.9.0",
        "openapi_schema": schema,
    }


def model_body(owner: str = "acme", name: str = "paint", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "url": f"https://replicate.com/{owner}/{name}",
        "owner": owner,
        "name": name,
        "description": "Paints",
        "visibility": "public",
        "github_url": None,
        "paper_url": None,
        "license_url": None,
        "run_count": 7,
        "cover_image_url": None,
        "default_example": None,
        "latest_version": version_body(),
    }
    body.update(extra)
    return body


class TestGet:
    async def test_get_returns_the_model_with_its_latest_version(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(f"{BASE}/models/acme/paint", payload=model_body())
        model = await api.models.get("acme/paint")
        assert (model.owner, model.name, model.run_count) == ("acme", "paint", 7)
        assert model.latest_version is not None
        assert model.latest_version.id == VERSION
        (call,) = sent(mocked, "GET", f"{BASE}/models/acme/paint")
        assert call["headers"]["Authorization"] == "Bearer r8_test"

    async def test_missing_model_is_not_found(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(
            f"{BASE}/models/acme/none",
            status=404,
            payload={"detail": "The requested resource could not be found.", "status": 404},
            content_type="application/problem+json",
        )
        with pytest.raises(areplicate.NotFoundError, match="could not be found"):
            await api.models.get("acme/none")

    @pytest.mark.parametrize("ref", ["paint", VERSION, f"acme/paint:{VERSION}", "a b/c"])
    async def test_anything_but_owner_name_is_refused_before_sending(
        self, api: areplicate.Client, mocked: aioresponses, ref: str
    ) -> None:
        with pytest.raises(areplicate.InvalidReferenceError, match="owner/name"):
            await api.models.get(ref)
        assert total_requests(mocked) == 0

    async def test_readme_is_text(self, api: areplicate.Client, mocked: aioresponses) -> None:
        mocked.get(
            f"{BASE}/models/acme/paint/readme",
            body="# Paint\n\nIt paints.",
            content_type="text/plain",
        )
        assert await api.models.readme("acme/paint") == "# Paint\n\nIt paints."


class TestListing:
    async def test_list_follows_cursor_pages_on_our_own_host(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        # The API's next link names another host (as a proxy's would): it must be rebased.
        mocked.get(
            f"{BASE}/models",
            payload={
                "next": "https://api.replicate.com/v1/models?cursor=abc",
                "previous": None,
                "results": [model_body(name="one"), model_body(name="two")],
            },
        )
        mocked.get(
            f"{BASE}/models?cursor=abc",
            payload={"next": None, "previous": None, "results": [model_body(name="three")]},
        )
        names = [m.name async for m in api.models.list()]
        assert names == ["one", "two", "three"]
        (call,) = sent(mocked, "GET", f"{BASE}/models?cursor=abc")
        assert call["headers"]["Authorization"] == "Bearer r8_test"

    async def test_pages_yield_whole_pages_and_pass_sorting(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(
            f"{BASE}/models?sort_by=model_created_at&sort_direction=asc",
            payload={"next": None, "previous": None, "results": [model_body()]},
        )
        pages = [
            p async for p in api.models.pages(sort_by="model_created_at", sort_direction="asc")
        ]
        assert len(pages) == 1
        assert [m.name for m in pages[0].results] == ["paint"]
        assert pages[0].next is None

    async def test_a_next_link_that_repeats_stops_the_listing(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        loop_page: dict[str, Any] = {
            "next": f"{BASE}/models?cursor=same",
            "previous": None,
            "results": [],
        }
        mocked.get(f"{BASE}/models", payload=loop_page)
        mocked.get(f"{BASE}/models?cursor=same", payload=loop_page, repeat=True)
        assert [m async for m in api.models.list()] == []
        assert len(sent(mocked, "GET", f"{BASE}/models?cursor=same")) == 1

    async def test_versions_list_and_get_both_spellings(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(
            f"{BASE}/models/acme/paint/versions",
            payload={
                "next": None,
                "previous": None,
                "results": [version_body(), version_body(OTHER_VERSION, None)],
            },
        )
        mocked.get(
            f"{BASE}/models/acme/paint/versions/{VERSION}", payload=version_body(), repeat=True
        )
        ids = [v.id async for v in api.models.versions.list("acme/paint")]
        assert ids == [VERSION, OTHER_VERSION]
        one = await api.models.versions.get("acme/paint", VERSION)
        two = await api.models.versions.get(f"acme/paint:{VERSION}")
        assert one == two
        assert one.openapi_schema == SCHEMA
        assert one.cog_version == "0.9.0"

    @pytest.mark.parametrize(
        ("args"),
        [("acme/paint",), ("acme/paint", "not-a-version"), (VERSION,), ("acme/paint", "x/y")],
    )
    async def test_versions_get_refuses_bad_references(
        self, api: areplicate.Client, mocked: aioresponses, args: tuple[str, ...]
    ) -> None:
        with pytest.raises(areplicate.InvalidReferenceError):
            await api.models.versions.get(*args)
        assert total_requests(mocked) == 0

    async def test_examples_are_predictions(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(
            f"{BASE}/models/acme/paint/examples",
            payload={
                "next": None,
                "previous": None,
                "results": [{"id": "p1", "status": "succeeded", "output": "x"}],
            },
        )
        examples = [p async for p in api.models.examples("acme/paint")]
        assert [(p.id, p.is_terminal) for p in examples] == [("p1", True)]


class TestSearch:
    async def test_search_sends_query_method_with_text_body(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.add(
            f"{BASE}/models",
            method="QUERY",
            payload={"next": None, "previous": None, "results": [model_body(name="llama")]},
        )
        found = [m.name async for m in api.models.search("llama")]
        assert found == ["llama"]
        (call,) = sent(mocked, "QUERY", f"{BASE}/models")
        assert call["data"] == b"llama"
        assert call["headers"]["Content-Type"] == "text/plain"

    async def test_search_all_reads_models_collections_and_pages(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(
            f"{BASE}/search?query=nano+banana&limit=5",
            payload={
                "query": "nano banana",
                "models": [
                    {
                        "model": model_body(owner="google", name="nano-banana"),
                        "metadata": {
                            "generated_description": "Edits images",
                            "tags": ["image-editing"],
                            "score": 1.38,
                        },
                    }
                ],
                "collections": [
                    {
                        "name": "Image Editing",
                        "slug": "image-editing",
                        "description": "Edit images",
                        "models": ["google/nano-banana"],
                    }
                ],
                "pages": [{"name": "Image editing", "href": "/docs/guides/image-editing"}],
            },
        )
        results = await api.models.search_all("nano banana", limit=5)
        assert results.query == "nano banana"
        (hit,) = results.models
        assert hit.model.name == "nano-banana"
        assert (hit.score, hit.tags, hit.generated_description) == (
            1.38,
            ["image-editing"],
            "Edits images",
        )
        assert results.collections[0].models == ["google/nano-banana"]
        assert results.pages[0]["href"] == "/docs/guides/image-editing"

    async def test_search_hit_without_metadata_reads_as_empty(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(
            f"{BASE}/search?query=x", payload={"query": "x", "models": [{"model": model_body()}]}
        )
        (hit,) = (await api.models.search_all("x")).models
        assert (hit.score, hit.tags, hit.generated_description) == (None, [], None)

    @pytest.mark.parametrize("limit", [0, 51, True])
    async def test_search_all_limit_is_checked(
        self, api: areplicate.Client, mocked: aioresponses, limit: Any
    ) -> None:
        with pytest.raises(ValueError, match="from 1 to 50"):
            await api.models.search_all("x", limit=limit)

    async def test_empty_query_is_refused(self, api: areplicate.Client) -> None:
        with pytest.raises(ValueError, match="non-empty"):
            api.models.search_pages("  ")
        with pytest.raises(ValueError, match="non-empty"):
            await api.models.search_all("")


class TestWriting:
    async def test_create_sends_owner_name_and_only_given_fields(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.post(f"{BASE}/models", status=201, payload=model_body(latest_version=None))
        model = await api.models.create(
            "acme/paint", visibility="private", hardware="cpu", description="Paints"
        )
        assert model.latest_version is None
        (call,) = sent(mocked, "POST", f"{BASE}/models")
        assert json.loads(call["data"]) == {
            "owner": "acme",
            "name": "paint",
            "visibility": "private",
            "hardware": "cpu",
            "description": "Paints",
        }

    async def test_update_patches_given_fields(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.patch(f"{BASE}/models/acme/paint", payload=model_body(description="New"))
        model = await api.models.update("acme/paint", description="New", readme="# Hi")
        assert model.description == "New"
        (call,) = sent(mocked, "PATCH", f"{BASE}/models/acme/paint")
        assert json.loads(call["data"]) == {"description": "New", "readme": "# Hi"}

    async def test_update_with_nothing_is_refused(self, api: areplicate.Client) -> None:
        with pytest.raises(ValueError, match="at least one"):
            await api.models.update("acme/paint")

    async def test_delete_model_and_version(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.delete(f"{BASE}/models/acme/paint", status=204)
        mocked.delete(f"{BASE}/models/acme/paint/versions/{VERSION}", status=202)
        await api.models.delete("acme/paint")
        await api.models.versions.delete(f"acme/paint:{VERSION}")
        assert total_requests(mocked) == 2


class TestInputSchema:
    async def test_latest_version_schema_comes_with_the_model_in_one_request(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(f"{BASE}/models/acme/paint", payload=model_body())
        schema = await api.models.input_schema("acme/paint")
        assert schema["required"] == ["prompt"]
        # Cog's allOf + $ref enum comes back inlined, so the allowed values are visible.
        assert schema["properties"]["scheduler"]["allOf"][0]["enum"] == ["DDIM", "K_EULER"]
        assert total_requests(mocked) == 1

    async def test_schema_is_cached_per_version_and_latest_for_a_while(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(f"{BASE}/models/acme/paint", payload=model_body())
        first = await api.models.input_schema("acme/paint")
        first["properties"].clear()  # the caller's copy: the cache is not touched
        again = await api.models.input_schema("acme/paint")
        pinned = await api.models.input_schema(f"acme/paint:{VERSION}")
        assert again == pinned
        assert "prompt" in again["properties"]
        assert total_requests(mocked) == 1

    async def test_pinned_version_is_fetched_once_for_many_concurrent_checks(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(f"{BASE}/models/acme/paint/versions/{VERSION}", payload=version_body())
        ref = f"acme/paint:{VERSION}"
        results = await asyncio.gather(
            *(api.models.validate_input(ref, {"prompt": str(i)}) for i in range(20))
        )
        assert results == [[]] * 20
        assert total_requests(mocked) == 1

    async def test_a_failed_fetch_is_not_cached(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        url = f"{BASE}/models/acme/paint/versions/{VERSION}"
        mocked.get(url, status=404, payload={"detail": "Not found.", "status": 404})
        mocked.get(url, payload=version_body())
        with pytest.raises(areplicate.NotFoundError):
            await api.models.input_schema(f"acme/paint:{VERSION}")
        assert await api.models.input_schema(f"acme/paint:{VERSION}") != {}

    async def test_model_response_without_schema_falls_back_to_the_version(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(
            f"{BASE}/models/acme/paint", payload=model_body(latest_version=version_body(schema={}))
        )
        mocked.get(f"{BASE}/models/acme/paint/versions/{VERSION}", payload=version_body())
        schema = await api.models.input_schema("acme/paint")
        assert "prompt" in schema["properties"]

    async def test_version_without_schema_gives_an_empty_schema_and_a_warning(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(
            f"{BASE}/models/acme/paint/versions/{VERSION}",
            payload=version_body(schema=None),
            repeat=True,
        )
        ref = f"acme/paint:{VERSION}"
        assert await api.models.input_schema(ref) == {}
        assert await api.models.validate_input(ref, {"anything": 1}) == [
            "input: this version publishes no input schema, so nothing was checked"
        ]

    async def test_model_without_versions_has_no_schema(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(f"{BASE}/models/acme/paint", payload=model_body(latest_version=None))
        with pytest.raises(areplicate.NotFoundError, match="no published version"):
            await api.models.input_schema("acme/paint")

    async def test_bare_version_id_cannot_be_looked_up(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        with pytest.raises(areplicate.InvalidReferenceError, match=f"owner/name:{VERSION}"):
            await api.models.input_schema(VERSION)
        assert total_requests(mocked) == 0


class TestValidateInput:
    async def test_every_problem_is_raised_at_once(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(f"{BASE}/models/acme/paint", payload=model_body())
        with pytest.raises(areplicate.InputValidationError) as caught:
            await api.models.validate_input("acme/paint", {"steps": 99, "scheduler": "euler"})
        error = caught.value
        assert error.ref == "acme/paint"
        assert error.problems == [
            "prompt: required, but missing",
            "steps: 99 is too large; allowed: from 1 to 50",
            'scheduler: "euler" is not an allowed value; allowed: "DDIM", "K_EULER"',
        ]
        assert "3 problem(s)" in str(error)
        assert isinstance(error, ValueError)

    async def test_unknown_keys_come_back_as_warnings_and_are_logged_once(
        self, api: areplicate.Client, mocked: aioresponses, caplog: pytest.LogCaptureFixture
    ) -> None:
        mocked.get(f"{BASE}/models/acme/paint", payload=model_body())
        caplog.set_level(logging.WARNING, logger="areplicate")
        for _ in range(3):
            warnings = await api.models.validate_input("acme/paint", {"prompt": "x", "step": 3})
            assert warnings == [
                'step: not an input of this model, so the API will ignore it; did you mean "steps"?'
            ]
        assert [r.getMessage() for r in caplog.records] == [f"input for acme/paint: {warnings[0]}"]

    async def test_check_input_returns_without_raising(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        mocked.get(f"{BASE}/models/acme/paint", payload=model_body())
        result = await api.models.check_input("acme/paint", {"steps": 0})
        assert isinstance(result, InputCheck)
        assert not result.ok
        assert len(result.errors) == 2

    async def test_the_cached_document_is_not_mutated_by_checks(
        self, api: areplicate.Client, mocked: aioresponses
    ) -> None:
        body = model_body()
        mocked.get(f"{BASE}/models/acme/paint", payload=body)
        before = copy.deepcopy(SCHEMA)
        await api.models.validate_input("acme/paint", {"prompt": "x"})
        assert before == SCHEMA
