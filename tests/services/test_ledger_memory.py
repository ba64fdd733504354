"""The ledger remembers the predictions its clients made for 15 minutes, and no longer."""

from __future__ import annotations

import pytest

from areplicate import _ledger
from areplicate._ledger import Ledger


class _Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(_ledger.time, "monotonic", clock)
    return clock


def test_an_id_is_known_for_fifteen_minutes_then_forgotten(clock: _Clock) -> None:
    ledger = Ledger()
    ledger.remember("p1")
    clock.now += 899.0
    ledger.remember("p2")
    assert ledger.known("p1")
    assert ledger.known("p2")
    clock.now += 2.0  # p1 is 901 s old, p2 102 s: the next note drops p1 only
    ledger.remember("p3")
    assert not ledger.known("p1")
    assert ledger.known("p2")
    assert ledger.known("p3")
    assert repr(ledger) == "<Ledger 0 in flight, 2 known>"


def test_a_long_run_keeps_only_the_last_fifteen_minutes_of_ids(clock: _Clock) -> None:
    """A worker creating for hours holds the ids of the last 15 minutes, not all of them."""
    ledger = Ledger()
    for i in range(3000):  # one create a second for 50 minutes
        ledger.remember(f"p{i}")
        clock.now += 1.0
    # The last note came at 2999 s: p2098 was then 901 s old, p2099 exactly 900.
    assert not ledger.known("p2098")
    assert ledger.known("p2099")
    assert ledger.known("p2999")
    assert repr(ledger) == "<Ledger 0 in flight, 901 known>"


def test_the_first_id_after_a_quiet_spell_longer_than_the_memory_is_kept(clock: _Clock) -> None:
    ledger = Ledger()
    ledger.remember("old")
    clock.now += 3600.0
    ledger.remember("new")
    assert ledger.known("new")
    assert not ledger.known("old")
    assert repr(ledger) == "<Ledger 0 in flight, 1 known>"
