"""Files: upload, get, list and delete (docs/api-notes.md#files), plus output files.

Uploads are ``multipart/form-data`` with the parts the API documents: ``content`` (the bytes, with
file name and content type), ``filename``, ``type`` and ``metadata`` (a JSON object as text, as the
Python client sends it). The form is rebuilt for each attempt, so a retried upload sends it whole.
"""

from __future__ import annotations

import builtins
import io
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp

from areplicate._convert import structure
from areplicate._core.urls import rebase
from areplicate._files import (
    Blob,
    FileOutput,
    FileSource,
    file_url,
    metadata_json,
    output_files,
    read_file,
)
from areplicate._models import FileObject, Page, Prediction

if TYPE_CHECKING:
    from areplicate._client import Client

__all__ = ["Files"]

FileLike = FileObject | str


def _file_id(file: FileLike) -> str:
    fid = file.id if isinstance(file, FileObject) else file
    if not isinstance(fid, str) or not fid or "/" in fid or fid.strip() != fid:
        raise ValueError(f"not a file id: {fid!r}; pass a FileObject or its id string")
    return fid


class Files:
    """Files you upload (to use as inputs) and the files models return. Reached as ``client.files``.

    You rarely need :meth:`create`: a ``Path``, ``bytes`` or binary file object in a prediction's
    input is uploaded (or inlined) for you. Uploaded files expire on Replicate's side (after a day
    at the time of writing); delete them sooner with :meth:`delete`.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._session = client._session

    def __repr__(self) -> str:
        return f"<Files {self._session.config.base_url}>"

    async def create(
        self,
        file: FileSource,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> FileObject:
        """Upload a file and return it; pass ``result.urls["get"]`` as a prediction input.

        ``file`` is a path (``Path`` or ``str``), bytes, or a binary file object (read from its
        current position, in a worker thread). The name defaults to the path's or file object's
        name, the content type to a guess from the name or the first bytes. The API refuses files
        over 100 MB (413, raised as APIError).
        """
        blob = await read_file(file, filename=filename, content_type=content_type)
        return await self._upload(blob, metadata)

    async def _upload(self, blob: Blob, metadata: Mapping[str, Any] | None = None) -> FileObject:
        meta = metadata_json(metadata)

        def form() -> aiohttp.FormData:
            data = aiohttp.FormData()
            # A BytesIO, not bytes: aiohttp writes it in chunks (and warns on large raw bytes).
            data.add_field(
                "content",
                io.BytesIO(blob.data),
                filename=blob.filename,
                content_type=blob.content_type,
            )
            data.add_field("filename", blob.filename)
            data.add_field("type", blob.content_type)
            data.add_field("metadata", meta)
            return data

        response = await self._session.request("POST", "files", data=form)
        return structure(response.json(), FileObject, what="upload response")

    async def _upload_url(self, blob: Blob) -> str:
        """Upload a file input and return the URL to put in its place."""
        return file_url(await self._upload(blob))

    async def get(self, file: FileLike) -> FileObject:
        """The file's details. NotFoundError once it was deleted or has expired."""
        fid = _file_id(file)
        response = await self._session.request("GET", f"files/{quote(fid, safe='')}")
        return structure(response.json(), FileObject, what=f"file {fid}")

    async def pages(self) -> AsyncGenerator[Page[FileObject], None]:
        """Whole pages of your files, newest first; ``next`` links followed on the client's host."""
        path = "files"
        while True:
            response = await self._session.request("GET", path)
            page = structure(response.json(), Page[FileObject], what="file page")
            yield page
            if not page.next:
                return
            path = rebase(page.next, self._session.config.base_url)

    async def list(self) -> AsyncGenerator[FileObject, None]:
        """Every file you uploaded, following cursor pages as you iterate."""
        async for page in self.pages():
            for file in page.results:
                yield file

    async def delete(self, file: FileLike) -> None:
        """Delete a file. NotFoundError if it does not exist (or was deleted already)."""
        fid = _file_id(file)
        await self._session.request("DELETE", f"files/{quote(fid, safe='')}")

    def outputs(self, prediction: Prediction | Any) -> builtins.list[FileOutput]:
        """The file outputs of a prediction (or of a raw output), bound to this client.

        Same as ``areplicate.output_files(prediction, client)``: downloads share the client's
        connections and send the token only to the API's own origin.
        """
        return output_files(prediction, self._client)
