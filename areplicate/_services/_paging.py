"""Cursor pagination shared by every listing (docs/api-notes.md#listing-and-pagination).

A listing must end even when the API's ``next`` links do not. It stops cleanly (logging a
warning) at a link it has already followed, and after a few pages in a row that bring nothing new
(empty, or only items it just yielded): what it has delivered is all such a chain holds. An item a
recent page already brought is not yielded twice. A link that leaves the listing (another path) or
is absurdly long is not followed at all: that raises UnexpectedResponseError, since reading on
would mean reading something that is not this listing.
"""

from __future__ import annotations

import collections
import json
import logging
from collections.abc import AsyncGenerator, Hashable, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import attrs

from areplicate._convert import structure
from areplicate._core.urls import rebase
from areplicate._errors import UnexpectedResponseError
from areplicate._models import Page
from areplicate._session import Session

__all__ = ["paginate"]

logger = logging.getLogger("areplicate")

T = TypeVar("T")

# Real cursors are a few dozen characters; a link longer than this is not a cursor.
_MAX_LINK = 8192
# Pages in a row without a new item before a listing stops.
_IDLE_PAGES = 3
# How many recent pages' items count as "already yielded" (bounded, so a long listing's memory
# does not grow with it; a loop through more pages than this is caught by its repeated link).
_RECENT_PAGES = 20


def _key(item: Any) -> Hashable:
    """What identifies one raw listing item: its id when it has one, else its whole content.

    ``url`` and ``slug`` cover the listings whose items have no ``id`` (models carry a ``url``,
    collections a ``slug``).
    The field's name is part of the key, so an id can never collide with a slug of the same
    text; an item with none of the three is keyed by its canonical JSON, so two identical items
    on one page count as one.
    """
    if isinstance(item, dict):
        for name in ("id", "url", "slug"):
            value = item.get(name)
            if isinstance(value, str):
                return (name, value)
    return json.dumps(item, sort_keys=True, default=str)


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
    paced: bool = True,
) -> AsyncGenerator[Page[T], None]:
    """Yield pages of ``cls`` from ``path``, following ``next`` links on the session's base URL.

    A ``next`` link is never requested as given: its path is rebased onto our own base URL, so the
    token stays on the configured host (docs/api-notes.md#proxies-and-follow-up-urls). Endless links end as
    the module docstring says. ``paced=False`` sends the pages outside the request budget
    (clean-up that must not wait out the pause it cleans up after).
    """
    url: str = path
    query = dict(params) if params else None
    listing = unquote(urlsplit(session.url(path)).path)
    followed: set[str] = set()
    recent: collections.deque[set[Hashable]] = collections.deque(maxlen=_RECENT_PAGES)
    idle = 0
    while True:
        response = await session.request(
            method, url, params=query, data=data, headers=headers, paced=paced
        )
        raw = response.json()
        page = structure(raw, Page[cls], what=what)  # type: ignore[valid-type]
        items = raw.get("results") if isinstance(raw, dict) else None
        keys: set[Hashable] = set()
        if isinstance(items, list) and len(items) == len(page.results):
            # Items a recent page (or this one) already brought are left out: each is yielded once.
            kept = []
            for item, result in zip(items, page.results, strict=True):
                key = _key(item)
                if key not in keys and all(key not in seen for seen in recent):
                    kept.append(result)
                keys.add(key)
            if len(kept) < len(page.results):
                page = attrs.evolve(page, results=kept)
        fresh = bool(page.results)
        recent.append(keys)
        yield page
        if not page.next:
            return
        idle = 0 if fresh else idle + 1
        if idle >= _IDLE_PAGES:
            logger.warning(
                "%s: stopped after %d pages in a row with nothing new (the next links go on)",
                what,
                idle,
            )
            return
        url, query = _follow(page.next, session, listing, what, response.status), None
        if url in followed:
            logger.warning("%s: stopped at a next link already followed (the links loop)", what)
            return
        followed.add(url)


def _follow(link: str, session: Session, listing: str, what: str, status: int) -> str:
    """The URL to request for ``link`` on our own host; UnexpectedResponseError if it is absurd."""
    if len(link) > _MAX_LINK:
        problem = f"is {len(link)} characters long (a cursor is a few dozen)"
    else:
        url = rebase(link, session.config.base_url)
        if unquote(urlsplit(url).path) == listing:
            return url
        problem = "points outside this listing"
    shown = link if len(link) <= 120 else f"{link[:120]}..."
    raise UnexpectedResponseError(
        status,
        "Unexpected response",
        f"the next link of this {what} {problem}: {shown!r}; the listing stopped there",
    )
