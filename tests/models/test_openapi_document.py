"""Every response of every operation in Replicate's whole OpenAPI document has our fields.

Walks each operation's 2xx JSON schema (named or inline: account, hardware, a deployment's
``current_release`` and its ``configuration`` and ``created_by``) into the model the client structures
it as, nested objects into nested models, and fails naming any documented property we would leave in
``extra``. Then a body with every property filled, and one with every nullable property null,
structures faithfully.
"""

from __future__ import annotations

import json
import pathlib
import types
import typing
from typing import Any

import attrs
import pytest

from areplicate import (
    Account,
    Collection,
    Deployment,
    DeploymentConfiguration,
    DeploymentRelease,
    FileObject,
    Hardware,
    Model,
    Page,
    Prediction,
    SearchResults,
    Version,
)
from areplicate._convert import structure
from areplicate._models import Training

from .faithful import assert_faithful

DOCUMENT = json.loads(
    (
        pathlib.Path(__file__).parent.parent / "fixtures" / "openapi" / "replicate-openapi.json"
    ).read_text()
)
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]

# What the client structures each operation's JSON answer as (None: not a model, e.g. the secret).
TARGETS: dict[str, Any] = {
    "account.get": Account,
    "collections.list": Page[Collection],
    "collections.get": Collection,
    "deployments.list": Page[Deployment],
    "deployments.create": Deployment,
    "deployments.get": Deployment,
    "deployments.update": Deployment,
    "deployments.predictions.create": Prediction,
    "files.list": Page[FileObject],
    "files.create": FileObject,
    "files.get": FileObject,
    "hardware.list": list[Hardware],
    "models.list": Page[Model],
    "models.create": Model,
    "models.search": Page[Model],
    "models.get": Model,
    "models.update": Model,
    "models.examples.list": Page[Prediction],
    "models.predictions.create": Prediction,
    "models.versions.list": Page[Version],
    "models.versions.get": Version,
    "trainings.create": Training,
    "predictions.list": Page[Prediction],
    "predictions.create": Prediction,
    "predictions.get": Prediction,
    "predictions.cancel": Prediction,
    "search": SearchResults,
    "trainings.list": Page[Training],
    "trainings.get": Training,
    "trainings.cancel": Training,
    "webhooks.default.secret.get": None,
}


# Properties the document leaves as a free-form ``object`` but that are a prediction and a version.
SHAPES = {
    "default_example": {
        "$ref": "#/components/schemas/schemas_prediction_response",
        "nullable": True,
    },
    "latest_version": {"$ref": "#/components/schemas/schemas_version_response", "nullable": True},
}


def _operations() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for ops in DOCUMENT["paths"].values():
        for op in ops.values():
            if not isinstance(op, dict):
                continue
            for code, response in op.get("responses", {}).items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if code.startswith("2") and schema is not None:
                    found.append((f"{op['operationId']}", schema))
    return found


OPERATIONS = _operations()


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _bare(tp: Any) -> Any:
    """``X`` from ``X | None``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def _undocumented_fields(schema: dict[str, Any], tp: Any, path: str) -> list[str]:
    """Documented properties that ``tp`` has no field for, as JSON paths."""
    schema, tp = _resolve(schema), _bare(tp)
    if typing.get_origin(tp) is list:
        items = schema.get("items", {})
        return _undocumented_fields(items, typing.get_args(tp)[0], f"{path}[]")
    cls = typing.get_origin(tp) or tp
    if not attrs.has(cls):
        return []  # a free-form value (input, output, metrics, a file's urls): JSON as sent
    fields = {a.name: a.type for a in attrs.fields(cls)}
    if cls is Page:
        fields["results"] = list[typing.get_args(tp)[0]]
    missing = []
    for name, sub in schema.get("properties", {}).items():
        if name not in fields:
            missing.append(f"{path}.{name}")
            continue
        missing += _undocumented_fields(SHAPES.get(name, sub), fields[name], f"{path}.{name}")
    return missing


def example(schema: dict[str, Any], *, nulls: bool) -> Any:
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
        if "properties" not in schema:
            return {"free-form": ["json", 1]}
        properties = schema["properties"].items()
        return {name: example(SHAPES.get(name, sub), nulls=nulls) for name, sub in properties}
    if kind == "array":
        return [example(schema.get("items", {}), nulls=nulls)]
    if kind == "string":
        return {
            "date-time": "2025-10-16T12:00:00.123456789Z",
            "uri": "https://api.replicate.com/v1/predictions/abc",
        }.get(schema.get("format", ""), "text")
    return {"integer": 3, "number": 1.5, "boolean": True}.get(kind, {"any": [1, None]})


def test_every_json_operation_has_a_target() -> None:
    assert {name for name, _ in OPERATIONS} == set(TARGETS)


@pytest.mark.parametrize(("operation", "schema"), OPERATIONS, ids=[n for n, _ in OPERATIONS])
def test_every_documented_property_has_a_field(operation: str, schema: dict[str, Any]) -> None:
    target = TARGETS[operation]
    if target is None:
        return
    missing = _undocumented_fields(schema, target, "$")
    assert not missing, f"{operation}: documented but left in extra: {missing}"


@pytest.mark.parametrize("nulls", [False, True], ids=["filled", "nullable-as-null"])
@pytest.mark.parametrize(("operation", "schema"), OPERATIONS, ids=[n for n, _ in OPERATIONS])
def test_a_documented_body_structures_faithfully(
    operation: str, schema: dict[str, Any], nulls: bool
) -> None:
    target = TARGETS[operation]
    if target is None:
        return
    body = example(schema, nulls=nulls)
    value = structure(body, target)
    items = value.results if isinstance(value, Page) else value
    raws = body["results"] if isinstance(value, Page) else body
    for item, raw in zip(
        *((items, raws) if isinstance(items, list) else ([items], [raws])), strict=True
    ):
        assert_faithful(item, raw)


def test_a_deployment_release_is_modelled() -> None:
    body = example(SCHEMAS["schemas_deployment_response"], nulls=False)
    deployment = structure(body, Deployment)
    release = deployment.current_release
    assert isinstance(release, DeploymentRelease)
    assert isinstance(release.configuration, DeploymentConfiguration)
    assert isinstance(release.created_by, Account)
    assert release.created_at is not None
    assert release.created_at.tzinfo is not None
    assert (release.number, release.configuration.max_instances) == (3, 3)
    assert deployment.extra == release.extra == release.configuration.extra == {}
