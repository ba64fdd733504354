"""FakeReplicate: the fake's state (``_state``) served over HTTP by the app (``_app``)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiohttp import web

from areplicate.testing._app import build_app
from areplicate.testing._state import FakeDeployment, FakeState

__all__ = ["FakeDeployment", "FakeReplicate"]


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):  # noqa: S104  # a wildcard bind: use loopback in URLs
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _normalize_prefix(prefix: str) -> str:
    prefix = prefix.strip()
    if prefix in ("", "/"):
        return ""
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    return prefix.rstrip("/")


class FakeReplicate(FakeState):
    """A fake Replicate HTTP API for tests and demos, served by aiohttp on 127.0.0.1.

    Register models (:meth:`add_model`), then serve: ``async with fake.serve() as base_url`` on the
    running loop, or ``with fake.serve_in_thread() as base_url`` for synchronous clients. Inspect
    ``counts`` (requests per route key), ``requests``, ``prediction(id)``, ``webhook_deliveries``.

    - ``token``: None accepts any non-empty ``Bearer``/``Token`` credential; a string requires it.
    - ``rate_limits``: None (off), ``"real"`` (600 creates and 3000 other requests a minute, bursts
      of 100 and 500), a spec such as ``"120/10"`` (a low-credit account: 120 creates a minute,
      burst 10; see :meth:`FakeRateLimits.parse`) or a :class:`FakeRateLimits`. They hold per
      token, across every connection and every client process that uses this one fake.
    - ``faults``: a :class:`Faults` (429s, 5xx, latency, dropped connections), or None.
    - ``data_ttl``: seconds after completion when input, output, logs and output files are removed
      (``data_removed: true``); None keeps them (the real API removes them after an hour).
    - ``public_base_url`` / ``stream_base_url``: the base written into ``urls.*`` and ``next`` links
      instead of the served address (to act like CometAPI, whose links point at api.replicate.com).

    Keyword-only extras: ``webhook_backoff`` (delays between retries of the final webhook),
    ``webhook_timeout`` (seconds per delivery), ``record_requests`` (keep ``requests``; switch off
    for long benchmark runs), ``record_bodies`` (keep each response body in its record, for
    schema checks), ``max_upload_size`` (bytes; larger uploads get the API's 413), ``clock``
    (a :class:`Clock` for every timer of the fake; :class:`InstantClock` makes them instant).

    Gotcha: model callables run on the serving loop. A sync callable blocks every other request
    while it runs; use ``async def`` (or ``asyncio.to_thread``) for anything slow. With
    ``serve_in_thread`` that loop is the server thread's, so asyncio objects a model waits on must
    belong to it.
    """

    # -- serving --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def serve(
        self, host: str = "127.0.0.1", port: int = 0, prefix: str = "/v1"
    ) -> AsyncIterator[str]:
        """Serve on the running loop; yields the base URL (``http://127.0.0.1:<port>/v1``).

        ``port=0`` picks a free port. ``prefix`` is the path the API lives under (``/v1``, or
        ``/replicate/v1`` to look like a proxy). On exit, running predictions are canceled (without
        webhooks) and pending webhooks dropped. Gotcha: one FakeReplicate serves once at a time.
        """

        if self._served is not None:
            raise RuntimeError("this FakeReplicate is already serving")
        prefix = _normalize_prefix(prefix)
        runner = web.AppRunner(build_app(self, prefix), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port, backlog=1024)  # benchmarks open 500+ at once
            await site.start()
            bound_port = runner.addresses[0][1]
            self._served = f"http://{_url_host(host)}:{bound_port}{prefix}"
            self._loop = asyncio.get_running_loop()
            self._closing = False
            self._buckets = {}
            await self._webhooks.start()
            yield self._served
        finally:
            await self._shutdown()
            await runner.cleanup()
            self._served = None

    @contextlib.contextmanager
    def serve_in_thread(
        self, host: str = "127.0.0.1", port: int = 0, prefix: str = "/v1"
    ) -> Iterator[str]:
        """Serve from a background thread with its own loop; yields the base URL.

        For synchronous clients (the official ``replicate`` package). Gotcha: models then run on
        the server thread's loop; don't share asyncio objects with the calling thread's loop.
        """
        ready = threading.Event()
        box: dict[str, Any] = {}

        async def main() -> None:
            stop = asyncio.Event()
            box["loop"] = asyncio.get_running_loop()
            box["stop"] = stop
            async with self.serve(host, port, prefix) as url:
                box["url"] = url
                ready.set()
                await stop.wait()

        def target() -> None:
            try:
                asyncio.run(main())
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                box["error"] = exc
            finally:
                ready.set()

        thread = threading.Thread(target=target, name="areplicate-fake-server", daemon=True)
        thread.start()
        ready.wait()
        if "url" not in box:
            thread.join()
            raise RuntimeError("the fake server thread failed to start") from box.get("error")
        try:
            yield box["url"]
        finally:
            box["loop"].call_soon_threadsafe(box["stop"].set)
            thread.join()
            if "error" in box:
                raise RuntimeError("the fake server thread failed") from box["error"]

    def __repr__(self) -> str:
        state = f"serving at {self._served}" if self._served else "not serving"
        return (
            f"<FakeReplicate {state}: {len(self._models)} model(s), "
            f"{len(self._order)} prediction(s), {len(self._active)} running>"
        )
