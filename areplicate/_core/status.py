"""The prediction status machine (docs/api-notes.md#lifecycle).

``starting`` → ``processing`` → ``succeeded`` | ``failed`` | ``canceled``; ``aborted`` when a deadline
passes before the prediction started. An unknown status string is kept as it is and treated as not
terminal, so a new status from the API never crashes a client.
"""

from __future__ import annotations

import enum

__all__ = ["TERMINAL", "Status", "is_terminal", "parse_status"]


class Status(str, enum.Enum):
    """A prediction's status. Compare with strings freely: ``Status.SUCCEEDED == "succeeded"``.

    ``aborted`` is terminal too (the deadline passed before the model started; not billed), which the
    official clients forget.
    """

    STARTING = "starting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    ABORTED = "aborted"

    def __str__(self) -> str:
        """The bare value (``succeeded``), as the API writes it.

        A ``str`` mixin enum would otherwise print ``Status.SUCCEEDED`` in f-strings and CLI output
        on Python before 3.11's ``StrEnum``.
        """
        return self.value

    @property
    def is_terminal(self) -> bool:
        """True for succeeded, failed, canceled and aborted."""
        return self in TERMINAL


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED, Status.ABORTED})
_BY_VALUE = {s.value: s for s in Status}


def parse_status(value: str) -> Status | str:
    """The Status for a known value; an unknown value comes back unchanged (and is not terminal)."""
    return _BY_VALUE.get(value, value)


def is_terminal(status: Status | str) -> bool:
    """Whether a status (known or not) is final."""
    return status in TERMINAL  # a known value as a plain string too: Status hashes as its value
