"""Suite-wide setup, kept small: stamina's switches are process-global, so put them back after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stamina
from stamina.instrumentation import get_on_retry_hooks, set_on_retry_hooks


@pytest.fixture(autouse=True)
def _reset_stamina() -> Iterator[None]:
    """Undo ``stamina.set_testing`` / ``set_active`` / retry hooks a test may have changed."""
    hooks = get_on_retry_hooks()
    yield
    stamina.set_testing(False)
    stamina.set_active(True)
    set_on_retry_hooks(hooks)
