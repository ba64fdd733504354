"""The sweep's pure decisions: the spans it lists, its period, and when it pays."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from areplicate._core import sweep
from areplicate._core.retry import PollSchedule

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
DEFAULT = PollSchedule()

offsets = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=400)


def created_from(micros: list[int]) -> list[dt.datetime]:
    return sorted(T0 + dt.timedelta(microseconds=m) for m in micros)


def inside(when: dt.datetime, span: tuple[dt.datetime, dt.datetime | None]) -> bool:
    """Strictly inside: whatever a server's bounds are, the prediction is listed."""
    after, before = span
    return after < when and (before is None or when < before)


@given(offsets, st.integers(min_value=1, max_value=150))
def test_every_waited_prediction_lies_strictly_inside_a_span(micros: list[int], size: int) -> None:
    created = created_from(micros)
    spans = sweep.ranges(created, size=size)
    assert all(any(inside(c, span) for span in spans) for c in created)
    assert spans[0][0] == created[0] - dt.timedelta(seconds=sweep.WINDOW_MARGIN)
    assert spans[-1][1] is None  # the newest span is open: a create racing the sweep is in it
    assert all(b is not None for _, b in spans[:-1])


@given(
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=400, unique=True),
    st.integers(min_value=1, max_value=150),
)
def test_spans_of_distinct_times_hold_size_each(steps: list[int], size: int) -> None:
    created = created_from([2000 * s for s in steps])  # at least 2 ms apart: wider than the seam
    spans = sweep.ranges(created, size=size)
    held = [sum(inside(c, span) for c in created) for span in spans]
    assert held[:-1] == [size] * (len(spans) - 1)
    assert 1 <= held[-1] <= size
    assert sum(held) == len(created)


def test_equal_times_never_straddle_two_spans() -> None:
    created = [T0] * 5 + [T0 + dt.timedelta(seconds=1)] * 5
    spans = sweep.ranges(created, size=3)
    assert len(spans) == 2
    assert [sum(inside(c, span) for c in created) for span in spans] == [5, 5]


def test_two_thousand_waits_are_twenty_spans() -> None:
    created = [T0 + dt.timedelta(milliseconds=100 * i) for i in range(2000)]
    spans = sweep.ranges(created)
    assert len(spans) == 20
    # Neighbouring spans overlap by the seam only: nothing between two spans' waits is listed.
    assert spans[1][0] == created[100] - dt.timedelta(seconds=sweep.SEAM)
    assert spans[0][1] == created[99] + dt.timedelta(seconds=sweep.SEAM)


def test_naive_timestamps_are_utc() -> None:
    naive = dt.datetime(2026, 1, 1, 12, 0, 0)
    assert sweep.window_start(naive) == dt.datetime(2026, 1, 1, 11, 59, 59, tzinfo=dt.timezone.utc)


@given(
    st.lists(st.floats(min_value=0, max_value=3600), max_size=50),
    st.integers(min_value=1, max_value=200),
    st.one_of(st.none(), st.floats(min_value=0.01, max_value=1000)),
)
def test_the_period_stays_between_the_schedule_and_the_budget(
    elapsed: list[float], pages: int, per_second: float | None
) -> None:
    period = sweep.sweep_period(DEFAULT, elapsed, pages, per_second)
    assert period >= DEFAULT.first
    ceiling = sweep.PERIOD_OF_CAP * DEFAULT.cap
    if per_second is None:
        assert period <= ceiling
    else:
        # Never more than the budget share on pages, never slower than that needs.
        assert pages / period <= sweep.BUDGET_SHARE * per_second * (1 + 1e-9)
        assert period <= max(ceiling, pages / (sweep.BUDGET_SHARE * per_second)) * (1 + 1e-9)


def test_young_waits_are_swept_often_old_ones_less() -> None:
    young = sweep.sweep_period(DEFAULT, [0.0] * 10, 1, None)
    old = sweep.sweep_period(DEFAULT, [600.0] * 10, 1, None)
    assert young == DEFAULT.interval(0.0)
    assert old == sweep.PERIOD_OF_CAP * DEFAULT.cap


@given(st.integers(min_value=0, max_value=sweep.MIN_WAITERS - 1), st.floats(0, 1e6))
def test_too_few_waits_never_sweep(waiters: int, rate: float) -> None:
    assert not sweep.should_sweep(waiters, rate, 1, 1.0, sweeping=False)
    assert not sweep.should_sweep(waiters, rate, 1, 1.0, sweeping=True)


@given(
    st.integers(min_value=sweep.MIN_WAITERS, max_value=10_000),
    st.floats(min_value=0.0, max_value=1e4),
    st.integers(min_value=1, max_value=100),
    st.floats(min_value=0.01, max_value=10),
)
def test_a_sweep_starts_when_it_is_cheaper_and_stops_only_when_twice_as_dear(
    waiters: int, rate: float, pages: int, period: float
) -> None:
    cost = pages / period
    starts = sweep.should_sweep(waiters, rate, pages, period, sweeping=False)
    keeps = sweep.should_sweep(waiters, rate, pages, period, sweeping=True)
    assert starts == (cost <= rate)
    assert keeps == (cost <= 2 * rate)
    assert keeps or not starts  # hysteresis: what would start also keeps going


def test_the_switch_over_for_the_default_schedule() -> None:
    """Eight waits a minute into a long model poll at about 1.6 requests a second between them;
    one page every two seconds is cheaper, so they sweep. Seven do not (too few)."""
    elapsed = [60.0] * sweep.MIN_WAITERS
    rate = sweep.poll_rate(DEFAULT, elapsed)
    period = sweep.sweep_period(DEFAULT, elapsed, 1, 50.0)
    assert sweep.should_sweep(len(elapsed), rate, 1, period, sweeping=False)
    assert not sweep.should_sweep(len(elapsed) - 1, rate, 1, period, sweeping=False)


@given(st.integers(min_value=-5, max_value=10**6))
def test_pages_for(listed: int) -> None:
    pages = sweep.pages_for(listed)
    assert pages >= 1
    assert pages * sweep.PAGE_SIZE >= listed
    assert (pages - 1) * sweep.PAGE_SIZE < max(listed, 1)
