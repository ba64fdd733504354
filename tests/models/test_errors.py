"""The public exception tree, its drawing in ``_errors``' docstring, and pickling."""

from __future__ import annotations

import pickle
import re

import pytest

import areplicate
from areplicate import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    InputValidationError,
    InvalidReferenceError,
    InvalidRequestError,
    NotFoundError,
    PaymentRequiredError,
    Prediction,
    PredictionCanceledError,
    PredictionFailedError,
    RateLimitError,
    ReplicateError,
    ServerError,
    Status,
    UnexpectedResponseError,
    WaitTimeoutError,
    WebhookVerificationError,
    _errors,
)

PARENT = {
    APIError: ReplicateError,
    AuthenticationError: APIError,
    PaymentRequiredError: APIError,
    NotFoundError: APIError,
    InvalidRequestError: APIError,
    RateLimitError: APIError,
    ServerError: APIError,
    UnexpectedResponseError: APIError,
    APIConnectionError: ReplicateError,
    APITimeoutError: APIConnectionError,
    PredictionFailedError: ReplicateError,
    PredictionCanceledError: PredictionFailedError,
    WaitTimeoutError: ReplicateError,
    InputValidationError: ReplicateError,
    InvalidReferenceError: ReplicateError,
    WebhookVerificationError: ReplicateError,
}
PREDICTION = Prediction(id="gm3qorzdhgbfurvjtvhg6dckhu", status=Status.FAILED, error="CUDA OOM")


@pytest.mark.parametrize(("cls", "parent"), PARENT.items(), ids=lambda c: c.__name__)
def test_tree(cls: type[Exception], parent: type[Exception]) -> None:
    assert cls.__bases__[0] is parent
    assert issubclass(cls, ReplicateError)
    assert cls.__doc__


def test_every_exported_error_is_in_the_tree() -> None:
    exported = {
        obj
        for name in areplicate.__all__
        if isinstance(obj := getattr(areplicate, name), type) and issubclass(obj, BaseException)
    }
    assert exported == {*PARENT, ReplicateError}


def test_the_docstring_draws_the_real_tree() -> None:
    drawn: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (_errors.__doc__ or "").splitlines():
        match = re.match(r"^(\s*(?:[│├└─ ]*))([A-Z][A-Za-z]+Error)\b", line)
        if not match:
            continue
        depth, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            drawn[name] = stack[-1][1]
        stack.append((depth, name))
    assert drawn == {cls.__name__: parent.__name__ for cls, parent in PARENT.items()}


def test_stdlib_bases_where_they_help_callers() -> None:
    assert issubclass(WaitTimeoutError, TimeoutError)
    assert issubclass(InputValidationError, ValueError)
    assert issubclass(InvalidReferenceError, ValueError)


ERRORS = [
    APIError(400, "Bad Request", "no", request_id="req-1", body={"detail": "no"}),
    AuthenticationError(401, "Unauthenticated", "You did not pass a valid authentication token"),
    PaymentRequiredError(402, None, "out of credit"),
    NotFoundError(404, None, "The requested resource could not be found."),
    InvalidRequestError(
        422,
        "Input validation failed",
        "- input: prompt is required",
        body={"invalid_fields": [{"type": "required", "field": "input"}]},
    ),
    RateLimitError(429, None, "Request was throttled.", retry_after=5.0),
    ServerError(502, None, "502 Bad Gateway", request_id="8c1f"),
    UnexpectedResponseError(200, "Unexpected response", "not a Prediction", body=[1]),
    APIConnectionError("GET https://api.replicate.com/v1/x: connection broke", sent=True),
    APITimeoutError("POST https://api.replicate.com/v1/predictions: timed out", sent=False),
    PredictionFailedError(PREDICTION),
    PredictionCanceledError(Prediction(id="p2", status=Status.ABORTED)),
    WaitTimeoutError(Prediction(id="p3", status=Status.PROCESSING), 2.5),
    InputValidationError("owner/name", ["prompt: required", "steps: must be <= 50"]),
    InvalidReferenceError("invalid model reference 'x'"),
    WebhookVerificationError("webhook signature does not match"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_pickle_round_trip(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.args == error.args
    assert vars(copy) == vars(error)


def _maybe_created(error: ReplicateError) -> ReplicateError:
    error.mark_maybe_created()
    return error


@pytest.mark.parametrize(
    "error",
    [
        _maybe_created(ServerError(500, "Internal Server Error", None)),
        _maybe_created(APIConnectionError("POST /v1/predictions: connection broke", sent=True)),
        _maybe_created(UnexpectedResponseError(201, "Unexpected response", "not JSON")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_maybe_created_is_kept_and_said(error: ReplicateError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert copy.maybe_created
    assert error.maybe_created
    assert str(copy) == str(error)
    assert "predictions.find" in str(error)


def test_maybe_created_defaults_to_false() -> None:
    assert not ServerError(500, None, None).maybe_created
    assert "find" not in str(ServerError(500, None, None))


class TestMessages:
    def test_api_error(self) -> None:
        error = ServerError(503, "Service Unavailable", " try later \n", request_id="abc")
        assert str(error) == "HTTP 503: Service Unavailable: try later (request id abc)"
        assert (error.status, error.title, error.detail, error.request_id) == (
            503,
            "Service Unavailable",
            " try later \n",
            "abc",
        )

    def test_prediction_failed_names_the_prediction_and_the_model_error(self) -> None:
        error = PredictionFailedError(PREDICTION)
        assert str(error) == "prediction gm3qorzdhgbfurvjtvhg6dckhu failed: CUDA OOM"
        assert error.prediction is PREDICTION
        assert "no error message" in str(PredictionFailedError(Prediction(id="p")))

    def test_canceled_shows_the_plain_status(self) -> None:
        error = PredictionCanceledError(Prediction(id="p2", status=Status.ABORTED))
        assert str(error) == "prediction p2 ended aborted before producing output"

    def test_wait_timeout(self) -> None:
        error = WaitTimeoutError(Prediction(id="p3", status=Status.PROCESSING), 2.5)
        assert str(error) == "prediction p3 still processing after 2.5s"
        assert error.timeout == 2.5
        with pytest.raises(TimeoutError):
            raise error

    def test_input_validation_lists_every_problem(self) -> None:
        error = InputValidationError("owner/name", ["a", "b"])
        assert str(error) == ("input for owner/name is not valid (2 problem(s)):\n  - a\n  - b")
        assert error.problems == ["a", "b"]

    def test_invalid_fields_only_for_422(self) -> None:
        error = ERRORS[4]
        assert isinstance(error, InvalidRequestError)
        assert error.invalid_fields == [{"type": "required", "field": "input"}]
