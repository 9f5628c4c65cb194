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
    """The pip command of the README's *see it work* row."""
    row = next(line for line in (ROOT / "README.md").read_text().splitlines()
               if line.startswith("| see it work |"))
    command = row.split("`")[1]
    return command.split(" && ")[0]


def _copy_of_the_checkout(target: Path) -> Path:
    shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(
        ".git", ".*venv*", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis", "build",
        "dist", "tests"))
    return target


@pytest.mark.install
def test_the_readme_install_line_installs_both_commands_into_a_new_venv(tmp_path: Path) -> None:
    line = _readme_install_line()
    assert line == 'pip install -e ".[sidecar]"'
    checkout = _copy_of_the_checkout(tmp_path / "checkout")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    # As `. venv/bin/activate` does, and nothing of this test's own
    # environment leaking in (PYTHONPATH points at this checkout).
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(venv))
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
