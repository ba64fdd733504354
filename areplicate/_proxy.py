"""Which proxy (if any) a request goes through: ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``NO_PROXY``.

aiohttp's own ``trust_env`` looks the environment up again on every request, in a worker thread,
and also applies ``~/.netrc`` credentials, which clash with the API token's ``Authorization``
header. So the session asks here instead, once per origin, and passes ``proxy=`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

__all__ = ["DIRECT", "Proxies", "Route"]


class Route:
    """How to reach one origin: through ``proxy`` (None: directly), with the proxy's credentials
    in ``connect_headers`` (an https:// target's CONNECT) or ``request_headers`` (an http:// target,
    whose request the proxy reads whole; the proxy strips them before forwarding)."""

    __slots__ = ("connect_headers", "proxy", "request_headers")

    def __init__(
        self,
        proxy: URL | None = None,
        connect_headers: Mapping[str, str] | None = None,
        request_headers: Mapping[str, str] | None = None,
    ) -> None:
        """No proxy and no headers is :data:`DIRECT`; ``proxy`` comes without credentials in its URL."""
        self.proxy = proxy
        self.connect_headers = connect_headers
        self.request_headers = request_headers

    def __repr__(self) -> str:  # the proxy's credentials stay out of reprs
        return "<Route direct>" if self.proxy is None else f"<Route via {self.proxy.origin()}>"


DIRECT = Route()


class Proxies:
    """The environment's proxy for each origin, looked up on first use (``enabled=False``: none).

    The environment is read once per origin: a proxy variable changed later is not seen.
    """

    __slots__ = ("_cache", "enabled")

    def __init__(self, *, enabled: bool) -> None:
        """``enabled`` is the client's ``trust_env``; the cache is keyed by scheme, host and port."""
        self.enabled = enabled
        self._cache: dict[tuple[str, str, int | None], Route] = {}

    def __repr__(self) -> str:
        """Whether proxies come from the environment; never a proxy's URL or credentials."""
        return f"<Proxies {'from the environment' if self.enabled else 'off'}>"

    def route(self, url: str) -> Route:
        """How to reach ``url``.

        Looked up in the environment on the first request to its origin, then cached for the life of
        the client (``NO_PROXY`` is honoured at that first look).
        """
        if not self.enabled:
            return DIRECT
        target = URL(url)
        key = (target.scheme, target.host or "", target.port)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = _lookup(target)
        return found


def _lookup(target: URL) -> Route:
    """The environment's route to ``target``: aiohttp's own lookup, credentials moved into headers.

    The credentials go in a ``Proxy-Authorization`` header rather than the proxy URL, so they
    never show in an error message or a repr that names the proxy.
    """
    try:
        proxy, auth = get_env_proxy_for_url(target)
    except LookupError:  # no proxy for this scheme, or NO_PROXY names the host
        return DIRECT
    if auth is None:
        return Route(proxy)
    credentials = {"Proxy-Authorization": auth.encode()}
    if target.scheme == "https":
        return Route(proxy, connect_headers=credentials)
    return Route(proxy, request_headers=credentials)
