"""The package's version, read from its installed metadata: ``pyproject.toml`` is the one place it is written."""

from __future__ import annotations

import functools

__all__ = ["package_version"]


@functools.cache
def package_version() -> str:
    """``areplicate``'s installed version, looked up once (about a millisecond) and then cached."""
    from importlib.metadata import version

    return version("areplicate")
