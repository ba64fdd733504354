"""The one cattrs converter: JSON bodies → our attrs models.

Lenient on API responses (the API grows, old responses omit keys): missing keys take defaults, a
``null`` where we expect a container or a bool takes the default too, unknown keys go to ``extra``,
unknown statuses stay strings. What still cannot be read becomes UnexpectedResponseError with the path
of the bad value, never a raw KeyError.
"""

from __future__ import annotations

import datetime as dt
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
_INTERNED = frozenset({"model", "version", "source"})


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

        build = _builder(cl, conv) if quick else None
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


_MISSING: Any = object()
_NOT_GIVEN: Any = object()  # a required field without a value: not the plain shape
# Each class's quick builder (None: it has none, or it is being made), made on first use.
_BUILDERS: dict[Any, Callable[[dict[str, Any]], Any] | None] = {}


def _builder(cl: Any, conv: cattrs.Converter) -> Callable[[dict[str, Any]], Any] | None:
    """``cl``'s quick builder, made once; a class whose fields lead back to itself gets None
    there while it is being made (that field is then read by the converter)."""
    if cl not in _BUILDERS:
        _BUILDERS[cl] = None
        _BUILDERS[cl] = _quick_fn(cl, conv)
    return _BUILDERS[cl]


def _quick_fn(cl: type[Any], conv: cattrs.Converter) -> Callable[[dict[str, Any]], Any] | None:
    """A direct builder of ``cl`` for the plain shape of a response, or None for a generic class.

    Every prediction a fan-out reads goes through here, and cattrs' general function costs about
    four times as much (a dispatch and a call per optional field). The builder accepts only what the
    general path would read the same way: each value already of its field's JSON type (or
    ``null``), a timestamp the parser takes. It raises on anything else, and the caller falls back
    to the general path, which reads it leniently or explains, with the value's path, why it
    cannot. Like attrs' and cattrs' own functions it is generated source, one ``if`` per field:
    a loop calling a reader per key cost as much again.
    """
    fields = attrs.fields(typing.get_origin(cl) or cl)
    if typing.get_origin(cl) is not None or any(
        a.alias != a.name
        or not a.init
        or a.kw_only
        or (isinstance(a.default, attrs.Factory) and a.default.takes_self)  # type: ignore[arg-type]
        for a in fields
    ):
        return None  # a generic's field types, renamed or keyword-only fields: left to cattrs
    hints = typing.get_type_hints(cl)
    names = [a.name for a in fields if a.name != "extra"]
    scope: dict[str, Any] = {
        "cl": cl,
        "NotPlain": _NotPlain,
        "MISSING": _MISSING,
        "NOT_GIVEN": _NOT_GIVEN,
        "NAMES": frozenset(names),
        "intern": sys.intern,
        "parse_timestamp": parse_timestamp,
        "parse_status": parse_status,
        "structure": conv.structure,
    }
    lines = [
        "def build(value):",
        "    if type(value) is not dict:",
        "        raise NotPlain",
    ]
    args = []
    for i, a in enumerate(fields):
        if a.name == "extra":
            args.append("extra")
            continue
        tp = hints[a.name]
        scope[f"T_{a.name}"] = tp
        check, store = _plain_check(a.name, tp)
        nested = _nested_class(tp)
        if nested is not None and (inner := _builder(nested, conv)) is not None:
            # A nested class (a prediction's urls) built directly too: its builder raises
            # NotPlain just as this one does, and the general path then reads the whole value.
            scope[f"B_{a.name}"] = inner
            check, store = "True", f"B_{a.name}(v)"
        # What a missing key (or a null the field does not take) leaves: the field's default.
        if a.default is attrs.NOTHING:
            default = "NOT_GIVEN"
        elif isinstance(a.default, attrs.Factory):  # type: ignore[arg-type]
            scope[f"F_{a.name}"] = a.default.factory
            default = f"F_{a.name}()"
        else:
            scope[f"D_{a.name}"] = a.default
            default = f"D_{a.name}"
        arg = f"a{i}"
        args.append(arg)
        if_null = "None" if _admits_none(tp) else default
        if if_null == "None" and a.default is None and check == "True" and store == "v":
            lines.append(f"    {arg} = value.get({a.name!r})")  # missing or null: None alike
            continue
        if if_null == default or (if_null == "None" and a.default is None):
            # A missing key and a null mean the same here: one lookup without a marker.
            lines += [f"    v = value.get({a.name!r})", "    if v is None:"]
        else:
            lines += [
                f"    v = value.get({a.name!r}, MISSING)",
                "    if v is MISSING:",
                f"        {arg} = {default}",
                "    elif v is None:",
            ]
        lines += [
            f"        {arg} = {if_null}",
            f"    elif {check}:",
            f"        {arg} = {store}",
            "    else:",
            "        raise NotPlain",
        ]
        if a.default is attrs.NOTHING:
            lines += [f"    if {arg} is NOT_GIVEN:", "        raise NotPlain"]
    if "extra" in args:
        # One set operation in C tells whether any key is unknown: no count kept per field.
        lines += [
            "    if NAMES.issuperset(value):",
            "        extra = {}",
            "    else:",
            "        extra = {k: x for k, x in value.items() if k not in NAMES}",
        ]
    # Positional: attrs' __init__ takes them in field order, a third quicker than by keyword.
    lines.append(f"    return cl({', '.join(args)})")
    exec(compile("\n".join(lines), f"<areplicate quick build {cl.__name__}>", "exec"), scope)  # noqa: S102 - our own source, from the class's fields
    build: Callable[[dict[str, Any]], Any] = scope["build"]
    return build


def _nested_class(tp: Any) -> Any:
    """The attrs class of a field typed ``C`` or ``C | None`` (not generic), else None."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    base = args[0] if _admits_none(tp) and len(args) == 1 else tp
    return base if isinstance(base, type) and attrs.has(base) else None


def _plain_check(name: str, tp: Any) -> tuple[str, str]:
    """For one field: the test that its non-null value ``v`` has the plain shape, and what to store.

    Any other type (a nested class, a number, a list of classes) is read by the converter itself.
    """
    if tp is Any:
        return "True", "v"
    if tp == (Status | str):
        return "type(v) is str", "parse_status(v)"
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    base = args[0] if _admits_none(tp) and len(args) == 1 else tp
    if base is str:
        return "type(v) is str", ("intern(v)" if name in _INTERNED else "v")
    if base is bool:
        return "type(v) is bool", "v"
    if base is dt.datetime:
        return "type(v) is str", "parse_timestamp(v)"
    if base == dict[str, Any]:
        return "type(v) is dict", "v"
    if base == list[str]:
        return "type(v) is list and all(type(i) is str for i in v)", "list(v)"
    if typing.get_origin(base) is list:  # cattrs would make a list of a string's characters
        return "type(v) is list", f"structure(v, T_{name})"
    return "True", f"structure(v, T_{name})"


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
    build = _BUILDERS.get(cl)  # the converter's own dispatch costs a third of a prediction's build
    if build is not None:
        try:
            return build(data)  # type: ignore[no-any-return]
        except Exception:  # noqa: BLE001, S110 - not the plain shape: the converter decides below
            pass
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
