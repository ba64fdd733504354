"""File outputs: finding them, downloading them, and where the token goes.

One small aiohttp.web app is served on 127.0.0.1 (the client's API origin) and on 127.0.0.2 (a
"file host" such as replicate.delivery), same port: only the host name differs, so the token must
reach the first and never the second.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import anyio
import attrs
import pytest
from aiohttp import web

import areplicate
from areplicate._outputs import FileOutput, output_files, save_outputs


@attrs.define
class Hit:
    host: str
    path: str
    authorization: str | None


class FileHost:
    """Serves ``/out/<name>`` (content derived from the name), redirects, 404s and broken bodies."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.port = 0
        self.hold: asyncio.Event | None = None
        self.hold_at = 0
        self.full = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0

    @staticmethod
    def content(name: str) -> bytes:
        return (name.encode() + b";") * 2000

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/out/{name}", self.out)
        app.router.add_get("/v1/files/{id}/download", self.redirect)
        app.router.add_get("/gone/{name}", self.gone)
        app.router.add_get("/broken/{name}", self.broken)
        return app

    def _hit(self, request: web.Request) -> None:
        self.hits.append(
            Hit(request.host.split(":")[0], request.path, request.headers.get("Authorization"))
        )

    async def out(self, request: web.Request) -> web.StreamResponse:
        self._hit(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.hold is not None:
                if self.in_flight >= self.hold_at:
                    self.full.set()
                await self.hold.wait()
            return web.Response(body=self.content(request.match_info["name"]))
        finally:
            self.in_flight -= 1

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        self._hit(request)
        name = request.match_info["id"]
        raise web.HTTPFound(f"http://127.0.0.2:{self.port}/out/{name}")

    async def gone(self, request: web.Request) -> web.StreamResponse:
        self._hit(request)
        return web.json_response({"detail": "Not found"}, status=404)

    async def broken(self, request: web.Request) -> web.StreamResponse:
        self._hit(request)
        response = web.StreamResponse(headers={"Content-Length": "100000"})
        await response.prepare(request)
        await response.write(b"partial")
        assert request.transport is not None
        request.transport.close()
        return response


@pytest.fixture
async def host() -> AsyncIterator[FileHost]:
    host = FileHost()
    runner = web.AppRunner(host.app())
    await runner.setup()
    first = web.TCPSite(runner, "127.0.0.1", 0)
    await first.start()
    host.port = runner.addresses[0][1]
    await web.TCPSite(runner, "127.0.0.2", host.port).start()
    try:
        yield host
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(host: FileHost) -> AsyncIterator[areplicate.Client]:
    async with areplicate.Client(
        api_token="r8_test", base_url=f"http://127.0.0.1:{host.port}/v1", rate_limits=None
    ) as c:
        yield c


def listing(folder: Path) -> list[str]:
    """The names in ``folder``, sorted (.part files included)."""
    return sorted(p.name for p in folder.iterdir())


def api_url(host: FileHost, path: str) -> str:
    return f"http://127.0.0.1:{host.port}{path}"


def cdn_url(host: FileHost, path: str) -> str:
    return f"http://127.0.0.2:{host.port}{path}"


class TestFinding:
    def test_urls_anywhere_in_the_output_in_order(self) -> None:
        output = {
            "images": ["https://replicate.delivery/a/out-0.png", "https://x.test/b.png"],
            "meta": {"preview": "data:image/png;base64,AAAA", "seed": 42, "caption": "a cat"},
            "note": "see https://example.com for more",  # prose, not a file
        }
        urls = [f.url for f in output_files(areplicate.Prediction(id="p", output=output))]
        assert urls == [
            "https://replicate.delivery/a/out-0.png",
            "https://x.test/b.png",
            "data:image/png;base64,AAAA",
        ]

    @pytest.mark.parametrize("output", [None, "", "hello", 3, [], {"text": "hi"}, ["ftp://x/y"]])
    def test_outputs_without_files(self, output: object) -> None:
        assert output_files(areplicate.Prediction(id="p", output=output)) == []

    def test_a_raw_output_string_works_too(self) -> None:
        assert output_files("https://replicate.delivery/x/out.wav")[0].name == "out.wav"

    def test_client_files_outputs_binds_the_client(self, client: areplicate.Client) -> None:
        p = areplicate.Prediction(id="p", output=["https://replicate.delivery/x/o.png"])
        assert client.files.outputs(p) == output_files(p)
        assert client.files.outputs(p)[0]._session is client._session

    @pytest.mark.parametrize(
        ("url", "name"),
        [
            ("https://replicate.delivery/pbxt/abc/out-0.png", "out-0.png"),
            ("https://replicate.delivery/pbxt/abc/my%20file.webp?x=1", "my file.webp"),
            ("https://replicate.delivery/", "output"),
            ("data:image/png;base64,AAAA", "output.png"),
            ("data:,hi", "output"),
        ],
    )
    def test_name(self, url: str, name: str) -> None:
        assert FileOutput(url).name == name

    def test_not_a_url_is_refused(self) -> None:
        with pytest.raises(ValueError, match="http"):
            FileOutput("/tmp/out.png")

    def test_str_is_the_url(self) -> None:
        assert str(FileOutput("https://a.test/x")) == "https://a.test/x"


class TestDataURIs:
    async def test_read_decodes_locally(self) -> None:
        assert await FileOutput("data:text/plain;base64,aGVsbG8=").read() == b"hello"
        assert await FileOutput("data:,hello%20world").read() == b"hello world"

    async def test_iter_bytes_in_chunks(self) -> None:
        out = FileOutput("data:application/octet-stream;base64," + "QUJD" * 10)
        chunks = [c async for c in out.iter_bytes(chunk_size=7)]
        assert b"".join(chunks) == b"ABC" * 10
        assert max(map(len, chunks)) == 7

    async def test_malformed_data_uri_raises_value_error(self) -> None:
        with pytest.raises(ValueError, match="characters base64 does not use"):
            await FileOutput("data:image/png;base64,@@@").read()

    async def test_save_into_a_directory_uses_the_name(self, tmp_path: Path) -> None:
        path = await FileOutput("data:text/plain;base64,aGk=").save(tmp_path)
        assert path == tmp_path / "output.txt"
        assert path.read_bytes() == b"hi"


class TestWhereTheTokenGoes:
    async def test_download_from_another_host_carries_no_authorization(
        self, client: areplicate.Client, host: FileHost
    ) -> None:
        p = areplicate.Prediction(id="p1", output=[cdn_url(host, "/out/a.png")])
        [file] = client.files.outputs(p)
        assert await file.read() == host.content("a.png")
        assert host.hits == [Hit("127.0.0.2", "/out/a.png", None)]

    async def test_download_from_the_api_origin_carries_the_token(
        self, client: areplicate.Client, host: FileHost
    ) -> None:
        # The contrast that shows the test above can see a token when one is sent.
        await FileOutput(api_url(host, "/out/b.png"), client=client).read()
        assert host.hits == [Hit("127.0.0.1", "/out/b.png", "Bearer r8_test")]

    async def test_redirect_from_the_api_to_a_file_host_drops_the_token(
        self, client: areplicate.Client, host: FileHost
    ) -> None:
        data = await FileOutput(api_url(host, "/v1/files/c.bin/download"), client=client).read()
        assert data == host.content("c.bin")
        assert host.hits == [
            Hit("127.0.0.1", "/v1/files/c.bin/download", "Bearer r8_test"),
            Hit("127.0.0.2", "/out/c.bin", None),
        ]

    async def test_unbound_file_output_sends_no_credentials_anywhere(self, host: FileHost) -> None:
        assert await FileOutput(api_url(host, "/out/d.png")).read() == host.content("d.png")
        assert host.hits == [Hit("127.0.0.1", "/out/d.png", None)]


class TestDownloads:
    async def test_iter_bytes_streams_the_body(
        self, client: areplicate.Client, host: FileHost
    ) -> None:
        out = FileOutput(cdn_url(host, "/out/e.bin"), client=client)
        chunks = [c async for c in out.iter_bytes(chunk_size=1000)]
        assert b"".join(chunks) == host.content("e.bin")
        assert max(map(len, chunks)) <= 1000

    async def test_stopping_early_with_aclosing_releases_the_connection(
        self, client: areplicate.Client, host: FileHost
    ) -> None:
        out = FileOutput(cdn_url(host, "/out/f.bin"), client=client)
        async with aclosing(out.iter_bytes(chunk_size=10)) as chunks:
            async for chunk in chunks:
                assert chunk
                break
        assert await out.read() == host.content("f.bin")  # the pool still works

    async def test_missing_file_says_outputs_expire(
        self, client: areplicate.Client, host: FileHost
    ) -> None:
        for out in (
            FileOutput(cdn_url(host, "/gone/x.png"), client=client),
            FileOutput(cdn_url(host, "/gone/x.png")),
        ):
            with pytest.raises(areplicate.NotFoundError, match="an hour") as info:
                await out.read()
            assert info.value.status == 404

    async def test_save_to_a_path(
        self, client: areplicate.Client, host: FileHost, tmp_path: Path
    ) -> None:
        path = await FileOutput(cdn_url(host, "/out/g.png"), client=client).save(tmp_path / "g")
        assert path == tmp_path / "g"
        assert path.read_bytes() == host.content("g.png")

    async def test_broken_download_leaves_no_file_behind(
        self, client: areplicate.Client, host: FileHost, tmp_path: Path
    ) -> None:
        out = FileOutput(cdn_url(host, "/broken/h.png"), client=client)
        with pytest.raises(areplicate.APIConnectionError):
            await out.save(tmp_path / "h.png")
        assert listing(tmp_path) == []


class TestSaveOutputs:
    async def test_every_file_of_every_prediction_with_unique_names(
        self, client: areplicate.Client, host: FileHost, tmp_path: Path
    ) -> None:
        a = areplicate.Prediction(
            id="pa", output=[cdn_url(host, "/out/out-0.png"), cdn_url(host, "/out/out-1.png")]
        )
        b = areplicate.Prediction(
            id="pb", output={"image": cdn_url(host, "/out/out-0.png"), "text": "hi"}
        )
        c = areplicate.Prediction(id="pc", output="data:text/plain;base64,aGk=")
        empty = areplicate.Prediction(id="pd", output=None)
        error = areplicate.PredictionFailedError(a)
        folder = tmp_path / "new" / "dir"
        paths = await save_outputs(client, [a, error, b, None, a, c, empty], folder)
        assert [p.name for p in paths] == [
            "pa-0-out-0.png",
            "pa-1-out-1.png",
            "pb-0-out-0.png",
            "pc-0-output.txt",
        ]
        assert listing(folder) == sorted(p.name for p in paths)
        assert paths[1].read_bytes() == host.content("out-1.png")
        assert paths[3].read_bytes() == b"hi"
        assert all(hit.authorization is None for hit in host.hits)

    async def test_downloads_run_concurrently_up_to_the_limit(
        self, client: areplicate.Client, host: FileHost, tmp_path: Path
    ) -> None:
        predictions = [
            areplicate.Prediction(
                id=f"p{i}", output=[cdn_url(host, f"/out/{i}-{j}.bin") for j in (0, 1)]
            )
            for i in range(6)
        ]
        host.hold, host.hold_at = asyncio.Event(), 3
        task = asyncio.create_task(save_outputs(client, predictions, tmp_path, concurrency=3))
        with anyio.fail_after(10):
            await host.full.wait()  # three downloads are at the server at once ...
        for _ in range(20):
            await asyncio.sleep(0)  # ... and give a fourth every chance to show up
        assert host.in_flight == 3
        host.hold.set()
        paths = await task
        assert len(paths) == 12
        assert host.max_in_flight == 3
        assert len(listing(tmp_path)) == 12

    async def test_first_failure_is_raised(
        self, client: areplicate.Client, host: FileHost, tmp_path: Path
    ) -> None:
        p = areplicate.Prediction(
            id="p", output=[cdn_url(host, "/out/a.bin"), cdn_url(host, "/gone/b.bin")]
        )
        with pytest.raises(areplicate.NotFoundError):
            await save_outputs(client, [p], tmp_path, concurrency=1)

    @pytest.mark.parametrize("bad", [0, -1, True, 1.5])
    async def test_bad_concurrency(
        self, client: areplicate.Client, tmp_path: Path, bad: object
    ) -> None:
        with pytest.raises(ValueError, match="concurrency"):
            await save_outputs(client, [], tmp_path, concurrency=bad)  # type: ignore[arg-type]
