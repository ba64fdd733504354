"""Files against the fake Replicate: client.files, Path inputs in predictions and fan-outs, and
file outputs downloaded from the fake's delivery URLs (which must not see the token)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import areplicate
from areplicate._inputs import DATA_URI_THRESHOLD
from areplicate._outputs import output_files, save_outputs
from areplicate.testing import FakeReplicate, Faults, FileOut

UPLOAD = "POST /v1/files"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x07" * 64


@pytest.fixture
def fake() -> FakeReplicate:
    fake = FakeReplicate()

    def echo(**input: Any) -> dict[str, Any]:
        return input

    def pixels(n: int = 2) -> list[FileOut]:
        return [FileOut(PNG + bytes([i]), f"out-{i}.png") for i in range(n)]

    fake.add_model("acme/echo", echo)
    fake.add_model("acme/pixels", pixels)
    return fake


@pytest.fixture
async def base_url(fake: FakeReplicate) -> AsyncIterator[str]:
    async with fake.serve() as url:
        yield url


def make_client(base_url: str, **options: Any) -> areplicate.Client:
    return areplicate.Client(api_token="r8_test", base_url=base_url, rate_limits=None, **options)


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[areplicate.Client]:
    async with make_client(base_url) as c:
        yield c


def file_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


class TestFilesService:
    async def test_create_get_list_delete(
        self, client: areplicate.Client, fake: FakeReplicate
    ) -> None:
        obj = await client.files.create(
            b"hello", filename="hello.txt", content_type="text/plain", metadata={"k": [1]}
        )
        assert (obj.name, obj.content_type, obj.size, obj.metadata) == (
            "hello.txt",
            "text/plain",
            5,
            {"k": [1]},
        )
        assert obj.checksums.get("sha256") == (
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        )
        assert (await client.files.get(obj.id)).size == 5
        assert [f.id async for f in client.files.list()] == [obj.id]
        await client.files.delete(obj)
        with pytest.raises(areplicate.NotFoundError):
            await client.files.get(obj.id)
        assert fake.server_errors == []

    async def test_list_follows_pages(self, client: areplicate.Client) -> None:
        made = [(await client.files.create(bytes([i]))).id for i in range(105)]
        listed = [f.id async for f in client.files.list()]
        assert listed == made[::-1]  # newest first, across two pages


class TestInputs:
    async def test_a_path_input_is_uploaded_and_the_model_gets_its_url(
        self, client: areplicate.Client, fake: FakeReplicate, tmp_path: Path
    ) -> None:
        path = tmp_path / "big.bin"
        path.write_bytes(b"\x01" * (DATA_URI_THRESHOLD + 1))
        output = await client.run("acme/echo", {"image": path, "prompt": "hi"})
        assert output["prompt"] == "hi"
        assert output["image"].startswith(f"{client.base_url}/files/")
        uploaded = await client.files.get(file_id(output["image"]))
        assert (uploaded.name, uploaded.size) == ("big.bin", DATA_URI_THRESHOLD + 1)
        assert fake.counts[UPLOAD] == 1

    async def test_a_small_input_goes_inline_without_an_upload(
        self, client: areplicate.Client, fake: FakeReplicate
    ) -> None:
        output = await client.run("acme/echo", {"image": PNG})
        assert output["image"].startswith("data:image/png;base64,")
        assert fake.counts[UPLOAD] == 0

    async def test_fan_out_of_50_path_inputs_uploads_concurrently(self, tmp_path: Path) -> None:
        # Every upload is held 1 s at the server. One at a time, the next upload could not arrive
        # before the previous one was answered; concurrently, they all arrive within that second.
        fake = FakeReplicate(faults=Faults(latency=1.0, routes={UPLOAD}))
        fake.add_model("acme/echo", lambda **input: input)
        paths = []
        for i in range(50):
            paths.append(tmp_path / f"in-{i}.bin")
            paths[-1].write_bytes(bytes([i]) * 100)
        inputs = [{"image": path, "i": i} for i, path in enumerate(paths)]
        async with fake.serve() as url, make_client(url, file_encoding="upload") as client:
            results = await areplicate.gather_predictions(
                client, "acme/echo", inputs, concurrency=50
            )
            names = [(await client.files.get(file_id(p.output["image"]))).name for p in results]
        assert [p.status for p in results] == ["succeeded"] * 50
        assert [p.output["i"] for p in results] == list(range(50))
        assert names == [path.name for path in paths]
        arrivals = sorted(r.time for r in fake.requests if r.route == UPLOAD)
        assert len(arrivals) == 50
        overlapping = [t for t in arrivals if t < arrivals[0] + 1.0]
        assert len(overlapping) >= 10, f"only {len(overlapping)} uploads overlapped the first"


class TestOutputs:
    async def test_outputs_from_a_file_host_get_no_token(
        self, base_url: str, fake: FakeReplicate, tmp_path: Path
    ) -> None:
        # The client talks to the API as "localhost"; the fake writes delivery URLs on 127.0.0.1,
        # another origin, like replicate.delivery is to api.replicate.com.
        async with make_client(base_url.replace("127.0.0.1", "localhost")) as client:
            prediction = (
                await client.predictions.create_and_wait("acme/pixels", {"n": 2})
            ).raise_for_status()
            files = client.files.outputs(prediction)
            assert [f.name for f in files] == ["out-0.png", "out-1.png"]
            assert await files[1].read() == PNG + b"\x01"
            paths = await save_outputs(client, [prediction], tmp_path)
        assert [p.name for p in paths] == [
            f"{prediction.id}-0-out-0.png",
            f"{prediction.id}-1-out-1.png",
        ]
        assert paths[0].read_bytes() == PNG + b"\x00"
        downloads = [r for r in fake.requests if "/delivery/" in r.path]
        assert len(downloads) == 3
        assert all("Authorization" not in r.headers for r in downloads)
        api_calls = [r for r in fake.requests if "/delivery/" not in r.path]
        assert all(r.headers["Authorization"] == "Bearer r8_test" for r in api_calls)

    async def test_outputs_expire_with_the_predictions_data(self, fake: FakeReplicate) -> None:
        fake.data_ttl = 0.3
        async with fake.serve() as url, make_client(url) as client:
            prediction = (
                await client.predictions.create_and_wait("acme/pixels", {"n": 1})
            ).raise_for_status()
            [file] = output_files(prediction, client)
            assert await file.read() == PNG + b"\x00"
            with anyio.fail_after(10):  # the fake removes the data 0.3 s after completion
                while True:
                    if (await client.predictions.get(prediction)).data_removed:
                        break
                    await asyncio.sleep(0.05)
            with pytest.raises(areplicate.NotFoundError, match="an hour"):
                await file.read()
