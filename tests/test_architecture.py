"""docs/architecture.md stays true: its tables name every module of the three
packages, and each row's "may import" column is exactly what the module's
source imports from the project (read from the code, lazy imports inside
functions included)."""

from __future__ import annotations

import ast
import re

import pytest
from archive_files import ROOT

PACKAGES = ("shoebox", "shoebox_logging", "shoebox_sidecar")
DOC = ROOT / "docs" / "architecture.md"
_ROW = re.compile(r"^\|\s*`(?P<module>[\w.]+)`[^|]*\|[^|]*\|(?P<imports>[^|]*)\|\s*$")


def modules(package: str) -> list[str]:
    """The package's modules by name, less ``__init__`` and ``__main__``
    (the doc's prose covers those)."""
    return sorted(path.stem for path in (ROOT / package).glob("*.py")
                  if path.stem not in ("__init__", "__main__"))


def project_imports(package: str, module: str) -> set[str]:
    """The project modules ``package.module`` imports, as its package's table
    spells them: its own package's modules bare (``archive``), another
    package's with the package (``shoebox.archive``), a package itself by its
    name (``shoebox``)."""
    path = ROOT / package / f"{module}.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([package, *filter(None, [base])])
            # "from shoebox import plugins" imports a module, "from shoebox
            # import Thing" the package's own namespace.
            targets = [f"{base}.{alias.name}"
                       if (ROOT / base.replace(".", "/") / f"{alias.name}.py").exists()
                       else base for alias in node.names]
        else:
            continue
        for target in targets:
            top = target.split(".")[0]
            if top in PACKAGES:
                found.add(_spelled(package, ".".join(target.split(".")[:2])))
    found.discard(module)
    return found


def _spelled(package: str, target: str) -> str:
    own = target.split(".")
    return own[1] if own[0] == package and len(own) > 1 else target


def documented() -> dict[str, dict[str, set[str] | None]]:
    """Each package's table in the doc: module -> the names in its "may
    import" column (``nothing``: none). A table belongs to the package named
    by the heading above it."""
    tables: dict[str, dict[str, set[str] | None]] = {package: {} for package in PACKAGES}
    current = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"^#+ .*`(shoebox\w*)`", line)
        if heading and heading.group(1) in PACKAGES:
            current = heading.group(1)
            continue
        row = _ROW.match(line)
        if row and current is not None:
            cell = row.group("imports").strip()
            names = set(re.findall(r"`([\w.]+)`", cell))
            tables[current][row.group("module")] = names if cell != "nothing" else set()
    return tables


@pytest.mark.parametrize("package", PACKAGES)
def test_the_architecture_doc_has_a_row_for_every_module(package: str) -> None:
    assert sorted(documented()[package]) == modules(package)


@pytest.mark.parametrize("package", PACKAGES)
def test_each_rows_may_import_column_is_what_the_module_imports(package: str) -> None:
    table = documented()[package]
    wrong = {}
    for module in modules(package):
        actual = project_imports(package, module)
        if table.get(module) != actual:
            wrong[module] = ", ".join(f"`{name}`" for name in sorted(actual)) or "nothing"
    assert wrong == {}, "docs/architecture.md: the 'may import' cells should read " + str(wrong)


def test_no_module_imports_a_package_above_its_own() -> None:
    """shoebox imports neither shoebox_logging nor shoebox_sidecar, and
    shoebox_logging does not import shoebox_sidecar."""
    for lower, upper in (("shoebox", "shoebox_logging"), ("shoebox", "shoebox_sidecar"),
                         ("shoebox_logging", "shoebox_sidecar")):
        for module in modules(lower):
            assert not any(name.startswith(upper)
                           for name in project_imports(lower, module)), (lower, module)

