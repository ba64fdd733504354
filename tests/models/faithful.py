"""Check that a structured model says what the JSON said: each known key in its field, the rest in
``extra``, timestamps parsed to the same instant. A ``null`` or missing key is None in a field that
admits None ("the API did not say"); only a field that cannot be None takes its default."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import attrs

from areplicate._convert import _admits_none
from areplicate._core.status import Status


def _instant(text: str) -> dt.datetime:
    if sys.version_info >= (3, 11):  # an independent parser: 3.11 reads Z and 0-9 fractional digits
        parsed = dt.datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    from areplicate._core.times import parse_timestamp  # pragma: no cover

    return parse_timestamp(text)  # pragma: no cover


def assert_faithful(value: Any, raw: Any, path: str = "$") -> None:
    """Fail with the JSON path where ``value`` (structured) differs from ``raw`` (parsed JSON)."""
    if attrs.has(type(value)):
        assert isinstance(raw, dict), f"{path}: {type(value).__name__} from {type(raw).__name__}"
        fields = {a.name: a for a in attrs.fields(type(value))}
        for key, item in raw.items():
            if key in fields and key != "extra":
                if item is None and _admits_none(fields[key].type):
                    assert getattr(value, key) is None, f"{path}.{key}: null became a value"
                assert_faithful(getattr(value, key), item, f"{path}.{key}")
            else:
                assert value.extra.get(key, ...) == item, f"{path}.{key} not kept in extra"
        for name, field in fields.items():
            if name not in raw and _admits_none(field.type) and field.type is not Any:
                assert getattr(value, name) is None, f"{path}.{name}: missing became a value"
        return
    if raw is None:
        assert value in (None, {}, []), f"{path}: null became {value!r}"
        return
    if isinstance(value, dt.datetime):
        assert value.tzinfo is not None, f"{path}: naive datetime"
        assert value == _instant(raw), f"{path}: {value!r} != {raw!r}"
        return
    if isinstance(value, Status):
        assert value.value == raw, path
        return
    if isinstance(value, list) and value and attrs.has(type(value[0])):
        assert isinstance(raw, list), path
        assert len(value) == len(raw), path
        for i, (item, raw_item) in enumerate(zip(value, raw, strict=True)):
            assert_faithful(item, raw_item, f"{path}[{i}]")
        return
    assert value == raw, f"{path}: {value!r} != {raw!r}"
    assert type(value) is type(raw), f"{path}: {type(value).__name__} != {type(raw).__name__}"
