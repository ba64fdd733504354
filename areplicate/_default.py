"""The module-level conveniences (``await areplicate.run(...)``): one default Client per event loop.

A Client's connections belong to the event loop they were opened on, and each ``asyncio.run()``
makes a new loop; so the default client is kept per loop and closed as its loop shuts down
(through an async generator that the loop finalizes in ``shutdown_asyncgens``, which
``asyncio.run`` calls before closing the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

from areplicate._client import Client

if TYPE_CHECKING:
    from areplicate._options import Lifetime

__all__ = ["default_client", "run"]

_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Client] = weakref.WeakKeyDictionary()
# The generators that close the clients: a loop keeps only weak references to them.
_CLOSERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = (
    weakref.WeakKeyDictionary()
)


async def _close_at_shutdown(
    loop: asyncio.AbstractEventLoop, client: Client
) -> AsyncGenerator[None, None]:
    """An async generator whose ``finally`` closes the loop's default client.

    The loop finalizes async generators in ``shutdown_asyncgens()``, which ``asyncio.run`` calls
    before closing: this is how the client closes with its loop without any atexit hook.
    """
    try:
        yield
    finally:
        await client.aclose()
        # The client holds its loop (aiohttp does): forget both, or the loop would live on.
        if _CLIENTS.get(loop) is client:
            del _CLIENTS[loop]
        _CLOSERS.pop(loop, None)


def default_client() -> Client:
    """The current event loop's default Client, made from the environment on first use.

    It reads ``REPLICATE_API_TOKEN`` (and ``REPLICATE_BASE_URL``) when first needed, and is closed
    when its loop shuts down (``asyncio.run`` does that); a long-lived app should make its own
    ``Client`` instead, to choose its options and when it closes.
    """
    loop = asyncio.get_running_loop()
    client = _CLIENTS.get(loop)
    if client is None or client._session.closed:
        client = Client()
        _CLIENTS[loop] = client
        closer = _close_at_shutdown(loop, client)
        _CLOSERS[loop] = closer
        # Run it to its first yield, here and now: from then on the loop knows it (its
        # first-iteration hook) and finalizes it, closing the client, in shutdown_asyncgens().
        with contextlib.suppress(StopIteration):
            closer.asend(None).send(None)
    return client


async def run(
    ref: str,
    input: Mapping[str, Any],
    *,
    hold: bool | int = True,
    timeout: float | None = None,
    lifetime: Lifetime | None = None,
    validate: bool = False,
) -> Any:
    """Run a model on the default client and return its output: ``await areplicate.run(ref, {...})``.

    The same as ``Client().run(ref, input, ...)`` (see :meth:`Client.run`, whose options these are)
    with the token from ``REPLICATE_API_TOKEN``; one client per event loop, closed with it, so
    successive ``asyncio.run(areplicate.run(...))`` calls each get a working one.
    """
    return await default_client().run(
        ref, input, hold=hold, timeout=timeout, lifetime=lifetime, validate=validate
    )
