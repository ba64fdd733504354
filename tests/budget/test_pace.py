"""The budget's pure arithmetic: the waiting token bucket and the pace that learns (AIMD)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import areplicate
from areplicate._budget import LocalPaces
from areplicate._core.pace import Pace, PaceParams, paused, reserve, succeeded, throttled

PARAMS = PaceParams(ceiling=10.0, burst=5.0)


def slots(pace: Pace, params: PaceParams, times: list[float]) -> tuple[Pace, list[float]]:
    out = []
    for now in times:
        pace, go = reserve(pace, params, now)
        out.append(go)
    return pace, out


def test_a_fresh_pace_starts_gently_with_a_small_burst() -> None:
    pace = Pace.fresh(PARAMS, 0.0)
    assert pace.rate == PARAMS.ceiling / 8
    _, goes = slots(pace, PARAMS, [0.0] * 10)
    immediate = sum(1 for g in goes if g == 0.0)
    # Half a second's worth at the starting pace, not five seconds' worth of the ceiling.
    assert immediate == 1
    assert goes == sorted(goes)
    assert goes[-1] == pytest.approx(9 / PARAMS.first, abs=1e-9)


def test_after_a_quiet_spell_a_burst_goes_at_once_then_the_pace() -> None:
    pace = Pace(rate=10.0, tat=0.0)
    _, goes = slots(pace, PARAMS, [100.0] * 60)
    assert goes[:50] == [100.0] * 50  # burst = 5 s at 10/s
    assert goes[50] == pytest.approx(100.1)
    assert goes[59] == pytest.approx(101.0)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.05, 100.0),
    burst=st.floats(0.1, 10.0),
    gaps=st.lists(st.floats(0.0, 3.0), min_size=1, max_size=200),
)
def test_no_window_ever_holds_more_than_the_rate_allows(
    rate: float, burst: float, gaps: list[float]
) -> None:
    params = PaceParams(ceiling=rate, burst=burst)
    pace = Pace(rate=rate, tat=0.0)
    now, times = 0.0, []
    for gap in gaps:
        now += gap
        times.append(now)
    _, goes = slots(pace, params, times)
    assert all(g >= t for g, t in zip(goes, times, strict=True))  # never before it asked
    tokens = max(burst * rate, 1.0)
    for i, start in enumerate(goes):
        # Requests going within w seconds of one another: at most the burst plus w * rate.
        for j in range(i, len(goes)):
            w = goes[j] - start
            assert j - i + 1 <= tokens + w * rate + 1 + 1e-6


def test_slow_start_reaches_the_ceiling_within_two_seconds_of_successes() -> None:
    pace = Pace.fresh(PARAMS, 0.0)
    t = 0.0
    while pace.rate < PARAMS.ceiling:
        t += 0.05
        pace = succeeded(pace, PARAMS, t)
    assert t <= 2.0


def test_a_quiet_spell_is_not_taken_as_proof_of_a_higher_limit() -> None:
    pace = Pace.fresh(PARAMS, 0.0)
    pace = succeeded(pace, PARAMS, 3600.0)
    assert pace.rate <= PARAMS.first * 2 ** (1.0 / PARAMS.doubling) + 1e-9


def test_a_429_halves_the_pace_once_per_hold_then_it_recovers_additively() -> None:
    pace = Pace(rate=8.0, tat=0.0, grown=0.0)
    pace = throttled(pace, PARAMS, 10.0)
    assert pace.rate == 4.0
    assert throttled(pace, PARAMS, 10.5).rate == 4.0  # the same burst of 429s: one signal
    assert throttled(pace, PARAMS, 11.0).rate == 2.0
    t = 10.0
    while pace.rate < 8.0 - 1e-9:
        t += 0.1
        pace = succeeded(pace, PARAMS, t)
    # Additive (at least 5 % a second): the cut is regained within ``recover`` seconds, not at once.
    assert 10.0 + PARAMS.recover / 2 < t <= 10.0 + PARAMS.recover + 0.2


def test_the_pace_never_leaves_floor_and_ceiling() -> None:
    pace = Pace(rate=10.0, tat=0.0)
    for i in range(100):
        pace = throttled(pace, PARAMS, float(i * 2))
    assert pace.rate == PARAMS.floor
    for i in range(10_000):
        pace = succeeded(pace, PARAMS, 200.0 + i)
    assert pace.rate == PARAMS.ceiling


def test_headers_saying_the_account_is_nearly_out_slow_the_pace_before_any_429() -> None:
    # A 120-a-minute account with a burst of 10: 2 left, full again in 4 s => 2 a second.
    pace = Pace(rate=8.0, tat=0.0, peak=10.0)
    pace = succeeded(pace, PARAMS, 1.0, remaining=2.0, reset=4.0)
    assert pace.rate == 4.0  # never more than a 429 would cut
    pace = succeeded(pace, PARAMS, 2.5, remaining=1.0, reset=5.0)
    assert pace.rate == 2.0
    held = succeeded(pace, PARAMS, 3.0, remaining=1.0, reset=5.0)
    assert held.rate == pace.rate  # it does not grow while the account is nearly out
    pace = succeeded(pace, PARAMS, 4.0, remaining=1.0, reset=5.0)
    assert pace.rate == pytest.approx(9.0 / 5.0)  # (10 - 1) refilled in 5 s


def test_a_six_a_minute_account_is_read_from_its_headers() -> None:
    params = PaceParams(ceiling=10.0)
    pace = Pace(rate=0.2, tat=0.0, threshold=0.2)
    for i in range(20):
        pace = succeeded(pace, params, 10.0 * i, remaining=0.0, reset=10.0)
    assert pace.rate == pytest.approx(0.1)


def test_plenty_remaining_lets_the_pace_grow() -> None:
    pace = Pace.fresh(PARAMS, 0.0)
    pace = succeeded(pace, PARAMS, 0.5, remaining=599.0, reset=1.0)
    assert pace.rate == pytest.approx(PARAMS.first * 2)


def test_a_pause_holds_every_slot_and_resumes_at_pace_not_in_a_burst() -> None:
    pace = Pace(rate=10.0, tat=0.0)
    pace = paused(pace, PARAMS, 30.0)
    assert paused(pace, PARAMS, 20.0).resume == 30.0  # a shorter pause never shortens it
    _, goes = slots(pace, PARAMS, [25.0] * 5)
    assert goes[0] == pytest.approx(30.0)
    assert [round(b - a, 6) for a, b in itertools_pairwise(goes)] == [0.1] * 4


def test_a_pause_sat_out_before_the_next_slot_is_asked_for_still_resumes_at_pace() -> None:
    """The budget's queue holder sits out a 429's pause while holding the queue, so the next slot
    is asked for only once the pause is over: the pause's quiet must not come back as a burst."""
    now = [100.0]
    local = LocalPaces(areplicate.RateLimits(creates_per_minute=600.0), clock=lambda: now[0])
    local.paces[True] = Pace(rate=10.0, threshold=10.0, tat=0.0)
    waits = [local.reserve(True) for _ in range(50)]
    assert waits == [0.0] * 50  # the 5 s burst, used up: the next slot is due at 100.1
    local.pause(1.0)  # a 429 at 100: every request waits until 101
    now[0] = 101.0
    waits = [local.reserve(True) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def itertools_pairwise(xs: list[float]) -> list[tuple[float, float]]:
    return list(itertools.pairwise(xs))


def test_params_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        PaceParams(ceiling=0.0)
    assert PaceParams(ceiling=0.001).lowest == 0.001
    assert math.isinf(-Pace(rate=1.0).cut)
