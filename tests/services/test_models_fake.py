"""Input validation before money is spent, end to end against the fake Replicate server.

The model's schema is written the way Cog writes one: a required input, numbers with minimum and
maximum, an enum through ``allOf`` + ``$ref``, and typed inputs. A bad input raises
InputValidationError naming the field, and the fake sees no create at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

import areplicate
from areplicate.testing import FakeReplicate

CREATE_OFFICIAL = "POST /v1/models/{owner}/{name}/predictions"
CREATE_VERSION = "POST /v1/predictions"
CREATE_DEPLOYMENT = "POST /v1/deployments/{owner}/{name}/predictions"
GET_MODEL = "GET /v1/models/{owner}/{name}"
GET_VERSION = "GET /v1/models/{owner}/{name}/versions/{id}"

INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Input",
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string", "title": "Prompt", "x-order": 0},
        "width": {
            "type": "integer",
            "title": "Width",
            "default": 512,
            "minimum": 64,
            "maximum": 1024,
            "x-order": 1,
        },
        "scheduler": {
            "allOf": [{"$ref": "#/components/schemas/scheduler"}],
            "default": "DDIM",
            "x-order": 2,
        },
        "steps": {"type": "integer", "title": "Steps", "default": 20, "x-order": 3},
    },
}
COMPONENTS = {
    "scheduler": {
        "enum": ["DDIM", "K_EULER", "PNDM"],
        "type": "string",
        "title": "scheduler",
        "description": "An enumeration.",
    }
}


def paint(prompt: str, width: int = 512, scheduler: str = "DDIM", steps: int = 20) -> str:
    return f"{prompt}@{width}/{scheduler}/{steps}"


@pytest.fixture
def painter() -> FakeReplicate:
    fake = FakeReplicate()
    fake.add_model("acme/painter", paint, INPUT_SCHEMA, components=COMPONENTS)
    fake.add_deployment("acme/painter-prod", "acme/painter")
    return fake


@pytest.fixture
async def api(painter: FakeReplicate) -> AsyncIterator[areplicate.Client]:
    async with (
        painter.serve() as url,
        areplicate.Client(api_token="r8_test", base_url=url, rate_limits=None) as client,
    ):
        yield client


def creates(fake: FakeReplicate) -> int:
    return (
        fake.counts[CREATE_OFFICIAL] + fake.counts[CREATE_VERSION] + fake.counts[CREATE_DEPLOYMENT]
    )


BAD_INPUTS = [
    pytest.param({"width": 512}, "prompt", "prompt: required, but missing", id="required"),
    pytest.param(
        {"prompt": "x", "width": 8},
        "width",
        "width: 8 is too small; allowed: from 64 to 1024",
        id="minimum",
    ),
    pytest.param(
        {"prompt": "x", "width": 4096},
        "width",
        "width: 4096 is too large; allowed: from 64 to 1024",
        id="maximum",
    ),
    pytest.param(
        {"prompt": "x", "scheduler": "EULER"},
        "scheduler",
        'scheduler: "EULER" is not an allowed value; allowed: "DDIM", "K_EULER", "PNDM"; '
        'did you mean "K_EULER"?',
        id="enum-allOf-ref",
    ),
    pytest.param(
        {"prompt": "x", "steps": "20"},
        "steps",
        'steps: expected integer, got string "20"',
        id="wrong-type",
    ),
]


class TestModelsAgainstTheFake:
    async def test_get_model_with_its_latest_version_schema(
        self, api: areplicate.Client, painter: FakeReplicate
    ) -> None:
        model = await api.models.get("acme/painter")
        assert (model.owner, model.name) == ("acme", "painter")
        assert model.latest_version is not None
        assert model.latest_version.openapi_schema is not None
        versions = [v.id async for v in api.models.versions.list("acme/painter")]
        assert versions == [model.latest_version.id]
        version = await api.models.versions.get("acme/painter", model.latest_version.id)
        assert version.openapi_schema == model.latest_version.openapi_schema

    async def test_input_schema_inlines_the_enum_and_is_fetched_once(
        self, api: areplicate.Client, painter: FakeReplicate
    ) -> None:
        schema = await api.models.input_schema("acme/painter")
        assert schema["required"] == ["prompt"]
        assert schema["properties"]["width"]["maximum"] == 1024
        enum = schema["properties"]["scheduler"]["allOf"][0]["enum"]
        assert enum == ["DDIM", "K_EULER", "PNDM"]
        for _ in range(3):
            await api.models.input_schema("acme/painter")
        assert painter.counts[GET_MODEL] == 1
        assert painter.counts[GET_VERSION] == 0

    async def test_pinned_version_schema_comes_from_the_version_route(
        self, api: areplicate.Client, painter: FakeReplicate
    ) -> None:
        version = (await api.models.get("acme/painter")).latest_version
        assert version is not None
        schema = await api.models.input_schema(f"acme/painter:{version.id}")
        assert "scheduler" in schema["properties"]


class TestValidationBeforeCreate:
    @pytest.mark.parametrize(("input", "field", "problem"), BAD_INPUTS)
    async def test_validate_input_names_the_field(
        self,
        api: areplicate.Client,
        painter: FakeReplicate,
        input: dict[str, Any],
        field: str,
        problem: str,
    ) -> None:
        with pytest.raises(areplicate.InputValidationError) as caught:
            await api.models.validate_input("acme/painter", input)
        assert caught.value.problems == [problem]
        assert field in str(caught.value)
        assert creates(painter) == 0

    @pytest.mark.parametrize(("input", "field", "problem"), BAD_INPUTS)
    async def test_create_with_validate_raises_and_sends_no_create(
        self,
        api: areplicate.Client,
        painter: FakeReplicate,
        input: dict[str, Any],
        field: str,
        problem: str,
    ) -> None:
        with pytest.raises(areplicate.InputValidationError) as caught:
            await api.predictions.create("acme/painter", input, validate=True)
        assert caught.value.problems == [problem]
        assert caught.value.ref == "acme/painter"
        assert creates(painter) == 0

    @pytest.mark.parametrize(("input", "field", "problem"), BAD_INPUTS)
    async def test_deployment_create_with_validate_raises_and_sends_no_create(
        self,
        api: areplicate.Client,
        painter: FakeReplicate,
        input: dict[str, Any],
        field: str,
        problem: str,
    ) -> None:
        with pytest.raises(areplicate.InputValidationError) as caught:
            await api.deployments.predictions.create("acme/painter-prod", input, validate=True)
        assert caught.value.problems == [problem]
        assert creates(painter) == 0

    async def test_every_problem_at_once_and_none_sent(
        self, api: areplicate.Client, painter: FakeReplicate
    ) -> None:
        bad = {"width": 2, "scheduler": "nope", "steps": 1.5}
        with pytest.raises(areplicate.InputValidationError) as caught:
            await api.predictions.create("acme/painter", bad, validate=True)
        assert [p.split(":")[0] for p in caught.value.problems] == [
            "prompt",
            "width",
            "scheduler",
            "steps",
        ]
        assert creates(painter) == 0

    async def test_our_fields_match_the_apis_422(
        self, api: areplicate.Client, painter: FakeReplicate
    ) -> None:
        # Without validate the (fake) API rejects the same input; both name the same fields.
        bad = {"width": 2, "scheduler": "nope", "steps": "x"}
        with pytest.raises(areplicate.InputValidationError) as ours:
            await api.models.validate_input("acme/painter", bad)
        with pytest.raises(areplicate.InvalidRequestError) as theirs:
            await api.predictions.create("acme/painter", bad)
        our_fields = {p.split(":")[0] for p in ours.value.problems}
        their_text = " ".join(str(f) for f in theirs.value.invalid_fields)
        assert our_fields == {"prompt", "width", "scheduler", "steps"}
        for field in our_fields:
            assert field in their_text

    async def test_valid_input_is_created_and_runs(
        self, api: areplicate.Client, painter: FakeReplicate
    ) -> None:
        output = await api.run(
            "acme/painter", {"prompt": "cat", "width": 1024, "scheduler": "PNDM"}, validate=True
        )
        assert output == "cat@1024/PNDM/20"
        assert creates(painter) == 1
        assert painter.counts[GET_MODEL] == 1  # the schema was fetched: validation ran

    async def test_unknown_key_warns_but_does_not_block(
        self, api: areplicate.Client, painter: FakeReplicate
    ) -> None:
        warnings = await api.models.validate_input("acme/painter", {"prompt": "x", "widht": 80})
        assert warnings == [
            'widht: not an input of this model, so the API will ignore it; did you mean "width"?'
        ]
        prediction = await api.predictions.create(
            "acme/painter", {"prompt": "x", "widht": 80}, validate=True
        )
        assert prediction.id
        assert creates(painter) == 1

    async def test_a_fan_out_fetches_the_schema_once(
        self, api: areplicate.Client, painter: FakeReplicate
    ) -> None:
        inputs = [{"prompt": f"p{i}", "width": 64 + i} for i in range(12)]
        results = await areplicate.gather_predictions(
            api, "acme/painter", inputs, concurrency=6, validate=True
        )
        assert [r.output for r in results] == [f"p{i}@{64 + i}/DDIM/20" for i in range(12)]
        assert painter.counts[GET_MODEL] == 1

    async def test_a_bad_item_in_a_fan_out_is_caught_before_it_is_created(
        self, api: areplicate.Client, painter: FakeReplicate
    ) -> None:
        inputs: list[dict[str, Any]] = [{"prompt": "ok"}, {"prompt": "bad", "width": 5000}]
        results = await areplicate.gather_predictions(
            api, "acme/painter", inputs, validate=True, return_exceptions=True
        )
        assert isinstance(results[1], areplicate.InputValidationError)
        assert results[1].problems == ["width: 5000 is too large; allowed: from 64 to 1024"]
        assert creates(painter) == 1  # only the good one
