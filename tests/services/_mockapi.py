"""A mocked Replicate API for service tests: aioresponses on ``http://127.0.0.1:9/v1``.

aioresponses 0.7.9 predates aiohttp 3.12+: it builds ``ClientResponse`` without the ``stream_writer``
argument, and feeds bodies over 64 KiB into a reader whose protocol cannot pause. :func:`mock_api`
patches in a response class that supplies a stand-in writer and a reader with room for any body.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any
from unittest import mock

import aioresponses.core
from aiohttp import ClientResponse, StreamReader
from aiohttp.client_proto import ResponseHandler
from aioresponses import aioresponses as _aioresponses
from yarl import URL

import areplicate

__all__ = ["BASE", "client", "mock_api", "sent", "total_requests"]

BASE = "http://127.0.0.1:9/v1"


class _CompatResponse(ClientResponse):
    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


def _roomy_reader(loop: Any = None) -> StreamReader:
    return StreamReader(ResponseHandler(loop=loop), limit=2**30, loop=loop)


@contextlib.contextmanager
def mock_api() -> Iterator[_aioresponses]:
    """Patch aiohttp so requests are answered by what the test registers (unmatched: refused)."""
    with (
        mock.patch.object(aioresponses.core, "ClientResponse", _CompatResponse),
        mock.patch.object(aioresponses.core, "stream_reader_factory", _roomy_reader),
        _aioresponses() as mocked,
    ):
        yield mocked


def client(**options: Any) -> areplicate.Client:
    """A Client on the mocked base URL, pacing off."""
    options.setdefault("rate_limits", None)
    return areplicate.Client(api_token="r8_test", base_url=BASE, **options)


def sent(mocked: _aioresponses, method: str, url: str) -> list[dict[str, Any]]:
    """The kwargs of every request made to ``method url`` (query included in ``url``)."""
    return [call.kwargs for call in mocked.requests.get((method, URL(url)), [])]


def total_requests(mocked: _aioresponses) -> int:
    """How many requests were made in all."""
    return sum(len(calls) for calls in mocked.requests.values())
