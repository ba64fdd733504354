"""Follow-up URLs that keep the token on the configured API host (docs/api-notes.md#proxies-and-follow-up-urls).

A prediction's ``urls.*`` and a page's ``next`` link may name another host (a proxy like CometAPI
returns ``api.replicate.com`` links). We never follow them as given: the path after ``/v1/`` is
rebased onto our own base URL.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["normalize_base_url", "rebase", "same_origin"]

DEFAULT_BASE_URL = "https://api.replicate.com/v1"


# ``scheme://user:password@`` → ``scheme://***@``: a URL shown in an error never shows a password.
_USERINFO = re.compile(r"(//)[^/?#]*@")


def _shown(url: str) -> str:
    """``url`` safe to put in an error message: any ``user:password@`` part masked as ``***@``."""
    return _USERINFO.sub(r"\1***@", url)


def normalize_base_url(url: str) -> str:
    """Strip trailing slashes and append ``/v1`` when the URL does not end with it.

    Raises ValueError for a URL that is not absolute http(s), or that carries credentials
    (``https://user:pass@host``): the client authenticates with its API token alone, and aiohttp
    would refuse to send both.
    """
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"base URL must be an absolute http(s) URL such as {DEFAULT_BASE_URL!r}, "
            f"got {_shown(url)!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"base URL must not carry a query or fragment, got {_shown(url)!r}")
    if "@" in parts.netloc:
        raise ValueError(
            f"base URL must not carry a user name or password, got {_shown(url)!r}: the client "
            "authenticates with its API token (api_token= or REPLICATE_API_TOKEN); drop the "
            "'user:password@' part"
        )
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path = f"{path}/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


def rebase(link: str, base_url: str) -> str:
    """``link`` with everything up to its ``/v1/`` replaced by ``base_url`` (query kept).

    A link without ``/v1/`` in its path keeps only its path's last segment relative to the base.
    """
    try:
        parts = urlsplit(link)
        path, query = parts.path, parts.query
    except ValueError:  # e.g. a broken IPv6 host: the path is all we want anyway
        path, _, query = link.partition("#")[0].partition("?")
    marker = path.find("/v1/")
    rest = path[marker + 4 :] if marker >= 0 else path.rsplit("/", 1)[-1]
    query = f"?{query}" if query else ""
    return f"{base_url}/{rest.lstrip('/')}{query}"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` of ``url`` with the default port filled in; ``None`` if unreadable.

    ``None`` compares unequal to every origin, so a URL we cannot parse is never trusted with the
    token. A backslash in the authority is refused outright because browsers and Python's parser
    split such URLs differently, the classic way to smuggle a host past a check like this one.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a broken IPv6 host, a port that is not a number or out of range
        return None
    if not parts.hostname or "\\" in parts.netloc:  # parsers disagree on backslashes
        return None
    scheme = parts.scheme.lower()
    return scheme, parts.hostname, port if port is not None else _DEFAULT_PORTS.get(scheme)


def same_origin(url: str, base_url: str) -> bool:
    """Whether ``url`` is on the same scheme, host and port as ``base_url``.

    A default port counts as given (``https://h`` and ``https://h:443`` are one origin); a URL
    that cannot be read (no host, a bad port) is on no one's origin.
    """
    a = _origin(url)
    return a is not None and a == _origin(base_url)
