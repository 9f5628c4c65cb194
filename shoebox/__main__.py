"""``python -m shoebox``: the ``shoebox`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
