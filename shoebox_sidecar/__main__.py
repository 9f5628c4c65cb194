"""``python -m shoebox_sidecar``: the same as the ``shoebox-sidecar`` command."""

from __future__ import annotations

from .cli import script

script()
