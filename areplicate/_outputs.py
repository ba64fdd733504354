"""File outputs: finding them in a prediction's output, downloading and saving them.

File outputs stay plain URL strings in ``Prediction.output``. :func:`output_files` finds them (an
``http(s)://`` or ``data:`` string without whitespace, in a string, a list or a dict's values, at any
depth) and wraps each in a :class:`FileOutput`. Its downloads go through the client's session: with
the token on the API's own origin only (:meth:`Session.stream`), without it anywhere else
(:meth:`Session.download`), so ``replicate.delivery`` never sees it. :func:`save_outputs` downloads
every file output of many predictions at once, under a limit.

A FileOutput given as the next model's input is sent as its URL (see ``areplicate._inputs``).
"""

# No ``from __future__ import annotations``: FileOutput's fields are resolved at class creation,
# so ``typing.get_type_hints`` works on it after it is re-exported as ``areplicate.FileOutput``
# (whose namespace has no ``Session``).
import asyncio
import contextlib
import hashlib
import mimetypes
import os
import re
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp
import anyio
import attrs

from areplicate._core.data_uri import bad_data_uri, decode_data_uri
from areplicate._core.urls import same_origin
from areplicate._errors import APIError, NotFoundError
from areplicate._models import Prediction
from areplicate._session import Session, connection_errors, download_unbound

__all__ = [
    "FileOutput",
    "SessionOwner",
    "gather_all",
    "is_output_url",
    "output_files",
    "safe_filename",
    "save_outputs",
    "stream_to_file",
]

T = TypeVar("T")

_CHUNK = 64 * 1024
_SAVE_CHUNK = 1024 * 1024
_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_GONE = frozenset({403, 404, 410})
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# A prediction id used as-is in a saved file's name: no '-' (it ends the id part) and no '.'
# (which marks an id that was rewritten, below). Replicate's ids are lowercase letters and digits.
_PLAIN_ID = re.compile(r"[A-Za-z0-9_]{1,60}")
_NOT_ID_CHAR = re.compile(r"[^A-Za-z0-9_]+")
_URL_PREFIXES = ("https://", "http://", "data:")


class SessionOwner(Protocol):
    """What downloads need of a Client: its session (an ``areplicate.Client`` is one)."""

    _session: Session


def _session_of(client: SessionOwner | Session | None) -> Session | None:
    """The session behind ``client=``: a Client's ``_session``, a Session as is, or ``None``.

    It is the ``FileOutput`` field converter, so a wrong object fails at construction with a
    clear ``TypeError`` rather than at the first download with an ``AttributeError``.
    """
    if client is None or isinstance(client, Session):
        return client
    session = getattr(client, "_session", None)
    if not isinstance(session, Session):
        raise TypeError(f"client must be an areplicate.Client, not {type(client).__name__}")
    return session


async def gather_all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
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


def is_output_url(value: str) -> bool:
    """Whether a string in an output is a file: ``http(s)://`` or ``data:…,…`` without whitespace.

    The one test used everywhere (``output_files``, the CLI's rendering): a text output that
    merely starts with ``https://`` but holds a space is text.
    """
    return (
        value.startswith(_URL_PREFIXES)
        and " " not in value
        and "\n" not in value
        and "\t" not in value
        and "\r" not in value
        # "data:" alone is no file: a data URI has a comma (a text output "data:none" is text)
        and (not value.startswith("data:") or "," in value)
    )


async def stream_to_file(chunks: AsyncIterator[bytes], target: Path) -> Path:
    """Write ``chunks`` to ``target`` through ``<target>.part``, renamed when complete.

    An interrupted download (an error, a cancellation) removes the part file, so it never leaves
    a truncated file under the final name. Disk writes run in worker threads.
    """
    part = target.with_name(target.name + ".part")
    try:
        async with await anyio.open_file(part, "wb") as out:
            async for chunk in chunks:
                await out.write(chunk)
        await asyncio.to_thread(os.replace, part, target)
    except BaseException:
        part.unlink(missing_ok=True)  # one quick syscall; awaiting may be cancelled again
        raise
    return target


def _gone(url: str, exc: APIError) -> NotFoundError:
    """The error for a file output the delivery host no longer serves (403, 404 or 410).

    Replaces a bare "not found" with the cause nearly every such download has: outputs of API
    predictions are deleted an hour after they finish. Status, request id and body are kept.
    """
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
    public ``replicate.delivery`` URLs models return). Given as another prediction's input, it is
    sent as its URL: nothing is downloaded. The gotcha: Replicate deletes the files of API
    predictions an hour after they finish; a download after that raises NotFoundError.
    """

    url: str
    _session: Session | None = attrs.field(
        default=None,
        kw_only=True,
        alias="client",
        converter=_session_of,
        eq=False,
        repr=False,
    )

    def __attrs_post_init__(self) -> None:
        """Refuse anything that is not a downloadable URL, at construction rather than at download."""
        if not isinstance(self.url, str) or not self.url.startswith(_URL_PREFIXES):
            raise ValueError(f"a file output is an http(s):// or data: URL, got {self.url!r}")
        if self.url.startswith("data:") and "," not in self.url:
            raise bad_data_uri(self.url, "it has no ',' before the data")

    def __str__(self) -> str:
        """The URL, so a FileOutput can go wherever a URL string is expected (f-strings, inputs)."""
        return self.url

    @property
    def name(self) -> str:
        """The file's name: the URL's last path segment (``out-0.png``), ``output.<ext>`` for data URIs.

        Two traps: it is not unique (``out-0.png`` is nearly every prediction's first file), and it
        is URL-decoded but not sanitised, so ``%2F`` comes out as ``/``. Pass it through
        :func:`safe_filename` before using it as a path, as :meth:`save` does.
        """
        if self.url.startswith("data:"):
            media_type = self.url[5:].split(",", 1)[0].split(";", 1)[0]
            ext = mimetypes.guess_extension(media_type) if media_type else None
            return "output" + (ext or "")
        name = unquote(urlsplit(self.url).path.rsplit("/", 1)[-1])
        return name or "output"

    async def read(self) -> bytes:
        """The whole file, in memory.

        Nothing bounds the size: for a video, prefer :meth:`save` or :meth:`iter_bytes`. A file
        Replicate has already deleted raises NotFoundError.
        """
        if self.url.startswith("data:"):
            return decode_data_uri(self.url)[0]
        async with self._open() as resp:
            with connection_errors("GET", self.url):
                return await resp.read()

    async def iter_bytes(self, chunk_size: int = _CHUNK) -> AsyncGenerator[bytes, None]:
        """The file in chunks of at most ``chunk_size`` bytes, as they arrive.

        Breaking out early leaves the connection open until the generator is closed: wrap it in
        ``contextlib.aclosing(...)`` if you may stop before the end.
        """
        if self.url.startswith("data:"):
            data = decode_data_uri(self.url)[0]
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
        return await stream_to_file(self.iter_bytes(_SAVE_CHUNK), target)

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[aiohttp.ClientResponse]:
        """A GET response for the URL with a 2xx status (errors raised as areplicate errors).

        Redirects are followed here, by hand, so that each hop decides afresh whether the token
        may go along: only a URL on the API's own origin gets it, so a redirect from the API to a
        storage host carries no credentials. 403/404/410 become the "deleted after an hour"
        error.
        """
        session = self._session
        url = self.url
        for _ in range(_MAX_REDIRECTS + 1):
            on_api = session is not None and same_origin(url, session.config.base_url)
            async with contextlib.AsyncExitStack() as stack:
                try:
                    if session is None:
                        opener = download_unbound(url)
                    elif on_api:
                        opener = session.stream(url)  # the token goes to the API's origin only
                    else:
                        opener = session.download(url)
                    resp = await stack.enter_async_context(opener)
                except APIError as exc:
                    if exc.status in _GONE:
                        raise _gone(url, exc) from None
                    raise
                location = resp.headers.get("Location")
                if on_api and resp.status in _REDIRECTS and location:
                    # The session does not follow redirects on the API's origin (they could carry
                    # the token elsewhere): follow them here; the session decides about the token.
                    url = urljoin(url, location)
                    continue
                if resp.status >= 300:
                    raise APIError(resp.status, "Unexpected response", f"GET {url}")
                yield resp
                return
        raise APIError(310, "Too many redirects", f"GET {self.url}: more than {_MAX_REDIRECTS}")


def _walk_urls(value: Any, out: list[str]) -> None:
    """Append every file URL inside ``value`` to ``out``, depth first, in the output's order.

    Only a dict's values are searched, never its keys; scalars other than strings are ignored.
    """
    if isinstance(value, str):
        if is_output_url(value):
            out.append(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            _walk_urls(item, out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _walk_urls(item, out)


def output_files(
    output: Prediction | Any, client: SessionOwner | Session | None = None
) -> list[FileOutput]:
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
        """One worker: take jobs from the shared iterator until it is empty."""
        for job in items:
            await worker(job)

    await gather_all(drain() for _ in range(min(size, len(jobs))))


async def save_outputs(
    client: SessionOwner | Session,
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
