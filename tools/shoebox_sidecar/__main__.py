"""``python -m shoebox_sidecar``: the same as the ``shoebox-sidecar`` command."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
