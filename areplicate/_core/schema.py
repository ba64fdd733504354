"""Check a prediction's input against a model version's input schema, before anything is sent.

A version's ``openapi_schema`` is Cog's whole OpenAPI document; the inputs are the object schema at
``components.schemas.Input`` (docs/api-notes.md#versions-and-input-schemas). Cog writes an
enum input as ``{"allOf": [{"$ref": "#/components/schemas/scheduler"}]}``, so ``$ref`` is resolved
inside the document (with ``referencing``), never fetched.

Two kinds of problem come back, as plain strings that start with the field's path:

- **errors** break the schema the way the API checks it: a required input missing, a number out of
  range, a value that is not one of an enum's values, a wrong JSON type. Every error is reported,
  not just the first, each with the allowed values or range.
- **warnings** are what the API lets through or may: a key the model has no input for (the API
  ignores it, which usually hides a typo), or ``null`` for an optional input whose schema does not
  admit null. A version without an input schema gives a warning too: nothing could be checked.

Where Cog's OpenAPI 3.0 dialect differs from JSON Schema we follow OpenAPI: ``nullable: true``
admits null, a boolean ``exclusiveMinimum``/``exclusiveMaximum`` makes ``minimum``/``maximum``
strict. Formats are not checked (a ``uri`` input takes URLs and data URIs alike), and a file-like
value (a path, bytes, an open file) is accepted where the schema wants a ``uri`` string, since the
client uploads those before sending.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import attrs

if TYPE_CHECKING:  # jsonschema is imported on first use: it is most of `import areplicate`'s time
    from jsonschema.exceptions import ValidationError

__all__ = ["InputCheck", "InputSchema", "check_input", "inline_refs", "input_schema"]

_URI = "urn:areplicate:version-openapi-schema"
_INPUT_POINTER = "#/components/schemas/Input"
_MAX_SHOWN = 80
_MAX_CHOICES = 25
_MAX_NAMES = 20
_JSON_TYPES = frozenset({"array", "boolean", "integer", "null", "number", "object", "string"})


@attrs.frozen
class InputCheck:
    """What checking one input found: ``errors`` block the create, ``warnings`` do not.

    Each string starts with the field path (``width``, ``images[0]``, or ``input`` for the whole
    input) and names the allowed values or range.
    """

    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings may remain)."""
        return not self.errors


# -- the JSON Schema dialect --------------------------------------------------------------------


def _is_file_like(value: Any) -> bool:
    """Whether ``value`` is something the client would upload rather than send as JSON.

    Mirrors what input preparation uploads (bytes, a path, anything with ``read``), so a ``uri``
    input given a local file passes here and only becomes a URL later. Keep the two in step: if
    preparation learns a new file kind and this does not, valid inputs start failing the check.
    """
    return (
        isinstance(value, (bytes, bytearray, memoryview))
        or hasattr(value, "__fspath__")
        or callable(getattr(value, "read", None))
    )


def _type_keyword(
    validator: Any, types: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """The ``type`` keyword, widened for Cog's dialect.

    Three exceptions to JSON Schema: ``nullable: true`` admits ``None`` (OpenAPI 3.0 has no
    ``"null"`` type), a file-like value satisfies ``string`` + ``format: uri``, and a type name
    JSON Schema does not know is waved through rather than failing every value.
    """
    names = [types] if isinstance(types, str) else list(types)
    if instance is None and schema.get("nullable") is True:
        return
    if "string" in names and schema.get("format") == "uri" and _is_file_like(instance):
        return
    known = [n for n in names if n in _JSON_TYPES]
    if len(known) < len(names) or any(validator.is_type(instance, n) for n in known):
        return  # a match, or a type JSON Schema does not know: not ours to judge
    yield _error(f"{instance!r} is not of type {', '.join(map(repr, names))}")


def _required_keyword(
    validator: Any,
    required: Any,
    instance: Any,
    schema: Mapping[str, Any],  # noqa: ARG001 - jsonschema's keyword signature
) -> Iterator[ValidationError]:
    """The ``required`` keyword, reporting each missing name at its own path.

    jsonschema's built-in puts the error at the object, so the message would start with ``input``
    and be sorted first; here it starts with the field name, like every other error.
    """
    if not validator.is_type(instance, "object") or not isinstance(required, list):
        return
    for name in required:
        if name not in instance:
            # Unlike jsonschema's own, this error's path names the missing property.
            yield _error(f"{name!r} is a required property", path=[name])


def _exclusive(lower: bool) -> Any:
    """Build the checker for ``exclusiveMinimum`` (``lower``) or ``exclusiveMaximum``.

    Both dialects are accepted: a number is the JSON Schema bound itself; ``true`` is OpenAPI 3.0's
    flag meaning "``minimum``/``maximum`` is strict". ``false`` or a flag without its partner checks
    nothing (the plain ``minimum``/``maximum`` keyword still applies).
    """
    keyword = "exclusiveMinimum" if lower else "exclusiveMaximum"
    plain = "minimum" if lower else "maximum"

    def check(
        validator: Any, bound: Any, instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[ValidationError]:
        if not validator.is_type(instance, "number"):
            return
        if isinstance(bound, bool):  # OpenAPI 3.0: a flag that makes minimum/maximum strict
            if not bound or not isinstance(schema.get(plain), (int, float)):
                return
            bound = schema[plain]
        if not isinstance(bound, (int, float)):
            return
        if (instance <= bound) if lower else (instance >= bound):
            yield _error(f"{instance!r} breaks {keyword} {bound!r}")

    return check


def _is_array(_: Any, value: Any) -> bool:
    """Type check for ``array``: tuples count too, since Python callers build inputs with them."""
    return isinstance(value, (list, tuple))


def _is_object(_: Any, value: Any) -> bool:
    """Type check for ``object``: any ``Mapping``, not only ``dict`` (e.g. a ``MappingProxyType``)."""
    return isinstance(value, Mapping)


def _error(message: str, **details: Any) -> ValidationError:
    from jsonschema.exceptions import ValidationError

    return ValidationError(message, **details)


@functools.cache
def _validator_class() -> Any:
    """jsonschema's 2020-12 validator with the keywords above (built once, on first use)."""
    import jsonschema
    import jsonschema.validators

    extend: Any = jsonschema.validators.extend
    return extend(
        jsonschema.Draft202012Validator,
        validators={
            "type": _type_keyword,
            "required": _required_keyword,
            "exclusiveMinimum": _exclusive(lower=True),
            "exclusiveMaximum": _exclusive(lower=False),
        },
        type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
            {"array": _is_array, "object": _is_object}
        ),
    )


# -- resolving $ref -----------------------------------------------------------------------------


def _pointer(document: Any, ref: str) -> Any:
    """Follow a local JSON pointer (``#/a/b~1c/0``) inside ``document``.

    Raises ``LookupError`` for a non-local ref or a path that does not exist. Callers treat that
    as "nothing there" (:func:`inline_refs` leaves the ``$ref`` alone, a missing ``Input`` checks
    nothing) rather than as an error, because a broken schema must never block a create.
    """
    if not ref.startswith("#"):
        raise LookupError(ref)
    node = document
    for raw in ref[1:].split("/")[1:] if ref != "#" else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise LookupError(ref)
    return node


def inline_refs(node: Any, document: Mapping[str, Any]) -> Any:
    """A copy of ``node`` with every local ``$ref`` (``#/...``) replaced by what it points at.

    Gotcha: a ``$ref`` that points outside the document, nowhere, or back into itself (a cycle) is
    left as it is, so the result may still hold a ``$ref``.
    """

    def walk(item: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(item, Mapping):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref not in seen:
                try:
                    target = _pointer(document, ref)
                except LookupError:
                    target = None
                if isinstance(target, Mapping):
                    merged = dict(target)
                    merged.update((k, v) for k, v in item.items() if k != "$ref")
                    return walk(merged, (*seen, ref))
            return {k: walk(v, seen) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, seen) for v in item]
        return item

    return walk(node, ())


def input_schema(document: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``Input`` schema of a version's OpenAPI document, ``$ref``s inlined; ``{}`` if none."""
    return InputSchema(document).schema


# -- messages -----------------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A value as JSON for a message, cut to ``_MAX_SHOWN`` characters.

    Falls back to ``repr`` for what JSON cannot hold (a path, bytes, NaN), so the message still
    says what the caller passed.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


def _kind(value: Any) -> str:
    """The JSON type name of a Python value, as the messages say it ("integer", not "int").

    ``bool`` is tested before ``int`` because ``True`` is an ``int`` in Python but a ``boolean``
    to the schema.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _path(parts: Iterable[Any]) -> str:
    """A field path for messages: ``images[0].url``; ``input`` for the top level."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "input"


def _number(value: Any) -> str:
    return _show(value)


def _range(schema: Mapping[str, Any]) -> str:
    """``from 1 to 4``, ``at least 0``, ``greater than 0 and at most 1``…"""

    def bound(plain: str, exclusive: str) -> tuple[Any, bool] | None:
        flag = schema.get(exclusive)
        if isinstance(flag, (int, float)) and not isinstance(flag, bool):
            return flag, True
        if isinstance(schema.get(plain), (int, float)):
            return schema[plain], flag is True
        return None

    low, high = bound("minimum", "exclusiveMinimum"), bound("maximum", "exclusiveMaximum")
    if low and high and not low[1] and not high[1]:
        return f"from {_number(low[0])} to {_number(high[0])}"
    parts = []
    if low:
        parts.append(f"{'greater than' if low[1] else 'at least'} {_number(low[0])}")
    if high:
        parts.append(f"{'less than' if high[1] else 'at most'} {_number(high[0])}")
    return " and ".join(parts) or "any number"


def _count_range(schema: Mapping[str, Any], low_key: str, high_key: str, unit: str) -> str:
    """The allowed size of a string or array, e.g. ``1 to 4 items`` or ``at most 200 characters``."""
    low, high = schema.get(low_key), schema.get(high_key)
    if isinstance(low, int) and isinstance(high, int):
        return f"{low} to {high} {unit}"
    if isinstance(low, int):
        return f"at least {low} {unit}"
    if isinstance(high, int):
        return f"at most {high} {unit}"
    return f"any number of {unit}"  # pragma: no cover - the error names one of the two


def _choices(values: Sequence[Any]) -> str:
    """An enum's values for a message, the first ``_MAX_CHOICES`` then a count of the rest.

    An enum can have hundreds of values (voices, styles): all of them would bury the actual
    complaint.
    """
    shown = ", ".join(_show(v) for v in values[:_MAX_CHOICES])
    if len(values) > _MAX_CHOICES:
        shown += f", … ({len(values) - _MAX_CHOICES} more)"
    return shown


def _did_you_mean(value: Any, candidates: Sequence[Any]) -> str:
    """``"; did you mean X?"`` when ``value`` is close to one of ``candidates``, else ``""``.

    A case-only difference (``"DPM"`` for ``"dpm"``) wins over a fuzzy match. Non-string values
    never get a hint.
    """
    if not isinstance(value, str):
        return ""
    texts = [c for c in candidates if isinstance(c, str)]
    folded = [c for c in texts if c.casefold() == value.casefold()]
    match = folded or difflib.get_close_matches(value, texts, n=1, cutoff=0.6)
    return f"; did you mean {_show(match[0])}?" if match else ""


def _reason(error: ValidationError) -> str:
    """What is wrong, without the path."""
    keyword: Any = error.validator
    expected: Any = error.validator_value
    value: Any = error.instance
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    if keyword == "required":
        return "required, but missing"
    if keyword == "type":
        names = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(
            f"{n} (a URL or file)" if n == "string" and schema.get("format") == "uri" else n
            for n in names
        )
        given = "null" if value is None else f"{_kind(value)} {_show(value)}"
        return f"expected {wanted}, got {given}"
    if keyword == "enum" and isinstance(expected, list):
        return (
            f"{_show(value)} is not an allowed value; allowed: {_choices(expected)}"
            + _did_you_mean(value, expected)
        )
    if keyword == "const":
        return f"must be {_show(expected)}, got {_show(value)}"
    if keyword in ("minimum", "exclusiveMinimum"):
        return f"{_number(value)} is too small; allowed: {_range(schema)}"
    if keyword in ("maximum", "exclusiveMaximum"):
        return f"{_number(value)} is too large; allowed: {_range(schema)}"
    if keyword in ("minLength", "maxLength"):
        size = "short" if keyword == "minLength" else "long"
        allowed = _count_range(schema, "minLength", "maxLength", "characters")
        return f"text of {len(value)} characters is too {size}; allowed: {allowed}"
    if keyword in ("minItems", "maxItems"):
        size = "few" if keyword == "minItems" else "many"
        allowed = _count_range(schema, "minItems", "maxItems", "items")
        return f"{len(value)} items is too {size}; allowed: {allowed}"
    if keyword == "pattern":
        return f"{_show(value)} does not match the pattern {_show(expected)}"
    if keyword == "multipleOf":
        return f"{_number(value)} is not a multiple of {_number(expected)}"
    if keyword in ("anyOf", "oneOf") and error.context:
        reasons = [
            _reason(sub)
            for sub in error.context
            if not (sub.validator == "type" and sub.validator_value == "null")
        ]
        reasons = list(dict.fromkeys(reasons))
        if keyword == "oneOf" and not reasons:
            return f"{_show(value)} matches more than one of the allowed forms"
        return f"{_show(value)} matches none of the allowed forms ({'; or '.join(reasons)})"
    return error.message


# -- the compiled schema ------------------------------------------------------------------------


class InputSchema:
    """One version's input schema, compiled once and then used to check any number of inputs.

    ``document`` is the version's whole ``openapi_schema`` (not just ``Input``: the ``$ref``s point
    into it). ``None`` or a document without ``components.schemas.Input`` gives a schema that checks
    nothing and says so in a warning.
    """

    def __init__(self, document: Mapping[str, Any] | None) -> None:
        """Compile the validator once; the registry holds the whole document so ``$ref`` resolves.

        A missing or odd ``Input`` gives an unavailable schema (checking nothing, saying so), so a
        model with a bad schema can still be run.
        """
        self._document: Mapping[str, Any] = document if isinstance(document, Mapping) else {}
        try:
            raw = _pointer(self._document, _INPUT_POINTER)
        except LookupError:
            raw = None
        self._raw: Mapping[str, Any] | None = raw if isinstance(raw, Mapping) else None
        self.schema: dict[str, Any] = (
            inline_refs(self._raw, self._document) if self._raw is not None else {}
        )
        """The ``Input`` schema with ``$ref``s inlined (``{}`` when the version has none)."""
        props = self.schema.get("properties")
        self._properties: dict[str, Any] = dict(props) if isinstance(props, Mapping) else {}
        required = self.schema.get("required")
        self.required: frozenset[str] = (
            frozenset(r for r in required if isinstance(r, str))
            if isinstance(required, list)
            else frozenset()
        )
        """Names of the inputs that must be given."""
        import referencing
        import referencing.jsonschema

        self._registry: Any = referencing.Registry().with_resource(
            _URI,
            referencing.jsonschema.DRAFT202012.create_resource(dict(self._document)),
        )
        self._validator: Any = (
            _validator_class()({"$ref": _URI + _INPUT_POINTER}, registry=self._registry)
            if self._raw is not None
            else None
        )

    def __repr__(self) -> str:
        return f"<InputSchema {len(self._properties)} inputs, {len(self.required)} required>"

    @property
    def available(self) -> bool:
        """Whether the version published an input schema at all."""
        return self._validator is not None

    @property
    def names(self) -> list[str]:
        """Input names in the order the model lists them (Cog's ``x-order``)."""
        return sorted(self._properties, key=self._order)

    def _order(self, name: Any) -> tuple[float, str]:
        """Sort key for an input name: its ``x-order`` if it has one, then the name; unordered last."""
        prop = self._properties.get(name)
        order = prop.get("x-order") if isinstance(prop, Mapping) else None
        rank = float(order) if isinstance(order, (int, float)) else float("inf")
        return rank, str(name)

    def _accepts_null(self, name: str) -> bool:
        """Whether the schema of input ``name`` admits ``None``, checked by the real validator.

        Asking the validator (rather than looking for ``nullable``) covers ``anyOf`` with a null
        branch and ``type: [..., "null"]`` alike. The name is escaped for a JSON pointer and then for a
        URI, since input names may hold ``/`` or ``~``.
        """
        pointer = "/".join(
            quote(p.replace("~", "~0").replace("/", "~1"), safe="") for p in ("properties", name)
        )
        validator = _validator_class()
        sub = validator({"$ref": f"{_URI}{_INPUT_POINTER}/{pointer}"}, registry=self._registry)
        return bool(sub.is_valid(None))

    def check(self, input: Any) -> InputCheck:
        """Check one input: every error and every warning, in the model's input order."""
        if self._validator is None:
            return InputCheck(
                warnings=("input: this version publishes no input schema, so nothing was checked",)
            )
        if not isinstance(input, Mapping):
            return InputCheck(
                errors=(
                    f"input: expected an object mapping input names to values, got {_kind(input)}",
                )
            )
        warnings: list[str] = []
        instance: dict[str, Any] = {}
        for key, value in input.items():
            if self._properties and key not in self._properties:
                warnings.append(self._unknown(key))
            elif value is None and key in self._properties and not self._safe_accepts_null(key):
                if key in self.required:
                    instance[key] = value  # the type error says it
                else:
                    warnings.append(
                        f"{key}: null is not a valid value for this input and the API may reject "
                        "it; leave the key out to use the model's default"
                    )
            elif value is not None or key in self.required:
                instance[key] = value
        try:
            found = list(self._validator.iter_errors(instance))
        except Exception as exc:  # noqa: BLE001 - advisory: a schema we cannot use must not block the create
            return InputCheck(
                warnings=(
                    *warnings,
                    (
                        f"input: the model's input schema could not be used ({type(exc).__name__}: "
                        f"{exc}), so the input was not checked"
                    ),
                )
            )
        found.sort(key=lambda e: (self._rank(e), _path(e.absolute_path)))
        errors = [f"{_path(e.absolute_path)}: {_reason(e)}" for e in found]
        return InputCheck(errors=tuple(dict.fromkeys(errors)), warnings=tuple(warnings))

    def _safe_accepts_null(self, key: str) -> bool:
        """:meth:`_accepts_null`, but a property schema the validator cannot compile counts as "no".

        The main check then reports the problem (or skips it) with its usual advisory handling.
        """
        try:
            return self._accepts_null(key)
        except Exception:  # noqa: BLE001 - an unusable property schema: let the main check speak
            return False

    def _rank(self, error: ValidationError) -> tuple[float, str]:
        """Sort key for an error: whole-input errors first, then by the model's input order."""
        path = list(error.absolute_path)
        if not path:
            return (-1.0, "")
        return self._order(path[0])

    def _unknown(self, key: Any) -> str:
        """The warning for an input name the model does not have.

        Offers the closest name if there is one, otherwise lists the model's inputs; the API silently
        drops unknown keys, so without this a typo means the model runs on its default.
        """
        names = self.names
        hint = _did_you_mean(key, names)
        if not hint:
            shown = ", ".join(names[:_MAX_NAMES]) + (", …" if len(names) > _MAX_NAMES else "")
            hint = f"; this model's inputs are: {shown}"
        return f"{key}: not an input of this model, so the API will ignore it{hint}"


def check_input(document: Mapping[str, Any] | None, input: Any) -> InputCheck:
    """Check ``input`` against the ``Input`` schema of a version's OpenAPI ``document``.

    Compiles the schema each call: to check many inputs, build one :class:`InputSchema` and call
    its :meth:`~InputSchema.check`.
    """
    return InputSchema(document).check(input)
