"""Which client tasks are still pending: how the fan-out tests check that nothing is left behind."""

from __future__ import annotations

import asyncio


def our_tasks() -> list[asyncio.Task[object]]:
    """Pending tasks running areplicate client code (the fake server's own tasks excluded)."""
    current = asyncio.current_task()
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        if task is not current and "areplicate/_" in filename.replace("\\", "/"):
            found.append(task)
    return found
