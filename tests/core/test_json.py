"""decode_json reads every body exactly as the standard library's json does, whichever parser runs.

With the ``fast`` extra installed, msgspec reads most bodies; the standard library is the oracle here,
value for value and type for type (``1`` is not ``1.0``, an int past 64 bits stays exact).
"""

from __future__ import annotations

import codecs
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from areplicate._core import problems
from areplicate._core.problems import decode_json, fast_loads

NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),  # past 64 bits both ways
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),  # NaN and Infinity are json's, not JSON's
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=20))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)
# What stdlib reads and msgspec does not (or orjson, which read bodies before it, read differently).
ODD = [b"\xef\xbb\xbf{}", b'"\\ud800"', b"1E400", b"NaN", b"-Infinity", b'"\xff"', b"", b"[1,]"]


def _reading(read: Any, body: bytes) -> str:
    """What ``read`` makes of ``body``: ``json.dumps`` of the value (which tells 1 from 1.0 and
    True, and shows NaN, -0.0 and key order), or "refused" (decode_json's ValueError, json's
    ValueError or RecursionError)."""
    try:
        return json.dumps(read(body))
    except (ValueError, RecursionError):
        return "refused"


def _same(body: bytes) -> None:
    assert _reading(decode_json, body) == _reading(json.loads, body)


@settings(max_examples=300)
@given(
    value=VALUES,
    compact=st.booleans(),
    ascii_only=st.booleans(),
    bom=st.booleans(),
    cut=st.integers(0, 2000),
    byte=st.integers(0, 255),
)
def test_any_body_reads_as_json_reads_it(
    value: Any, compact: bool, ascii_only: bool, bom: bool, cut: int, byte: int
) -> None:
    separators = (",", ":") if compact else None
    body = json.dumps(value, separators=separators, ensure_ascii=ascii_only).encode()
    _same(body)
    _same(codecs.BOM_UTF8 + body if bom else body + b" ")
    if body:
        at = cut % len(body)
        _same(body[:at] + bytes([byte]) + body[at + 1 :])  # one byte changed: often not JSON


@pytest.mark.parametrize("body", ODD)
def test_what_only_json_accepts_or_refuses_is_decided_by_json(body: bytes) -> None:
    _same(body)


def test_integers_past_64_bits_stay_exact() -> None:
    # orjson made these floats (1.8446744073709552e+19): msgspec must not
    body = b'{"seed": 18446744073709551616, "low": -9223372036854775809}'
    assert decode_json(body) == {"seed": 2**64, "low": -(2**63) - 1}
    assert type(decode_json(body)["seed"]) is int


def _reads(read: Any, body: bytes) -> bool:
    try:
        read(body)
    except (ValueError, RecursionError):
        return False
    return True


@pytest.mark.parametrize("depth", [300, 1000, 1025, 5000])
def test_nesting_is_read_exactly_as_deep_as_json_reads_it(depth: int) -> None:
    # json reads as deep as the interpreter lets it (fewer on 3.11, more on 3.13); so must msgspec
    body = b"[" * depth + b"]" * depth
    assert _reads(decode_json, body) == _reads(json.loads, body)


def test_the_fast_parser_is_in_use_when_installed() -> None:
    # The agreement above means little if the tests ran without msgspec: the dev extra installs it.
    import msgspec

    assert isinstance(getattr(fast_loads(), "__self__", None), msgspec.json.Decoder)


def test_without_msgspec_bodies_read_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(problems, "_msgspec_loads", None)
    for body in [b'{"a": [1, 2.5, "x"]}', *ODD, b"[" * 100_000]:
        _same(body)
