"""Files against a hostile API: odd prediction ids, absurd output names, malformed data URIs.

The server answers every file URL it is asked for with bytes naming the request, so a test can tell
which download landed in which file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import assume, example, given
from hypothesis import strategies as st

import areplicate
from areplicate._core.data_uri import check_data_uris
from areplicate._outputs import (
    FileOutput,
    _id_part,
    output_files,
    safe_filename,
    save_outputs,
)
from tests.hostile.server import Handler, Hostile, created, prediction_body


def _serve_files(hostile: Hostile, *paths: str) -> list[str]:
    """Serve each path with its own content (the path itself); return the URLs."""

    def answer(path: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(body=path.encode(), content_type="application/octet-stream")

        return handler

    for path in paths:
        hostile.on("GET", path, answer(path))
    return [f"{hostile.origin}{path}" for path in paths]


class TestSaveOutputsNames:
    @pytest.mark.parametrize(
        "ids",
        [
            ["a/b", "a?b"],  # sanitise alike
            ["a/b", "a_b"],  # one sanitised into the other's plain form
            [".a", "a"],  # a leading dot dropped
            ["x" * 70 + "1", "x" * 70 + "2"],  # alike once shortened
            ["é", "è", "_"],  # non-ASCII
        ],
    )
    async def test_two_predictions_never_share_a_file(
        self, hostile: Hostile, client: areplicate.Client, tmp_path: Path, ids: list[str]
    ) -> None:
        urls = _serve_files(hostile, *[f"/files/{n}/0-x.png" for n in range(len(ids))])
        predictions = [
            areplicate.Prediction(id=pid, output=[url]) for pid, url in zip(ids, urls, strict=True)
        ]
        paths = await save_outputs(client, predictions, tmp_path)
        assert len(set(paths)) == len(ids)
        assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)
        assert [p.read_bytes() for p in paths] == [
            f"/files/{n}/0-x.png".encode() for n in range(len(ids))
        ]

    async def test_a_dash_in_the_id_cannot_meet_the_index(
        self, hostile: Hostile, client: areplicate.Client, tmp_path: Path
    ) -> None:
        # id "a-1", file 0 "x" and id "a", file 1 "0-x" would both be "a-1-0-x"
        first = _serve_files(hostile, "/f/x", "/g/y", "/g/0-x")
        one = areplicate.Prediction(id="a-1", output=[first[0]])
        two = areplicate.Prediction(id="a", output=[first[1], first[2]])
        paths = await save_outputs(client, [one, two], tmp_path)
        assert len(set(paths)) == 3
        assert len(os.listdir(tmp_path)) == 3

    async def test_plain_replicate_ids_keep_their_readable_names(
        self, hostile: Hostile, client: areplicate.Client, tmp_path: Path
    ) -> None:
        [url] = _serve_files(hostile, "/out/out-0.webp")
        prediction = areplicate.Prediction(id="ufawqhfynnddngldkgtslldrkq", output=[url])
        [path] = await save_outputs(client, [prediction], tmp_path)
        assert path.name == "ufawqhfynnddngldkgtslldrkq-0-out-0.webp"

    async def test_a_300_character_output_name_is_shortened_and_saved(
        self, hostile: Hostile, client: areplicate.Client, tmp_path: Path
    ) -> None:
        long_name = "n" * 300 + ".png"
        [url] = _serve_files(hostile, f"/out/{long_name}")
        prediction = areplicate.Prediction(id="p" * 26, output=[url])
        [path] = await save_outputs(client, [prediction], tmp_path)
        assert len(path.name.encode()) <= 255
        assert path.name.endswith(".png")
        assert path.read_bytes() == f"/out/{long_name}".encode()


class TestSafeFilename:
    @pytest.mark.parametrize(
        ("name", "limit", "expected"),
        [
            ("out-0.png", 120, "out-0.png"),
            ("a/b?c", 120, "a_b_c"),
            ("..", 120, "output"),
            ("", 120, "output"),
            ("x" * 300 + ".png", 120, "x" * 116 + ".png"),
            ("x" * 30 + ".png", 6, "x" * 6),  # no room for the extension: cut plainly
            ("é" * 300, 255, "_"),
        ],
    )
    def test_examples(self, name: str, limit: int, expected: str) -> None:
        assert safe_filename(name, limit) == expected

    @pytest.mark.parametrize("limit", [0, -5, True])
    def test_the_limit_must_be_positive(self, limit: int) -> None:
        with pytest.raises(ValueError, match="limit"):
            safe_filename("x", limit)


class TestDataURIs:
    """What a user pastes, and what a model might return, as data: URIs."""

    @pytest.mark.parametrize(
        ("url", "data"),
        [
            ("data:text/plain;base64,aGVsbG8", b"hello"),  # padding left off
            ("data:text/plain;base64,aGVs\nbG8=", b"hello"),  # wrapped lines, as pasted
            ("data:text/plain;base64,aGVs%0AbG8%3D", b"hello"),  # percent-encoded
            ("data:text/plain;BASE64,aGk=", b"hi"),  # any case
            ("data:;base64,aGk=", b"hi"),
            ("data:,", b""),
        ],
    )
    async def test_decoded_like_a_browser_does(self, url: str, data: bytes) -> None:
        assert await FileOutput(url).read() == data

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("data:image/png;base64,@@@@", "characters base64 does not use"),
            ("data:image/png;base64,aGk_aGk-", "URL-safe"),
            ("data:image/png;base64,aGVsbG8gd", "cut short"),
            ("data:image/png;base64,aGk=aGk=", "characters base64 does not use"),
        ],
    )
    async def test_unreadable_base64_says_what_is_wrong(self, url: str, reason: str) -> None:
        with pytest.raises(ValueError, match=reason) as info:
            await FileOutput(url).read()
        assert "data:[<media type>][;base64],<data>" in str(info.value)
        assert not isinstance(info.value, (TypeError, KeyError))

    def test_a_data_uri_without_a_comma_is_refused_when_made(self) -> None:
        with pytest.raises(ValueError, match="no ',' before the data"):
            FileOutput("data:image/png;base64")

    def test_a_text_output_starting_with_data_colon_is_not_a_file(self) -> None:
        assert output_files(areplicate.Prediction(id="p", output=["data:none", "data:,x"])) == [
            FileOutput("data:,x")
        ]

    async def test_a_prediction_with_a_broken_data_uri_fails_saving_clearly(
        self, client: areplicate.Client, tmp_path: Path
    ) -> None:
        prediction = areplicate.Prediction(id="p1", output=["data:image/png;base64,!!!"])
        with pytest.raises(ValueError, match="malformed data: URI"):
            await save_outputs(client, [prediction], tmp_path)
        assert os.listdir(tmp_path) == []  # no half-written file left behind


@example("", "_")
@given(st.text(max_size=80), st.text(max_size=80))
def test_different_ids_give_different_name_parts_without_a_dash(a: str, b: str) -> None:
    assume(a != b)
    assert _id_part(a) != _id_part(b)
    assert "-" not in _id_part(a)
    assert not _id_part(a).startswith(".")
    assert len(_id_part(a)) <= 60


class TestDataURIInputs:
    """A data: URI typed (or pasted) as an input value is checked before anything is sent."""

    async def test_a_broken_data_uri_input_is_refused_before_the_create(
        self, hostile: Hostile, client: areplicate.Client
    ) -> None:
        route = "/v1/models/acme/m/predictions"
        hostile.on("POST", route, created(prediction_body("p1", "starting")))
        bad = {"prompt": "hi", "images": ["data:image/png;base64,aGk=", "data:image/png;base64,@@"]}
        with pytest.raises(ValueError, match=r"input 'images'\[1\] is a malformed data: URI"):
            await client.predictions.create("acme/m", input=bad)
        assert hostile.count("POST", route) == 0

    async def test_good_data_uri_inputs_go_through_unchanged(
        self, hostile: Hostile, client: areplicate.Client
    ) -> None:
        route = "/v1/models/acme/m/predictions"
        hostile.on("POST", route, created(prediction_body("p1", "starting")))
        image = "data:image/png;base64,aGVs\nbG8"  # forgiving forms are the API's to judge
        await client.predictions.create("acme/m", input={"image": image, "n": {"deep": "data:,x"}})
        [request] = [r for r in hostile.requests if r.path == route]
        assert json.loads(request.body)["input"] == {"image": image, "n": {"deep": "data:,x"}}

    async def test_a_deeply_nested_input_is_checked_without_recursion(self) -> None:
        deep: object = "data:,ok"
        for _ in range(100_000):
            deep = [deep]
        check_data_uris({"x": deep})
