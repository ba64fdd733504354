"""Webhooks: the account's signing secret (``GET /v1/webhooks/default/secret``).

Verifying and reading deliveries needs no client: see :mod:`areplicate.webhooks`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from areplicate._core.webhooks import signing_key
from areplicate._errors import UnexpectedResponseError, WebhookVerificationError

if TYPE_CHECKING:
    from areplicate._session import Session

__all__ = ["Webhooks"]


class Webhooks:
    """The webhook signing secret of your account. Reached as ``client.webhooks``."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._secret: str | None = None

    def __repr__(self) -> str:
        return f"<Webhooks {self._session.config.base_url}>"

    async def default_secret(self, *, refresh: bool = False) -> str:
        """The ``whsec_…`` secret Replicate signs your webhooks with (one per user or organization).

        Fetched once and then remembered by this client; ``refresh=True`` asks the API again. Treat
        it like a password: it is never put in an error message. An answer without a usable key
        (missing, empty after ``whsec_``, not base64) raises UnexpectedResponseError and is not
        remembered.
        """
        if self._secret is not None and not refresh:
            return self._secret
        response = await self._session.request("GET", "webhooks/default/secret")
        try:
            body = response.json()
        except UnexpectedResponseError:
            body = None
        key = body.get("key") if isinstance(body, dict) else None
        problem = None
        if not isinstance(key, str) or not key.startswith("whsec_"):
            problem = "has no 'key' starting with 'whsec_'"
        else:
            try:
                signing_key(key)  # an empty or broken key would make every delivery unverifiable
            except WebhookVerificationError:
                problem = "has a 'key' that is empty or not base64 after 'whsec_'"
        if problem is not None or not isinstance(key, str):
            # body=None and no key in the text on purpose: what came back may hold the secret.
            raise UnexpectedResponseError(
                response.status,
                "Unexpected response",
                f"the webhook secret response {problem}; ask again later "
                "(`default_secret(refresh=True)`) or contact Replicate support",
            )
        self._secret = key
        return key
