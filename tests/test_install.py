"""The install lines of README and docs install this project (issue 13: the
name ``shoebox`` on PyPI is another project, the 2014 original)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from archive_files import ROOT

from shoebox import __version__

DISTRIBUTION = "shoebox-archive"
# The extras spelled with another distribution's name: ``shoebox[s3]``.
_OTHER_NAME = re.compile(r"(?<![-\w/.])shoebox\[")


def _text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    return [ROOT / name for name in listed
            if name.endswith((".md", ".py", ".toml", ".yaml", ".service", "Containerfile"))
            and (ROOT / name).is_file()]


def test_no_install_line_or_message_names_the_other_shoebox() -> None:
    wrong = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in _text_files() if path != Path(__file__)
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if _OTHER_NAME.search(line)]
    assert not wrong, "install lines naming PyPI's other shoebox:\n" + "\n".join(wrong)


def _readme_install_line() -> str:
    """The pip commands of the README's *see it work* row (upgrading pip,
    then installing)."""
    row = next(line for line in (ROOT / "README.md").read_text().splitlines()
               if line.startswith("| see it work |"))
    command = row.split("`")[1]
    return " && ".join(part for part in command.split(" && ") if "pip " in part)


def _copy_of_the_checkout(target: Path) -> Path:
    shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(
        ".git", ".*venv*", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis", "build",
        "dist", "tests"))
    return target


def _new_venv(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """A copy of the checkout, a new venv (with the pip ``venv`` bundles) and
    the environment ``. venv/bin/activate`` gives, nothing of this test's
    own leaking in (PYTHONPATH points at this checkout)."""
    checkout = _copy_of_the_checkout(tmp_path / "checkout")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(venv))
    return checkout, venv, env


@pytest.mark.install
def test_the_readme_install_line_installs_both_commands_into_a_new_venv(tmp_path: Path) -> None:
    line = _readme_install_line()
    assert line == 'python -m pip install -U pip && pip install -e ".[sidecar]"'
    checkout, venv, env = _new_venv(tmp_path)
    # The line as written; verbose, so that the build backend's warnings show.
    env["PIP_VERBOSE"] = "1"
    installed = subprocess.run(line, shell=True, cwd=checkout, env=env, capture_output=True,
                               text=True, timeout=600, check=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # setuptools warns about deprecated metadata (a license table) at each build.
    assert "DeprecationWarning" not in installed.stdout + installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(venv / "bin" / command[0]), *command[1:]], cwd=elsewhere,
                              env=env, capture_output=True, text=True, timeout=120,
                              check=False)

    version = run("shoebox", "--version")
    assert (version.returncode, version.stdout) == (0, f"shoebox {__version__}\n"), version
    sidecar = run("shoebox-sidecar", "--help")
    assert sidecar.returncode == 0, sidecar
    assert sidecar.stdout.startswith("usage: shoebox-sidecar")
    where = run("python", "-c", "import importlib.metadata as m, shoebox, watchdog, boto3; "
                f"print(m.version({DISTRIBUTION!r}), shoebox.__file__)")
    assert where.returncode == 0, where
    assert where.stdout.split() == [__version__, str(checkout / "shoebox" / "__init__.py")]


@pytest.mark.install
@pytest.mark.slow
def test_the_readme_line_with_the_dask_extra_installs_with_the_pip_venv_bundles(
        tmp_path: Path) -> None:
    """Issue 18: ``pip install -e ".[sidecar,dask]"`` with the pip that
    ``python3 -m venv`` bundles (23.2.1 on Python 3.11) failed after 299 s
    with ResolutionImpossible. The README's line, with the dask extra
    added, starts by upgrading pip (README: why not pins)."""
    line = _readme_install_line().replace('".[sidecar]"', '".[sidecar,dask]"')
    assert line == 'python -m pip install -U pip && pip install -e ".[sidecar,dask]"'
    checkout, venv, env = _new_venv(tmp_path)
    bundled = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--version"],
                             env=env, capture_output=True, text=True, check=True, timeout=60)
    installed = subprocess.run(line, shell=True, cwd=checkout, env=env, capture_output=True,
                               text=True, timeout=900, check=False)
    assert installed.returncode == 0, (bundled.stdout, installed.stdout[-3000:],
                                       installed.stderr[-3000:])
    used = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import shoebox.dask, shoebox_sidecar.watch, s3fs, boto3; print(shoebox.dask.__name__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert (used.returncode, used.stdout) == (0, "shoebox.dask\n"), used.stderr
