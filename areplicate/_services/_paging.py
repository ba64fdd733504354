"""Cursor pagination shared by every listing (docs/api-notes.md#listing-and-pagination)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TypeVar

from areplicate._convert import structure
from areplicate._core.urls import rebase
from areplicate._models import Page
from areplicate._session import Session

__all__ = ["paginate"]

T = TypeVar("T")


async def paginate(
    session: Session,
    path: str,
    cls: type[T],
    *,
    what: str,
    params: Mapping[str, str] | None = None,
    method: str = "GET",
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[Page[T]]:
    """Yield pages of ``cls`` from ``path``, following ``next`` links on the session's base URL.

    A ``next`` link is never requested as given: its path is rebased onto our own base URL, so the
    token stays on the configured host (docs/api-notes.md#proxies-and-follow-up-urls). Stops if a link
    repeats the page just read.
    """
    url: str = path
    query = dict(params) if params else None
    seen: set[str] = set()
    while True:
        response = await session.request(method, url, params=query, data=data, headers=headers)
        page = structure(response.json(), Page[cls], what=what)  # type: ignore[valid-type]
        yield page
        if not page.next:
            return
        url, query = rebase(page.next, session.config.base_url), None
        if url in seen:
            return
        seen.add(url)
