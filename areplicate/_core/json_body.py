"""Request bodies as JSON: what the standard library's ``json`` writes, written by msgspec when it
can write the same value.

``json``'s encoder rebuilds its C state on every call, which made encoding a create's small body
(``{"input": {...}}``) cost 4.6 µs, more than reading the answer; msgspec (the ``fast`` extra)
writes it in 0.2 µs. The two differ on more than spacing, so msgspec only writes a body made of
nothing but dicts with string keys, lists, tuples, strings, ints, finite floats, bools and None,
which both write as the same JSON value. Anything else is ``json``'s to write or to refuse as it
always has: NaN (which msgspec would quietly write as ``null``), an enum member, a UUID or a
datetime (which msgspec writes and ``json`` refuses), a key that is not a string. A lone
surrogate, which msgspec refuses, falls back to ``json`` too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from areplicate._core.problems import fast_loads

__all__ = ["encode_json"]

_encode = json.JSONEncoder(separators=(",", ":")).encode
# Deeper than this, ``json`` writes it: the check below recurses once per level.
_FAST_DEPTH = 64
_UNRESOLVED: Any = object()
_msgspec_dumps: Any = _UNRESOLVED


def _fast_dumps() -> Callable[[Any], bytes] | None:
    """msgspec's JSON writer when msgspec is installed, else None (looked up on first use, not at
    import)."""
    global _msgspec_dumps  # noqa: PLW0603 - a once-only lookup of an optional extra
    if _msgspec_dumps is _UNRESOLVED:
        _msgspec_dumps = None
        if fast_loads() is not None:  # the reader's lookup of the extra decides for both
            import msgspec

            _msgspec_dumps = msgspec.json.Encoder().encode
    return _msgspec_dumps  # type: ignore[no-any-return]


def encode_json(value: Any) -> bytes:
    """``value`` as compact JSON (UTF-8): the value ``json.dumps`` writes, whichever encoder runs.

    The bytes may differ from ``json``'s (msgspec writes non-ASCII text as UTF-8 rather than
    ``\\uXXXX``, and ``1e+16`` as ``1e16``), never the value they decode to. Raises what ``json``
    raises (TypeError for a value it cannot write, ValueError for a circular reference).
    """
    dumps = _msgspec_dumps if _msgspec_dumps is not _UNRESOLVED else _fast_dumps()
    if dumps is not None and _plain(value, 0):
        try:
            return dumps(value)
        except (TypeError, ValueError):  # msgspec's refusal (a lone surrogate): json decides
            pass
    return _encode(value).encode()


def _plain(value: Any, depth: int) -> bool:
    """Whether ``value`` holds only what msgspec and ``json`` write as the same JSON value."""
    kind = type(value)
    if kind is dict:
        if depth > _FAST_DEPTH:
            return False
        for key in value:
            if type(key) is not str:
                return False
        items = value.values()
    elif kind is list or kind is tuple:
        if depth > _FAST_DEPTH:
            return False
        items = value
    else:
        return _plain_scalar(value, kind)
    # Scalars inline: a call per value would cost as much as the encoding saves.
    for item in items:
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if math.isfinite(item):
                continue
            return False
        if not _plain(item, depth + 1):
            return False
    return True


def _plain_scalar(value: Any, kind: type) -> bool:
    """:func:`_plain` for a value that is not a container."""
    if kind is float:
        return math.isfinite(value)
    return kind is str or kind is int or kind is bool or value is None
