"""File inputs and client.files against a small files API of our own (aiohttp.web on 127.0.0.1).

What a user sees: which values become uploads or data URIs, what the upload request carries, that
reading never blocks the loop, and that inputs without files cost no request.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import os
import threading
import time
import types
from collections.abc import AsyncIterator, Awaitable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import attrs
import pytest
import stamina
from aiohttp import web

import areplicate
from areplicate._inputs import DATA_URI_BUDGET, DATA_URI_THRESHOLD, prepare_input

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _prepare(client: areplicate.Client, input: Mapping[str, Any]) -> Awaitable[dict[str, Any]]:
    """What the client does to an input before a create."""
    return prepare_input(input, encoding=client._file_encoding, upload=client.files._upload_url)


@attrs.define
class Upload:
    filename: str | None
    content_type: str | None
    size: int
    head: bytes
    fields: dict[str, str]
    authorization: str | None


class FilesAPI:
    """POST/GET/DELETE /v1/files with a record of what arrived; can fail or hold uploads."""

    def __init__(self) -> None:
        self.uploads: list[Upload] = []
        self.requests: list[tuple[str, str]] = []
        self.fail_next: list[int] = []
        self.hold: asyncio.Event | None = None
        self.all_held = asyncio.Event()
        self.expect_held = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.pages: list[dict[str, Any]] = []
        self.base = ""

    def app(self) -> web.Application:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_post("/v1/files", self.upload)
        app.router.add_get("/v1/files", self.list)
        app.router.add_get("/v1/files/{id}", self.get)
        app.router.add_delete("/v1/files/{id}", self.delete)
        return app

    def _body(self, fid: str, name: str = "x", content_type: str = "text/plain") -> dict[str, Any]:
        return {
            "id": fid,
            "name": name,
            "content_type": content_type,
            "size": 1,
            "etag": "e",
            "checksums": {},
            "metadata": {},
            "created_at": "2024-08-22T12:26:51.079Z",
            "expires_at": "2024-08-23T12:26:51.079Z",
            "urls": {"get": f"https://api.replicate.com/v1/files/{fid}"},
        }

    async def upload(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(("POST", request.path_qs))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.hold is not None:
                if self.in_flight >= self.expect_held:
                    self.all_held.set()
                await self.hold.wait()
            if self.fail_next:
                await request.read()
                return web.json_response({"detail": "try again"}, status=self.fail_next.pop(0))
            reader = await request.multipart()
            fields: dict[str, str] = {}
            upload = Upload(None, None, 0, b"", fields, request.headers.get("Authorization"))
            while (part := await reader.next()) is not None:
                assert isinstance(part, aiohttp.BodyPartReader)
                if part.name == "content":
                    upload.filename = part.filename
                    upload.content_type = part.headers.get("Content-Type")
                    while chunk := await part.read_chunk(1 << 20):
                        if upload.size == 0:
                            upload.head = chunk[:16]
                        upload.size += len(chunk)
                else:
                    fields[part.name or ""] = (await part.read()).decode()
            self.uploads.append(upload)
            fid = f"f{len(self.uploads)}"
            return web.json_response(
                self._body(fid, upload.filename or "", upload.content_type or ""), status=201
            )
        finally:
            self.in_flight -= 1

    async def get(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(("GET", request.path_qs))
        fid = request.match_info["id"]
        if fid == "gone":
            return web.json_response({"detail": "File not found"}, status=404)
        return web.json_response(self._body(fid))

    async def delete(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(("DELETE", request.path_qs))
        return web.Response(status=204, content_type="text/plain")

    async def list(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(("GET", request.path_qs))
        page = int(request.query.get("cursor", "0"))
        return web.json_response(self.pages[page])


@pytest.fixture
def api() -> FilesAPI:
    return FilesAPI()


@pytest.fixture
async def base_url(api: FilesAPI) -> AsyncIterator[str]:
    runner = web.AppRunner(api.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    api.base = f"http://127.0.0.1:{port}/v1"
    try:
        yield api.base
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[areplicate.Client]:
    async with areplicate.Client(api_token="r8_test", base_url=base_url, rate_limits=None) as c:
        yield c


def data_uri_bytes(uri: str) -> tuple[str, bytes]:
    header, _, payload = uri.partition(",")
    assert header.endswith(";base64")
    return header[5:-7], base64.b64decode(payload)


class TestPassThrough:
    async def test_input_without_files_is_copied_and_sends_nothing(
        self, client: areplicate.Client, api: FilesAPI
    ) -> None:
        value = {
            "prompt": "a cat",
            "n": 3,
            "scale": 1.5,
            "on": True,
            "x": None,
            "l": [1, {"a": "b"}],
        }
        out = await _prepare(client, value)
        assert out == value
        assert out is not value
        assert api.requests == []

    async def test_url_strings_pass_through_untouched(
        self, client: areplicate.Client, api: FilesAPI
    ) -> None:
        value = {"image": "https://example.com/a.png", "mask": "data:image/png;base64,AAAA"}
        assert await _prepare(client, value) == value
        assert api.requests == []

    def test_unknown_file_encoding_is_refused(self) -> None:
        with pytest.raises(ValueError, match="file_encoding must be"):
            areplicate.Client(api_token="r8_x", file_encoding="base64")  # type: ignore[arg-type]


class TestAuto:
    async def test_small_bytes_become_a_data_uri_with_sniffed_type(
        self, client: areplicate.Client, api: FilesAPI
    ) -> None:
        out = await _prepare(client, {"image": PNG})
        content_type, data = data_uri_bytes(out["image"])
        assert (content_type, data) == ("image/png", PNG)
        assert api.requests == []

    async def test_large_file_is_uploaded_and_replaced_by_its_url(
        self, client: areplicate.Client, api: FilesAPI, tmp_path: Path
    ) -> None:
        path = tmp_path / "photo.jpg"
        path.write_bytes(b"\xff\xd8\xff" + b"1" * DATA_URI_THRESHOLD)
        out = await _prepare(client, {"image": path, "prompt": "hi"})
        assert out == {"image": "https://api.replicate.com/v1/files/f1", "prompt": "hi"}
        [upload] = api.uploads
        assert upload.filename == "photo.jpg"
        assert upload.content_type == "image/jpeg"
        assert upload.size == DATA_URI_THRESHOLD + 3
        assert upload.fields == {"filename": "photo.jpg", "type": "image/jpeg", "metadata": "{}"}
        assert upload.authorization == "Bearer r8_test"

    async def test_exactly_the_threshold_is_still_inlined(
        self, client: areplicate.Client, api: FilesAPI
    ) -> None:
        out = await _prepare(client, {"a": b"x" * DATA_URI_THRESHOLD})
        assert out["a"].startswith("data:application/octet-stream;base64,")
        assert api.uploads == []

    async def test_inline_budget_per_input_uploads_the_overflow(
        self, client: areplicate.Client, api: FilesAPI
    ) -> None:
        size = 250 * 1024
        files = [bytes([i]) * size for i in range(5)]
        out = await _prepare(client, {"frames": files})
        inline = [v for v in out["frames"] if v.startswith("data:")]
        assert len(inline) == DATA_URI_BUDGET // size == 4
        assert out["frames"][4] == "https://api.replicate.com/v1/files/f1"
        assert [u.size for u in api.uploads] == [size]

    async def test_files_anywhere_in_nested_lists_and_dicts(
        self, client: areplicate.Client, api: FilesAPI, tmp_path: Path
    ) -> None:
        path = tmp_path / "clip.wav"
        path.write_bytes(b"RIFF\x00\x00\x00\x00WAVE" + b"a" * 10)
        value = {"a": [{"b": path}, ("t", io.BytesIO(b"raw"))], "c": {"d": {"e": bytearray(b"ba")}}}
        out = await _prepare(client, value)
        assert data_uri_bytes(out["a"][0]["b"])[0] in ("audio/wav", "audio/x-wav")
        assert out["a"][1][0] == "t"
        assert data_uri_bytes(out["a"][1][1])[1] == b"raw"
        assert data_uri_bytes(out["c"]["d"]["e"])[1] == b"ba"

    async def test_files_inside_other_mappings_and_sequence_subclasses(
        self, client: areplicate.Client
    ) -> None:
        class Frames(list[Any]):
            pass

        value = {"m": types.MappingProxyType({"a": PNG}), "f": Frames([b"ab"])}
        out = await _prepare(client, value)
        assert data_uri_bytes(out["m"]["a"])[1] == PNG
        assert data_uri_bytes(out["f"][0])[1] == b"ab"

    async def test_a_real_binary_file_object_is_read_from_its_position(
        self, client: areplicate.Client, tmp_path: Path
    ) -> None:
        path = tmp_path / "notes.txt"
        path.write_bytes(b"skip:keep")
        with path.open("rb") as handle:
            handle.seek(5)
            out = await _prepare(client, {"doc": handle})
        assert data_uri_bytes(out["doc"]) == ("text/plain", b"keep")

    async def test_text_mode_file_is_refused_with_advice(
        self, client: areplicate.Client, tmp_path: Path
    ) -> None:
        path = tmp_path / "notes.txt"
        path.write_text("hello")
        with path.open() as handle, pytest.raises(TypeError, match=r"binary mode \('rb'\)"):
            await _prepare(client, {"doc": handle})

    async def test_one_object_used_twice_is_uploaded_once(
        self, base_url: str, api: FilesAPI
    ) -> None:
        async with areplicate.Client(
            api_token="r8_test", base_url=base_url, rate_limits=None, file_encoding="upload"
        ) as client:
            blob = b"same"
            out = await _prepare(client, {"a": blob, "b": [blob]})
        assert out == {"a": out["b"][0], "b": [out["a"]]}
        assert len(api.uploads) == 1


class TestModes:
    async def test_upload_mode_uploads_even_tiny_files(self, base_url: str, api: FilesAPI) -> None:
        async with areplicate.Client(
            api_token="r8_test", base_url=base_url, rate_limits=None, file_encoding="upload"
        ) as client:
            out = await _prepare(client, {"a": PNG})
        assert out["a"].startswith("https://")
        assert api.uploads[0].filename == "file.png"
        assert api.uploads[0].content_type == "image/png"

    async def test_data_uri_mode_inlines_large_files(self, base_url: str, api: FilesAPI) -> None:
        big = b"z" * (2 * 1024 * 1024)
        async with areplicate.Client(
            api_token="r8_test", base_url=base_url, rate_limits=None, file_encoding="data-uri"
        ) as client:
            out = await _prepare(client, {"a": big})
        assert data_uri_bytes(out["a"])[1] == big
        assert api.requests == []

    async def test_data_uri_mode_refuses_over_ten_megabytes(self, base_url: str) -> None:
        async with areplicate.Client(
            api_token="r8_test", base_url=base_url, rate_limits=None, file_encoding="data-uri"
        ) as client:
            with pytest.raises(ValueError, match="file_encoding='upload'"):
                await _prepare(client, {"a": [b"1" * 6_000_000, b"2" * 6_000_000]})


class TestUploadRequests:
    async def test_several_files_of_one_input_upload_at_the_same_time(
        self, client: areplicate.Client, api: FilesAPI
    ) -> None:
        api.hold, api.expect_held = asyncio.Event(), 3
        task = asyncio.create_task(
            _prepare(client, {"x": [bytes([i]) * (DATA_URI_THRESHOLD + 1) for i in range(3)]})
        )
        with anyio.fail_after(10):  # all three reach the server before any is answered
            await api.all_held.wait()
        api.hold.set()
        out = await task
        assert api.max_in_flight == 3
        assert sorted(out["x"]) == [f"https://api.replicate.com/v1/files/f{i}" for i in (1, 2, 3)]

    async def test_a_retried_upload_sends_the_whole_form_again(
        self, client: areplicate.Client, api: FilesAPI
    ) -> None:
        stamina.set_testing(True, attempts=3)
        api.fail_next = [503]
        obj = await client.files.create(b"payload", filename="a.bin")
        assert obj.id == "f1"
        assert [u.size for u in api.uploads] == [7]
        assert api.requests.count(("POST", "/v1/files")) == 2

    async def test_a_failed_upload_raises_the_api_error(
        self, client: areplicate.Client, api: FilesAPI
    ) -> None:
        api.fail_next = [413]
        with pytest.raises(areplicate.APIError) as info:
            await _prepare(client, {"a": b"q" * (DATA_URI_THRESHOLD + 1)})
        assert info.value.status == 413


class SlowFile:
    """A binary file whose reads block the calling thread (a slow disk or network share)."""

    name = "slow.bin"

    def __init__(self, size: int, chunk: int = 1024 * 1024, delay: float = 0.01) -> None:
        self.size, self.chunk, self.delay = size, chunk, delay
        self.read_by: list[int] = []  # the threads that read it

    def read(self, size: int = -1) -> bytes:
        self.read_by.append(threading.get_ident())
        out = bytearray()
        while len(out) < self.size:
            time.sleep(self.delay)  # blocking on purpose: must happen off the event loop
            out += b"s" * min(self.chunk, self.size - len(out))
        return bytes(out)


async def tick_while(awaitable: Any) -> tuple[Any, list[float]]:
    """Await ``awaitable`` while a ticker task records loop times; return result and gaps."""
    loop = asyncio.get_running_loop()
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(loop.time())
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        result = await awaitable
    finally:
        done.set()
        await task
    return result, [b - a for a, b in itertools.pairwise(ticks)]


class TestNeverBlocksTheLoop:
    SIZE = 20 * 1024 * 1024

    async def test_slow_20mb_file_object_upload_keeps_the_loop_ticking(
        self, client: areplicate.Client, api: FilesAPI
    ) -> None:
        # 20 reads of 1 MiB, each blocking its thread 10 ms: 200 ms of stall if read on the loop.
        # Which thread read it is the proof; a bound on the loop's gaps would also time the fake
        # handling 20 MB on the same loop, and a loaded machine.
        slow = SlowFile(self.SIZE)
        obj, gaps = await tick_while(client.files.create(slow))
        assert obj.name == "slow.bin"
        assert api.uploads[0].size == self.SIZE
        assert slow.read_by
        assert threading.get_ident() not in slow.read_by
        assert len(gaps) >= 20  # and the loop went on meanwhile

    async def test_20mb_path_input_keeps_the_loop_ticking(
        self, client: areplicate.Client, api: FilesAPI, tmp_path: Path
    ) -> None:
        path = tmp_path / "big.bin"
        path.write_bytes(os.urandom(self.SIZE))
        out, gaps = await tick_while(_prepare(client, {"video": path}))
        assert out["video"].startswith("https://")
        assert api.uploads[0].size == self.SIZE
        assert len(gaps) >= 5
        assert max(gaps) < 0.1


class TestFilesService:
    async def test_create_with_name_type_and_metadata(
        self, client: areplicate.Client, api: FilesAPI
    ) -> None:
        obj = await client.files.create(
            b"{}", filename="cfg.json", content_type="application/json", metadata={"run": 7}
        )
        assert obj.urls["get"] == "https://api.replicate.com/v1/files/f1"
        [upload] = api.uploads
        assert (upload.filename, upload.content_type) == ("cfg.json", "application/json")
        assert json.loads(upload.fields["metadata"]) == {"run": 7}

    async def test_create_from_a_path_string(
        self, client: areplicate.Client, api: FilesAPI, tmp_path: Path
    ) -> None:
        path = tmp_path / "a.txt"
        path.write_text("hi")
        await client.files.create(str(path))
        assert (api.uploads[0].filename, api.uploads[0].content_type) == ("a.txt", "text/plain")

    async def test_get_and_delete_by_id_or_object(
        self, client: areplicate.Client, api: FilesAPI
    ) -> None:
        obj = await client.files.get("abc")
        assert obj.id == "abc"
        await client.files.delete(obj)
        assert api.requests == [("GET", "/v1/files/abc"), ("DELETE", "/v1/files/abc")]

    async def test_get_missing_file_is_not_found(self, client: areplicate.Client) -> None:
        with pytest.raises(areplicate.NotFoundError, match="File not found"):
            await client.files.get("gone")

    @pytest.mark.parametrize("bad", ["", "a/b", " x"])
    async def test_bad_ids_are_refused_before_sending(
        self, client: areplicate.Client, bad: str
    ) -> None:
        with pytest.raises(ValueError, match="not a file id"):
            await client.files.delete(bad)

    async def test_list_follows_next_links_on_the_clients_own_host(
        self, client: areplicate.Client, api: FilesAPI
    ) -> None:
        api.pages = [
            {
                "results": [api._body("a"), api._body("b")],
                "next": "https://api.replicate.com/v1/files?cursor=1",
                "previous": None,
            },
            {"results": [api._body("c")], "next": None, "previous": None},
        ]
        ids = [f.id async for f in client.files.list()]
        assert ids == ["a", "b", "c"]
        assert api.requests == [("GET", "/v1/files"), ("GET", "/v1/files?cursor=1")]
