"""File inputs: local files, bytes and file objects in a prediction's input, sent as the API wants.

A ``pathlib.Path``, ``bytes``/``bytearray``/``memoryview`` or binary file object anywhere in an
input (nested lists and dicts too) is read in a worker thread and either uploaded through
``POST /v1/files`` (all files of one input at once), its value replaced by the file's ``urls.get``,
or inlined as a ``data:`` URI. Which one is the Client's ``file_encoding``:

- ``"upload"``: always upload;
- ``"data-uri"``: always inline (the input must stay under :data:`MAX_DATA_URI_TOTAL`);
- ``"auto"`` (default): inline a file of at most :data:`DATA_URI_THRESHOLD` bytes (256 KiB), as long
  as the input's inlined files add up to at most :data:`DATA_URI_BUDGET` (1 MiB); upload the rest.
  256 KiB is the API's own advice for data URIs (the docs allow up to 1 MB): below it the inline
  copy saves an upload round trip and a request against the rate budget, and Replicate does not
  store it; above it the base64 text (4/3 the size) rides in every create body and slows it.

Another prediction's output, as its URL string or a :class:`FileOutput`, is sent as that URL: it is
never downloaded nor re-encoded (Replicate's way of chaining models; a video would otherwise make
a full download and re-upload). A FileOutput is turned into its URL string, so the input is JSON.

Inputs without files cost a walk of ``isinstance`` checks and a dict copy: fan-outs of thousands of
plain inputs never touch this module's I/O. The module knows nothing of the Client: the upload is
a callable it is given.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import io
import json
import mimetypes
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path, PurePath
from typing import Any, BinaryIO, Literal

import attrs

from areplicate._core.data_uri import check_data_uris
from areplicate._errors import UnexpectedResponseError
from areplicate._models import FileObject
from areplicate._outputs import FileOutput, gather_all

__all__ = [
    "DATA_URI_BUDGET",
    "DATA_URI_THRESHOLD",
    "FILE_ENCODINGS",
    "MAX_DATA_URI_TOTAL",
    "Blob",
    "FileEncoding",
    "FileSource",
    "Upload",
    "file_url",
    "metadata_json",
    "plain_input",
    "prepare_input",
    "read_file",
]

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
# Base64 of more than this runs in a worker thread rather than on the event loop.
_ENCODE_IN_THREAD = 1024 * 1024
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
        """The file as ``data:<type>;base64,<...>`` (not stored by Replicate).

        The text is about 4/3 the file's size and travels in every create that carries it, and in
        every retry of that create: worth it for small files only (see the module docstring).
        """
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode('ascii')}"


def _sniff(data: bytes) -> tuple[str, str] | None:
    """The content type and extension that a file's first bytes reveal, or ``None``.

    Used when the caller gave neither a type nor a name with an extension (raw bytes, a
    ``BytesIO``). The ``RIFF`` check keeps offset-8 magics (WEBP, WAVE) from matching any file
    that merely has those bytes there. ``ftyp`` says ISO media, which is reported as MP4 even for
    a MOV or M4A; a caller who needs the exact type passes ``content_type``.
    """
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
    """The base name of a file object's ``name``, or ``None`` when it has no usable one.

    Pseudo-names such as ``<stdin>`` and integer file descriptors are ignored: sending ``<stdin>``
    as an upload's file name would only confuse the type guess.
    """
    name = getattr(file, "name", None)
    if isinstance(name, (str, PurePath)) and str(name) and not str(name).startswith("<"):
        return PurePath(name).name
    return None


def _read_object(file: Any) -> bytes:
    """``file.read()`` as bytes, from the object's current position (it is not rewound).

    A text-mode file is refused with the fix in the message rather than encoded with some guessed
    charset, since a model expects the file's real bytes.
    """
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


def plain_input(input: Mapping[str, Any]) -> bool:
    """Whether every value is a number, a bool, None or a string that is not a data URI: the
    shape of nearly every input, which then needs neither of the walks below."""
    for value in input.values():
        kind = type(value)
        if kind is str:
            if value.startswith("data:"):
                return False
        elif kind not in _PLAIN:
            return False
    return True


def _collect(value: Any, found: dict[int, Any]) -> None:
    """Record every file input inside ``value`` in ``found``, keyed by ``id()``.

    Keying by identity means the same object used twice in one input is read and uploaded once,
    and both places get the same URL. ``FileOutput`` values are skipped: they are already URLs.
    """
    if isinstance(value, Mapping):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, found)
    elif isinstance(value, FileOutput):
        pass  # another prediction's output: sent as its URL (by _replace), never downloaded
    elif not isinstance(value, (str, int, float)) and value is not None and _is_file(value):
        found.setdefault(id(value), value)


def _replace(value: Any, resolved: Mapping[int, str]) -> Any:
    """A copy of ``value`` with each file input swapped for its URL from ``resolved``.

    Tuples come back as lists (JSON has only arrays), and mappings as plain dicts, so the result
    can go straight into the request body.
    """
    if isinstance(value, Mapping):
        return {key: _replace(item, resolved) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace(item, resolved) for item in value]
    if isinstance(value, FileOutput):
        return value.url
    return resolved.get(id(value), value)


async def _encode(blob: Blob) -> str:
    """The blob as a data URI, base64-encoding big ones in a worker thread.

    Encoding costs milliseconds per megabyte, long enough at 10 MB to stall every other request
    on the loop; small files are cheaper to encode in place than to hand to a thread.
    """
    if blob.size > _ENCODE_IN_THREAD:
        return await asyncio.to_thread(blob.data_uri)
    return blob.data_uri()


#: Uploads one file input and returns the URL to send in its place (``Files._upload_url``).
Upload = Callable[[Blob], Awaitable[str]]


async def prepare_input(
    input: Mapping[str, Any], *, encoding: FileEncoding, upload: Upload
) -> dict[str, Any]:
    """The input as JSON the API accepts: file values become uploaded-file URLs or data URIs.

    ``encoding`` is the Client's ``file_encoding``; ``upload`` sends one file and returns its URL.
    Every file of the input is read (in worker threads) and uploaded at the same time; the first
    failure cancels the rest and is raised. Uploaded files are not deleted after the prediction:
    Replicate expires them itself. A :class:`FileOutput` becomes its URL (nothing is downloaded).
    A ``data:`` string that cannot be decoded raises ValueError
    naming the field, before anything is sent.
    """
    if plain_input(input):
        return dict(input)
    check_data_uris(input)
    if not _has_files(input):
        return dict(input)
    found: dict[int, Any] = {}
    _collect(input, found)
    blobs = await gather_all(read_file(file) for file in found.values())
    inline: dict[int, Blob] = {}
    uploads: dict[int, Blob] = {}
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
            uploads[key] = blob
    if encoding == "data-uri" and inlined > MAX_DATA_URI_TOTAL:
        raise ValueError(
            f"the input's files add up to {inlined / 1e6:.1f} MB, too much to send inline "
            f"(limit {MAX_DATA_URI_TOTAL / 1e6:.0f} MB): use Client(file_encoding='upload') or 'auto'"
        )
    resolved: dict[int, str] = {}
    for key, blob in inline.items():
        resolved[key] = await _encode(blob)
    if uploads:
        urls = await gather_all(upload(blob) for blob in uploads.values())
        resolved.update(zip(uploads, urls, strict=True))
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
