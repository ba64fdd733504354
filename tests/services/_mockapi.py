"""A mocked Replicate API for service tests: aioresponses on ``http://127.0.0.1:9/v1``.

``mock_api`` is the aioresponses shim of ``tests/session/compat.py`` (aioresponses 0.7.9 predates
aiohttp 3.12+).
"""

from __future__ import annotations

from typing import Any

from aioresponses import aioresponses as _aioresponses
from session.compat import mocked_aiohttp
from yarl import URL

import areplicate

__all__ = ["BASE", "client", "mock_api", "sent", "total_requests"]

BASE = "http://127.0.0.1:9/v1"


# The aioresponses shim lives once, beside the session tests.
mock_api = mocked_aiohttp


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
