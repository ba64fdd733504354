"""Files: upload, get, list, delete and download through a signed link, plus output files
(docs/api-notes.md#files).

Uploads are ``multipart/form-data`` with the parts the API documents: ``content`` (the bytes, with
file name and content type), ``filename``, ``type`` and ``metadata`` (a JSON object as text, as the
Python client sends it). The form is rebuilt for each attempt, so a retried upload sends it whole.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime as dt
import io
import os
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urljoin

import aiohttp

from areplicate._convert import structure
from areplicate._core.files_sign import sign_download
from areplicate._core.ids import object_id
from areplicate._errors import APIError
from areplicate._inputs import Blob, FileSource, file_url, metadata_json, read_file
from areplicate._models import FileObject, Page, Prediction
from areplicate._outputs import FileOutput, output_files, safe_filename, stream_to_file
from areplicate._services._paging import paginate
from areplicate._session import Session, connection_errors

__all__ = ["Files"]

FileLike = FileObject | str
#: A download link's expiry: Unix seconds, or a timezone-aware datetime.
Expiry = int | dt.datetime

_SAVE_CHUNK = 1024 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _unix_seconds(expiry: Expiry) -> int:
    """A download link's expiry as whole Unix seconds, the unit the signature covers.

    A naive datetime is refused rather than read as local time: a link signed in the wrong zone
    expires hours early or late, and nothing would say why.
    """
    if isinstance(expiry, dt.datetime):
        if expiry.tzinfo is None:
            raise ValueError(
                "expiry is a naive datetime: give it a timezone (e.g. tzinfo=datetime.timezone.utc)"
                " or pass Unix seconds"
            )
        return int(expiry.timestamp())
    if isinstance(expiry, bool) or not isinstance(expiry, int):
        raise TypeError(
            f"expiry is Unix seconds (an int) or an aware datetime, got {type(expiry).__name__}"
        )
    return expiry


async def _chunks(resp: aiohttp.ClientResponse, what: str) -> AsyncIterator[bytes]:
    """A download's body in 1 MiB chunks, transport errors mapped to our exceptions.

    Reading the body fails the way connecting does (a connection dropped mid-body), so the read
    is wrapped in ``connection_errors`` to raise the same exceptions as a failed request.
    """
    with connection_errors("GET", what):
        async for chunk in resp.content.iter_chunked(_SAVE_CHUNK):
            yield chunk


class Files:
    """Files you upload (to use as inputs) and the files models return. Reached as ``client.files``.

    You rarely need :meth:`create`: a ``Path``, ``bytes`` or binary file object in a prediction's
    input is uploaded (or inlined) for you. Uploaded files expire on Replicate's side (after a day
    at the time of writing); delete them sooner with :meth:`delete`. :meth:`download` fetches one
    through a signed link (owner, expiry, signature).
    """

    def __init__(self, session: Session) -> None:
        self._session = session

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
        """Send one ``POST /v1/files`` and read back the file object.

        ``form`` is a factory, not a form, because aiohttp's ``FormData`` can be sent only once:
        each retry of the request builds a fresh one, so a retried upload carries the whole file.
        """
        meta = metadata_json(metadata)

        def form() -> aiohttp.FormData:
            """A fresh multipart form for one attempt of the upload."""
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
        """Upload a file input and return the URL to put in its place.

        The ``upload`` callable :func:`prepare_input` is given. The file is not deleted after
        the prediction: Replicate expires uploads itself.
        """
        return file_url(await self._upload(blob))

    async def get(self, file: FileLike) -> FileObject:
        """The file's details. NotFoundError once it was deleted or has expired."""
        fid = object_id(file, "file")
        response = await self._session.request("GET", f"files/{quote(fid, safe='')}")
        return structure(response.json(), FileObject, what=f"file {fid}")

    async def pages(self) -> AsyncGenerator[Page[FileObject], None]:
        """Whole pages of your files, newest first; ``next`` links followed on the client's host,
        and endless or looping links ended like every other listing's."""
        async for page in paginate(self._session, "files", FileObject, what="file page"):
            yield page

    async def list(self) -> AsyncGenerator[FileObject, None]:
        """Every file you uploaded, following cursor pages as you iterate."""
        async for page in self.pages():
            for file in page.results:
                yield file

    async def delete(self, file: FileLike) -> None:
        """Delete a file. NotFoundError if it does not exist (or was deleted already)."""
        fid = object_id(file, "file")
        await self._session.request("DELETE", f"files/{quote(fid, safe='')}")

    def sign(self, file: FileLike, *, owner: str, expiry: Expiry, secret: str | bytes) -> str:
        """The ``signature`` of a download link for ``file``, for whoever holds the signing secret.

        Base64 HMAC-SHA256 of ``"{owner} {id} {expiry}"`` under the Files API signing secret, as
        the API describes it. The gotcha: this needs that secret, which is not your API token;
        without it, pass on the signature you were given.
        """
        return sign_download(secret, owner, object_id(file, "file"), _unix_seconds(expiry))

    async def download(
        self,
        file: FileLike,
        path: str | os.PathLike[str],
        *,
        owner: str,
        expiry: Expiry,
        signature: str,
    ) -> Path:
        """Download a file through a signed link (``GET /files/{id}/download``); return the path.

        ``owner`` is the user or organization that uploaded it, ``expiry`` when the link stops
        working (Unix seconds or an aware datetime) and ``signature`` the link's signature (see
        :meth:`sign`). Streamed to ``<path>.part`` and renamed when complete, so a failed download
        leaves nothing under ``path``; a directory ``path`` gets the file's own name. A wrong
        signature, a past expiry or an unknown file raise the API's error (NotFoundError for 404).
        """
        fid = object_id(file, "file")
        query = urlencode({"owner": owner, "expiry": _unix_seconds(expiry), "signature": signature})
        url = self._session.url(f"files/{quote(fid, safe='')}/download?{query}")
        # The errors raised here name the file, not the URL, whose query holds the signature.
        what = f"files/{fid}/download"
        target = Path(path)
        into_dir = await asyncio.to_thread(target.is_dir)
        async with contextlib.AsyncExitStack() as stack:
            resp = await stack.enter_async_context(self._session.stream(url))
            location = resp.headers.get("Location")
            if resp.status in _REDIRECTS and location:
                # To wherever the API keeps the bytes: without the token, like any file host.
                resp = await stack.enter_async_context(
                    self._session.download(urljoin(url, location))
                )
            if resp.status >= 300:
                raise APIError(resp.status, "Unexpected response", f"GET {what}")
            if into_dir:
                fallback = file.name if isinstance(file, FileObject) and file.name else fid
                name = resp.content_disposition.filename if resp.content_disposition else None
                target = target / safe_filename(name or fallback)
            return await stream_to_file(_chunks(resp, what), target)
        raise AssertionError("unreachable")  # pragma: no cover - the block returns or raises

    def outputs(self, prediction: Prediction | Any) -> builtins.list[FileOutput]:
        """The file outputs of a prediction (or of a raw output), bound to this client.

        Same as ``areplicate.output_files(prediction, client)``: downloads share the client's
        connections and send the token only to the API's own origin.
        """
        return output_files(prediction, self._session)
