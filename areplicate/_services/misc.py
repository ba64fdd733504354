"""The account, hardware and collections: small read-only corners of the API.

See docs/api-notes.md#endpoints (``GET /account``, ``GET /hardware``, ``GET /collections``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from areplicate._convert import structure
from areplicate._models import Account, Collection, Hardware, Page
from areplicate._services._paging import paginate
from areplicate._session import Session

__all__ = ["Accounts", "Collections", "HardwareSKUs"]


class Accounts:
    """The account your token belongs to. Reached as ``client.account``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def __repr__(self) -> str:
        return f"<Accounts {self._session.config.base_url}>"

    async def get(self) -> Account:
        """Who the token belongs to: ``type`` (``"user"`` or ``"organization"``) and ``username``.

        A cheap way to check a token: AuthenticationError when it is not valid.
        """
        response = await self._session.request("GET", "account")
        return structure(response.json(), Account, what="account")


class HardwareSKUs:
    """The hardware SKUs models and deployments can run on. Reached as ``client.hardware``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def __repr__(self) -> str:
        return f"<HardwareSKUs {self._session.config.base_url}>"

    async def list(self) -> AsyncIterator[Hardware]:
        """Every SKU, e.g. ``Hardware(sku="gpu-t4", name="Nvidia T4 GPU")``, as you iterate:
        ``async for hw in client.hardware.list()``, like every other listing.

        The API sends them in one bare array (no pages), so the one request is made when the
        iteration starts, and a malformed answer raises there.
        """
        response = await self._session.request("GET", "hardware")
        for hardware in structure(response.json(), list[Hardware], what="hardware list"):
            yield hardware


class Collections:
    """Curated collections of models. Reached as ``client.collections``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def __repr__(self) -> str:
        return f"<Collections {self._session.config.base_url}>"

    def pages(self) -> AsyncIterator[Page[Collection]]:
        """Whole pages of collections."""
        return paginate(self._session, "collections", Collection, what="collection page")

    async def list(self) -> AsyncIterator[Collection]:
        """Every collection, following pages. Their ``models`` are empty here: :meth:`get` one."""
        async for page in self.pages():
            for collection in page.results:
                yield collection

    async def get(self, slug: str) -> Collection:
        """One collection with its ``models`` (e.g. ``"text-to-image"``). NotFoundError if none."""
        if not isinstance(slug, str) or not slug.strip() or "/" in slug:
            raise ValueError(f"collection slug must be one word like 'text-to-image', got {slug!r}")
        response = await self._session.request("GET", f"collections/{quote(slug, safe='')}")
        return structure(response.json(), Collection, what=f"collection {slug}")
