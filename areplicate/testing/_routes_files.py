"""File routes: ``POST /files`` (multipart), list, get, delete, download."""

from __future__ import annotations

import hmac
import json
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from areplicate._core.files_sign import sign_download
from areplicate.testing._model import InvalidField
from areplicate.testing._records import dumps
from areplicate.testing._responses import (
    _ACCOUNT,
    OTHER,
    PAGE_SIZE,
    Problem,
    _decode_cursor,
    _encode_cursor,
    _Handler,
    _invalid,
    _json,
    _page,
)
from areplicate.testing._routes_base import RoutesBase


class FileRoutes(RoutesBase):
    """Uploads, list, get, delete and download of files."""

    async def create_file(self, request: web.Request) -> web.StreamResponse:
        """POST /files (multipart): ``content`` part, optional ``filename``, ``type``, ``metadata``."""
        if not request.content_type.startswith("multipart/"):
            raise Problem(400, "Expected a multipart/form-data body with a 'content' part")
        reader = await request.multipart()
        limit = self.fake.max_upload_size
        data: bytearray | None = None
        part_name: str | None = None
        part_type: str | None = None
        fields: dict[str, str] = {}
        while True:
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, aiohttp.BodyPartReader):
                continue
            if part.name == "content":
                data = bytearray()
                while chunk := await part.read_chunk(65536):
                    data += chunk
                    if len(data) > limit:
                        raise Problem(413, "Files must be less than 100MB in size")
                part_name = part.filename
                part_type = part.headers.get("Content-Type")
            elif part.name in ("filename", "type", "metadata"):
                fields[part.name] = await part.text()
            else:
                await part.release()
        if data is None:
            raise _invalid([InvalidField("required", "(root)", "content is required")])
        name = fields.get("filename") or part_name or "file"
        if len(name.encode()) > 255:
            raise _invalid(
                [
                    InvalidField(
                        "string_lte", "filename", "String length must be less than or equal to 255"
                    )
                ]
            )
        content_type = fields.get("type") or part_type or "application/octet-stream"
        metadata: Any = {}
        if fields.get("metadata"):
            try:
                metadata = json.loads(fields["metadata"])
            except ValueError:
                metadata = None
            if not isinstance(metadata, dict):
                raise _invalid(
                    [InvalidField("invalid_type", "metadata", "Invalid type. Expected: object")]
                )
        rec = self.fake._new_file(name, content_type, bytes(data), metadata)
        return _json(dumps(rec.to_json()), status=201)

    async def list_files(self, request: web.Request) -> web.StreamResponse:
        """GET /files: newest first, 100 a page."""
        files = sorted(self.fake._files.values(), key=lambda f: f.seq, reverse=True)
        cursor = request.query.get("cursor")
        if cursor is not None:
            position, _ = _decode_cursor(cursor)
            files = [f for f in files if f.seq < position]
        page, rest = files[:PAGE_SIZE], files[PAGE_SIZE:]
        next_url = None
        if rest:
            next_url = f"{self._public_base()}/files?" + urlencode(
                {"cursor": _encode_cursor(page[-1].seq)}
            )
        return _json(_page(b",".join(dumps(f.to_json()) for f in page), next_url, None))

    def _file(self, request: web.Request) -> Any:
        rec = self.fake._files.get(request.match_info["id"])
        if rec is None:
            raise Problem(404, "File not found")
        return rec

    async def get_file(self, request: web.Request) -> web.StreamResponse:
        """GET /files/{id}."""
        return _json(dumps(self._file(request).to_json()))

    async def delete_file(self, request: web.Request) -> web.StreamResponse:
        """DELETE /files/{id}: 204; afterwards the file is 404."""
        rec = self._file(request)
        del self.fake._files[rec.id]
        return web.Response(status=204, content_type="text/plain")

    async def download_file(self, request: web.Request) -> web.StreamResponse:
        """GET /files/{id}/download?owner=&expiry=&signature=: the bytes, if the URL is signed.

        ``signature`` must be ``sign_download(fake.files_signing_secret, owner, id, expiry)``
        (``FakeReplicate.file_download_url`` builds such a URL), ``owner`` the file's owner (the
        fake's account, ``fake-user``) and ``expiry`` a Unix time still ahead of the fake's clock.
        """
        rec = self._file(request)
        query = request.query
        missing = [name for name in ("owner", "expiry", "signature") if not query.get(name)]
        if missing:
            raise Problem(
                400,
                f"Missing query parameter(s): {', '.join(missing)} "
                "(a download URL carries owner, expiry and signature)",
            )
        owner, signature = query["owner"], query["signature"]
        try:
            expiry = int(query["expiry"])
        except ValueError:
            raise Problem(
                400, f"expiry must be a Unix time in seconds, got {query['expiry']!r}"
            ) from None
        expected = sign_download(self.fake.files_signing_secret, owner, rec.id, expiry)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise Problem(403, "Invalid signature for this file, owner and expiry")
        if owner != _ACCOUNT["username"]:
            raise Problem(404, "File not found")
        if expiry <= self.fake.clock.time():
            raise Problem(403, f"This download URL expired at {expiry}")
        return web.Response(
            body=rec.data,
            content_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{rec.name}"'},
        )

    def _file_routes(self) -> list[tuple[str, str, _Handler, str]]:
        return [
            ("POST", "/files", self.create_file, OTHER),
            ("GET", "/files", self.list_files, OTHER),
            ("GET", "/files/{id}", self.get_file, OTHER),
            ("DELETE", "/files/{id}", self.delete_file, OTHER),
            ("GET", "/files/{id}/download", self.download_file, OTHER),
        ]
