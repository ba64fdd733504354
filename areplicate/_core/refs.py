"""Model references: ``owner/name``, ``owner/name:<version>`` or a bare 64-hex version id.

See docs/api-notes.md#model-references (``version`` in ``POST /predictions``).
"""

from __future__ import annotations

import functools
import re

import attrs

from areplicate._errors import InvalidReferenceError

__all__ = ["ModelRef", "parse_ref"]

_VERSION_ID = re.compile(r"[0-9a-f]{64}")
_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ACCEPTED = (
    "accepted forms: 'owner/name' (an official model), 'owner/name:<64-hex version id>', "
    "or a bare 64-hex version id"
)


@attrs.frozen
class ModelRef:
    """A parsed model reference. ``version`` is None for ``owner/name`` (the official-model route)."""

    owner: str | None
    name: str | None
    version: str | None

    @property
    def model(self) -> str | None:
        """``owner/name``, or None for a bare version id."""
        if self.owner is None:
            return None
        return f"{self.owner}/{self.name}"

    def __str__(self) -> str:
        """The reference in its canonical spelling (surrounding whitespace gone), which :func:`parse_ref`
        reads back to an equal ``ModelRef``.
        """
        if self.owner is None:
            return str(self.version)
        if self.version is None:
            return f"{self.owner}/{self.name}"
        return f"{self.owner}/{self.name}:{self.version}"


def parse_ref(ref: str) -> ModelRef:
    """Parse a model reference, raising InvalidReferenceError that lists the accepted forms."""
    if not isinstance(ref, str):
        raise InvalidReferenceError(
            f"model reference must be a string, not {type(ref).__name__}; {_ACCEPTED}"
        )
    return _parse(ref)


@functools.lru_cache(maxsize=256)  # a fan-out parses the same reference once per item
def _parse(ref: str) -> ModelRef:
    """:func:`parse_ref` once its argument is known to be a string, memoised.

    Only successes are cached (``lru_cache`` does not keep exceptions), so a bad reference in a
    fan-out raises, with the full message, for each item that uses it. The owner and name are
    checked for their characters only; whether the model exists is the API's to say.
    """
    text = ref.strip()
    if _VERSION_ID.fullmatch(text):
        return ModelRef(None, None, text)
    model, colon, version = text.partition(":")
    owner, slash, name = model.partition("/")
    problem = None
    if not slash:
        problem = "no '/' between owner and name"
    elif not _NAME_PART.fullmatch(owner) or not _NAME_PART.fullmatch(name):
        problem = "owner and name may hold only letters, digits, '.', '_' and '-'"
    elif colon and not _VERSION_ID.fullmatch(version):
        problem = "the part after ':' must be a 64-character lowercase hex version id"
    if problem is not None:
        raise InvalidReferenceError(f"invalid model reference {ref!r}: {problem}; {_ACCEPTED}")
    return ModelRef(owner, name, version if colon else None)
