"""client.files.download against a small files API of our own that checks the signed link.

``GET /v1/files/{id}/download?owner=&expiry=&signature=`` answers the bytes when the signature is
the HMAC the API describes and the link has not expired, else 404 (as the API documents).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import areplicate
from areplicate._core.files_sign import sign_download, verify_download

SECRET = "files-signing-secret"
OWNER = "acme"
DATA = bytes(range(256)) * 4096  # 1 MiB: streamed in more than one chunk


class DownloadAPI:
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], str | None]] = []
        self.break_after: int | None = None
        self.redirect_to: str | None = None
        self.base = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/files/{id}/download", self.download)
        app.router.add_get("/cdn/{id}", self.cdn)
        return app

    async def download(self, request: web.Request) -> web.StreamResponse:
        fid = request.match_info["id"]
        query = dict(request.query)
        self.seen.append((request.path, query, request.headers.get("Authorization")))
        try:
            expiry = int(query["expiry"])
            valid = verify_download(
                SECRET, query["owner"], fid, expiry, query["signature"], now=time.time()
            )
        except (KeyError, ValueError):
            valid = False
        if not valid or fid != "f1":
            return web.json_response({"detail": "File not found"}, status=404)
        if self.redirect_to is not None:
            raise web.HTTPFound(self.redirect_to)
        return await self._bytes(request)

    async def cdn(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.path, {}, request.headers.get("Authorization")))
        return await self._bytes(request)

    async def _bytes(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/zip",
                "Content-Disposition": 'attachment; filename="data.zip"',
                "Content-Length": str(len(DATA)),
            }
        )
        await response.prepare(request)
        if self.break_after is not None:
            await response.write(DATA[: self.break_after])
            assert request.transport is not None
            request.transport.close()  # the connection drops mid-file
            return response
        await response.write(DATA)
        await response.write_eof()
        return response


@pytest.fixture
def api() -> DownloadAPI:
    return DownloadAPI()


@pytest.fixture
async def base_url(api: DownloadAPI) -> AsyncIterator[str]:
    runner = web.AppRunner(api.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    api.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield api.base + "/v1"
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[areplicate.Client]:
    async with areplicate.Client(api_token="r8_test", base_url=base_url, rate_limits=None) as c:
        yield c


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def link(expiry: int | None = None) -> dict[str, Any]:
    expiry = int(time.time()) + 3600 if expiry is None else expiry
    return {
        "owner": OWNER,
        "expiry": expiry,
        "signature": sign_download(SECRET, OWNER, "f1", expiry),
    }


class TestDownload:
    async def test_streams_the_file_to_the_path(
        self, client: areplicate.Client, api: DownloadAPI, tmp_path: Path
    ) -> None:
        options = link()
        target = tmp_path / "out.zip"
        assert await client.files.download("f1", target, **options) == target
        assert target.read_bytes() == DATA
        assert files_in(tmp_path) == ["out.zip"]  # no .part left
        [(path, query, auth)] = api.seen
        assert path == "/v1/files/f1/download"
        assert query == {
            "owner": OWNER,
            "expiry": str(options["expiry"]),
            "signature": options["signature"],  # '+', '/', '=' arrive intact
        }
        assert auth == "Bearer r8_test"

    async def test_into_a_directory_under_the_files_name(
        self, client: areplicate.Client, tmp_path: Path
    ) -> None:
        saved = await client.files.download("f1", tmp_path, **link())
        assert saved == tmp_path / "data.zip"
        assert saved.read_bytes() == DATA

    async def test_an_aware_datetime_expiry(
        self, client: areplicate.Client, tmp_path: Path
    ) -> None:
        expiry = int(time.time()) + 600
        when = dt.datetime.fromtimestamp(expiry, dt.timezone.utc)
        signature = client.files.sign("f1", owner=OWNER, expiry=when, secret=SECRET)
        assert signature == sign_download(SECRET, OWNER, "f1", expiry)
        saved = await client.files.download(
            "f1", tmp_path / "x", owner=OWNER, expiry=when, signature=signature
        )
        assert saved.read_bytes() == DATA

    async def test_a_naive_datetime_is_refused(
        self, client: areplicate.Client, api: DownloadAPI
    ) -> None:
        with pytest.raises(ValueError, match="naive datetime"):
            await client.files.download(
                "f1", "x", owner=OWNER, expiry=dt.datetime(2030, 1, 1), signature="s"
            )
        assert api.seen == []

    @pytest.mark.parametrize(
        "options",
        [
            {"owner": OWNER, "expiry": 2_000_000_000, "signature": "bm90IGl0"},
            link(expiry=int(time.time()) - 10),  # signed, but expired
            {**link(), "owner": "someone-else"},
        ],
        ids=["bad-signature", "expired", "other-owner"],
    )
    async def test_a_bad_link_is_not_found_and_writes_nothing(
        self, client: areplicate.Client, tmp_path: Path, options: dict[str, Any]
    ) -> None:
        with pytest.raises(areplicate.NotFoundError) as info:
            await client.files.download("f1", tmp_path / "out.zip", **options)
        assert "r8_test" not in repr(info.value)
        assert files_in(tmp_path) == []

    async def test_a_broken_connection_leaves_no_partial_file(
        self, client: areplicate.Client, api: DownloadAPI, tmp_path: Path
    ) -> None:
        api.break_after = 100_000
        with pytest.raises(areplicate.APIConnectionError):
            await client.files.download("f1", tmp_path / "out.zip", **link())
        assert files_in(tmp_path) == []

    async def test_a_redirect_to_a_file_host_sends_no_token(
        self, api: DownloadAPI, base_url: str, tmp_path: Path
    ) -> None:
        # The client talks to the API as "localhost": 127.0.0.1 is another origin, a file host.
        api.redirect_to = f"{api.base}/cdn/f1"
        base = base_url.replace("127.0.0.1", "localhost")
        async with areplicate.Client(api_token="r8_test", base_url=base, rate_limits=None) as c:
            saved = await c.files.download("f1", tmp_path / "out.zip", **link())
        assert saved.read_bytes() == DATA
        assert [(path, auth) for path, _, auth in api.seen] == [
            ("/v1/files/f1/download", "Bearer r8_test"),
            ("/cdn/f1", None),
        ]

    async def test_a_bad_file_id_is_refused_before_sending(
        self, client: areplicate.Client, api: DownloadAPI
    ) -> None:
        with pytest.raises(ValueError, match="not a file id"):
            await client.files.download("a/b", "x", **link())
        assert api.seen == []
