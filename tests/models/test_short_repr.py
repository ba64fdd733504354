"""Reprs stay short: long text shows its start and its length, big containers their first items.

A prediction whose input holds a data URI printed 534 KB; a log line or a traceback showing it is
unreadable. Every exported model is covered, nested values too, and the cost stays linear.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import pytest

import areplicate
from areplicate import Deployment, DeploymentRelease, Model, Page, Prediction, StreamEvent
from areplicate import _models as _models_module
from areplicate._convert import structure

DATA_URI = "data:image/png;base64," + "A" * 534_000


def _models() -> list[type[Any]]:
    """The API's objects (not the client's own option values such as RateLimits)."""
    return [
        obj
        for name in _models_module.__all__
        if isinstance(obj := getattr(areplicate, name), type) and attrs.has(obj)
    ]


def test_a_data_uri_in_the_input_is_cut_and_its_length_shown() -> None:
    p = structure({"id": "p1", "input": {"image": DATA_URI, "prompt": "a cat"}}, Prediction)
    text = repr(p)
    assert len(text) < 2_000
    assert f"<{len(DATA_URI)} chars>" in text
    assert "data:image/png;base64,AAAA" in text
    assert "'prompt': 'a cat'" in text
    assert text.startswith("Prediction(id='p1', ")


def test_short_values_print_as_before() -> None:
    p = Prediction(id="p1", model="acme/x", input={"n": [1, 2]}, metrics={"t": 1.5})
    assert repr(p) == (
        "Prediction(id='p1', model='acme/x', version='', input={'n': [1, 2]}, output=None,"
        " logs=None, error=None, status=<Status.STARTING: 'starting'>, created_at=None,"
        " started_at=None, completed_at=None, urls=PredictionURLs(get=None, cancel=None,"
        " web=None, stream=None), metrics={'t': 1.5}, data_removed=None, source=None,"
        " deadline=None, deployment=None, webhook=None, webhook_events_filter=None)"
    )


def test_nested_containers_show_their_first_items_and_how_many_more() -> None:
    p = Prediction(id="p", output=[[f"https://x/{i}.png" for i in range(1000)]], logs="l" * 5000)
    text = repr(p)
    assert "...<980 more>" in text
    assert "'https://x/19.png'" in text
    assert "'https://x/20.png'" not in text
    assert "<5000 chars>" in text
    assert len(text) < 6_000


def test_nested_models_print_short_too() -> None:
    example = {"id": "ex", "input": {"image": DATA_URI}}
    model = structure({"owner": "o", "name": "n", "default_example": example}, Model)
    page = Page(results=[model] * 500)
    assert len(repr(model)) < 2_000
    assert len(repr(page)) < 10_000
    assert "more>]" in repr(page)


@pytest.mark.parametrize("cls", _models(), ids=lambda c: c.__name__)
def test_every_model_cuts_long_text(cls: type[Any]) -> None:
    fields = attrs.fields(cls)
    shown = [a for a in fields if a.repr]
    text_field = next(
        (a for a in shown if a.type in (str, str | None, Any) or "str" in str(a.type)), None
    )
    if text_field is None:
        pytest.skip(f"{cls.__name__} has no text field")
    kwargs = {a.name: "x" for a in fields if a.default is attrs.NOTHING}
    kwargs[text_field.name] = "y" * 10_000
    text = repr(cls(**kwargs))
    assert "<10000 chars>" in text, text[:300]
    assert len(text) < 1_000, text[:300]


def test_stream_events_and_releases_print_short() -> None:
    event = StreamEvent(event="output", data=DATA_URI)
    assert len(repr(event)) < 500
    release = DeploymentRelease(model="a/b", version="v" * 300)
    assert len(repr(Deployment(owner="o", name="n", current_release=release))) < 1_000


def test_the_repr_is_linear() -> None:
    # 10 MB of nested values: the repr walks only what it shows.
    deep: Any = {"k": [["x" * 1_000] * 1_000] * 10, "s": "y" * 10_000_000}
    started = time.perf_counter()
    text = repr(Prediction(id="p", input=deep, output=deep))
    assert time.perf_counter() - started < 2.0
    assert len(text) < 10_000
