"""The orphan reaper under pressure: a 429 before the create was processed, a long 429 pause,
identical creates dropped by two clients of one ledger or in two rounds. It cancels every
prediction of ours whose caller gave up, and none that is not ours.

Clients with different tokens stand for clients in different processes (no shared ledger); one
FakeReplicate serves one account whatever the token (as in test_cleanup_accounts.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

import areplicate
from areplicate.testing import FakeRateLimits, FakeReplicate

from ._held import Held, settle_cleanup, status

CANCEL = "POST /v1/predictions/{id}/cancel"
CREATE = "POST /v1/models/{owner}/{name}/predictions"


@pytest.fixture
async def fake(held: Held) -> AsyncIterator[FakeReplicate]:
    # Twelve creates a minute per token, burst 1: a token's second create at once gets a 429
    # with a Retry-After of about 5 s.
    fake = FakeReplicate(rate_limits=FakeRateLimits(creates_per_minute=12, creates_burst=1))
    fake.add_model("acme/held", held)
    fake.add_model("acme/echo", lambda prompt="": prompt)
    yield fake
    held.release.set()


@pytest.fixture
async def url(fake: FakeReplicate) -> AsyncIterator[str]:
    async with fake.serve() as base_url:
        yield base_url


async def test_a_create_refused_with_429_then_cancelled_never_cancels_a_strangers_prediction(
    url: str, fake: FakeReplicate, held: Held
) -> None:
    """Our create was answered 429 (the API says it was not processed) and is waiting out the
    Retry-After when its caller gives up: nothing of ours exists, so the reaper cancels nothing,
    not even the prediction another process made meanwhile with the same input (the 429 takes
    back the "sent" mark its connection had set)."""
    a = areplicate.Client("r8_worker_a", base_url=url, rate_limits=None)
    async with areplicate.Client("r8_worker_b", base_url=url, rate_limits=None) as b:
        await a.predictions.create("acme/echo", {"prompt": "uses A's one create"})
        ours = asyncio.create_task(a.predictions.create("acme/held", {"prompt": "same"}))
        with anyio.fail_after(10):
            while fake.counts[CREATE] < 2:  # noqa: ASYNC110 - polling the fake's state
                await asyncio.sleep(0.01)
        # A's create got its 429 and now waits for the Retry-After (about 5 s).
        assert a.stats.throttled == 1
        theirs = await b.predictions.create("acme/held", {"prompt": "same"})
        await held.until_started(1)
        ours.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ours
        await settle_cleanup(a)
        await a.aclose()
        assert len(fake.predictions) == 2  # A's echo and B's held: A's held create never ran
        assert status(fake, theirs.id) == "processing"
        assert fake.counts[CANCEL] == 0


async def test_an_orphan_is_reaped_while_the_client_waits_out_a_long_429(
    fake: FakeReplicate, held: Held, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create on the wire is abandoned while the client is paused by a 429 whose Retry-After
    (60 s here, up to MAX_RETRY_AFTER = 120 s) outlasts the reaper's 30 s lookup timeout. The
    lookup skips the budget, as the cancels do, so the orphan is found and cancelled during the
    pause. The lookup timeout is shortened to 3 s: a lookup that queued behind the pause would
    time out and drop the orphan."""
    from areplicate._services import _orphans

    monkeypatch.setattr(_orphans, "_LOOKUP_TIMEOUT", 3.0)
    # One create a minute: the second create at once gets a 429 with a Retry-After of about 60 s.
    limited = FakeReplicate(rate_limits=FakeRateLimits(creates_per_minute=1, creates_burst=1))
    limited.add_model("acme/held", held)
    async with (
        limited.serve() as url,
        areplicate.Client("r8_worker_a", base_url=url, rate_limits=None) as a,
    ):
        ours = asyncio.create_task(a.predictions.create("acme/held", {"prompt": "ours"}, hold=60))
        await held.until_started(1)
        throttled = asyncio.create_task(a.predictions.create("acme/held", {"prompt": "next"}))
        with anyio.fail_after(10):
            while a.stats.throttled < 1:  # noqa: ASYNC110 - polling the client's counters
                await asyncio.sleep(0.01)
        ours.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ours
        with anyio.fail_after(10):
            while not a._session._cleanup:  # noqa: ASYNC110 - the reaper has started
                await asyncio.sleep(0.01)
        await settle_cleanup(a)
        (pid,) = [p["id"] for p in limited.predictions]
        assert status(limited, pid) == "canceled"
        throttled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await throttled


@pytest.fixture
async def open_url(held: Held) -> AsyncIterator[tuple[FakeReplicate, str]]:
    """A fake without rate limits."""
    fake = FakeReplicate()
    fake.add_model("acme/held", held)
    async with fake.serve() as base_url:
        yield fake, base_url


async def test_a_client_and_its_view_abandoning_the_same_input_both_get_reaped(
    open_url: tuple[FakeReplicate, str], held: Held
) -> None:
    """A client and a ``with_options`` view of it (one session, one ledger) each have a create
    of the same input on the wire; both callers give up at once. Each view has its own reaper,
    but the orphans live in the shared ledger and are judged together: two orphans, two
    predictions fitting them, both ours and both cancelled."""
    fake, url = open_url
    async with areplicate.Client("r8_worker_a", base_url=url, rate_limits=None) as client:
        view = client.with_options(request_timeout=30)
        one = asyncio.create_task(
            client.predictions.create("acme/held", {"prompt": "same"}, hold=60)
        )
        two = asyncio.create_task(view.predictions.create("acme/held", {"prompt": "same"}, hold=60))
        await held.until_started(2)
        one.cancel()
        two.cancel()
        for task in (one, two):
            with pytest.raises(asyncio.CancelledError):
                await task
        with anyio.fail_after(10):
            while not client._session._cleanup:  # noqa: ASYNC110 - the reaper has started
                await asyncio.sleep(0.01)
        await settle_cleanup(client)
        assert sorted(p["status"] for p in fake.predictions) == ["canceled", "canceled"]


async def test_two_clients_of_one_token_abandoning_the_same_input_both_get_reaped(
    open_url: tuple[FakeReplicate, str], held: Held
) -> None:
    """The same with two Clients of one token in one process, which share one ledger: both
    abandoned predictions are cancelled."""
    fake, url = open_url
    async with (
        areplicate.Client("r8_same", base_url=url, rate_limits=None) as a,
        areplicate.Client("r8_same", base_url=url, rate_limits=None) as b,
    ):
        one = asyncio.create_task(a.predictions.create("acme/held", {"prompt": "same"}, hold=60))
        two = asyncio.create_task(b.predictions.create("acme/held", {"prompt": "same"}, hold=60))
        await held.until_started(2)
        one.cancel()
        two.cancel()
        for task in (one, two):
            with pytest.raises(asyncio.CancelledError):
                await task
        with anyio.fail_after(10):
            while not (a._session._cleanup and b._session._cleanup):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await settle_cleanup(a)
        await settle_cleanup(b)
        assert sorted(p["status"] for p in fake.predictions) == ["canceled", "canceled"]


async def test_identical_creates_abandoned_during_a_slow_lookup_are_all_reaped(held: Held) -> None:
    """One client, two creates of the same input, each abandoned by its caller: the second while
    the reaper's lookup for the first is under way (the listing is slow, 3 s). The round judges
    the group as it stands when the listing returns, both orphans, so both are cancelled."""
    from areplicate.testing import Faults

    fake = FakeReplicate(faults=Faults(latency=3.0, routes={"GET /v1/predictions"}))
    fake.add_model("acme/held", held)
    async with (
        fake.serve() as url,
        areplicate.Client("r8_worker_a", base_url=url, rate_limits=None) as client,
    ):
        first = asyncio.create_task(
            client.predictions.create("acme/held", {"prompt": "same"}, hold=60)
        )
        await held.until_started(1)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        with anyio.fail_after(10):
            while fake.counts["GET /v1/predictions"] < 1:  # noqa: ASYNC110 - the lookup is sent
                await asyncio.sleep(0.01)
        second = asyncio.create_task(
            client.predictions.create("acme/held", {"prompt": "same"}, hold=60)
        )
        await held.until_started(2)
        second.cancel()
        with pytest.raises(asyncio.CancelledError):
            await second
        await settle_cleanup(client)
        assert sorted(p["status"] for p in fake.predictions) == ["canceled", "canceled"]


def test_equal_counts_are_claimed_only_when_each_create_has_a_prediction_in_its_own_window() -> (
    None
):
    """Two creates of one request, a minute apart, and two predictions that match them: ours only
    if each create has one inside its own window. Both inside the first's window means the second
    create was never made and one of the two is a stranger's."""
    import datetime as dt

    from areplicate._ledger import Intent
    from areplicate._models import Prediction
    from areplicate._services._orphans import _one_each

    def intent(at: float) -> Intent:
        return Intent("acme/held", None, None, {"prompt": "same"}, sent_at=at, abandoned_at=at + 1)

    def made(at: float) -> Prediction:
        created = dt.datetime.fromtimestamp(at, dt.timezone.utc)
        return Prediction(
            id=f"p{at}", model="acme/held", input={"prompt": "same"}, created_at=created
        )

    first, second = intent(1000.0), intent(1060.0)
    exact = (0.0, 0.0)  # the API's clock is ours
    assert _one_each([first, second], [made(1000.5), made(1060.5)], exact)
    assert _one_each([second, first], [made(1060.5), made(1000.5)], exact)
    assert not _one_each([first, second], [made(1000.2), made(1000.5)], exact)
    # Overlapping windows: either pairing will do.
    assert _one_each([first, intent(1000.5)], [made(1000.8), made(1000.9)], exact)


async def test_a_reaper_stopped_mid_round_leaves_no_orphan_behind_in_the_shared_ledger() -> None:
    """The reaper's task is cancelled while its lookup hangs (the loop shutting down, say): its
    orphans are settled, not left in the ledger to be counted with the next ones of their
    request by another client of the same token."""
    from areplicate._ledger import Intent, Ledger
    from areplicate._services._orphans import Reaper

    ledger = Ledger()
    listing = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def hang(_since: object) -> list[areplicate.Prediction]:
        listing.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def cancel(_pid: str) -> None:
        raise AssertionError("nothing to cancel")

    def spawn(coro: Any) -> asyncio.Task[None]:
        tasks.append(asyncio.get_running_loop().create_task(coro))
        return tasks[-1]

    reaper = Reaper(ledger, lister=hang, canceller=cancel, spawn=spawn, offset=lambda: None)
    intent = Intent("acme/held", None, None, {"prompt": "x"}, sent_at=time.time(), sent=[1.0])
    reaper.abandon(intent)
    assert not ledger.settled(intent)
    with anyio.fail_after(10):
        await listing.wait()
    tasks[0].cancel()
    with anyio.fail_after(10), pytest.raises(asyncio.CancelledError):
        await tasks[0]
    assert ledger.settled(intent)
