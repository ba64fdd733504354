"""Webhook deliveries relayed between processes through Redis pub/sub.

With a shared Redis budget (``RateLimits(shared=...)``) and a webhook Receiver, a delivery may land
on any worker while the wait for it runs in another. The worker that verified it publishes the raw
body on the account's channel (named from a hash of the token, never the token); every other
worker's Receiver takes it as if delivered there. Pub/sub keeps nothing: a worker that was not
listening misses it and falls back to its slow poll, which is the same as a lost delivery.

Imported only when both are configured (it needs ``pip install 'areplicate[redis]'``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

# The budget module is always loaded first (the shared budget needs it), and its import names the
# extra to install when redis is missing.
from areplicate._redis_budget import REDIS_TIMEOUT, SharedPaces, redis_location

__all__ = ["Relay", "channel_for"]

logger = logging.getLogger("areplicate")

# After Redis fails, the listener tries again this often.
_RECONNECT = 2.0


def channel_for(token: str) -> str:
    """The account's delivery channel: a hash of the token, so two accounts never share one.

    Keyed by token, not by receiver URL: every process of the account hears every delivery and
    hands it to its own receiver, so whichever worker behind a load balancer gets the webhook,
    the worker that waits for it hears of it.
    """
    digest = hashlib.sha256(token.encode()).hexdigest()[:32]
    return f"areplicate:{digest}:deliveries"


class Relay:
    """Publishes verified deliveries and listens for the other processes' ones.

    Pub/sub, not a queue: a process that is not subscribed when a delivery is published never
    sees it, and its waits fall back to their slow polls. Only bodies that passed verification
    are published, and each listener still parses them as it would a delivery of its own.
    """

    def __init__(self, url: str, token: str) -> None:
        self._url = url
        self._channel = channel_for(token)
        # Our own publications come back on the channel: the tag lets us skip them.
        self._origin = secrets.token_hex(8).encode()
        self._redis: Any = None
        self.where = redis_location(url)

    def __repr__(self) -> str:
        return f"<Relay {self.where}>"

    def _connection(self) -> Any:
        """The Redis client, made on first use.

        Only the connect is bounded by ``REDIS_TIMEOUT``: a subscriber waits on its socket for as long
        as no delivery comes, so a read timeout would turn quiet periods into errors. ``publish``
        bounds itself with ``wait_for`` instead.
        """
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(
                self._url, socket_connect_timeout=REDIS_TIMEOUT, health_check_interval=30
            )
        return self._redis

    async def publish(self, body: bytes) -> None:
        """Send one verified delivery's raw body to the other processes."""
        await asyncio.wait_for(
            self._connection().publish(self._channel, self._origin + b"\n" + body), REDIS_TIMEOUT
        )

    async def listen(self, deliver: Callable[[bytes], object]) -> None:
        """Hand every other process's delivery body to ``deliver``, until cancelled.

        Redis failures never end it: it warns once, resubscribes every ``_RECONNECT`` seconds,
        and says so when Redis answers again. Our own publications come back on the channel and
        are skipped by their origin tag.
        """
        warned = False
        while True:
            pubsub = self._connection().pubsub()
            try:
                await pubsub.subscribe(self._channel)
                if warned:
                    logger.warning("webhook relay: Redis at %s answers again", self.where)
                    warned = False
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    origin, _, body = bytes(message["data"]).partition(b"\n")
                    if origin != self._origin:
                        deliver(body)
            except SharedPaces.errors as exc:
                if not warned:
                    logger.warning(
                        "webhook relay: Redis at %s failed (%s); deliveries received by other "
                        "workers reach this one only through its slow fallback polls until it "
                        "answers again",
                        self.where,
                        type(exc).__name__,
                    )
                    warned = True
            finally:
                await pubsub.aclose()
            await asyncio.sleep(_RECONNECT)

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._redis is not None:
            client, self._redis = self._redis, None
            await client.aclose()
