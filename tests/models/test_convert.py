"""The converter: lenient where the API grows, a clear UnexpectedResponseError where it cannot read."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from areplicate import (
    Account,
    Collection,
    Deployment,
    FileObject,
    Hardware,
    Model,
    Page,
    Prediction,
    PredictionURLs,
    Status,
    UnexpectedResponseError,
    Version,
)
from areplicate._convert import _make_converter, _quick_fn, converter, structure
from areplicate._models import Training

UTC = dt.timezone.utc
CLASSES: list[Any] = [
    Prediction,
    Training,
    PredictionURLs,
    Model,
    Version,
    FileObject,
    Account,
    Hardware,
    Collection,
    Deployment,
    Page[Prediction],
    Page[Model],
    list[Hardware],
]


class TestLenient:
    def test_missing_keys_take_defaults(self) -> None:
        p = structure({"id": "p1"}, Prediction)
        assert p == Prediction(id="p1")
        assert (p.model, p.version, p.input, p.output, p.logs, p.error) == (
            None,
            "",
            {},
            None,
            None,
            None,
        )
        assert (p.created_at, p.started_at, p.completed_at, p.deadline) == (None,) * 4
        assert p.urls == PredictionURLs()
        assert (p.metrics, p.data_removed, p.source, p.deployment) == (None, None, None, None)
        assert p.extra == {}

    def test_unknown_keys_are_kept_aside(self) -> None:
        p = structure(
            {
                "id": "p1",
                "webhook_completed": None,
                "brand_new": {"nested": [1, 2]},
                "urls": {"get": "https://x/v1/predictions/p1", "dashboard": "https://d"},
                "extra": "a key literally named extra",
            },
            Prediction,
        )
        assert p.extra == {
            "webhook_completed": None,
            "brand_new": {"nested": [1, 2]},
            "extra": "a key literally named extra",
        }
        assert p.urls.get == "https://x/v1/predictions/p1"
        assert p.urls.extra == {"dashboard": "https://d"}
        assert "brand_new" not in repr(p)

    @pytest.mark.parametrize("status", [s.value for s in Status])
    def test_known_statuses(self, status: str) -> None:
        p = structure({"id": "p1", "status": status}, Prediction)
        assert p.status is Status(status)
        assert p.is_terminal is (status in {"succeeded", "failed", "canceled", "aborted"})

    @given(st.text().filter(lambda s: s not in {x.value for x in Status}))
    def test_unknown_status_is_kept_as_a_string_and_not_terminal(self, status: str) -> None:
        p = structure({"id": "p1", "status": status}, Prediction)
        assert p.status == status
        assert type(p.status) is str
        assert p.is_terminal is False

    def test_null_for_containers_and_defaults(self) -> None:
        nulls = dict.fromkeys(("input", "metrics", "urls", "data_removed", "status"))
        p = structure({"id": "p1", **nulls, "output": None, "logs": None}, Prediction)
        assert (p.input, p.urls) == ({}, PredictionURLs())
        assert (p.metrics, p.data_removed) == (None, None), "null is not said, not {} / False"
        assert p.status is Status.STARTING
        page = structure({"results": None, "next": None}, Page[Prediction])
        assert page.results == []
        collection = structure({"slug": "s", "models": None}, Collection)
        assert collection.models == []
        model = structure({"owner": "o", "name": "n", "latest_version": None}, Model)
        assert model.latest_version is None

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2023-08-16T18:57:08.36078514Z", dt.datetime(2023, 8, 16, 18, 57, 8, 360785, UTC)),
            ("2024-10-04T18:14:55.674Z", dt.datetime(2024, 10, 4, 18, 14, 55, 674000, UTC)),
            ("2024-10-04T18:14:55Z", dt.datetime(2024, 10, 4, 18, 14, 55, tzinfo=UTC)),
            ("2024-10-04T20:14:55+02:00", dt.datetime(2024, 10, 4, 18, 14, 55, tzinfo=UTC)),
        ],
    )
    def test_timestamps(self, text: str, expected: dt.datetime) -> None:
        assert structure({"id": "p", "created_at": text}, Prediction).created_at == expected

    def test_any_json_output_is_kept_as_is(self) -> None:
        output = [{"a": [1, 2.5, None, True]}, "data:text/plain;base64,aGk=", None]
        assert structure({"id": "p", "output": output}, Prediction).output == output

    def test_page_of_models_with_nested_prediction_and_version(self) -> None:
        page = structure(
            {
                "next": "https://api.replicate.com/v1/models?cursor=abc",
                "previous": None,
                "results": [
                    {
                        "owner": "o",
                        "name": "n",
                        "default_example": {"id": "p", "status": "succeeded"},
                        "latest_version": {"id": "v", "openapi_schema": {"openapi": "3.0.2"}},
                    }
                ],
            },
            Page[Model],
        )
        (model,) = page.results
        assert model.default_example is not None
        assert model.default_example.status is Status.SUCCEEDED
        assert model.latest_version == Version(id="v", openapi_schema={"openapi": "3.0.2"})
        assert page.next == "https://api.replicate.com/v1/models?cursor=abc"

    def test_hardware_is_a_bare_list(self) -> None:
        assert structure([{"sku": "gpu-t4", "name": "Nvidia T4 GPU"}], list[Hardware]) == [
            Hardware(sku="gpu-t4", name="Nvidia T4 GPU")
        ]


class TestUnreadable:
    @pytest.mark.parametrize(
        ("body", "where"),
        [
            ({"status": "starting"}, "$.id"),  # required and missing
            ({"id": None}, "$.id"),  # required and null
            ({"id": "p", "input": "a string"}, "$.input"),
            ({"id": "p", "metrics": [1, 2]}, "$.metrics"),
            ({"id": "p", "created_at": 1700000000}, "$.created_at"),
            ({"id": "p", "created_at": "yesterday"}, "$.created_at"),
            ({"id": "p", "created_at": "2024-13-01T00:00:00Z"}, "$.created_at"),
            ({"id": "p", "urls": ["https://x"]}, "$.urls"),
            ({"id": "p", "status": 3}, "$.status"),
            ({"id": "p", "data_removed": "false"}, "$.data_removed"),
            ({"id": "p", "webhook_events_filter": "completed"}, "webhook_events_filter"),
        ],
    )
    def test_wrong_types_name_the_path(self, body: dict[str, Any], where: str) -> None:
        with pytest.raises(UnexpectedResponseError) as info:
            structure(body, Prediction, what="GET /predictions/p")
        error = info.value
        assert where in str(error)
        assert "GET /predictions/p is not a valid Prediction" in str(error)
        assert error.status == 200
        assert error.body == body

    @pytest.mark.parametrize("body", [None, "p", 3, [{"id": "p"}], True])
    def test_not_an_object(self, body: object) -> None:
        with pytest.raises(UnexpectedResponseError, match="expected a JSON object"):
            structure(body, Prediction)

    @pytest.mark.parametrize(
        ("body", "cls", "where"),
        [
            ({"results": "abc"}, Page[Prediction], "results"),
            ({"results": {"id": "p"}}, Page[Prediction], "results"),
            ({"results": [{"id": "p"}, {"id": 5, "input": 7}]}, Page[Prediction], "$.results[1]"),
            ({"sku": "gpu"}, list[Hardware], ""),
            ({"owner": "o", "name": "n", "run_count": "many"}, Model, "$.run_count"),
            ({"owner": "o", "name": "n", "default_example": "p"}, Model, "$.default_example"),
            ({"slug": "s", "models": [{"owner": "o"}]}, Collection, "$.models[0].name"),
            ({"id": "f", "checksums": ["md5"]}, FileObject, "$.checksums"),
            ({"type": "user"}, Account, "$.username"),
        ],
    )
    def test_nested(self, body: object, cls: Any, where: str) -> None:
        with pytest.raises(UnexpectedResponseError) as info:
            structure(body, cls, status=201)
        assert where in str(info.value)
        assert info.value.status == 201


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=6,
)


def _field_names(cls: Any) -> list[str]:
    if cls == list[Hardware]:
        return ["sku", "name"]
    return [a.name for a in attrs.fields(getattr(cls, "__origin__", cls))]


def _bodies(cls: Any) -> st.SearchStrategy[Any]:
    """Objects using the class's own keys (the interesting case), or any JSON at all."""
    names = _field_names(cls)
    body = st.dictionaries(st.sampled_from(names), JSON, max_size=len(names)) | JSON
    return body | st.lists(body, max_size=2) if cls == list[Hardware] else body


CASES = [(cls, _bodies(cls)) for cls in CLASSES]


@settings(max_examples=120)
@given(data=st.data())
def test_any_json_structures_or_raises_unexpected_response(data: st.DataObject) -> None:
    cls, bodies = data.draw(st.sampled_from(CASES), label="class")
    body = data.draw(bodies, label="body")
    outcome: Any
    try:
        outcome = structure(body, cls)
    except UnexpectedResponseError as error:
        outcome = error
    if isinstance(outcome, UnexpectedResponseError):
        assert outcome.body is body
        assert str(outcome).startswith("HTTP 200: Unexpected response: response is not a valid")
    else:
        assert isinstance(outcome, getattr(cls, "__origin__", cls))


# -- the quick builders: what they read, they read exactly as cattrs' general path does ----------

GENERAL = _make_converter(quick=False)
STAMP = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)).map(
    lambda moment: moment.isoformat(timespec="microseconds") + "Z"
)
# What the API puts in fields, and a little of what it should not.
PLAUSIBLE = (
    JSON
    | STAMP
    | st.sampled_from([s.value for s in Status])
    | st.lists(st.text(max_size=5), max_size=3)
    | st.dictionaries(st.sampled_from(["get", "cancel", "web", "stream", "new"]), JSON, max_size=4)
)


def _general(body: Any, cls: Any) -> Any:
    try:
        return GENERAL.structure(body, cls)
    except Exception as exc:  # any failure of the general path
        return type(exc)


@settings(max_examples=150)
@given(data=st.data())
def test_the_quick_path_agrees_with_the_general_one(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(CLASSES), label="class")
    names = [*_field_names(cls), "unknown", "extra"]
    body = data.draw(st.dictionaries(st.sampled_from(names), PLAUSIBLE, max_size=len(names)))
    if cls == list[Hardware]:
        body = [body]
    try:
        quick: Any = converter.structure(body, cls)
    except Exception as exc:  # any failure of the quick path
        quick = type(exc)
    general = _general(body, cls)
    assert quick == general
    try:
        assert structure(body, cls) == general  # the builders straight from structure() too
    except UnexpectedResponseError:
        assert isinstance(general, type)


def test_a_real_prediction_takes_the_quick_path() -> None:
    # The agreement above means nothing if the quick builder never succeeds on what the API sends.
    body = {
        "id": "q1",
        "model": "owner/name",
        "version": "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa",
        "input": {"prompt": "hi"},
        "output": ["a", "b"],
        "logs": "",
        "error": None,
        "status": "succeeded",
        "created_at": "2026-12-02T03:10:11.123456Z",
        "started_at": "2026-12-02T03:10:11.2Z",
        "completed_at": "2026-12-02T03:10:11.323456789Z",
        "urls": {"get": "https://api.replicate.com/v1/predictions/q1", "dashboard": "d"},
        "metrics": {"predict_time": 0.1},
        "data_removed": False,
        "source": "api",
        "webhook_completed": None,
    }
    built = _quick_fn(Prediction, converter)
    assert built is not None
    prediction = built(body)
    assert prediction == GENERAL.structure(body, Prediction)
    assert prediction.urls.extra == {"dashboard": "d"}
    assert prediction.extra == {"webhook_completed": None}
    assert prediction.completed_at == dt.datetime(2026, 12, 2, 3, 10, 11, 323456, UTC)
