"""The sweeper and the wait loop together, over scripted listings: what ends a wait, what a wait
still polls for itself, and that a failing or hostile listing never ends, cancels or holds one."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Iterable

import attrs
import pytest

from areplicate._core import sweep as core
from areplicate._core.retry import PollSchedule
from areplicate._core.status import Status
from areplicate._errors import NotFoundError, ServerError, UnexpectedResponseError
from areplicate._models import Page, Prediction, WaitTimeoutError
from areplicate._services import _sweep
from areplicate._services._sweep import Sweeper
from areplicate._services._waiting import wait_until_done

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
# Quick polls and sweeps (the sweep period follows the schedule): a test runs in tenths of a second,
# with room for a loaded machine's stalls (a wait gives a sweep three periods before polling alone).
FAST = PollSchedule(first=0.03, ratio=0.0, cap=0.03)
N = 3 * core.MIN_WAITERS


class Account:
    """The predictions an account holds, listed newest first and read one by one (counted)."""

    def __init__(self, n: int) -> None:
        self.state = {
            f"p{i}": Prediction(
                id=f"p{i}", status=Status.PROCESSING, created_at=T0 + dt.timedelta(seconds=i)
            )
            for i in range(n)
        }
        self.hidden: set[str] = set()  # left out of every listing
        self.gets: dict[str, int] = dict.fromkeys(self.state, 0)
        self.cancels: list[str] = []
        self.lists = 0
        self.page_size = 10
        self.fail_lists: BaseException | None = None
        self.hold: asyncio.Event | None = None  # a listing waits for it: a slow sweep

    def finish(self, ids: Iterable[str], *, logs: str | None = "") -> None:
        for pid in ids:
            old = self.state[pid]
            self.state[pid] = Prediction(
                id=pid, status=Status.SUCCEEDED, created_at=old.created_at, output=pid, logs=logs
            )

    async def pages(
        self, after: dt.datetime, before: dt.datetime | None
    ) -> AsyncIterator[Page[Prediction]]:
        self.lists += 1
        if self.fail_lists is not None:
            raise self.fail_lists
        if self.hold is not None:
            await self.hold.wait()
        # A GET's view, less the logs: what the real list endpoint returns, newest first.
        listed = [
            p
            for p in sorted(self.state.values(), key=lambda p: p.created_at or T0, reverse=True)
            if p.id not in self.hidden
            and (p.created_at or T0) > after
            and (before is None or (p.created_at or T0) < before)
        ]
        for start in range(0, len(listed), self.page_size):
            yield Page(results=listed[start : start + self.page_size])

    async def get(self, pid: str) -> Prediction:
        self.gets[pid] += 1
        await asyncio.sleep(0)
        return self.state[pid]

    async def _cancel_shielded(self, pid: str) -> None:
        self.cancels.append(pid)


def sweeper(account: Account) -> Sweeper:
    return Sweeper(account.pages, schedule=FAST, per_second=None)


async def wait(sw: Sweeper, account: Account, pid: str, timeout: float | None = None) -> Prediction:
    return await wait_until_done(
        account,
        Prediction,
        pid,
        account.state[pid],
        schedule=FAST,
        timeout=timeout,
        cancel_on_exit=True,
        sweeper=sw,
    )


async def until(condition: object, *, seconds: float = 5.0) -> None:
    """Let the loop run until ``condition()`` holds (a deadline, never a bare sleep)."""
    async with asyncio.timeout(seconds):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110 - the state polled
            await asyncio.sleep(0.005)


async def test_a_sweep_ends_the_waits_it_lists_finished_without_a_get_each() -> None:
    account = Account(N)
    sw = sweeper(account)
    tasks = [asyncio.create_task(wait(sw, account, pid)) for pid in account.state]
    await until(lambda: sw.sweeps >= 10)
    account.finish(account.state, logs="done")  # complete list items: nothing left to read
    async with asyncio.timeout(5):
        results = await asyncio.gather(*tasks)
    assert [r.output for r in results] == list(account.state)
    assert all(r.logs == "done" for r in results)
    # Ten sweeps' worth of polls, for N waits, cost ten listings and next to no GETs (polling alone:
    # 10 * N).
    assert sum(account.gets.values()) <= N // 2
    assert sw.outcomes["delivered"] == N
    assert sw.outcomes["spared"] >= N


async def test_a_listed_finish_without_logs_is_read_once_with_a_get() -> None:
    account = Account(N)
    sw = sweeper(account)
    tasks = [asyncio.create_task(wait(sw, account, pid)) for pid in account.state]
    await until(lambda: sw.sweeps >= 3)
    before = dict(account.gets)
    account.finish(account.state, logs=None)  # the real API's list items carry no logs
    # The GET a wait then makes is the fake GET's state: with logs, as a GET always has.
    for pid in account.state:
        account.state[pid] = Prediction(
            id=pid, status=Status.SUCCEEDED, created_at=account.state[pid].created_at, logs=""
        )
    async with asyncio.timeout(5):
        results = await asyncio.gather(*tasks)
    assert all(r.logs == "" for r in results)
    # At most one read each after the finish (none of the sweeps' running states cost a GET).
    assert all(account.gets[pid] - before[pid] <= 1 for pid in account.state)


async def test_a_prediction_no_listing_shows_still_ends_through_its_own_polls() -> None:
    account = Account(N)
    account.hidden = {"p0"}  # another source, a filter, a race: the sweeps never see it
    sw = sweeper(account)
    tasks = {pid: asyncio.create_task(wait(sw, account, pid)) for pid in account.state}
    await until(lambda: sw.sweeps >= 3)
    polled = account.gets["p0"]
    assert polled >= 1  # it kept its own schedule meanwhile
    account.finish(["p0"])
    async with asyncio.timeout(5):
        assert (await tasks.pop("p0")).status == Status.SUCCEEDED
    account.finish(list(tasks))
    async with asyncio.timeout(5):
        await asyncio.gather(*tasks.values())
    assert account.cancels == []


@pytest.mark.parametrize(
    "error",
    [
        ServerError(503, "Service Unavailable", "down"),
        UnexpectedResponseError(200, "Unexpected response", "not JSON"),
        NotFoundError(404, "Not found", "no listing here"),
        RuntimeError("a bug in a listing"),
    ],
    ids=["5xx", "unreadable", "404", "bug"],
)
async def test_a_failing_listing_neither_cancels_nor_holds_a_wait(error: Exception) -> None:
    account = Account(N)
    account.fail_lists = error
    sw = sweeper(account)
    tasks = [asyncio.create_task(wait(sw, account, pid)) for pid in account.state]
    await until(lambda: sw.failures >= 1 and min(account.gets.values()) >= 2)
    account.finish(account.state)
    async with asyncio.timeout(5):
        results = await asyncio.gather(*tasks)
    assert {r.status for r in results} == {Status.SUCCEEDED}
    assert account.cancels == []


async def test_an_endless_listing_is_cut_at_the_page_limit_and_the_waits_poll() -> None:
    account = Account(N)
    sw = sweeper(account)
    read = 0

    async def endless(
        after: dt.datetime, before: dt.datetime | None
    ) -> AsyncIterator[Page[Prediction]]:
        nonlocal read
        while True:  # pages of someone else's predictions, for ever
            read += 1
            yield Page(results=[Prediction(id=f"other{read}", created_at=T0)], next="x")

    sw._pages = endless
    tasks = [asyncio.create_task(wait(sw, account, pid)) for pid in account.state]
    await until(lambda: sw.sweeps >= 2)
    spans = len(core.ranges([account.state[pid].created_at or T0 for pid in account.state]))
    assert read <= (sw.sweeps + 1) * spans * core.PAGES_PER_SPAN
    account.finish(account.state)
    async with asyncio.timeout(5):
        await asyncio.gather(*tasks)
    assert sw.outcomes["missed"] >= 1


async def test_a_timeout_or_cancelled_wait_cancels_its_prediction_while_sweeping() -> None:
    account = Account(N)
    sw = sweeper(account)
    tasks = [asyncio.create_task(wait(sw, account, pid)) for pid in account.state]
    timed = asyncio.create_task(wait(sw, account, "p0", timeout=0.2))
    await until(lambda: sw.sweeps >= 2)
    tasks[1].cancel()
    with pytest.raises(WaitTimeoutError):
        async with asyncio.timeout(5):
            await timed
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await tasks[1]
    assert sorted(account.cancels) == ["p0", "p1"]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert sw._watched == {}  # every wait unregistered: nothing left to sweep for


async def test_few_waits_poll_alone() -> None:
    account = Account(core.MIN_WAITERS - 1)
    sw = sweeper(account)
    tasks = [asyncio.create_task(wait(sw, account, pid)) for pid in account.state]
    await until(lambda: min(account.gets.values()) >= 3)
    account.finish(account.state)
    async with asyncio.timeout(5):
        await asyncio.gather(*tasks)
    assert account.lists == 0


async def test_a_prediction_listed_unchanged_keeps_the_one_state_its_wait_holds() -> None:
    # Every listing decodes a fresh copy of each prediction. A copy equal to the state the wait was
    # handed is dropped, not kept beside it: one state held per prediction in flight, not two.
    account = Account(N)
    listed = account.pages

    async def fresh(
        after: dt.datetime, before: dt.datetime | None
    ) -> AsyncIterator[Page[Prediction]]:
        async for page in listed(after, before):
            yield Page(results=[attrs.evolve(p) for p in page.results])

    sw = Sweeper(fresh, schedule=FAST, per_second=None)
    tasks = [asyncio.create_task(wait(sw, account, pid)) for pid in account.state]
    await until(lambda: sw.sweeps >= 1 and sw.outcomes["spared"] >= N)
    handed = {pid: watch.state for pid, watch in sw._watched.items()}
    assert all(state is not None for state in handed.values())
    await until(lambda: sw.sweeps >= 4)
    assert all(sw._watched[pid].state is state for pid, state in handed.items())
    account.finish(["p1"])  # a change is taken up: the wait ends with the listed finish
    async with asyncio.timeout(5):
        assert (await tasks[1]).status == Status.SUCCEEDED
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_sweep_lists_a_bounded_number_of_spans_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each page in flight holds a hundred predictions' states: a sweep of thousands must not
    # hold a page for every span at the same moment.
    monkeypatch.setattr(_sweep, "_SPANS_AT_ONCE", 2)
    account = Account(5 * core.PAGE_SIZE // 2)  # three spans
    account.page_size = core.PAGE_SIZE
    listed = account.pages
    now = most = 0

    async def pages(
        after: dt.datetime, before: dt.datetime | None
    ) -> AsyncIterator[Page[Prediction]]:
        nonlocal now, most
        now += 1
        most = max(most, now)
        try:
            await asyncio.sleep(0.01)  # in flight: the other spans may start meanwhile
            async for page in listed(after, before):
                yield page
        finally:
            now -= 1

    sw = Sweeper(pages, schedule=FAST, per_second=None)
    tasks = [asyncio.create_task(wait(sw, account, pid)) for pid in account.state]
    await until(lambda: sw.sweeps >= 2)
    assert all(watch.seen >= 1 for watch in sw._watched.values())  # every span still listed
    assert most == 2
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_sleeping_waits_share_one_loop_timer() -> None:
    # A loop timer costs a handle, its arguments and a context copy for each sleeping wait.
    account = Account(N)
    sw = sweeper(account)
    tasks = [asyncio.create_task(wait(sw, account, pid)) for pid in account.state]
    await until(lambda: sw.sweeps >= 2)
    timers = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
    assert len([t for t in timers if not t.cancelled()]) < N // 2
    account.finish(account.state)
    async with asyncio.timeout(5):
        results = await asyncio.gather(*tasks)
    assert [r.status for r in results] == [Status.SUCCEEDED] * N


async def test_a_sleeping_wait_holds_no_coroutine_of_the_sweeper() -> None:
    # A coroutine per sleeping wait held ~0.33 KB for as long as it slept.
    account = Account(N)
    sw = sweeper(account)
    tasks = [asyncio.create_task(wait(sw, account, pid)) for pid in account.state]
    await until(lambda: sw.sweeps >= 2)
    in_sweeper = 0
    for task in tasks:
        coro = task.get_coro()
        files = set()
        while coro is not None and hasattr(coro, "cr_await"):
            files.add(coro.cr_code.co_filename)
            coro = coro.cr_await
        in_sweeper += _sweep.__file__ in files
    assert in_sweeper <= 1  # the wait leading a sweep, if one runs now
    account.finish(account.state)
    async with asyncio.timeout(5):
        await asyncio.gather(*tasks)


async def test_waits_whose_polls_fall_due_during_a_slow_sweep_join_it_instead_of_polling() -> None:
    account = Account(N)
    sw = sweeper(account)
    tasks = [asyncio.create_task(wait(sw, account, pid)) for pid in account.state]
    await until(lambda: sw.sweeps >= 3)
    account.hold = asyncio.Event()  # the next sweep's listing stalls (a loaded API, a busy budget)
    lists = account.lists
    await until(lambda: account.lists > lists)
    before = sum(account.gets.values())
    # Six sweep periods: every wait's poll falls due and the grace for a sweep (three periods)
    # runs out while the sweep that lists them is still under way (a wait joins it for thirty).
    loop = asyncio.get_running_loop()
    held_until = loop.time() + 6 * FAST.first
    await until(lambda: loop.time() >= held_until)
    assert sum(account.gets.values()) == before  # no wait polled on its own
    account.finish(account.state, logs="done")
    account.hold.set()
    async with asyncio.timeout(5):
        results = await asyncio.gather(*tasks)
    assert [r.output for r in results] == list(account.state)
    assert sum(account.gets.values()) == before  # the held sweep's news ended every wait
