"""``python -m areplicate``: the ``areplicate`` command (try ``python -m areplicate demo``)."""

from areplicate._cli import main

raise SystemExit(main())
