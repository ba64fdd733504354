"""Webhook routes: the signing secret (deliveries themselves are in ``_webhooks``)."""

from __future__ import annotations

from aiohttp import web

from areplicate.testing._records import dumps
from areplicate.testing._responses import (
    OTHER,
    _Handler,
    _json,
)
from areplicate.testing._routes_base import RoutesBase


class WebhookRoutes(RoutesBase):
    """``GET /webhooks/default/secret``."""

    async def webhook_secret(self, request: web.Request) -> web.StreamResponse:
        """GET /webhooks/default/secret."""
        return _json(dumps({"key": self.fake.webhook_secret}))

    def _webhook_routes(self) -> list[tuple[str, str, _Handler, str]]:
        return [("GET", "/webhooks/default/secret", self.webhook_secret, OTHER)]
