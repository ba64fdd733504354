"""``python tests/cli/crashing_batch.py MOMENT N batch ...``: the CLI with a checkpoint that kills
the process (``os._exit(137)``, as a SIGKILL would) at the N-th MOMENT (``intent`` or ``created``).

The crash tests run this instead of ``python -m areplicate``: the checkpoint is injected through
``main(argv, checkpoint=...)``, so nothing in the package reads a test switch from the environment.
"""

from __future__ import annotations

import os
import sys

from areplicate._cli import main
from areplicate._cli.batch import Checkpoint


def crash_at(moment: str, n: int) -> Checkpoint:
    def checkpoint(name: str, count: int) -> None:
        if name == moment and count == n:
            os._exit(137)

    return checkpoint


if __name__ == "__main__":
    moment, n, *argv = sys.argv[1:]
    sys.exit(main(argv, checkpoint=crash_at(moment, int(n))))
