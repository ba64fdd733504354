"""Real recorded API bodies (replicate-python's cassettes) read through our services.

Every model, version, collection, hardware and training response in ``tests/fixtures/cassettes`` is
served back (on our mocked host) to the service method that would fetch it, and must structure
without error. The inputs real predictions were created with (the API answered 201) must pass our
input check against the recorded version schemas: the check must never block what the API accepts.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from aioresponses import aioresponses

import areplicate
from areplicate._core.schema import InputSchema

from ._mockapi import BASE, client

CASSETTES = Path(__file__).parent.parent / "fixtures" / "cassettes"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _body(raw: dict[str, Any]) -> Any:
    text = raw.get("content")
    if text is None:
        text = raw.get("body", {}).get("string", "")
    if isinstance(text, bytes) and text[:2] == b"\x1f\x8b":
        text = gzip.decompress(text)
    return text


def _status(response: dict[str, Any]) -> int:
    status: Any = response.get("status_code", response.get("status"))
    return int(status["code"]) if isinstance(status, dict) else int(status)


@functools.cache
def _load(name: str) -> list[dict[str, Any]]:
    interactions: list[dict[str, Any]] = yaml.load((CASSETTES / name).read_text(), Loader=_LOADER)[
        "interactions"
    ]
    return interactions


def _interactions() -> Iterator[tuple[str, int, dict[str, Any]]]:
    for path in sorted(CASSETTES.glob("*.yaml")):
        for index, interaction in enumerate(_load(path.name)):
            yield path.name, index, interaction


Call = Callable[[areplicate.Client, "re.Match[str]", Any], Awaitable[Any]]


async def _collect(iterator: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in iterator]


# (method, path under /v1, kind, how the service fetches it)
ROUTES: list[tuple[str, str, str, Call]] = [
    (
        "GET",
        r"models/([\w.-]+)/([\w.-]+)",
        "model",
        lambda api, m, _: api.models.get(f"{m[1]}/{m[2]}"),
    ),
    (
        "GET",
        r"models/([\w.-]+)/([\w.-]+)/versions/([0-9a-f]{64})",
        "version",
        lambda api, m, _: api.models.versions.get(f"{m[1]}/{m[2]}", m[3]),
    ),
    ("QUERY", r"models", "model search", lambda api, _, body: _collect(api.models.search(body))),
    (
        "POST",
        r"models",
        "model create",
        lambda api, _, body: api.models.create(
            f"{body['owner']}/{body['name']}",
            visibility=body["visibility"],
            hardware=body["hardware"],
            description=body.get("description"),
        ),
    ),
    ("GET", r"collections", "collections", lambda api, _, __: _collect(api.collections.list())),
    ("GET", r"hardware", "hardware", lambda api, _, __: _collect(api.hardware.list())),
    (
        "POST",
        r"models/([\w.-]+)/([\w.-]+)/versions/([0-9a-f]{64})/trainings",
        "training create",
        lambda api, m, body: api.trainings.create(
            f"{m[1]}/{m[2]}:{m[3]}", destination=body["destination"], input=body["input"]
        ),
    ),
    ("GET", r"trainings/(\w+)", "training", lambda api, m, _: api.trainings.get(m[1])),
    (
        "POST",
        r"trainings/(\w+)/cancel",
        "training cancel",
        lambda api, m, _: api.trainings.cancel(m[1]),
    ),
    ("GET", r"account", "account", lambda api, _, __: api.account.get()),
]


def _route(method: str, path: str) -> tuple[str, Call, re.Match[str]] | None:
    for route_method, pattern, kind, call in ROUTES:
        if method == route_method and (m := re.fullmatch(pattern, path)):
            return kind, call, m
    return None


def _cases() -> list[Any]:
    cases = []
    for name, index, interaction in _interactions():
        request = interaction["request"]
        path = urlsplit(request["uri"]).path.removeprefix("/v1/")
        found = _route(request["method"], path)
        if found is not None:
            cases.append(pytest.param(name, index, found[0], id=f"{name}#{index}:{found[0]}"))
    return cases


CASES = _cases()


def test_the_cassettes_cover_every_kind_we_serve() -> None:
    kinds = {case.values[2] for case in CASES}
    # No cassette records GET /account; the mocked-API tests cover it.
    assert kinds == {kind for _, _, kind, _ in ROUTES} - {"account"}


@pytest.mark.parametrize(("cassette", "index", "kind"), CASES)
async def test_recorded_body_structures_through_the_service(
    mocked: aioresponses, cassette: str, index: int, kind: str
) -> None:
    data = _load(cassette)[index]
    request, response = data["request"], data["response"]
    parts = urlsplit(request["uri"])
    path = parts.path.removeprefix("/v1/")
    found = _route(request["method"], path)
    assert found is not None
    _, call, match = found
    raw_body = request.get("body") or ""
    body: Any = raw_body
    if request["method"] in ("POST", "PATCH") and raw_body:
        body = json.loads(raw_body)
    status = _status(response)
    payload = _body(response)
    if kind == "training create" and status == 404:
        body = {**body, "destination": "acme/missing"}  # the recorded "<invalid>" never leaves us
    mocked.add(
        f"{BASE}/{path}",
        method=request["method"],
        status=status,
        body=payload,
        content_type="application/json",
    )
    async with client(max_retries=0) as api:
        if status >= 400:
            with pytest.raises(areplicate.APIError) as caught:
                await call(api, match, body)
            assert caught.value.status == status
            return
        result = await call(api, match, body)
    recorded = json.loads(payload)
    if isinstance(result, list):
        items = recorded if isinstance(recorded, list) else recorded["results"]
        assert len(result) == len(items)
        pairs = list(zip(result, items, strict=True))
    else:
        pairs = [(result, recorded)]
    for obj, item in pairs:
        for key in ("id", "owner", "name", "sku", "slug", "status", "username"):
            if key in item:
                assert str(getattr(obj, key)) == item[key], key


def _version_schemas() -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    for _, _, interaction in _interactions():
        request, response = interaction["request"], interaction["response"]
        if request["method"] != "GET" or _status(response) != 200:
            continue
        path = urlsplit(request["uri"]).path.removeprefix("/v1/")
        if not re.fullmatch(r"models/[\w.-]+/[\w.-]+(/versions/[0-9a-f]{64})?", path):
            continue
        body = json.loads(_body(response))
        version = body.get("latest_version", body) if "owner" in body else body
        if isinstance(version, dict) and version.get("openapi_schema"):
            schemas[version["id"]] = version["openapi_schema"]
    return schemas


def _accepted_inputs() -> list[tuple[str, dict[str, Any]]]:
    """(version, input) of every prediction the real API accepted with a 201."""
    accepted = []
    for _, _, interaction in _interactions():
        request, response = interaction["request"], interaction["response"]
        if request["method"] != "POST" or _status(response) != 201:
            continue
        if urlsplit(request["uri"]).path != "/v1/predictions":
            continue
        body = json.loads(request["body"])
        accepted.append((body["version"], body["input"]))
    return accepted


def test_inputs_the_api_accepted_pass_our_check() -> None:
    schemas = _version_schemas()
    checked = 0
    for version, input in _accepted_inputs():  # noqa: A001 - Replicate's name for it
        if version in schemas:
            result = InputSchema(schemas[version]).check(input)
            assert result.errors == (), (version, input)
            checked += 1
    assert checked >= 5


def test_recorded_schemas_compile_and_their_defaults_pass() -> None:
    schemas = _version_schemas()
    assert len(schemas) >= 3
    for version, document in schemas.items():
        compiled = InputSchema(document)
        assert compiled.available, version
        defaults = {
            name: prop["default"]
            for name, prop in compiled.schema["properties"].items()
            if "default" in prop
        }
        assert compiled.check(defaults).errors == tuple(
            f"{name}: required, but missing"
            for name in compiled.names
            if name in compiled.required and name not in defaults
        )


def test_recorded_default_examples_pass_their_models_schema() -> None:
    checked = 0
    for _, _, interaction in _interactions():
        request, response = interaction["request"], interaction["response"]
        path = urlsplit(request["uri"]).path.removeprefix("/v1/")
        if request["method"] != "GET" or not re.fullmatch(r"models/[\w.-]+/[\w.-]+", path):
            continue
        body = json.loads(_body(response))
        latest, example = body.get("latest_version"), body.get("default_example")
        if not latest or not example or not latest.get("openapi_schema"):
            continue
        # The example may have run on an older version; its input still fits (unknown keys aside).
        assert InputSchema(latest["openapi_schema"]).check(example["input"]).errors == ()
        checked += 1
    assert checked >= 1
