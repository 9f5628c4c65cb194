"""The shoebox package imports only the standard library."""

from __future__ import annotations

import subprocess
import sys

from archive_files import ROOT, subprocess_env

SCRIPT = """
import pkgutil, sys, importlib
before = set(sys.modules)  # what the interpreter's site hooks loaded
import shoebox
for module in pkgutil.iter_modules(shoebox.__path__):
    if module.name != "__main__":
        importlib.import_module("shoebox." + module.name)
third_party = sorted({name.split(".")[0] for name in set(sys.modules) - before}
                     - set(sys.stdlib_module_names) - {"shoebox"})
print(" ".join(third_party))
"""


def test_importing_every_shoebox_module_imports_no_third_party_package():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            env=subprocess_env(), cwd=ROOT, check=True)
    assert result.stdout.split() == []
