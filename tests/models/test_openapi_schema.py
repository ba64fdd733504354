"""Our models cover Replicate's OpenAPI response schemas (an excerpt in tests/fixtures).

Two checks per schema: every documented property has a field of the same name (so nothing the API
documents lands in ``extra``), and a body built from the schema, with every property filled (or every
nullable one null), structures faithfully.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import attrs
import pytest

from areplicate import (
    Collection,
    Deployment,
    FileObject,
    Model,
    Page,
    Prediction,
    PredictionURLs,
    Version,
)
from areplicate._convert import structure
from areplicate._models import Training

from .faithful import assert_faithful

DOCUMENT = json.loads(
    (pathlib.Path(__file__).parent.parent / "fixtures" / "openapi_schemas.json").read_text()
)
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]

COVERED: list[tuple[str, Any]] = [
    ("schemas_prediction_response", Prediction),
    ("schemas_training_response", Training),
    ("schemas_model_response", Model),
    ("schemas_version_response", Version),
    ("schemas_file_response", FileObject),
    ("schemas_collection_list_item", Collection),
    ("schemas_collection_response", Collection),
    ("schemas_deployment_response", Deployment),
    ("schemas_paginated_prediction_response", Page[Prediction]),
    ("schemas_paginated_model_response", Page[Model]),
    ("schemas_paginated_version_response", Page[Version]),
    ("schemas_paginated_collection_response", Page[Collection]),
]


# Properties the document leaves as a free-form ``object`` but documents elsewhere (docs/api-notes.md#model-object).
SHAPES = {
    "default_example": {
        "$ref": "#/components/schemas/schemas_prediction_response",
        "nullable": True,
    },
    "latest_version": {"$ref": "#/components/schemas/schemas_version_response", "nullable": True},
}


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _fields(cls: Any) -> set[str]:
    return {a.name for a in attrs.fields(getattr(cls, "__origin__", cls))}


def example(schema: dict[str, Any], *, nulls: bool = False) -> Any:
    """A JSON value that fits ``schema``: every property present, or null where that is allowed."""
    if nulls and (schema.get("nullable") or _resolve(schema).get("nullable")):
        return None
    schema = _resolve(schema)
    for key in ("oneOf", "anyOf", "allOf"):
        if key in schema:
            return example(schema[key][0], nulls=nulls)
    if "enum" in schema:
        return schema["enum"][-1]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties")
        if properties is None:
            return {"free-form": ["json", 1]}
        return {
            name: example(SHAPES.get(name, sub) if "properties" not in sub else sub, nulls=nulls)
            for name, sub in properties.items()
        }
    if kind == "array":
        return [example(schema.get("items", {}), nulls=nulls)]
    if kind == "string":
        return {
            "date-time": "2025-10-16T12:00:00.123456789Z",
            "uri": "https://api.replicate.com/v1/predictions/abc",
        }.get(schema.get("format", ""), "text")
    if kind == "integer":
        return 3
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    return {"output": ["any", "json", 1, None]}  # no type: any JSON (prediction output)


def test_prediction_covers_every_documented_property() -> None:
    documented = set(SCHEMAS["schemas_prediction_response"]["properties"])
    assert documented >= {"id", "status", "deadline", "deployment", "data_removed", "source"}
    assert documented <= _fields(Prediction)
    urls = set(SCHEMAS["schemas_prediction_response"]["properties"]["urls"]["properties"])
    assert urls <= _fields(PredictionURLs)


@pytest.mark.parametrize(("schema", "cls"), COVERED, ids=[name for name, _ in COVERED])
def test_every_documented_property_has_a_field(schema: str, cls: Any) -> None:
    missing = set(SCHEMAS[schema]["properties"]) - _fields(cls)
    assert not missing, f"{getattr(cls, '__name__', cls)} lacks {sorted(missing)}"


@pytest.mark.parametrize("nulls", [False, True], ids=["filled", "nullable-as-null"])
@pytest.mark.parametrize(("schema", "cls"), COVERED, ids=[name for name, _ in COVERED])
def test_a_body_built_from_the_schema_structures_faithfully(
    schema: str, cls: Any, nulls: bool
) -> None:
    body = example(SCHEMAS[schema], nulls=nulls)
    value = structure(body, cls)
    if isinstance(value, Page):
        assert value.next == body["next"]
        for item, raw in zip(value.results, body["results"], strict=True):
            assert_faithful(item, raw)
            assert item.extra == {}
    else:
        assert_faithful(value, body)
        assert value.extra == {}


def test_the_documented_statuses_are_ours() -> None:
    from areplicate import Status

    documented = SCHEMAS["schemas_prediction_response"]["properties"]["status"]["enum"]
    assert {s.value for s in Status} == set(documented)
