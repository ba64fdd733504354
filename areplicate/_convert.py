"""The one cattrs converter: JSON bodies → our attrs models.

Lenient on API responses (the API grows, old responses omit keys): missing keys take defaults, a
``null`` where we expect a container or a bool takes the default too, unknown keys go to ``extra``,
unknown statuses stay strings. What still cannot be read becomes UnexpectedResponseError with the path
of the bad value, never a raw KeyError.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
import types
import typing
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

from areplicate._core.status import Status, parse_status
from areplicate._core.times import parse_timestamp
from areplicate._errors import UnexpectedResponseError

if TYPE_CHECKING:
    from areplicate._session import Response

__all__ = ["converter", "structure", "structure_created"]

T = TypeVar("T")


def _admits_none(tp: Any) -> bool:
    """Whether a field of type ``tp`` may hold ``None`` (``X | None``, ``Optional[X]`` or ``Any``).

    Both spellings of a union are checked: ``typing.Union`` for ``Optional[X]`` and
    ``types.UnionType`` for ``X | None``, which ``get_origin`` reports differently.
    """
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return type(None) in typing.get_args(tp)
    return False


def _is_list(tp: Any) -> bool:
    """``list[X]`` or ``list[X] | None``."""
    if typing.get_origin(tp) is list:
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return bool(args) and all(typing.get_origin(a) is list for a in args)
    return False


def _structure_bool(value: Any, _: Any) -> bool:
    """A JSON boolean as ``bool``; anything else is a type error rather than a guess."""
    # cattrs' default is bool(value), which reads the string "false" as True
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _structure_datetime(value: Any, _: Any) -> dt.datetime:
    """An ISO 8601 timestamp string as an aware ``datetime`` (see :func:`parse_timestamp`).

    A ``datetime`` passes through untouched, so models built by hand (the fake, tests) need not
    format their times first.
    """
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 timestamp string, got {type(value).__name__}")
    return parse_timestamp(value)


def _structure_status(value: Any, _: Any) -> Status | str:
    """A status string as :class:`Status`, or kept as the string when the API invents a new one.

    Keeping unknown statuses means a new lifecycle state on the API side shows up as an odd value
    in ``prediction.status`` instead of failing every read of that prediction.
    """
    if not isinstance(value, str):
        raise TypeError(f"expected a status string, got {type(value).__name__}")
    return parse_status(value)


def _structure_text(value: Any, _: Any) -> str:
    """Any JSON value for a ``str`` field: strings as they are, containers as JSON, others via ``str``.

    Lenient on purpose: fields such as ``error`` or ``logs`` are documented as strings, but when a
    model puts an object there, losing the prediction over it would hide the real error.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        import json

        return json.dumps(value)
    return str(value)


#: Fields whose text repeats across the many objects of one fan-out (every prediction of a model
#: names the same model and version): interned, so 10,000 in flight hold one copy, not 10,000.
_INTERNED = frozenset({"model", "version"})


def _structure_dict(value: Any, _: Any) -> dict[str, Any]:
    """A JSON object for a ``dict[str, Any]`` field, kept as it is (no copy, no key conversion)."""
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _lenient_attrs_factory(conv: cattrs.Converter, *, quick: bool) -> Callable[[type[Any]], Any]:
    """The structure hook factory for every attrs class: the leniency described in the module.

    Per class it precomputes which fields reject ``None`` (so a ``null`` there falls back to the
    default), which are lists (so a string is refused instead of becoming a list of characters),
    and whether unknown keys have an ``extra`` field to go to; without one they are dropped.
    """

    def factory(cl: type[Any]) -> Any:
        """Build the structure function for one attrs class ``cl``, wrapping cattrs' generated one."""
        fields = attrs.fields(cl)
        names = {a.name for a in fields} - {"extra"}
        no_none = {a.name for a in fields if not _admits_none(a.type)}
        # cattrs would make a list of a string's characters or a dict's keys
        arrays = {a.name for a in fields if _is_list(a.type)}
        has_extra = any(a.name == "extra" for a in fields)
        inner = make_dict_structure_fn(cl, conv)

        def structure(value: Any, _: Any) -> Any:
            """Sort one JSON object's keys into known fields and ``extra``, then let cattrs build ``cl``."""
            if not isinstance(value, dict):
                raise TypeError(
                    f"expected a JSON object for {cl.__name__}, got {type(value).__name__}"
                )
            known: dict[str, Any] = {}
            extra: dict[str, Any] = {}
            for key, item in value.items():
                if key in names:
                    if item is None and key in no_none:
                        continue
                    if key in arrays and item is not None and not isinstance(item, list):
                        raise TypeError(
                            f"{cl.__name__}.{key}: expected a JSON array, got {type(item).__name__}"
                        )
                    shared = key in _INTERNED and type(item) is str
                    known[key] = sys.intern(item) if shared else item
                else:
                    extra[key] = item
            if has_extra:
                known["extra"] = extra
            return inner(known, cl)

        build = _quick_fn(cl, conv) if quick else None
        if build is None:
            return structure

        def structure_quickly(value: Any, _: Any) -> Any:
            """The plain shape built directly; anything else goes the general way above."""
            try:
                return build(value)
            except Exception:  # noqa: BLE001 - not the plain shape: the general path decides
                return structure(value, _)

        return structure_quickly

    return factory


class _NotPlain(Exception):
    """A value outside the plain shape: the quick path gives way to the general one."""


def _as_text(value: Any) -> str:
    if type(value) is not str:
        raise _NotPlain
    return value


def _as_shared_text(value: Any) -> str:
    if type(value) is not str:
        raise _NotPlain
    return sys.intern(value)


def _as_dict(value: Any) -> dict[str, Any]:
    if type(value) is not dict:
        raise _NotPlain
    return value


def _as_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise _NotPlain
    return value


def _as_time(value: Any) -> dt.datetime:
    if type(value) is not str:
        raise _NotPlain
    return parse_timestamp(value)


def _as_status(value: Any) -> Status | str:
    if type(value) is not str:
        raise _NotPlain
    return parse_status(value)


def _as_texts(value: Any) -> list[str]:
    if type(value) is not list or not all(type(item) is str for item in value):
        raise _NotPlain
    return list(value)


def _same(value: Any) -> Any:
    return value


def _quick_fn(cl: type[Any], conv: cattrs.Converter) -> Callable[[dict[str, Any]], Any] | None:
    """A direct builder of ``cl`` for the plain shape of a response, or None for a generic class.

    Every prediction a fan-out reads goes through here, and cattrs' general function costs about
    four times as much (a dispatch per optional field). The builder accepts only what the general
    path would read the same way: each value already of its field's JSON type (or ``null``), a
    timestamp the parser takes. It raises on anything else, and the caller falls back to the
    general path, which reads it leniently or explains, with the value's path, why it cannot.
    """
    fields = attrs.fields(typing.get_origin(cl) or cl)
    if typing.get_origin(cl) is not None or any(a.alias != a.name or not a.init for a in fields):
        return None  # a generic's field types, or renamed fields: left to cattrs
    hints = typing.get_type_hints(cl)
    readers: dict[str, Callable[[Any], Any]] = {}
    takes_none: set[str] = set()
    required = frozenset(a.name for a in fields if a.default is attrs.NOTHING)
    for a in fields:
        if a.name == "extra":
            continue
        tp = hints[a.name]
        if _admits_none(tp):
            takes_none.add(a.name)
        readers[a.name] = _reader(a.name, tp, conv)
    has_extra = any(a.name == "extra" for a in fields)

    def quick(value: dict[str, Any]) -> Any:
        if type(value) is not dict:
            raise _NotPlain
        known: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, item in value.items():
            read = readers.get(key)
            if read is None:
                extra[key] = item
            elif item is not None:
                known[key] = read(item)
            elif key in takes_none:
                known[key] = None
        if not required <= known.keys():
            raise _NotPlain
        if has_extra:
            known["extra"] = extra
        return cl(**known)

    return quick


def _reader(name: str, tp: Any, conv: cattrs.Converter) -> Callable[[Any], Any]:
    """The quick reader of one field's non-null value, by the field's type."""
    if tp is Any:
        return _same
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if tp == (Status | str):
        return _as_status
    base = args[0] if _admits_none(tp) and len(args) == 1 else tp
    if base is str:
        return _as_shared_text if name in _INTERNED else _as_text
    if base is bool:
        return _as_bool
    if base is dt.datetime:
        return _as_time
    if base == dict[str, Any]:
        return _as_dict
    if base == list[str]:
        return _as_texts
    if typing.get_origin(base) is list:

        def read_list(value: Any) -> Any:
            if type(value) is not list:
                raise _NotPlain
            return conv.structure(value, base)

        return read_list
    return functools.partial(_structured, conv, base)


def _structured(conv: cattrs.Converter, tp: Any, value: Any) -> Any:
    """Any other field type (a nested class, a number) read by the converter itself."""
    return conv.structure(value, tp)


def _make_converter(*, quick: bool = True) -> cattrs.Converter:
    """The converter with our hooks; simple types are registered before the attrs factory.

    The field hooks must be in place before any class is structured: the factory generates a
    class's function on first use and binds the hooks of its fields' types then. ``quick=False``
    leaves out the quick builders (the tests hold the two to the same results).
    """
    conv = cattrs.Converter()
    conv.register_structure_hook(dt.datetime, _structure_datetime)
    conv.register_structure_hook_func(lambda t: t == (Status | str), _structure_status)
    conv.register_structure_hook(str, _structure_text)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], _structure_dict)
    conv.register_structure_hook_factory(attrs.has, _lenient_attrs_factory(conv, quick=quick))
    return conv


converter = _make_converter()


def structure(data: Any, cl: type[T], *, what: str = "response", status: int = 200) -> T:
    """Structure ``data`` into ``cl``; a body of the wrong shape raises UnexpectedResponseError."""
    try:
        return converter.structure(data, cl)
    except Exception as exc:  # noqa: BLE001 - cattrs raises many kinds; all mean a body of the wrong shape
        problems = (
            cattrs.transform_error(exc)
            if isinstance(exc, cattrs.BaseValidationError)
            else [f"{type(exc).__name__}: {exc}"]
        )
        raise UnexpectedResponseError(
            status,
            "Unexpected response",
            f"{what} is not a valid {getattr(cl, '__name__', cl)}: " + "; ".join(problems[:5]),
            body=data,
        ) from None


def structure_created(response: Response, cl: type[T], *, what: str) -> T:
    """A create's 2xx answer as ``cl``; an answer that cannot be read is an error marked
    ``maybe_created`` (the create happened: its prediction exists, we only failed to read which).

    The error names the response's real status (a 201 says so). A ``cl`` with an ``id`` needs a
    non-empty one: without it the new object cannot be found again.
    """
    try:
        data = response.json()
        value = structure(data, cl, what=what, status=response.status)
    except UnexpectedResponseError as exc:
        exc.mark_maybe_created()
        raise
    if getattr(value, "id", None) == "":
        error = UnexpectedResponseError(
            response.status, "Unexpected response", f"{what} has an empty id", body=data
        )
        error.mark_maybe_created()
        raise error
    return value
