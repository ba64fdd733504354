"""Every response body in the recorded real API traffic structures into our models.

The cassettes (tests/fixtures/cassettes, copied from the official client's test suite) are matched to
a model by method and path; error responses go through ``error_for``. An interaction on a route
this table does not know fails the test rather than being skipped.
"""

from __future__ import annotations

import gzip
import json
import pathlib
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from areplicate import (
    Account,
    APIError,
    AuthenticationError,
    Collection,
    Deployment,
    FileObject,
    Hardware,
    Model,
    NotFoundError,
    Page,
    Prediction,
    Status,
    Version,
)
from areplicate._convert import structure
from areplicate._core.problems import error_for
from areplicate._models import Training

from .faithful import assert_faithful

CASSETTES = pathlib.Path(__file__).parent.parent / "fixtures" / "cassettes"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

OWNER, N, ID, V = r"[^/]+", r"[^/]+", r"[^/]+", r"[0-9a-f]{64}"
ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/collections", Page[Collection]),
    ("GET", f"/collections/{ID}", Collection),
    ("POST", "/files", FileObject),
    ("GET", "/files", Page[FileObject]),
    ("GET", f"/files/{ID}", FileObject),
    ("DELETE", f"/files/{ID}", None),
    ("GET", "/hardware", list[Hardware]),
    ("GET", "/account", Account),
    ("POST", "/models", Model),
    ("GET", "/models", Page[Model]),
    ("QUERY", "/models", Page[Model]),
    ("GET", f"/models/{OWNER}/{N}", Model),
    ("GET", f"/models/{OWNER}/{N}/versions", Page[Version]),
    ("GET", f"/models/{OWNER}/{N}/versions/{V}", Version),
    ("POST", f"/models/{OWNER}/{N}/predictions", Prediction),
    ("POST", f"/deployments/{OWNER}/{N}/predictions", Prediction),
    ("GET", "/deployments", Page[Deployment]),
    ("GET", f"/deployments/{OWNER}/{N}", Deployment),
    ("POST", "/predictions", Prediction),
    ("GET", "/predictions", Page[Prediction]),
    ("GET", f"/predictions/{ID}", Prediction),
    ("POST", f"/predictions/{ID}/cancel", Prediction),
    ("POST", f"/models/{OWNER}/{N}/versions/{V}/trainings", Training),
    ("GET", "/trainings", Page[Training]),
    ("GET", f"/trainings/{ID}", Training),
    ("POST", f"/trainings/{ID}/cancel", Training),
]
ERRORS = {401: AuthenticationError, 404: NotFoundError}


def _route(method: str, path: str) -> Any:
    for route_method, pattern, target in ROUTES:
        if method == route_method and re.fullmatch(f"/v1{pattern}", path):
            return target
    raise LookupError(f"no model for {method} {path}: add the route to ROUTES")


def _body(response: dict[str, Any]) -> bytes:
    raw = response.get("content", response.get("body"))
    if isinstance(raw, dict):
        raw = raw.get("string")
    if raw is None:
        return b""
    data = raw.encode() if isinstance(raw, str) else raw
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _status(response: dict[str, Any]) -> int:
    status = response.get("status")
    return int(status["code"] if isinstance(status, dict) else response["status_code"])


def _interactions() -> list[Any]:
    cases = []
    for path in sorted(CASSETTES.glob("*.yaml")):
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
        for i, interaction in enumerate(document["interactions"]):
            request, response = interaction["request"], interaction["response"]
            url = urlsplit(request["uri"])
            case = (path.name, request["method"], url.path, _status(response), _body(response))
            cases.append(pytest.param(*case, id=f"{path.stem}-{i}-{request['method']}-{url.path}"))
    return cases


INTERACTIONS = _interactions()


def test_all_cassettes_were_loaded() -> None:
    files = {case.values[0] for case in INTERACTIONS}
    assert len(files) == len(list(CASSETTES.glob("*.yaml"))) == 22
    assert len(INTERACTIONS) >= 190


@pytest.mark.parametrize(("cassette", "method", "path", "status", "body"), INTERACTIONS)
def test_every_recorded_response_structures(
    cassette: str, method: str, path: str, status: int, body: bytes
) -> None:
    target = _route(method, path)
    if status >= 400:
        error = error_for(status, {"Content-Type": "application/problem+json"}, body)
        assert type(error) is ERRORS[status]
        assert error.detail, "the API's detail must reach the message"
        assert error.detail in str(error)
        return
    assert error_for(status, {}, body) is None
    if target is None:  # DELETE: 204 with an empty body
        assert status == 204
        assert not body.strip()
        return
    raw = json.loads(body)
    value = structure(raw, target)
    if isinstance(raw, dict) and "results" not in raw:
        assert_faithful(value, raw)
    elif isinstance(raw, dict):
        assert isinstance(value, Page)
        assert len(value.results) == len(raw["results"])
        for item, raw_item in zip(value.results, raw["results"], strict=True):
            assert_faithful(item, raw_item)
        assert (value.next, value.previous) == (raw.get("next"), raw.get("previous"))
    else:
        assert isinstance(value, list)
        for item, raw_item in zip(value, raw, strict=True):
            assert_faithful(item, raw_item)


def _predictions() -> list[tuple[dict[str, Any], Prediction]]:
    found = []
    for case in INTERACTIONS:
        _, method, path, status, body = case.values
        if status < 300 and _route(method, path) in (Prediction, Training):
            raw = json.loads(body)
            found.append((raw, structure(raw, Prediction)))
    return found


class TestWhatTheRecordingsShow:
    """What real traffic looks like, and what a user of our models sees for it."""

    predictions = _predictions()

    def test_every_status_is_a_known_one(self) -> None:
        statuses = {p.status for _, p in self.predictions}
        assert all(isinstance(s, Status) for s in statuses)
        assert {"starting", "processing", "succeeded", "canceled"} <= statuses

    def test_old_responses_omit_null_keys_and_say_nothing(self) -> None:
        sparse = [(raw, p) for raw, p in self.predictions if "output" not in raw]
        assert sparse, "the 2023 recordings omit output on starting predictions"
        for _, p in sparse:
            assert p.output is None
            assert not p.is_terminal
        unsaid = [p for raw, p in self.predictions if "data_removed" not in raw]
        assert unsaid, "the 2023 recordings omit data_removed"
        assert all(p.data_removed is None for p in unsaid), "not said is not False"
        assert all(p.metrics is None for raw, p in self.predictions if "metrics" not in raw)
        assert any(p.data_removed is False for raw, p in self.predictions if "data_removed" in raw)

    def test_what_the_api_always_sends_keeps_a_plain_type(self) -> None:
        for raw, p in self.predictions:
            assert isinstance(p.version, str)
            assert p.version == raw["version"]
            assert isinstance(p.input, dict)
            assert p.urls.get is not None

    def test_versions_seen(self) -> None:
        versions = {p.version for _, p in self.predictions}
        assert any(re.fullmatch(r"[0-9a-f]{64}", v) for v in versions)
        assert any(v.startswith("dp-") for v in versions)

    def test_legacy_and_unknown_keys_go_to_extra(self) -> None:
        with_legacy = [p for raw, p in self.predictions if "webhook_completed" in raw]
        assert with_legacy
        for p in with_legacy:
            assert "webhook_completed" in p.extra
            assert "webhook_completed" not in repr(p)

    def test_terminal_predictions_have_timestamps_in_order(self) -> None:
        done = [p for _, p in self.predictions if p.status == "succeeded"]
        assert done
        for p in done:
            assert p.created_at is not None
            assert p.completed_at is not None
            assert p.created_at <= p.completed_at

    def test_blocking_creates_carry_data_uris(self) -> None:
        outputs = [p.output for _, p in self.predictions if p.output is not None]
        flat = [o for out in outputs for o in (out if isinstance(out, list) else [out])]
        assert any(isinstance(o, str) and o.startswith("data:") for o in flat)


def test_an_error_body_is_not_a_model() -> None:
    body = json.loads(
        '{"title":"Unauthenticated","detail":"You did not pass a valid authentication token",'
        '"status":401}'
    )
    with pytest.raises(APIError, match="not a valid Prediction"):
        structure(body, Prediction)
