"""A ledger shared across event loops outlives one of them."""

from __future__ import annotations

import asyncio

import anyio

import areplicate
from areplicate._ledger import ledger_for
from areplicate.testing import FakeReplicate

TOKEN = "r8_review_closed_loop"


def test_a_create_on_one_loop_succeeds_after_another_loop_closed_with_a_reaper_waiting() -> None:
    """A reaper waiting for a sibling create (``Ledger.changed``) leaves a waiter of its loop in
    the process-wide ledger. If that loop is closed without its tasks being cancelled (a loop run
    by hand: ``run_until_complete`` then ``close``), the waiter stays. The next create of any
    client of the same token, on a live loop, still returns its prediction: waking the ledger's
    waiters skips the one whose loop is closed instead of raising out of the create."""
    old = asyncio.new_event_loop()
    ledger = ledger_for(TOKEN)

    async def reaper_waiting() -> None:
        task = asyncio.get_running_loop().create_task(ledger.changed())
        await asyncio.sleep(0)  # the waiter is registered
        old.__dict__["kept"] = task  # referenced, as a client's clean-up set references its task

    old.run_until_complete(reaper_waiting())
    old.close()  # its pending task is neither cancelled nor collected

    async def create() -> str:
        fake = FakeReplicate()
        fake.add_model("acme/echo", lambda prompt="": prompt)
        async with (
            fake.serve() as url,
            areplicate.Client(TOKEN, base_url=url, rate_limits=None) as client,
        ):
            with anyio.fail_after(10):
                prediction = await client.predictions.create("acme/echo", {"prompt": "x"})
            return prediction.id

    assert asyncio.run(create())
