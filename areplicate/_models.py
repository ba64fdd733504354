"""The API's objects as frozen attrs classes.

They know nothing of JSON: the one converter in ``_convert.py`` builds them from response bodies,
filling defaults for missing keys and keeping keys it does not know in ``extra`` (the API grows; we do
not reject what we have not met yet).

Missing and null: a field the API always sends (its document requires it and real traffic never
left it out: ``id``, ``status``, ``version``, ``input``, ``urls``, a model's ``run_count``, a file's
``size``) has a plain type, and its default only fills in for a body that broke that promise. A field
the API may leave out or send as ``null`` is ``X | None``, and ``None`` means "the API did not say":
``data_removed=None`` is not "not removed", ``metrics=None`` is not "no metrics", ``model=None`` is not
an empty name. Older responses (2023) left out every key that was null, so these are common.

Reprs are short: text longer than 200 characters shows its start and its length, containers their
first items and how many more, so a prediction holding a data URI prints in one line.
"""

# No ``from __future__ import annotations`` here: evaluated annotations keep
# ``typing.get_type_hints(areplicate.Prediction)`` working after the package renames ``__module__``.
import datetime as dt
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

import attrs

from areplicate._core.status import Status, is_terminal
from areplicate._errors import ReplicateError, state_of

__all__ = [
    "Account",
    "Collection",
    "CollectionHit",
    "Deployment",
    "DeploymentConfiguration",
    "DeploymentRelease",
    "FileObject",
    "Hardware",
    "Model",
    "ModelHit",
    "Page",
    "Prediction",
    "PredictionURLs",
    "SearchResults",
    "StreamEvent",
    "Training",
    "Version",
]

T = TypeVar("T")


def _extra() -> Any:
    """The ``extra`` field of every model: the JSON keys the API sent that the class does not name.

    Left out of reprs. It is how a field the API adds tomorrow stays readable today
    (``prediction.extra["new_field"]``) instead of failing to decode.
    """
    return attrs.field(factory=dict, repr=False)


# How much of a value a repr shows: text past _TEXT characters and containers past _ITEMS entries are
# cut, and once a repr has spent _BUDGET characters every further value is elided. The walk only
# visits what it shows, so a repr costs the same for a 500 KB data URI as for a short prompt.
_TEXT = 200
_ITEMS = 20
_BUDGET = 4000


def _short(value: Any, budget: list[int]) -> str:
    """A repr of ``value`` cut to fit: long text and containers shortened, ``budget`` spent.

    ``budget`` is a one-item list so nested calls share it; once it runs out, containers show only
    how many entries were left out.
    """
    if isinstance(value, (str, bytes, bytearray)):
        if len(value) <= _TEXT:
            text = repr(value)
        else:
            unit = "chars" if isinstance(value, str) else "bytes"
            text = f"{value[:_TEXT]!r}...<{len(value)} {unit}>"
    elif isinstance(value, dict):
        pairs = (f"{_short(k, budget)}: {_short(v, budget)}" for k, v in value.items())
        text = "{" + _first(pairs, len(value), budget) + "}"
    elif isinstance(value, list):
        text = "[" + _first((_short(v, budget) for v in value), len(value), budget) + "]"
    elif isinstance(value, tuple):
        inner = _first((_short(v, budget) for v in value), len(value), budget)
        text = f"({inner}{',' * (len(value) == 1)})"
    else:
        text = repr(value)  # attrs models print short already; anything else is cut like text
        if len(text) > _TEXT and not attrs.has(type(value)):
            text = f"{text[:_TEXT]}...<{len(text)} chars>"
    budget[0] -= len(text)
    return text


def _first(parts: Iterator[str], count: int, budget: list[int]) -> str:
    """The first entries of a container, while the budget lasts, then how many were left out.

    ``parts`` is a lazy iterator: entries past the cut are never turned into text at all.
    """
    shown: list[str] = []
    while len(shown) < _ITEMS and budget[0] > 0 and (part := next(parts, None)) is not None:
        shown.append(part)
    if len(shown) < count:
        shown.append(f"...<{count - len(shown)} more>")
    return ", ".join(shown)


def _short_repr(self: Any) -> str:
    """``Name(field=value, ...)`` like attrs', with long values cut (see ``_short``).

    Installed as every model's ``__repr__``, so a prediction holding a megabyte data URI still
    prints (and logs) in a few lines.
    """
    budget = [_BUDGET]
    shown = (a for a in attrs.fields(type(self)) if a.repr)
    args = ", ".join(f"{a.name}={_short(getattr(self, a.name), budget)}" for a in shown)
    return f"{type(self).__name__}({args})"


@attrs.frozen
class PredictionURLs:
    """Links the API gives a prediction. ``stream`` is set only for models that can stream.

    The client never follows these as given (a proxy's links point at another host); it rebuilds
    them on its own base URL.
    """

    get: str | None = None
    cancel: str | None = None
    web: str | None = None
    stream: str | None = None
    extra: dict[str, Any] = _extra()


_P = TypeVar("_P", bound="Prediction")


@attrs.frozen
class Prediction:
    """One prediction, as the API last described it.

    ``status`` is a :class:`Status` for known values and the raw string for unknown ones; use
    :attr:`is_terminal` rather than comparing against a list of your own (``aborted`` counts).
    ``output`` is plain JSON: file outputs are URL strings (see ``output_files()``).
    ``model``, ``metrics`` and ``data_removed`` are None where the API did not say (older responses,
    predictions still starting): ``data_removed is None`` is not ``False``, so test ``is True``.
    """

    id: str
    model: str | None = None
    version: str = ""
    input: dict[str, Any] = attrs.field(factory=dict)
    output: Any = None
    logs: str | None = None
    error: str | None = None
    status: Status | str = Status.STARTING
    created_at: dt.datetime | None = None
    started_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None
    urls: PredictionURLs = attrs.field(factory=PredictionURLs)
    metrics: dict[str, Any] | None = None
    data_removed: bool | None = None
    source: str | None = None
    deadline: dt.datetime | None = None
    deployment: str | None = None
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
    extra: dict[str, Any] = _extra()

    @property
    def is_terminal(self) -> bool:
        """True once the prediction has succeeded, failed, been canceled or aborted.

        An unknown status string (one the API adds later) counts as not terminal, so a wait on it
        keeps polling rather than stopping early.
        """
        return is_terminal(self.status)

    def raise_for_status(self: _P) -> _P:
        """Return this prediction if it succeeded; raise if it ended any other way.

        PredictionFailedError (the model's ``error`` in the message) for a failed one,
        PredictionCanceledError for a canceled or aborted one; ``.prediction`` holds this one.
        Call it on a finished prediction (from ``wait`` or ``create_and_wait``): one still
        running raises ValueError, since it has neither succeeded nor failed yet.
        """
        if self.status == Status.SUCCEEDED:
            return self
        if self.status in (Status.CANCELED, Status.ABORTED):
            raise PredictionCanceledError(self)
        if not self.is_terminal:
            raise ValueError(
                f"prediction {self.id} is still {self.status}: wait for it to finish "
                "(predictions.wait) before raise_for_status()"
            )
        raise PredictionFailedError(self)

    @property
    def output_text(self) -> str | None:
        """The output as one string: ``output`` itself when it is a string, the items joined with
        nothing between them when it is a list of strings (a language model's tokens), else None.

        The one thing to know: this reads the output's shape, not its meaning, so a list of file
        URLs (an image model's outputs) would be joined too. Use it for a model you know returns
        text, or check the model's schema first with :attr:`Version.output_is_text`. An empty
        list gives ``""``; None (no output yet) gives None.
        """
        output = self.output
        if isinstance(output, str):
            return output
        if isinstance(output, list) and all(isinstance(token, str) for token in output):
            return "".join(output)
        return None


def _output_is_text(schema: object) -> bool:
    """Whether a Cog ``Output`` schema declares text: a string that is not a URI, or an array of
    strings its model marks ``x-cog-array-display: concatenate`` (streamed tokens)."""
    if not isinstance(schema, dict):
        return False
    if schema.get("type") == "string":
        return schema.get("format") != "uri"
    items = schema.get("items")
    return (
        schema.get("type") == "array"
        and isinstance(items, dict)
        and items.get("type") == "string"
        and items.get("format") != "uri"
        and schema.get("x-cog-array-display") == "concatenate"
    )


@attrs.frozen
class Page(Generic[T]):
    """One page of a paginated listing. ``next`` is the API's link, rebased by the client when followed.

    A page cut short by a ``created_after`` filter has ``next`` set to None: it is the last one.
    """

    results: list[T] = attrs.field(factory=list)
    next: str | None = None
    previous: str | None = None
    extra: dict[str, Any] = _extra()


@attrs.frozen
class Version:
    """A model version. ``openapi_schema`` is Cog's whole OpenAPI document (inputs under
    ``components.schemas.Input``), or None for versions that have none."""

    id: str
    created_at: dt.datetime | None = None
    cog_version: str | None = None
    openapi_schema: dict[str, Any] | None = None
    extra: dict[str, Any] = _extra()

    @property
    def output_is_text(self) -> bool:
        """Whether this version's schema says its output is text, so that a prediction's
        :attr:`Prediction.output_text` is the text the model wrote.

        True for an output declared as a string (not a URI), or as an array of strings marked
        ``"x-cog-array-display": "concatenate"`` (how language models declare streamed tokens).
        False for anything else, a list of file URLs included, and when there is no schema (a
        version without one says nothing, so nothing is assumed).
        """
        schemas = ((self.openapi_schema or {}).get("components") or {}).get("schemas") or {}
        return isinstance(schemas, dict) and _output_is_text(schemas.get("Output"))


@attrs.frozen
class Model:
    """A model. ``latest_version`` is None for models without a pushed version.

    ``is_official`` is None where the API did not say (older responses leave it out), so a model is
    official only when it is ``True``. ``weights_url`` is where a model's weights live, when its
    owner set one.
    """

    owner: str
    name: str
    url: str | None = None
    description: str | None = None
    visibility: str | None = None
    github_url: str | None = None
    paper_url: str | None = None
    license_url: str | None = None
    cover_image_url: str | None = None
    run_count: int = 0
    is_official: bool | None = None
    default_example: Prediction | None = None
    latest_version: Version | None = None
    created_at: dt.datetime | None = None
    weights_url: str | None = None
    extra: dict[str, Any] = _extra()


@attrs.frozen
class FileObject:
    """An uploaded file. ``urls["get"]`` is what to pass as a prediction input.

    Files expire (``expires_at``), so upload close to when they are used.
    """

    id: str
    name: str | None = None
    content_type: str | None = None
    size: int = 0
    etag: str | None = None
    checksums: dict[str, str] = attrs.field(factory=dict)
    metadata: dict[str, Any] = attrs.field(factory=dict)
    created_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    urls: dict[str, str] = attrs.field(factory=dict)
    extra: dict[str, Any] = _extra()


@attrs.frozen
class Account:
    """The account the token belongs to: ``type`` is ``"user"`` or ``"organization"``.

    ``username`` is what goes before the slash of the account's own models and deployments.
    """

    type: str
    username: str
    name: str | None = None
    github_url: str | None = None
    avatar_url: str | None = None
    extra: dict[str, Any] = _extra()


@attrs.frozen
class Hardware:
    """A hardware SKU models and deployments can run on, e.g. ``gpu-t4``.

    ``sku`` is what deployments take as ``hardware=``; ``name`` is only for people.
    """

    sku: str
    name: str | None = None
    extra: dict[str, Any] = _extra()


@attrs.frozen
class Collection:
    """A curated collection of models. ``models`` is filled only when fetched one by one.

    ``collections.list()`` leaves ``models`` empty: an empty list there says nothing about the
    collection.
    """

    slug: str
    name: str | None = None
    description: str | None = None
    full_description: str | None = None
    models: list[Model] = attrs.field(factory=list)
    extra: dict[str, Any] = _extra()


@attrs.frozen
class DeploymentConfiguration:
    """How a deployment release runs: its hardware SKU (e.g. ``gpu-t4``) and how far it scales.

    ``min_instances`` of 0 means it scales to zero when idle (the first request then waits for a
    cold boot).
    """

    hardware: str = ""
    min_instances: int = 0
    max_instances: int = 0
    extra: dict[str, Any] = _extra()


@attrs.frozen
class DeploymentRelease:
    """One release of a deployment: the model version and configuration it ran from ``created_at``.

    ``number`` counts up from 1 with each change (``client.deployments.update`` makes a new
    release). ``created_by`` is the account that made it, or None where the API did not say.
    """

    number: int = 0
    model: str = ""
    version: str = ""
    created_at: dt.datetime | None = None
    created_by: Account | None = None
    configuration: DeploymentConfiguration = attrs.field(factory=DeploymentConfiguration)
    extra: dict[str, Any] = _extra()


@attrs.frozen
class Deployment:
    """A deployment: a fixed model version on chosen hardware.

    ``current_release`` is the release it serves now (model, version, hardware, scaling), or None
    for a deployment the API sent without one.
    """

    owner: str
    name: str
    current_release: DeploymentRelease | None = None
    extra: dict[str, Any] = _extra()


@attrs.frozen
class StreamEvent:
    """One server-sent event of a prediction's stream.

    ``event`` is ``"output"``, ``"logs"``, ``"error"`` or ``"done"`` (others are passed through);
    ``data`` is the raw text: a token for text models, a URL for file models, JSON for done/error.
    """

    event: str
    data: str
    id: str | None = None


@attrs.frozen
class Training(Prediction):
    """A training: shaped like a prediction, reached at ``/trainings/{id}``.

    Once it succeeds, ``output`` is ``{"version": ..., "weights": ...}``: the new version lives on
    the ``destination`` model you named when creating it. ``urls.get`` on a fresh training may point
    at ``/predictions/{id}``; the client polls ``/trainings/{id}`` regardless.
    """


@attrs.frozen
class ModelHit:
    """One model found by ``client.models.search_all``: the model plus the search's ``metadata``.

    ``metadata`` holds ``generated_description``, ``tags`` and ``score`` (the API calls the search
    endpoint beta: read it through the properties, which tolerate missing keys).
    """

    model: Model
    metadata: dict[str, Any] = attrs.field(factory=dict)
    extra: dict[str, Any] = _extra()

    @property
    def score(self) -> float | None:
        """How well the model matches the query (higher is better), if the API said.

        Only comparable within one search's results; None when the API left it out.
        """
        value = self.metadata.get("score")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def tags(self) -> list[str]:
        """The model's tags, e.g. ``["text-to-image"]``.

        Empty when the API sent none (or sent them in another shape): no tags is not an error.
        """
        tags = self.metadata.get("tags")
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []

    @property
    def generated_description(self) -> str | None:
        """A longer, AI-written description of the model.

        None when the API sent none; the model's own ``description`` is on ``model``.
        """
        text = self.metadata.get("generated_description")
        return text if isinstance(text, str) else None


@attrs.frozen
class CollectionHit:
    """A collection found by ``client.models.search_all``. ``models`` are ``"owner/name"`` strings,
    not Model objects (unlike :class:`Collection` from ``client.collections.get``)."""

    slug: str
    name: str | None = None
    description: str | None = None
    models: list[str] = attrs.field(factory=list)
    extra: dict[str, Any] = _extra()


@attrs.frozen
class SearchResults:
    """What ``GET /search`` found: models (best first), collections and documentation pages.

    ``pages`` are raw ``{"name", "href"}`` objects; ``href`` is a path on replicate.com.
    """

    query: str = ""
    models: list[ModelHit] = attrs.field(factory=list)
    collections: list[CollectionHit] = attrs.field(factory=list)
    pages: list[dict[str, Any]] = attrs.field(factory=list)
    extra: dict[str, Any] = _extra()


# Resolve the string annotations now, while these classes still belong to this module: the package
# renames ``__module__`` to ``areplicate`` on export, after which ``typing.get_type_hints`` (used by
# cattrs) would look names such as ``Any`` up in the wrong namespace.
for _name in __all__:
    if attrs.has(_cls := globals()[_name]):
        attrs.resolve_types(_cls)
        # Every model prints short: a prediction's input may hold a data URI of megabytes.
        _cls.__repr__ = _short_repr  # type: ignore[method-assign]
del _name, _cls


# -- the errors that carry a prediction (beside it, so neither module imports the other) --------


class PredictionFailedError(ReplicateError):
    """The prediction ended without succeeding. ``prediction`` holds its final state.

    A failed prediction is the model's failure, not the API's: it is not retried.
    """

    def __init__(self, prediction: Prediction, message: str | None = None) -> None:
        """``message`` defaults to the prediction's own ``error``; pass one to say more (e.g. streaming)."""
        self.prediction = prediction
        if message is None:
            error = prediction.error or "no error message"
            message = f"prediction {prediction.id} failed: {error}"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle with the prediction and the message, so a worker's error arrives whole."""
        return (type(self), (self.prediction, self.args[0]), state_of(self))


class PredictionCanceledError(PredictionFailedError):
    """The prediction was canceled (by someone, or by its deadline) or aborted before it started.

    A subclass of PredictionFailedError: ``except PredictionFailedError`` catches both, so test
    for this one first when the two need different handling.
    """

    def __init__(self, prediction: Prediction, message: str | None = None) -> None:
        """The default message names the status it ended with (``canceled`` or ``aborted``)."""
        if message is None:
            message = (
                f"prediction {prediction.id} ended {prediction.status} before producing output"
            )
        super().__init__(prediction, message)


class WaitTimeoutError(ReplicateError, TimeoutError):
    """The ``timeout=`` of ``run``, ``wait`` or ``create_and_wait`` ran out before the prediction
    ended. ``prediction`` is the last state seen; ``timeout`` the seconds the caller gave. When the
    time ran out during the create itself, ``prediction.id`` is empty (there was none to read).

    Unless ``cancel_on_exit=False`` was given, the remote prediction has been asked to cancel.
    """

    def __init__(self, prediction: Prediction, timeout: float) -> None:
        """``timeout`` is the caller's deadline in seconds (the whole call's, not one request's)."""
        self.prediction = prediction
        self.timeout = timeout
        if prediction.id:
            message = f"prediction {prediction.id} still {prediction.status} after {timeout:g}s"
        else:  # the time ran out before the create answered: there is no id to name yet
            message = (
                f"no prediction after {timeout:g}s: the create had not answered yet (if it reached "
                "the API, the prediction it started is looked up and cancelled in the background)"
            )
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by the last prediction seen and the timeout."""
        return (type(self), (self.prediction, self.timeout), state_of(self))
