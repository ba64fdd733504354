"""The id of an API object, from the object or its id string, checked before it goes into a URL."""

from __future__ import annotations

__all__ = ["object_id"]


def object_id(value: object, kind: str) -> str:
    """The id of ``value`` (an object with an ``id``, such as a Prediction, or the id itself).

    ``kind`` names the object in the error (``"prediction"``, ``"training"``, ``"file"``). An id
    that is empty, has a ``/`` or surrounding whitespace raises ValueError: it would otherwise
    change which URL is requested (``"abc/cancel"``) rather than fail as an unknown id.
    """
    ident = value if isinstance(value, str) else getattr(value, "id", value)
    if not isinstance(ident, str) or not ident or "/" in ident or ident.strip() != ident:
        raise ValueError(f"not a {kind} id: {ident!r}; pass the {kind} or its id string")
    return ident
