"""The status machine: six known statuses, four terminal, unknown strings tolerated and not terminal."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from areplicate import Status
from areplicate._core.status import TERMINAL, is_terminal, parse_status

KNOWN = {"starting", "processing", "succeeded", "failed", "canceled", "aborted"}


def test_the_six_statuses_of_the_api() -> None:
    assert {s.value for s in Status} == KNOWN


@pytest.mark.parametrize(
    ("value", "terminal"),
    [
        ("starting", False),
        ("processing", False),
        ("succeeded", True),
        ("failed", True),
        ("canceled", True),
        # the deadline passed before the model started: the official clients poll it forever
        ("aborted", True),
    ],
)
def test_terminal_set(value: str, terminal: bool) -> None:
    status = parse_status(value)
    assert isinstance(status, Status)
    assert status.is_terminal is terminal
    assert is_terminal(status) is terminal
    assert is_terminal(value) is terminal
    assert (status in TERMINAL) is terminal


def test_statuses_compare_and_print_as_plain_strings() -> None:
    assert Status.SUCCEEDED == "succeeded"
    assert str(Status.ABORTED) == "aborted"
    assert f"{Status.CANCELED}" == "canceled"
    assert "%s" % Status.FAILED == "failed"  # noqa: UP031


@given(st.text())
def test_unknown_status_is_kept_and_not_terminal(value: str) -> None:
    status = parse_status(value)
    if value in KNOWN:
        assert status is Status(value)
    else:
        assert status == value
        assert type(status) is str
        assert is_terminal(status) is False
