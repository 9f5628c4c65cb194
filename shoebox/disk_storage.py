"""The original shoebox's name for the record codecs, which live in
:mod:`shoebox.codec`: ``from shoebox import disk_storage`` keeps working."""

from __future__ import annotations

from .codec import *  # noqa: F403 -- an alias: every public name of shoebox.codec
from .codec import __all__ as __all__
