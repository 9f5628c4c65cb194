"""The shoebox package's core modules import only the standard library; each
integration module imports only its extra's libraries, and says which extra
to install when they are missing."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys

import pytest
from archive_files import ROOT, subprocess_env

from shoebox import MissingExtra

#: Integration modules: the extra each needs, and the top-level packages it
#: may import (pandas comes with the dask extra's dask[dataframe]); those of
#: shoebox_logging may also import shoebox_logging and python-json-logger.
INTEGRATIONS = {
    "shoebox.arrow": ("arrow", {"pyarrow"}),
    "shoebox.dask": ("dask", {"dask", "fsspec", "pandas", "pyarrow"}),
    "shoebox.export": ("arrow", {"pyarrow"}),
    "shoebox_logging.structlog": ("structlog", {"structlog"}),
    "shoebox_logging.loguru": ("loguru", {"loguru"}),
    "shoebox_logging.otel": ("otel", {"opentelemetry"}),
    "shoebox.lake": ("arrow", {"pyarrow"}),
}

SCRIPT = """
import pkgutil, sys, importlib
before = set(sys.modules)  # what the interpreter's site hooks loaded
import shoebox
integrations = set(sys.argv[1:])
for module in pkgutil.iter_modules(shoebox.__path__):
    name = "shoebox." + module.name
    if module.name != "__main__" and name not in integrations:
        importlib.import_module(name)
third_party = sorted({name.split(".")[0] for name in set(sys.modules) - before}
                     - set(sys.stdlib_module_names) - {"shoebox"})
print(" ".join(third_party))
"""


def test_importing_every_core_shoebox_module_imports_no_third_party_package():
    result = subprocess.run([sys.executable, "-c", SCRIPT, *INTEGRATIONS],
                            capture_output=True, text=True, env=subprocess_env(), cwd=ROOT,
                            check=True)
    assert result.stdout.split() == []


def imported_packages(module: str) -> set[str]:
    """Top-level names of the non-shoebox packages a module's source imports."""
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add((node.module or "").split(".")[0])
    return names - set(sys.stdlib_module_names) - {"shoebox", "shoebox_logging", "pythonjsonlogger"}


@pytest.mark.parametrize("module", INTEGRATIONS)
def test_an_integration_module_imports_only_its_extras_libraries(module):
    assert imported_packages(module) == INTEGRATIONS[module][1]


@pytest.mark.parametrize(("module", "blocked"), [
    (module, package) for module, (_extra, packages) in INTEGRATIONS.items()
    for package in sorted(packages)])
def test_an_integration_without_its_library_raises_missing_extra_naming_it(
        monkeypatch, module, blocked):
    extra = INTEGRATIONS[module][0]
    # Imported whole first, so that blocking one library fails exactly the
    # import statement of ours that names it, and leaves no half-imported
    # library behind for later tests.
    importlib.import_module(module)
    monkeypatch.setitem(sys.modules, blocked, None)  # makes importing it fail
    for name in INTEGRATIONS:
        monkeypatch.delitem(sys.modules, name, raising=False)
    # The checkout install: the distribution is not on PyPI yet (issue 18).
    with pytest.raises(MissingExtra, match=rf"pip install '\.\[{extra}\]' in a shoebox checkout"):
        importlib.import_module(module)
