"""Fixtures for the fake server's tests.

Every FakeReplicate made through ``make_fake`` records its response bodies; at teardown each JSON
body is validated against the matching response schema of Replicate's OpenAPI document
(``tests/fixtures/openapi/replicate-openapi.json``) and each error body against the problem+json
shape. Two repairs to the document, both where it cannot mean what it literally says:

- it says OpenAPI 3.1 but marks nullable fields the 3.0 way (``nullable: true``); those ``type``s
  are widened with ``"null"``;
- the prediction's ``version`` is a ``oneOf`` of "any string" and "the string ``hidden``", which
  no value can satisfy when it is ``hidden`` (it matches both); it is read as ``anyOf``.

And one where real traffic disagrees with it (a recording wins, docs/api-notes.md): the
recorded trainings (cassettes ``trainings-create.yaml``, ``trainings-get.yaml``) carry
``"output": null`` and ``"completed_at": null``, so the training's ``output``, ``started_at`` and
``completed_at`` may be null.
"""

from __future__ import annotations

import asyncio
import functools
import json
import pathlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import attrs
import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from areplicate._core.times import parse_timestamp
from areplicate.testing import FakeReplicate, RequestRecord

FIXTURES = pathlib.Path(__file__).parent.parent / "fixtures"
OAS_URI = "urn:replicate-openapi"
TOKEN = "r8_test_token"


def _widen_nullable(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _widen_nullable(v) for k, v in node.items()}
        if out.pop("nullable", False) is True and isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [_widen_nullable(v) for v in node]
    return node


def _load_document() -> dict[str, Any]:
    raw = json.loads((FIXTURES / "openapi" / "replicate-openapi.json").read_text())
    document: dict[str, Any] = _widen_nullable(raw)
    version = document["components"]["schemas"]["schemas_prediction_response"]["properties"][
        "version"
    ]
    version["anyOf"] = version.pop("oneOf")
    training = document["components"]["schemas"]["schemas_training_response"]["properties"]
    for name in ("output", "started_at", "completed_at"):
        training[name]["type"] = [training[name]["type"], "null"]
    return document


DOCUMENT = _load_document()
REGISTRY: Registry[Any] = Registry().with_resource(
    OAS_URI, Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
)
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if isinstance(value, str):
        parse_timestamp(value)
        if not re.search(r"(Z|[+-]\d\d:?\d\d)$", value):
            raise ValueError(f"no UTC designator in {value!r}")
    return True


@FORMATS.checks("uri")
def _uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme in ("http", "https") and parts.netloc)


PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["detail", "status"],
    "properties": {
        "title": {"type": "string"},
        "detail": {"type": "string"},
        "status": {"type": "integer"},
        "invalid_fields": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "field", "description"],
                "properties": {
                    "type": {"type": "string"},
                    "field": {"type": "string"},
                    "description": {"type": "string"},
                },
            },
        },
    },
}


def _normalize(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


_OPERATIONS: dict[tuple[str, str], str] = {}
for _path, _ops in DOCUMENT["paths"].items():
    for _method in _ops:
        _OPERATIONS[(_method.upper(), _normalize(_path))] = _path


def response_schema(route: str, status: int) -> dict[str, Any] | None:
    """The OpenAPI response schema for a fake route key and status (as a $ref), or None."""
    method, _, path = route.partition(" ")
    oas_path = _OPERATIONS.get((method, _normalize(path.removeprefix("/v1"))))
    if oas_path is None:
        return None
    responses = DOCUMENT["paths"][oas_path][method.lower()]["responses"]
    response = responses.get(str(status))
    if response is None or "application/json" not in response.get("content", {}):
        return None
    pointer = "/".join(
        p.replace("~", "~0").replace("/", "~1")
        for p in ("paths", oas_path, method.lower(), "responses", str(status), "content")
    )
    return {"$ref": f"{OAS_URI}#/{pointer}/application~1json/schema"}


@functools.cache
def _validator(route: str, status: int) -> jsonschema.Draft202012Validator:
    schema = response_schema(route, status)
    assert schema is not None, f"no OpenAPI schema for {route} -> {status}"
    return jsonschema.Draft202012Validator(schema, registry=REGISTRY, format_checker=FORMATS)


def validate_record(record: RequestRecord) -> None:
    """Validate one recorded response body against the OpenAPI document (or problem+json)."""
    if record.body is None or not record.content_type:
        return
    if record.content_type == "application/json":
        _validator(record.route, record.status).validate(json.loads(record.body))
    elif record.content_type == "application/problem+json":
        body = json.loads(record.body)
        jsonschema.validate(body, PROBLEM_SCHEMA)
        assert body["status"] == record.status, (record.route, body)
    else:
        assert (
            record.status >= 400
            or record.route.endswith(("/download", "/{filename}", "/readme"))
            or record.status in (202, 204)
        ), f"unexpected {record.content_type} answer from {record.route}"


@pytest.fixture(name="validate_record")
def _validate_record_fixture() -> Callable[[RequestRecord], None]:
    """The body check ``make_fake`` runs at teardown, for testing the check itself."""
    return validate_record


@pytest.fixture
def make_fake() -> Iterator[Callable[..., FakeReplicate]]:
    """Make FakeReplicates whose bodies are validated (and server errors checked) at teardown."""
    fakes: list[FakeReplicate] = []

    def make(**options: Any) -> FakeReplicate:
        options.setdefault("record_bodies", True)
        fake = FakeReplicate(**options)
        fakes.append(fake)
        return fake

    yield make
    for fake in fakes:
        assert fake.server_errors == []
        for record in fake.requests:
            validate_record(record)


@pytest.fixture
def fake(make_fake: Callable[..., FakeReplicate]) -> FakeReplicate:
    """A FakeReplicate with validated bodies."""
    return make_fake()


@pytest.fixture
def fake_replicate(make_fake: Callable[..., FakeReplicate]) -> FakeReplicate:
    """Overrides the plugin's fixture (as users may) so its bodies are validated too."""
    return make_fake()


@pytest.fixture
async def base_url(fake: FakeReplicate) -> AsyncIterator[str]:
    """``fake`` served on the test's loop."""
    async with fake.serve() as url:
        yield url


@attrs.frozen
class Reply:
    """An HTTP answer, read completely."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0]


class Http:
    """A thin aiohttp helper: ``await http.post(url, json=…)`` with the test token by default."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def request(
        self,
        method: str,
        url: str,
        *,
        token: str | None = TOKEN,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Reply:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers.setdefault("Authorization", f"Bearer {token}")
        async with self.session.request(method, url, headers=all_headers, **kwargs) as response:
            body = await response.read()
            return Reply(response.status, dict(response.headers), body)

    async def get(self, url: str, **kwargs: Any) -> Reply:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Reply:
        return await self.request("POST", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> Reply:
        return await self.request("DELETE", url, **kwargs)


@pytest.fixture
async def http() -> AsyncIterator[Http]:
    """An aiohttp session wrapped in :class:`Http`."""
    async with aiohttp.ClientSession() as session:
        yield Http(session)


class Gate:
    """Lets a test drive a model: the model signals ``started`` and waits for ``release``."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.finished = asyncio.Event()

    async def hold(self) -> None:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        finally:
            self.finished.set()


@pytest.fixture
def gate() -> Gate:
    """A fresh :class:`Gate`."""
    return Gate()


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.01)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[None]]:
    """``await eventually(check)``: poll an async predicate until true (for timer effects)."""
    return _eventually
