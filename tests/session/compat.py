"""aioresponses 0.7.9 against aiohttp >= 3.12.

aioresponses builds ``ClientResponse`` without the ``stream_writer`` argument aiohttp 3.12 made
required, and reads bodies through a reader whose protocol cannot pause. :func:`mocked_aiohttp`
patches in a response class with a stand-in writer and a reader with room for any body.
The service tests use it too (tests/services/_mockapi.py).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any
from unittest import mock

from aiohttp import ClientResponse, StreamReader
from aiohttp.client_proto import ResponseHandler
from aioresponses import aioresponses
from aioresponses import core as _core
from yarl import URL


class _CompatResponse(ClientResponse):
    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", types.SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


def _roomy_reader(loop: Any = None) -> StreamReader:
    return StreamReader(ResponseHandler(loop=loop), limit=2**30, loop=loop)


@contextlib.contextmanager
def mocked_aiohttp() -> Iterator[aioresponses]:
    """Answer aiohttp requests with what the test registers; anything unregistered is refused."""
    with (
        mock.patch.object(_core, "ClientResponse", _CompatResponse),
        mock.patch.object(_core, "stream_reader_factory", _roomy_reader),
        aioresponses() as mocked,
    ):
        yield mocked
