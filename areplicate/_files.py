"""File inputs and outputs (docs/api-notes.md#files).

**Inputs.** A ``pathlib.Path``, ``bytes``/``bytearray``/``memoryview`` or binary file object anywhere
in a prediction's input (nested lists and dicts too) is read in a worker thread and either uploaded
through ``POST /v1/files`` (all files of one input at once), its value replaced by the file's
``urls.get``, or inlined as a ``data:`` URI. Which one is the Client's ``file_encoding``:

- ``"upload"``: always upload;
- ``"data-uri"``: always inline (the input must stay under :data:`MAX_DATA_URI_TOTAL`);
- ``"auto"`` (default): inline a file of at most :data:`DATA_URI_THRESHOLD` bytes (256 KiB), as long
  as the input's inlined files add up to at most :data:`DATA_URI_BUDGET` (1 MiB); upload the rest.
  256 KiB is the API's own advice for data URIs (the docs allow up to 1 MB): below it the inline
  copy saves an upload round trip and a request against the rate budget, and Replicate does not
  store it; above it the base64 text (4/3 the size) rides in every create body and slows it.

Inputs without files cost a walk of ``isinstance`` checks and a dict copy: fan-outs of thousands of
plain inputs never touch this module's I/O.

**Outputs.** File outputs stay plain URL strings in ``Prediction.output``. :func:`output_files` finds
them (an ``http(s)://`` or ``data:`` string without whitespace, in a string, a list or a dict's values,
at any depth) and wraps each in a :class:`FileOutput`, whose downloads go through the client's session,
so the API token goes to the API's own origin only (``replicate.delivery`` never sees it).
:func:`save_outputs` downloads every file output of many predictions at once, under a limit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import inspect
import io
import json
import mimetypes
import os
import re
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypeVar
from urllib.parse import unquote, unquote_to_bytes, urljoin, urlsplit

import aiohttp
import anyio
import attrs

from areplicate._config import DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT
from areplicate._core.problems import error_for
from areplicate._errors import (
    APIError,
    NotFoundError,
    UnexpectedResponseError,
)
from areplicate._models import FileObject, Prediction
from areplicate._session import connection_errors

if TYPE_CHECKING:
    from areplicate._client import Client

__all__ = [
    "DATA_URI_BUDGET",
    "DATA_URI_THRESHOLD",
    "FILE_ENCODINGS",
    "MAX_DATA_URI_TOTAL",
    "Blob",
    "FileEncoding",
    "FileOutput",
    "FileSource",
    "output_files",
    "file_url",
    "metadata_json",
    "prepare_input",
    "read_file",
    "safe_filename",
    "save_outputs",
]

T = TypeVar("T")

#: How a Client sends file inputs (see the module docstring).
FileEncoding = Literal["auto", "upload", "data-uri"]
#: The accepted values of ``Client(file_encoding=...)``.
FILE_ENCODINGS: tuple[str, ...] = ("auto", "upload", "data-uri")

#: Under ``"auto"``, files of at most this many bytes are inlined as data URIs (the API's advice).
DATA_URI_THRESHOLD = 256 * 1024
#: Under ``"auto"``, the inlined files of one input add up to at most this many bytes.
DATA_URI_BUDGET = 1024 * 1024
#: Under ``"data-uri"``, one input's files may add up to at most this (the JS client's limit).
MAX_DATA_URI_TOTAL = 10 * 1024 * 1024

#: What ``client.files.create`` accepts: a path, raw bytes, or a binary file object.
FileSource = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO | io.IOBase

_OCTET = "application/octet-stream"
_CHUNK = 64 * 1024
_SAVE_CHUNK = 1024 * 1024
# Base64 of more than this runs in a worker thread rather than on the event loop.
_ENCODE_IN_THREAD = 1024 * 1024
_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_GONE = frozenset({403, 404, 410})
_MAGIC: tuple[tuple[int, bytes, str, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (0, b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (0, b"GIF87a", "image/gif", ".gif"),
    (0, b"GIF89a", "image/gif", ".gif"),
    (0, b"%PDF-", "application/pdf", ".pdf"),
    (0, b"ID3", "audio/mpeg", ".mp3"),
    (0, b"fLaC", "audio/flac", ".flac"),
    (0, b"OggS", "audio/ogg", ".ogg"),
    (8, b"WEBP", "image/webp", ".webp"),
    (8, b"WAVE", "audio/wav", ".wav"),
    (4, b"ftyp", "video/mp4", ".mp4"),
)
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# A prediction id used as-is in a saved file's name: no '-' (it ends the id part) and no '.'
# (which marks an id that was rewritten, below). Replicate's ids are lowercase letters and digits.
_PLAIN_ID = re.compile(r"[A-Za-z0-9_]{1,60}")
_NOT_ID_CHAR = re.compile(r"[^A-Za-z0-9_]+")
# data: URIs, the WHATWG fetch way: ";base64" ends the media type (any case, spaces before it).
_BASE64_PARAM = re.compile(r";[ \t]*base64[ \t]*$", re.I)
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/]*")
_ASCII_SPACE = re.compile(rb"[\t\n\f\r ]+")
_DATA_URI_FORM = (
    "data:[<media type>][;base64],<data> (for example 'data:image/png;base64,iVBORw0K…')"
)
_URL_PREFIXES = ("https://", "http://", "data:")


# -- reading file inputs --------------------------------------------------------------------------


@attrs.frozen
class Blob:
    """A file input read into memory: its bytes, a file name and a content type."""

    data: bytes = attrs.field(repr=False)
    filename: str
    content_type: str

    @property
    def size(self) -> int:
        """Length in bytes."""
        return len(self.data)

    def data_uri(self) -> str:
        """The file as ``data:<type>;base64,<...>`` (not stored by Replicate)."""
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode('ascii')}"


def _sniff(data: bytes) -> tuple[str, str] | None:
    for offset, magic, content_type, ext in _MAGIC:
        if data[offset : offset + len(magic)] == magic and (offset != 8 or data[:4] == b"RIFF"):
            return content_type, ext
    return None


def _describe(data: bytes, name: str | None, content_type: str | None) -> Blob:
    """Fill in a file name and content type: explicit, else from the name, else from magic bytes."""
    sniffed = _sniff(data)
    if content_type is None and name:
        content_type = mimetypes.guess_type(name)[0]
    if content_type is None:
        content_type = sniffed[0] if sniffed else _OCTET
    if not name:
        name = "file" + (sniffed[1] if sniffed else "")
    return Blob(data, name, content_type)


def _is_file(value: Any) -> bool:
    """A path, raw bytes, or an object with a ``read`` method (file objects, sync or async)."""
    return isinstance(value, (PurePath, bytes, bytearray, memoryview, io.IOBase)) or callable(
        getattr(value, "read", None)
    )


def _name_of(file: Any) -> str | None:
    name = getattr(file, "name", None)
    if isinstance(name, (str, PurePath)) and str(name) and not str(name).startswith("<"):
        return PurePath(name).name
    return None


def _read_object(file: Any) -> bytes:
    data = file.read()
    if isinstance(data, str):
        raise TypeError(
            f"file object {_name_of(file) or type(file).__name__!r} is open in text mode; "
            "open it in binary mode ('rb')"
        )
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(
            f"read() of {type(file).__name__} returned {type(data).__name__}, not bytes"
        )
    return bytes(data)


async def read_file(
    file: Any, *, filename: str | None = None, content_type: str | None = None
) -> Blob:
    """Read a file input into memory without blocking the event loop.

    ``file`` is a path (``Path`` or ``str``), bytes, or a binary file object (read from its current
    position; objects whose ``read`` is a coroutine, like ``anyio.AsyncFile``, are awaited). Disk and
    file-object reads run in a worker thread. Text-mode files raise TypeError.
    """
    if isinstance(file, (bytes, bytearray, memoryview)):
        return _describe(bytes(file), filename, content_type)
    if isinstance(file, (str, os.PathLike)):
        path = Path(file)
        return await asyncio.to_thread(
            lambda: _describe(path.read_bytes(), filename or path.name, content_type)
        )
    if isinstance(file, io.TextIOBase):
        raise TypeError(
            f"file {_name_of(file)!r} is open in text mode; open it in binary mode ('rb')"
        )
    read = getattr(file, "read", None)
    if not callable(read):
        raise TypeError(
            f"cannot read a file from {type(file).__name__}: pass a Path, bytes or a binary file object"
        )
    name = filename or _name_of(file)
    if inspect.iscoroutinefunction(read):
        data = await read()
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"read() of {type(file).__name__} returned {type(data).__name__}, not bytes"
            )
        return _describe(bytes(data), name, content_type)
    if isinstance(file, io.BytesIO):  # in memory: nothing to wait for
        return _describe(_read_object(file), name, content_type)
    return await asyncio.to_thread(lambda: _describe(_read_object(file), name, content_type))


# -- walking an input ----------------------------------------------------------------------------


_PLAIN: frozenset[type] = frozenset({str, int, float, bool, type(None)})


def _has_files(value: Any) -> bool:
    """Whether ``value`` holds a file input anywhere. The hot path: plain JSON answers fast."""
    kind = type(value)
    if kind in _PLAIN:
        return False
    if kind is dict or (kind is not list and kind is not tuple and isinstance(value, Mapping)):
        items = value.values()
    elif kind is list or kind is tuple or isinstance(value, (list, tuple)):
        items = value
    else:
        return not isinstance(value, (str, int, float)) and _is_file(value)
    # A plain loop rather than any(<generator>): this runs for every value of every create.
    for item in items:  # noqa: SIM110
        if type(item) not in _PLAIN and _has_files(item):
            return True
    return False


def _collect(value: Any, found: dict[int, Any]) -> None:
    if isinstance(value, Mapping):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, found)
    elif not isinstance(value, (str, int, float)) and value is not None and _is_file(value):
        found.setdefault(id(value), value)


def _replace(value: Any, resolved: Mapping[int, str]) -> Any:
    if isinstance(value, Mapping):
        return {key: _replace(item, resolved) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace(item, resolved) for item in value]
    return resolved.get(id(value), value)


async def _all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Run concurrently; the first failure cancels the rest and is raised (no ExceptionGroup)."""
    tasks = [asyncio.ensure_future(aw) for aw in awaitables]
    if not tasks:
        return []
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        raise


async def _encode(blob: Blob) -> str:
    if blob.size > _ENCODE_IN_THREAD:
        return await asyncio.to_thread(blob.data_uri)
    return blob.data_uri()


async def prepare_input(client: Client, input: Mapping[str, Any]) -> dict[str, Any]:
    """The input as JSON the API accepts: file values become uploaded-file URLs or data URIs.

    Every file of the input is read (in worker threads) and uploaded at the same time; the first
    failure cancels the rest and is raised. Uploaded files are not deleted after the prediction:
    Replicate expires them itself. A ``data:`` string that cannot be decoded raises ValueError
    naming the field, before anything is sent.
    """
    _check_data_uris(input)
    if not _has_files(input):
        return dict(input)
    found: dict[int, Any] = {}
    _collect(input, found)
    blobs = await _all(read_file(file) for file in found.values())
    encoding: str = getattr(client, "_file_encoding", "auto")
    inline: dict[int, Blob] = {}
    upload: dict[int, Blob] = {}
    inlined = 0
    for key, blob in zip(found, blobs, strict=True):
        if encoding == "data-uri" or (
            encoding == "auto"
            and blob.size <= DATA_URI_THRESHOLD
            and inlined + blob.size <= DATA_URI_BUDGET
        ):
            inline[key] = blob
            inlined += blob.size
        else:
            upload[key] = blob
    if encoding == "data-uri" and inlined > MAX_DATA_URI_TOTAL:
        raise ValueError(
            f"the input's files add up to {inlined / 1e6:.1f} MB, too much to send inline "
            f"(limit {MAX_DATA_URI_TOTAL / 1e6:.0f} MB): use Client(file_encoding='upload') or 'auto'"
        )
    resolved: dict[int, str] = {}
    for key, blob in inline.items():
        resolved[key] = await _encode(blob)
    if upload:
        files = client.files
        urls = await _all(files._upload_url(blob) for blob in upload.values())
        resolved.update(zip(upload, urls, strict=True))
    return {key: _replace(value, resolved) for key, value in input.items()}


def metadata_json(metadata: Mapping[str, Any] | None) -> str:
    """The ``metadata`` form field of an upload: a JSON object as text."""
    return json.dumps(dict(metadata or {}), separators=(",", ":"))


def file_url(obj: FileObject) -> str:
    """The URL to pass as a prediction input for an uploaded file (its ``urls.get``)."""
    url = obj.urls.get("get") if isinstance(obj.urls, dict) else None
    if not isinstance(url, str) or not url:
        raise UnexpectedResponseError(
            201, "Unexpected response", f"uploaded file {obj.id} has no urls.get to pass as input"
        )
    return url


# -- outputs -------------------------------------------------------------------------------------


def _is_output_url(value: str) -> bool:
    return (
        value.startswith(_URL_PREFIXES)
        and " " not in value
        and "\n" not in value
        and "\t" not in value
        and "\r" not in value
        # "data:" alone is no file: a data URI has a comma (a text output "data:none" is text)
        and (not value.startswith("data:") or "," in value)
    )


def _bad_data_uri(url: str, problem: str) -> ValueError:
    shown = url[:60] + ("…" if len(url) > 60 else "")
    return ValueError(f"malformed data: URI {shown!r}: {problem}; a data URI is {_DATA_URI_FORM}")


def _decode_data_uri(url: str) -> tuple[bytes, str]:
    """The bytes and media type of a ``data:`` URI (base64 or percent-encoded).

    Decoded the way browsers do (the WHATWG fetch "data: URL processor"): the payload is
    percent-decoded first, and base64 may carry whitespace and omit its ``=`` padding. What cannot
    be read raises ValueError saying what is wrong.
    """
    media_type, data, is_base64 = _data_uri_parts(url)
    if not is_base64:
        return data, media_type
    return base64.b64decode(data + b"=" * (-len(data) % 4), validate=True), media_type


def _data_uri_parts(url: str) -> tuple[str, bytes, bool]:
    """A data URI checked and split: media type, payload (base64 text without padding, or the
    bytes) and whether it is base64. ValueError saying what is wrong when it cannot be read."""
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise _bad_data_uri(url, "it has no ',' before the data")
    base64_match = _BASE64_PARAM.search(header)
    if base64_match is not None:
        header = header[: base64_match.start()]
    media_type = header.split(";", 1)[0].strip() or "text/plain"
    data = unquote_to_bytes(payload)
    if base64_match is None:
        return media_type, data, False
    text = _ASCII_SPACE.sub(b"", data)
    if len(text) % 4 == 0 and text.endswith(b"="):
        text = text[:-2] if text.endswith(b"==") else text[:-1]
    if len(text) % 4 == 1:
        raise _bad_data_uri(url, "its base64 data is cut short (one character too many or few)")
    if _BASE64_TEXT.fullmatch(text) is None:
        raise _bad_data_uri(
            url,
            "its base64 data has characters base64 does not use (only A-Z, a-z, 0-9, '+', '/' and "
            "'=' at the end; URL-safe '-' and '_' must be converted)",
        )
    return media_type, text, True


def _check_data_uris(input: Mapping[str, Any]) -> None:
    """Raise ValueError, naming the input field, for a ``data:`` string value that cannot be read.

    Without this the API would get it and answer with a 422 about the model's input, or a model
    would fail on it after being paid for. Iterative, so no input is too deep for it.
    """
    stack: list[tuple[str, Any]] = [(repr(key), value) for key, value in input.items()]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if value.startswith("data:"):
                try:
                    _data_uri_parts(value)
                except ValueError as exc:
                    raise ValueError(f"input {where} is a {exc}") from None
        elif isinstance(value, Mapping):
            stack.extend((f"{where}[{key!r}]", item) for key, item in value.items())
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{where}[{index}]", item) for index, item in enumerate(value))


def _gone(url: str, exc: APIError) -> NotFoundError:
    return NotFoundError(
        exc.status,
        "Output file not available",
        f"{url}: Replicate deletes the files of API predictions an hour after they finish; "
        "download them sooner (areplicate.save_outputs) or from a webhook",
        request_id=exc.request_id,
        body=exc.body,
    )


@attrs.frozen
class FileOutput:
    """A file a model produced: ``FileOutput(url)``, usually from :func:`output_files`.

    ``await read()`` gives the bytes, ``async for chunk in iter_bytes()`` streams them and
    ``await save(path)`` writes them to disk; ``data:`` URIs are decoded locally. Bound to a client
    (``FileOutput(url, client=client)``, ``client.files.outputs(p)``, ``output_files(p, client)``),
    downloads share its connection pool and send the API token only to the API's own origin. Unbound,
    each download opens a short-lived connection that sends no credentials at all (fine for the
    public ``replicate.delivery`` URLs models return). The gotcha: Replicate deletes the files of
    API predictions an hour after they finish; a download after that raises NotFoundError.
    """

    url: str
    _client: Client | None = attrs.field(default=None, kw_only=True, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(_URL_PREFIXES):
            raise ValueError(f"a file output is an http(s):// or data: URL, got {self.url!r}")
        if self.url.startswith("data:") and "," not in self.url:
            raise _bad_data_uri(self.url, "it has no ',' before the data")

    def __str__(self) -> str:
        return self.url

    @property
    def name(self) -> str:
        """The file's name: the URL's last path segment (``out-0.png``), ``output.<ext>`` for data URIs."""
        if self.url.startswith("data:"):
            media_type = self.url[5:].split(",", 1)[0].split(";", 1)[0]
            ext = mimetypes.guess_extension(media_type) if media_type else None
            return "output" + (ext or "")
        name = unquote(urlsplit(self.url).path.rsplit("/", 1)[-1])
        return name or "output"

    async def read(self) -> bytes:
        """The whole file, in memory."""
        if self.url.startswith("data:"):
            return _decode_data_uri(self.url)[0]
        async with self._open() as resp:
            with connection_errors("GET", self.url):
                return await resp.read()

    async def iter_bytes(self, chunk_size: int = _CHUNK) -> AsyncGenerator[bytes, None]:
        """The file in chunks of at most ``chunk_size`` bytes, as they arrive.

        Breaking out early leaves the connection open until the generator is closed: wrap it in
        ``contextlib.aclosing(...)`` if you may stop before the end.
        """
        if self.url.startswith("data:"):
            data = _decode_data_uri(self.url)[0]
            for start in range(0, len(data), chunk_size):
                yield data[start : start + chunk_size]
            return
        async with self._open() as resp:
            with connection_errors("GET", self.url):
                async for chunk in resp.content.iter_chunked(chunk_size):
                    yield chunk

    async def save(self, path: str | os.PathLike[str]) -> Path:
        """Download to ``path`` (into it, as :attr:`name`, when it is a directory); return the path.

        The file is written as ``<path>.part`` and renamed when complete, so an interrupted download
        never leaves a truncated file under the final name. Disk writes run in worker threads.
        """
        target = Path(path)
        if await asyncio.to_thread(target.is_dir):
            target = target / safe_filename(self.name)
        part = target.with_name(target.name + ".part")
        try:
            async with await anyio.open_file(part, "wb") as out:
                async for chunk in self.iter_bytes(_SAVE_CHUNK):
                    await out.write(chunk)
            await asyncio.to_thread(os.replace, part, target)
        except BaseException:
            part.unlink(missing_ok=True)  # one quick syscall; awaiting may be cancelled again
            raise
        return target

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[aiohttp.ClientResponse]:
        """A GET response for the URL with a 2xx status (errors raised as areplicate errors)."""
        if self._client is None:
            async with self._open_unbound() as resp:
                yield resp
            return
        session = self._client._session
        url = self.url
        for _ in range(_MAX_REDIRECTS + 1):
            async with contextlib.AsyncExitStack() as stack:
                try:
                    resp = await stack.enter_async_context(session.stream(url))
                except APIError as exc:
                    if exc.status in _GONE:
                        raise _gone(url, exc) from None
                    raise
                location = resp.headers.get("Location")
                if resp.status in _REDIRECTS and location:
                    # The session does not follow redirects on the API's origin (they could carry
                    # the token elsewhere): follow them here; the session decides about the token.
                    url = urljoin(url, location)
                    continue
                if resp.status >= 300:
                    raise APIError(resp.status, "Unexpected response", f"GET {url}")
                yield resp
                return
        raise APIError(310, "Too many redirects", f"GET {self.url}: more than {_MAX_REDIRECTS}")

    @contextlib.asynccontextmanager
    async def _open_unbound(self) -> AsyncIterator[aiohttp.ClientResponse]:
        timeout = aiohttp.ClientTimeout(
            total=None, connect=DEFAULT_CONNECT_TIMEOUT, sock_read=DEFAULT_TIMEOUT
        )
        async with aiohttp.ClientSession(timeout=timeout) as http:
            with connection_errors("GET", self.url):
                resp = await http.get(self.url, max_redirects=_MAX_REDIRECTS)
            async with resp:
                if resp.status >= 400:
                    with connection_errors("GET", self.url):
                        body = await resp.read()
                    error = error_for(resp.status, resp.headers, body, now=time.time())
                    if error is None:  # pragma: no cover - error_for maps every status >= 400
                        error = APIError(resp.status)
                    if error.status in _GONE:
                        raise _gone(self.url, error)
                    raise error
                yield resp


def _walk_urls(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        if _is_output_url(value):
            out.append(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            _walk_urls(item, out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _walk_urls(item, out)


def output_files(output: Prediction | Any, client: Client | None = None) -> list[FileOutput]:
    """Every file URL in a prediction's output (or a raw output), in order, as FileOutputs.

    A file URL is an ``http(s)://`` or ``data:`` string without whitespace, found in a string, a
    list or a dict's values at any depth. Pass ``client`` to download through its session (shared
    connections, and the token sent only to the API's origin); without one, downloads carry no
    credentials. An output that is ``None`` (still running, or deleted after the hour) has none.
    """
    value = output.output if isinstance(output, Prediction) else output
    urls: list[str] = []
    _walk_urls(value, urls)
    return [FileOutput(url, client=client) for url in urls]


def safe_filename(name: str, limit: int = 120) -> str:
    """``name`` made safe as one file name on any common file system, at most ``limit`` characters.

    Every run of characters other than ASCII letters, digits, ``.``, ``_`` and ``-`` becomes one
    ``_``, leading dots go (no hidden files, no ``..``), an empty result is ``output``, and a name
    longer than ``limit`` is cut, keeping a short extension (``<…>.png``). The result is ASCII, so
    ``limit`` is also its length in bytes (255 is the usual file-system maximum). The gotcha: this
    is not one-to-one (``a/b`` and ``a?b`` both give ``a_b``); when names must stay distinct, add
    something unique, as :func:`save_outputs` does.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a whole number of characters >= 1, got {limit!r}")
    name = _UNSAFE_NAME.sub("_", name).lstrip(".") or "output"
    if len(name) > limit:
        stem, dot, ext = name.rpartition(".")
        keep_ext = dot and stem and len(ext) < 16 and len(ext) + 1 < limit // 2
        name = (stem[: limit - len(ext) - 1] + "." + ext) if keep_ext else name[:limit]
    return name


def _id_part(prediction_id: str) -> str:
    """A file-name part unique to ``prediction_id``, with no ``-`` in it (one-to-one by design).

    A plain id (letters, digits, ``_``, as Replicate's are) is used as it is. Any other id is
    shortened and sanitised, then marked with ``.`` and a hash of the original: plain ids never
    contain a ``.``, so the two forms cannot meet, and two rewritten ids differ by their hash.
    """
    if _PLAIN_ID.fullmatch(prediction_id):
        return prediction_id
    digest = hashlib.sha256(prediction_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    readable = _NOT_ID_CHAR.sub("_", prediction_id)[:40] or "id"  # never a leading dot
    return f"{readable}.{digest}"


async def _pool(jobs: Sequence[T], worker: Callable[[T], Awaitable[object]], size: int) -> None:
    """Run ``worker`` over ``jobs`` with at most ``size`` at once; the first error stops all."""
    items = iter(jobs)

    async def drain() -> None:
        for job in items:
            await worker(job)

    await _all(drain() for _ in range(min(size, len(jobs))))


async def save_outputs(
    client: Client,
    predictions: Iterable[Prediction | BaseException | None],
    directory: str | os.PathLike[str],
    *,
    concurrency: int = 8,
) -> list[Path]:
    """Download every file output of ``predictions`` into ``directory``; return the paths.

    Files are named ``<prediction id>-<index>-<original name>`` so that outputs of different
    predictions never collide (``out-0.png`` is everyone's name): the name is unique by
    construction, also for ids that are not Replicate's plain letters and digits (those get a short
    hash of the id), and at most about 200 characters long (long output names are shortened with
    :func:`safe_filename`, keeping the extension). At most ``concurrency`` downloads
    run at once; the first failure cancels the rest and is raised (files already saved stay).
    Non-Prediction items (``None``, exceptions from ``gather_predictions(..., return_exceptions=True)``)
    and predictions without file outputs are skipped; a prediction listed twice is saved once.
    The directory is created if needed. Do it within the hour: Replicate deletes outputs then.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a whole number >= 1, got {concurrency!r}")
    folder = Path(directory)
    jobs: list[tuple[FileOutput, Path]] = []
    seen: set[str] = set()
    for prediction in predictions:
        if not isinstance(prediction, Prediction) or prediction.id in seen:
            continue
        seen.add(prediction.id)
        # "<id part>-<index>-<name>": the id part has no "-" and the index is digits, so the first
        # two dashes split any name back into (id, index): two outputs never share a path.
        prefix = _id_part(prediction.id)
        for index, file in enumerate(output_files(prediction, client)):
            jobs.append((file, folder / f"{prefix}-{index}-{safe_filename(file.name)}"))
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)

    async def save(job: tuple[FileOutput, Path]) -> None:
        await job[0].save(job[1])

    await _pool(jobs, save, concurrency)
    return [path for _, path in jobs]
