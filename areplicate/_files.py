"""File inputs and outputs (being built: file inputs are passed through unchanged for now)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from areplicate._client import Client

__all__ = ["prepare_input"]


async def prepare_input(client: Client, input: Mapping[str, Any]) -> dict[str, Any]:
    """The input as JSON the API accepts: file-like values become URLs or data URIs."""
    return dict(input)
