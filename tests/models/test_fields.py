"""Fields a user reads: what real traffic sends gets a field, and "the API did not say" stays None.

The rule (also in the models' docstring): a field the API always sends has a plain type; a field it
may leave out or send as null is ``X | None``, and None means "not said", never False or empty.
"""

from __future__ import annotations

import json
from typing import Any

from areplicate import Model, Prediction
from areplicate._convert import structure

from .test_cassettes import INTERACTIONS, _route


def _recorded_models() -> list[dict[str, Any]]:
    found = []
    for case in INTERACTIONS:
        _, method, path, status, body = case.values
        if status < 300 and _route(method, path) is Model:
            found.append(json.loads(body))
    return found


class TestModel:
    def test_weights_url_is_a_field(self) -> None:
        with_weights = [raw for raw in _recorded_models() if "weights_url" in raw]
        assert with_weights, "the recordings carry weights_url"
        for raw in with_weights:
            model = structure(raw, Model)
            assert model.weights_url == raw["weights_url"]
            assert "weights_url" not in model.extra
        body = {"owner": "o", "name": "n", "weights_url": "https://example.com/w.tar"}
        assert structure(body, Model).weights_url == "https://example.com/w.tar"
        assert structure({"owner": "o", "name": "n"}, Model).weights_url is None

    def test_is_official_is_none_where_the_api_did_not_say(self) -> None:
        recorded = _recorded_models()
        assert recorded
        assert all("is_official" not in raw for raw in recorded)
        assert all(structure(raw, Model).is_official is None for raw in recorded)
        said = {"owner": "o", "name": "n", "is_official": False}
        assert structure(said, Model).is_official is False

    def test_run_count_is_always_sent_and_stays_an_int(self) -> None:
        for raw in _recorded_models():
            assert structure(raw, Model).run_count == raw["run_count"]


class TestPrediction:
    def test_data_removed_missing_is_not_false(self) -> None:
        assert structure({"id": "p"}, Prediction).data_removed is None
        assert structure({"id": "p", "data_removed": None}, Prediction).data_removed is None
        assert structure({"id": "p", "data_removed": False}, Prediction).data_removed is False
        assert structure({"id": "p", "data_removed": True}, Prediction).data_removed is True

    def test_null_metrics_is_not_empty_metrics(self) -> None:
        assert structure({"id": "p", "metrics": None}, Prediction).metrics is None
        assert structure({"id": "p"}, Prediction).metrics is None
        assert structure({"id": "p", "metrics": {}}, Prediction).metrics == {}
        timed = structure({"id": "p", "metrics": {"predict_time": 1.5}}, Prediction)
        assert timed.metrics == {"predict_time": 1.5}

    def test_null_or_missing_model_is_none_not_an_empty_name(self) -> None:
        assert structure({"id": "p", "model": None}, Prediction).model is None
        assert structure({"id": "p"}, Prediction).model is None
        assert structure({"id": "p", "model": "acme/x"}, Prediction).model == "acme/x"

    def test_a_recorded_prediction_without_model_says_none(self) -> None:
        found = []
        for case in INTERACTIONS:
            _, method, path, status, body = case.values
            if status < 300 and _route(method, path) is Prediction and body[:1] == b"{":
                raw = json.loads(body)
                if "model" not in raw and "status" in raw:
                    found.append(structure(raw, Prediction))
        assert found, "a 2023 recording of GET /predictions/{id} has no model key"
        assert all(p.model is None for p in found)

    def test_version_is_always_sent_and_stays_a_string(self) -> None:
        assert structure({"id": "p", "version": "hidden"}, Prediction).version == "hidden"
        assert isinstance(structure({"id": "p"}, Prediction).version, str)
