"""encode_json writes every request body as the value the standard library's json writes.

With the ``fast`` extra installed, msgspec writes the plain bodies; json is the oracle here: the
bytes may differ (UTF-8 instead of ``\\uXXXX``), the value they decode to may not, and what json
refuses (a set, a datetime, a circular list) is refused with json's own error.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import uuid
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from areplicate._core import json_body
from areplicate._core.json_body import encode_json

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),  # past 64 bits (orjson refused them)
    st.floats(allow_nan=True, allow_infinity=True),  # NaN: json writes it, msgspec would write null
    st.text(max_size=20),  # lone surrogates included, which msgspec refuses
)
KEYS = st.one_of(st.text(max_size=8), st.integers(-5, 5), st.booleans(), st.none(), st.floats())
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=8), inner, max_size=5),
        st.dictionaries(KEYS, inner, max_size=3),  # json writes 1 and None as keys "1", "null"
    ),
    max_leaves=30,
)


class Colour(enum.Enum):
    RED = "red"


class Size(enum.IntEnum):
    BIG = 3


def _written(write: Any, value: Any) -> str:
    """What ``write`` makes of ``value``, as a value (through json.loads and back, which tells 1
    from 1.0 and shows NaN, -0.0 and key order), or the kind of error it raised."""
    try:
        data = write(value)
    except (TypeError, ValueError) as exc:
        return type(exc).__name__
    text = data.decode() if isinstance(data, bytes) else data
    return json.dumps(json.loads(text))


def _by_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _same(value: Any) -> None:
    assert _written(encode_json, value) == _written(_by_json, value)


@settings(max_examples=400)
@given(value=VALUES)
def test_any_value_is_written_as_json_writes_it(value: Any) -> None:
    _same(value)
    _same({"input": value})


@pytest.mark.parametrize(
    "value",
    [
        {"input": {"x": math.nan}},
        {"input": {"x": [1.0, -math.inf]}},
        {"input": {"seed": 2**64}},
        {"input": {"text": "\ud800"}},
        {"input": {"colour": Colour.RED}},  # msgspec writes "red"; json refuses it
        {"input": {"size": Size.BIG}},
        {"input": {"id": uuid.UUID(int=1)}},  # msgspec writes it; json refuses it
        {"input": {"at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)}},
        {"input": {"tags": {"a", "b"}}},
        {"input": OrderedDict(a=1)},
        {"input": {"text": "é \u2028 \x00 \x7f"}},
        {"input": {"x": -0.0, "y": 1e16, "z": 5e-324}},
        [[[[[[]]]]]],
    ],
)
def test_what_msgspec_writes_differently_is_written_by_json(value: Any) -> None:
    _same(value)


def test_a_circular_body_is_refused_as_json_refuses_it() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        encode_json({"input": {"x": loop}})


@pytest.mark.parametrize("depth", [60, 70, 300])
def test_deep_nesting_is_written_as_json_writes_it(depth: int) -> None:
    value: Any = []
    for _ in range(depth):
        value = [value]
    _same(value)


def test_the_fast_encoder_writes_the_plain_bodies_when_installed() -> None:
    # The agreement above means little if the plain bodies did not go through msgspec.
    import msgspec

    encode_json({})  # resolves the optional import
    assert isinstance(getattr(json_body._msgspec_dumps, "__self__", None), msgspec.json.Encoder)
    assert encode_json({"input": {"prompt": "é"}}) == '{"input":{"prompt":"é"}}'.encode()


def test_without_msgspec_bodies_are_written_by_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_body, "_msgspec_dumps", None)
    assert (
        encode_json({"input": {"prompt": "é", "n": 1.5}})
        == b'{"input":{"prompt":"\\u00e9","n":1.5}}'
    )
    _same({"input": {"x": math.nan, "colour": "red"}})
