"""Follow-up URLs that keep the token on the configured API host (shared/replicate-api.md section 10).

A prediction's ``urls.*`` and a page's ``next`` link may name another host (a proxy like CometAPI
returns ``api.replicate.com`` links). We never follow them as given: the path after ``/v1/`` is
rebased onto our own base URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["normalize_base_url", "rebase", "same_origin"]

DEFAULT_BASE_URL = "https://api.replicate.com/v1"


def normalize_base_url(url: str) -> str:
    """Strip trailing slashes and append ``/v1`` when the URL does not end with it.

    Raises ValueError for a URL that is not absolute http(s).
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"base URL must be an absolute http(s) URL such as {DEFAULT_BASE_URL!r}, got {url!r}"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"base URL must not carry a query or fragment, got {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path = f"{path}/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


def rebase(link: str, base_url: str) -> str:
    """``link`` with everything up to its ``/v1/`` replaced by ``base_url`` (query kept).

    A link without ``/v1/`` in its path keeps only its path's last segment relative to the base.
    """
    parts = urlsplit(link)
    path = parts.path
    marker = path.find("/v1/")
    rest = path[marker + 4 :] if marker >= 0 else path.rsplit("/", 1)[-1]
    query = f"?{parts.query}" if parts.query else ""
    return f"{base_url}/{rest.lstrip('/')}{query}"


def same_origin(url: str, base_url: str) -> bool:
    """Whether ``url`` is on the same scheme, host and port as ``base_url``."""
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
