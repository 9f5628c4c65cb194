"""The layout's promises: writing does not load shipping or S3 code."""

from __future__ import annotations

import subprocess
import sys

import pytest
from archive_files import ROOT, subprocess_env

SCRIPT = """
import sys
before = set(sys.modules)  # what the interpreter's site hooks loaded
import {module}
print(" ".join(sorted(set(sys.modules) - before)))
"""


@pytest.mark.parametrize("module", ["shoebox.roll_manager", "shoebox", "shoebox_logging"])
def test_importing_the_writer_loads_neither_shipping_nor_s3_code(module):
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(module=module)],
                            capture_output=True, text=True, env=subprocess_env(), cwd=ROOT,
                            check=True)
    loaded = set(result.stdout.split())
    assert "shoebox.roll_manager" in loaded
    unwanted = {"shoebox.shipping", "shoebox.destinations", "shoebox.s3", "shoebox.sources",
                "boto3", "botocore", "hashlib"}
    assert loaded & unwanted == set()
