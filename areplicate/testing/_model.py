"""Models for the fake server: Python callables with a Cog-shaped schema, ``log`` and ``FileOut``.

A model is a function, coroutine function, sync generator or async generator called with the
prediction's input as keyword arguments. Its input schema is either given (Cog style: ``properties``
with ``type``/``title``/``x-order``, enums through ``allOf`` + ``$ref`` into ``components.schemas``,
a ``required`` list) or read from the callable's signature, the way Cog builds it from ``predict()``.
Every schema is compiled into a jsonschema validator once, when the model is added.
"""

from __future__ import annotations

import base64
import contextvars
import datetime as dt
import enum
import functools
import hashlib
import inspect
import json
import mimetypes
import pathlib
import threading
import typing
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import jsonschema
from jsonschema.exceptions import ValidationError

from areplicate._core.times import format_timestamp

__all__ = ["FakeModel", "FileOut", "InvalidField", "Kind", "log", "read_path", "version_id_for"]


@attrs.frozen
class FileOut:
    """A file a model returns: the fake stores it and puts a URL in the output instead.

    The URL is served by the fake without authentication, like ``replicate.delivery``:
    ``{base_url}/delivery/<token>/<filename>``. It may appear anywhere in the output (inside lists
    and dicts, or as a generator's item). Gotcha: the file is deleted with the rest of the
    prediction's data when ``data_ttl`` passes, and the URL then answers 404.
    """

    data: bytes
    filename: str = "output.bin"
    content_type: str | None = None

    @property
    def media_type(self) -> str:
        """``content_type``, or a guess from ``filename`` (``application/octet-stream`` if none)."""
        if self.content_type:
            return self.content_type
        guess, _ = mimetypes.guess_type(self.filename)
        return guess or "application/octet-stream"


class _LogSink(typing.Protocol):
    def write_log(self, text: str) -> None: ...

    def read_file(self, url: str) -> bytes | None: ...


_CURRENT: contextvars.ContextVar[_LogSink | None] = contextvars.ContextVar(
    "areplicate_fake_prediction", default=None
)


def read_input(value: str) -> bytes:
    """The bytes of a file input, for a model callable: what Cog would download for it.

    ``value`` is what the model received for a file input: a URL of this fake's ``POST /files``
    upload (``urls.get``, as the client sends it), a ``/files/{id}/download`` or output delivery
    URL of this fake, or a ``data:`` URI. Reading such a URL over HTTP would need the API token
    (the ``/files`` route answers 401 without one), which a model does not have; this reads the
    fake's own copy. Gotcha: call it from inside the model call (it finds the fake through the
    running prediction); anything else raises ValueError.
    """
    if not isinstance(value, str):
        raise TypeError(f"read_input takes the input's URL string, got {type(value).__name__}")
    if value.startswith("data:"):
        header, comma, payload = value.partition(",")
        if not comma:
            raise ValueError("malformed data URI: no comma")
        if header.endswith(";base64"):
            return base64.b64decode(payload)
        return urllib.parse.unquote_to_bytes(payload)
    sink = _CURRENT.get()
    if sink is None:
        raise ValueError("read_input() works only inside a fake model call")
    data = sink.read_file(value)
    if data is None:
        raise ValueError(f"{value!r} is not a file of this fake (upload it with POST /files)")
    return data


def log(text: str) -> None:
    """Append a line to the logs of the prediction this model call belongs to.

    Works in functions, coroutines, generators and threads started with ``asyncio.to_thread``
    (which copies the context). A newline is added unless ``text`` ends with one. Gotcha: outside
    a fake prediction (calling your model function directly in a unit test) it does nothing.
    """
    sink = _CURRENT.get()
    if sink is not None:
        sink.write_log(str(text))


class Kind(enum.Enum):
    """How a model callable produces its output."""

    FUNCTION = "function"
    COROUTINE = "coroutine"
    GENERATOR = "generator"
    ASYNC_GENERATOR = "async generator"

    @property
    def streams(self) -> bool:
        """Generators stream: their yields are outputs, and predictions get ``urls.stream``."""
        return self in (Kind.GENERATOR, Kind.ASYNC_GENERATOR)


def _kind_of(fn: Callable[..., Any]) -> Kind:
    targets = [fn]
    call = getattr(fn, "__call__", None)  # noqa: B004 -- callable objects define predict() here
    if call is not None and not inspect.isfunction(fn) and not isinstance(fn, functools.partial):
        targets.append(call)
    for target in targets:
        if inspect.isasyncgenfunction(target):
            return Kind.ASYNC_GENERATOR
        if inspect.isgeneratorfunction(target):
            return Kind.GENERATOR
        if inspect.iscoroutinefunction(target):
            return Kind.COROUTINE
    return Kind.FUNCTION


_JSON_TYPES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}


def _json_type(annotation: Any) -> str | None:
    origin = typing.get_origin(annotation) or annotation
    return _JSON_TYPES.get(origin)


def _is_json_value(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


@attrs.frozen
class _Signature:
    schema: dict[str, Any]
    accepts: frozenset[str] | None  # None: the callable takes **kwargs
    output: dict[str, Any]


def _from_signature(fn: Callable[..., Any], kind: Kind) -> _Signature:
    """Cog's rule: each parameter is an input; one without a default is required."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return _Signature({"type": "object", "title": "Input", "properties": {}}, None, {})
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations just mean "no type"
        hints = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    accepts: set[str] | None = set()
    order = 0
    for param in sig.parameters.values():
        if param.kind is param.VAR_KEYWORD:
            accepts = None
            continue
        if param.kind in (param.VAR_POSITIONAL, param.POSITIONAL_ONLY):
            continue
        prop: dict[str, Any] = {"title": param.name.replace("_", " ").title(), "x-order": order}
        order += 1
        json_type = _json_type(hints.get(param.name))
        if json_type is not None:
            prop["type"] = json_type
        if param.default is param.empty:
            required.append(param.name)
        elif _is_json_value(param.default):
            prop["default"] = param.default
        properties[param.name] = prop
        if accepts is not None:
            accepts.add(param.name)
    schema: dict[str, Any] = {"type": "object", "title": "Input", "properties": properties}
    if required:
        schema["required"] = required
    output: dict[str, Any] = {"title": "Output"}
    out_type = _json_type(hints.get("return"))
    if out_type is not None and not kind.streams:
        output["type"] = out_type
    return _Signature(schema, frozenset(accepts) if accepts is not None else None, output)


def _cog_document(schemas: Mapping[str, Any]) -> dict[str, Any]:
    """A Cog-shaped OpenAPI document around ``components.schemas`` (Input, Output, …)."""
    ref = "#/components/schemas/"
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {
            "/predictions": {
                "post": {
                    "summary": "Predict",
                    "operationId": "predict_predictions_post",
                    "description": "Run a single prediction on the model",
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$ref": ref + "PredictionRequest"}}
                        }
                    },
                    "responses": {
                        "200": {
                            "description": "Successful Response",
                            "content": {
                                "application/json": {"schema": {"$ref": ref + "PredictionResponse"}}
                            },
                        }
                    },
                }
            }
        },
        "components": {
            "schemas": {
                **schemas,
                "Status": {
                    "title": "Status",
                    "description": "An enumeration.",
                    "enum": ["starting", "processing", "succeeded", "canceled", "failed"],
                    "type": "string",
                },
                "PredictionRequest": {
                    "title": "PredictionRequest",
                    "type": "object",
                    "properties": {
                        "id": {"title": "Id", "type": "string"},
                        "input": {"$ref": ref + "Input"},
                        "webhook": {"title": "Webhook", "type": "string", "format": "uri"},
                    },
                },
                "PredictionResponse": {
                    "title": "PredictionResponse",
                    "type": "object",
                    "properties": {
                        "id": {"title": "Id", "type": "string"},
                        "input": {"$ref": ref + "Input"},
                        "output": {"$ref": ref + "Output"},
                        "status": {"$ref": ref + "Status"},
                        "error": {"title": "Error", "type": "string"},
                        "logs": {"title": "Logs", "type": "string", "default": ""},
                    },
                },
            }
        },
    }


@attrs.frozen
class InvalidField:
    """One entry of a 422's ``invalid_fields`` (the gojsonschema wording Replicate uses)."""

    type: str
    field: str
    description: str

    def as_json(self) -> dict[str, str]:
        """The JSON object the API sends."""
        return {"type": self.type, "field": self.field, "description": self.description}


_TYPE_NAMES = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    list: "array",
    dict: "object",
    type(None): "null",
}


def _given(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _field(path: Sequence[Any]) -> str:
    return ".".join(["input", *(str(p) for p in path)])


def _invalid_fields(errors: list[ValidationError]) -> list[InvalidField]:
    fields: list[InvalidField] = []
    seen_required: set[tuple[Any, ...]] = set()
    for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
        path = tuple(error.absolute_path)
        field = _field(path)
        validator = error.validator
        value: Any = error.validator_value
        schema: Any = error.schema
        instance: Any = error.instance
        if validator == "required":
            if path in seen_required or not isinstance(error.instance, dict):
                continue
            seen_required.add(path)
            fields.extend(
                InvalidField("required", field, f"{name} is required")
                for name in value
                if name not in error.instance
            )
        elif validator == "type":
            expected = value if isinstance(value, str) else ", ".join(value)
            fields.append(
                InvalidField(
                    "invalid_type",
                    field,
                    f"Invalid type. Expected: {expected}, given: {_given(error.instance)}",
                )
            )
        elif validator == "minimum":
            fields.append(
                InvalidField("number_gte", field, f"Must be greater than or equal to {value}")
            )
        elif validator == "maximum":
            fields.append(
                InvalidField("number_lte", field, f"Must be less than or equal to {value}")
            )
        elif validator == "exclusiveMinimum":
            fields.append(InvalidField("number_gt", field, f"Must be greater than {value}"))
        elif validator == "exclusiveMaximum":
            fields.append(InvalidField("number_lt", field, f"Must be less than {value}"))
        elif validator == "enum":
            choices = ", ".join(json.dumps(v) for v in value)
            fields.append(
                InvalidField("enum", field, f"{field} must be one of the following: {choices}")
            )
        elif validator == "additionalProperties":
            known = schema.get("properties", {}) if isinstance(schema, dict) else {}
            extra = sorted(k for k in instance if k not in known)
            fields.extend(
                InvalidField(
                    "additional_property_not_allowed",
                    field,
                    f"Additional property {name} is not allowed",
                )
                for name in extra
            )
        else:
            fields.append(InvalidField(str(validator), field, error.message))
    return fields


def _check_schema(model: str, key: str, schema: Any) -> None:
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(
            f"schema {key!r} of {model} is not a valid JSON schema: {exc.message}"
        ) from None


_NO_CONSTRAINTS = frozenset({"type", "title", "description", "properties", "x-order"})


def version_id_for(owner: str, name: str, number: int) -> str:
    """A stable 64-hex version id: the same model added the same way gets the same id."""
    return hashlib.sha256(f"{owner}/{name}#{number}".encode()).hexdigest()


class FakeModel:
    """One version of a model registered with :meth:`FakeReplicate.add_model`.

    ``version_id`` (64 hex) and ``ref`` (``owner/name:<version_id>``) are what clients send;
    ``calls`` counts how often the callable was invoked. ``openapi_schema`` is the Cog-shaped
    document served on the version. Gotcha: adding the same ``owner/name`` again makes a *new*
    version that becomes the latest (what ``owner/name`` runs); the old version keeps working.
    """

    __slots__ = (
        "_accepts",
        "_defaults",
        "_lock",
        "_trivial",
        "_validator",
        "boot_delay",
        "calls",
        "created_at",
        "fn",
        "kind",
        "name",
        "official",
        "openapi_schema",
        "owner",
        "version_id",
    )

    def __init__(
        self,
        owner: str,
        name: str,
        fn: Callable[..., Any],
        *,
        number: int,
        input_schema: Mapping[str, Any] | None,
        output_schema: Mapping[str, Any] | None,
        components: Mapping[str, Any] | None,
        official: bool,
        boot_delay: float,
        created_at: dt.datetime,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"a model must be callable, got {type(fn).__name__}")
        if boot_delay < 0:
            raise ValueError(f"boot_delay must be >= 0 seconds, got {boot_delay}")
        self.owner = owner
        self.name = name
        self.fn = fn
        self.kind = _kind_of(fn)
        self.official = official
        self.boot_delay = float(boot_delay)
        self.version_id = version_id_for(owner, name, number)
        self.created_at = created_at
        self.calls = 0
        self._lock = threading.Lock()
        inferred = _from_signature(fn, self.kind)
        self._accepts = inferred.accepts
        schema = dict(input_schema) if input_schema is not None else inferred.schema
        schema.setdefault("type", "object")
        schema.setdefault("title", "Input")
        if output_schema is not None:
            output = dict(output_schema)
        elif self.kind.streams:
            output = {
                "type": "array",
                "items": {"type": "string"},
                "title": "Output",
                "x-cog-array-type": "iterator",
                "x-cog-array-display": "concatenate",
            }
        else:
            output = inferred.output
        schemas = {**(components or {}), "Input": schema, "Output": output}
        self.openapi_schema = _cog_document(schemas)
        # Input at the root, so no top-level $ref is resolved per validation; its own refs
        # ("#/components/schemas/…") resolve against the components carried beside it.
        root = {**schema, "components": {"schemas": schemas}}
        for key, part in schemas.items():
            _check_schema(f"{owner}/{name}", key, part)
        self._validator = jsonschema.Draft202012Validator(root)
        # An input schema that constrains nothing (e.g. from ``def f(**kwargs)``) is not run.
        self._trivial = not schema.get("properties") and set(schema) <= _NO_CONSTRAINTS
        properties = schema.get("properties", {})
        self._defaults = {
            key: prop["default"]
            for key, prop in properties.items()
            if isinstance(prop, dict) and "default" in prop
        }

    @property
    def ref(self) -> str:
        """``owner/name:<version_id>``: the reference that pins this version."""
        return f"{self.owner}/{self.name}:{self.version_id}"

    @property
    def model(self) -> str:
        """``owner/name``."""
        return f"{self.owner}/{self.name}"

    def validate(self, value: dict[str, Any]) -> list[InvalidField]:
        """Every way ``value`` breaks the input schema (empty when it is valid)."""
        if self._trivial:
            return []
        return _invalid_fields(list(self._validator.iter_errors(value)))

    def call(self, value: Mapping[str, Any]) -> Any:
        """Invoke the callable with the input (schema defaults filled in, unknown keys dropped)."""
        kwargs = {**self._defaults, **value} if self._defaults else dict(value)
        if self._accepts is not None:
            kwargs = {k: v for k, v in kwargs.items() if k in self._accepts}
        with self._lock:
            self.calls += 1
        return self.fn(**kwargs)

    def version_json(self) -> dict[str, Any]:
        """The API's version object."""
        return {
            "id": self.version_id,
            "created_at": format_timestamp(self.created_at),
            "cog_version": "0.9.4",
            "openapi_schema": self.openapi_schema,
        }

    def __repr__(self) -> str:
        return f"<FakeModel {self.ref} {self.kind.value}>"


def read_path(value: pathlib.Path) -> FileOut:
    """A ``pathlib.Path`` returned by a model (Cog style) becomes a FileOut of its bytes."""
    return FileOut(value.read_bytes(), value.name)
