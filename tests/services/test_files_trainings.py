"""Training inputs get the same file handling as prediction inputs (zip archives are the usual case)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import areplicate

VERSION = "39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b"
ZIP = b"PK\x03\x04" + b"\x00" * 60


class TrainingsAPI:
    """POST /v1/files and the trainings create route, recording what arrived."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.uploads = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/files", self.upload)
        app.router.add_post("/v1/models/{owner}/{name}/versions/{version}/trainings", self.create)
        return app

    async def upload(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.uploads += 1
        fid = f"f{self.uploads}"
        return web.json_response(
            {
                "id": fid,
                "name": "data.zip",
                "content_type": "application/zip",
                "size": len(ZIP),
                "etag": "e",
                "checksums": {},
                "metadata": {},
                "created_at": "2024-08-22T12:26:51.079Z",
                "expires_at": "2024-08-23T12:26:51.079Z",
                "urls": {"get": f"https://api.replicate.com/v1/files/{fid}"},
            },
            status=201,
        )

    async def create(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        return web.json_response(
            {
                "id": "t1",
                "model": "acme/sdxl",
                "version": VERSION,
                "input": body["input"],
                "status": "starting",
                "created_at": "2023-08-16T19:33:26.678378653Z",
                "urls": {"get": "https://api.replicate.com/v1/trainings/t1"},
            },
            status=201,
        )


@pytest.fixture
def api() -> TrainingsAPI:
    return TrainingsAPI()


@pytest.fixture
async def base_url(api: TrainingsAPI) -> AsyncIterator[str]:
    runner = web.AppRunner(api.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


def make_client(base_url: str, **options: Any) -> areplicate.Client:
    return areplicate.Client(api_token="r8_test", base_url=base_url, rate_limits=None, **options)


class TestTrainingInputs:
    async def test_a_path_is_uploaded_and_sent_as_its_url(
        self, api: TrainingsAPI, base_url: str, tmp_path: Path
    ) -> None:
        archive = tmp_path / "data.zip"
        archive.write_bytes(ZIP)
        async with make_client(base_url, file_encoding="upload") as client:
            training = await client.trainings.create(
                f"acme/sdxl:{VERSION}", destination="acme/sdxl-me", input={"input_images": archive}
            )
        assert api.uploads == 1
        assert api.bodies == [
            {
                "destination": "acme/sdxl-me",
                "input": {"input_images": "https://api.replicate.com/v1/files/f1"},
            }
        ]
        assert training.input == {"input_images": "https://api.replicate.com/v1/files/f1"}

    async def test_small_files_are_inlined_as_for_predictions(
        self, api: TrainingsAPI, base_url: str, tmp_path: Path
    ) -> None:
        archive = tmp_path / "data.zip"
        archive.write_bytes(ZIP)
        async with make_client(base_url) as client:
            await client.trainings.create(
                f"acme/sdxl:{VERSION}",
                destination="acme/sdxl-me",
                input={"input_images": archive, "captions": [b"one"]},
            )
        [body] = api.bodies
        header, _, payload = body["input"]["input_images"].partition(",")
        assert header == "data:application/zip;base64"
        assert base64.b64decode(payload) == ZIP
        assert body["input"]["captions"][0].startswith("data:")
        assert api.uploads == 0
        json.dumps(body)

    async def test_a_file_output_is_sent_as_its_url(self, api: TrainingsAPI, base_url: str) -> None:
        url = "https://replicate.delivery/pbxt/abc/data.zip"
        async with make_client(base_url) as client:
            await client.trainings.create(
                f"acme/sdxl:{VERSION}",
                destination="acme/sdxl-me",
                input={"input_images": areplicate.FileOutput(url)},
            )
        assert api.bodies[0]["input"] == {"input_images": url}
