"""Outputs passed through as the next model's inputs: sent as their URL, never downloaded again.

Replicate's advice for chaining models is to pass one prediction's output URL straight into the
next model's file input. A FileOutput (what ``client.files.outputs`` gives) or the plain URL string
must therefore reach the API as that string: downloading the image (or a video) only to send it
back as a data URI or an upload costs a transfer each way and, for big files, a failed create.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import areplicate
from areplicate.testing import FakeReplicate, FileOut

PNG = b"\x89PNG\r\n\x1a\n" + b"\x07" * 64
UPLOAD = "POST /v1/files"


@pytest.fixture
def fake() -> FakeReplicate:
    fake = FakeReplicate()

    def draw(prompt: str) -> FileOut:
        return FileOut(PNG + prompt.encode(), f"{prompt}.png")

    def caption(image: Any, prompt: str = "") -> str:
        # What the model got: the fake hands it the input as the API received it.
        assert isinstance(image, str), f"the caption model got {type(image).__name__}"
        return f"a caption of {image.rsplit('/', 1)[-1]}"

    fake.add_model("acme/draw", draw)
    fake.add_model("acme/caption", caption)
    return fake


@pytest.fixture
async def base_url(fake: FakeReplicate) -> AsyncIterator[str]:
    async with fake.serve() as url:
        yield url


def make_client(base_url: str, **options: Any) -> areplicate.Client:
    return areplicate.Client(api_token="r8_test", base_url=base_url, rate_limits=None, **options)


def downloads(fake: FakeReplicate) -> int:
    """File fetches the fake served (the client's downloads of output files)."""
    return sum(1 for r in fake.requests if "/delivery/" in r.path)


class TestOutputsAsInputs:
    @pytest.mark.parametrize("encoding", ["auto", "upload", "data-uri"])
    async def test_an_image_caption_chain_never_downloads_the_image(
        self, fake: FakeReplicate, base_url: str, encoding: str
    ) -> None:
        prompts = [f"p{i}" for i in range(50)]
        async with make_client(base_url, file_encoding=encoding) as client:

            async def chain(prompt: str) -> tuple[str, areplicate.Prediction]:
                image = (
                    await client.predictions.create_and_wait("acme/draw", {"prompt": prompt})
                ).raise_for_status()
                [file] = client.files.outputs(image)
                captioned = (
                    await client.predictions.create_and_wait(
                        "acme/caption", {"image": file, "prompt": prompt}
                    )
                ).raise_for_status()
                return file.url, captioned

            results = await asyncio.gather(*(chain(p) for p in prompts))
        assert fake.counts["POST /v1/models/{owner}/{name}/predictions"] == 100
        assert downloads(fake) == 0
        assert fake.counts[UPLOAD] == 0
        for prompt, (url, captioned) in zip(prompts, results, strict=True):
            assert captioned.output == f"a caption of {prompt}.png"
            # The caption model's input holds the image's URL, as a string.
            assert fake.prediction(captioned.id)["input"]["image"] == url
            assert captioned.input["image"] == url

    async def test_a_plain_output_url_and_nested_outputs_pass_through(
        self, fake: FakeReplicate, base_url: str
    ) -> None:
        async with make_client(base_url) as client:
            image = (
                await client.predictions.create_and_wait("acme/draw", {"prompt": "x"})
            ).raise_for_status()
            [file] = client.files.outputs(image)
            unbound = areplicate.FileOutput(file.url)
            prepared = await client._prepare_input(
                {"image": image.output, "more": [file, {"again": unbound}]}
            )
        assert prepared == {"image": file.url, "more": [file.url, {"again": file.url}]}
        assert json.loads(json.dumps(prepared)) == prepared  # JSON-safe
        assert downloads(fake) == 0

    async def test_a_data_uri_output_is_sent_as_it_is(self, base_url: str) -> None:
        uri = "data:text/plain,a%20caption"  # re-encoding would make it base64
        async with make_client(base_url) as client:
            prepared = await client._prepare_input({"image": areplicate.FileOutput(uri)})
        assert prepared == {"image": uri}

    async def test_local_files_are_still_encoded(self, base_url: str, tmp_path: Path) -> None:
        path = tmp_path / "in.png"
        path.write_bytes(PNG)
        async with make_client(base_url) as client:
            prepared = await client._prepare_input({"a": path, "b": PNG})
        assert prepared["a"].startswith("data:image/png;base64,")
        assert prepared["b"] == prepared["a"]
