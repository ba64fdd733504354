"""``Prediction.output_text`` and ``Version.output_is_text``: a language model's tokens as one string,
and the schema's word on whether an output is text at all (a list of file URLs is a list of
strings too)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import areplicate
from areplicate.testing import FakeReplicate, FileOut


@pytest.fixture
def fake() -> FakeReplicate:
    fake = FakeReplicate()

    def talk(prompt: str = "") -> Iterator[str]:
        yield from ["Hello", ",", " ", "world"]

    def title(prompt: str = "") -> str:
        return prompt.title()

    def draw(prompt: str = "") -> list[FileOut]:
        return [FileOut(b"\x89PNG" + bytes([i]), f"{i}.png") for i in range(2)]

    fake.add_model("acme/talk", talk)
    fake.add_model("acme/title", title)
    fake.add_model(
        "acme/draw",
        draw,
        output_schema={"type": "array", "items": {"type": "string", "format": "uri"}},
    )
    return fake


@pytest.fixture
async def client(fake: FakeReplicate) -> AsyncIterator[areplicate.Client]:
    async with (
        fake.serve() as url,
        areplicate.Client(api_token="r8_test", base_url=url, rate_limits=None) as c,
    ):
        yield c


async def test_a_language_models_tokens_join_into_its_text(client: areplicate.Client) -> None:
    prediction = await client.predictions.create_and_wait("acme/talk", {"prompt": "hi"})
    assert prediction.output == ["Hello", ",", " ", "world"]
    assert prediction.output_text == "Hello, world"
    version = (await client.models.get("acme/talk")).latest_version
    assert version is not None
    assert version.output_is_text


async def test_a_string_output_is_its_own_text(client: areplicate.Client) -> None:
    prediction = await client.predictions.create_and_wait("acme/title", {"prompt": "a cat"})
    assert prediction.output_text == "A Cat"
    version = (await client.models.get("acme/title")).latest_version
    assert version is not None
    assert version.output_is_text


async def test_file_urls_are_not_text_by_the_schema(client: areplicate.Client) -> None:
    prediction = await client.predictions.create_and_wait("acme/draw", {})
    version = (await client.models.get("acme/draw")).latest_version
    assert version is not None
    assert not version.output_is_text
    # output_text reads only the shape: the schema is what tells the two apart.
    assert isinstance(prediction.output_text, str)


@pytest.mark.parametrize(
    ("output", "text"),
    [
        ("done", "done"),
        (["a", "b"], "ab"),
        ([], ""),
        (None, None),
        ([1, 2], None),
        (["a", 1], None),
        ({"text": "x"}, None),
    ],
)
def test_output_text_rule(output: Any, text: str | None) -> None:
    assert areplicate.Prediction(id="p", output=output).output_text == text


TOKENS = {
    "type": "array",
    "items": {"type": "string"},
    "x-cog-array-type": "iterator",
    "x-cog-array-display": "concatenate",
}


@pytest.mark.parametrize(
    ("output", "is_text"),
    [
        (TOKENS, True),
        ({"type": "string"}, True),
        ({"type": "string", "format": "uri"}, False),
        ({**TOKENS, "x-cog-array-display": None}, False),  # an iterator not marked for joining
        ({"type": "array", "items": {"type": "string", "format": "uri"}}, False),
        ({"type": "array", "items": {"type": "string"}}, False),
        ({"type": "integer"}, False),
        (None, False),
    ],
)
def test_output_is_text_reads_the_schemas_marker(output: Any, is_text: bool) -> None:
    schemas = {"Input": {"type": "object"}}
    if output is not None:
        schemas["Output"] = output
    version = areplicate.Version(id="v", openapi_schema={"components": {"schemas": schemas}})
    assert version.output_is_text is is_text


def test_a_version_without_a_schema_is_not_text() -> None:
    assert not areplicate.Version(id="v").output_is_text
