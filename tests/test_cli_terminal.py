"""The ``shoebox`` command as a real process: closed pipes, and the progress
bar drawn on a terminal only."""

from __future__ import annotations

import json
import os
import pty
import shlex
import subprocess

import pytest
from archive_files import SHOEBOX, items, subprocess_env, write


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory):
    """Far more JSON Lines output than a pipe buffers (about 4 MB)."""
    path = tmp_path_factory.mktemp("big") / "big.events.gz"
    return write(path, items(40000), "gzip")


def test_cat_into_head_exits_quietly(big_archive):
    command = f"{shlex.join([*SHOEBOX, 'cat', str(big_archive)])} | head -1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                            text=True, env=subprocess_env(), check=False, timeout=60)
    assert result.stderr == ""
    assert json.loads(result.stdout)["metadata"]["index"] == "0"
    assert result.returncode == 141  # shoebox's status, as for any tool cut off by SIGPIPE


@pytest.mark.parametrize("command", ["cat", "verify", "stats"])
def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, command):
    paths = [str(write(tmp_path / f"{i}.events", items(5000), "gzip")) for i in range(3)]
    result = subprocess.run([*SHOEBOX, command, *paths], capture_output=True,
                            env=subprocess_env(), check=False, timeout=60)
    assert result.returncode == 0
    assert result.stderr == b""


def run_with_terminal_stderr(argv: list[str], out_path) -> tuple[int, bytes, bytes]:
    """Run with stderr on a pseudo-terminal and stdout into ``out_path``;
    return (status, stdout, terminal output)."""
    leader, follower = pty.openpty()
    try:
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=follower, env=subprocess_env())
    finally:
        os.close(follower)
    try:
        terminal = drain(leader)
        proc.wait(timeout=60)
    finally:
        os.close(leader)
    with open(out_path, "rb") as out:
        return proc.returncode, out.read(), terminal


def drain(leader: int) -> bytes:
    """Everything written to a pseudo-terminal until its last writer closed it."""
    terminal = bytearray()
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: every holder of the terminal has closed it
            break
        if not chunk:
            break
        terminal += chunk
    return bytes(terminal)


@pytest.mark.parametrize("command", ["cat", "verify", "stats"])
def test_a_progress_bar_is_drawn_when_stderr_is_a_terminal(tmp_path, command):
    paths = [str(write(tmp_path / f"{i}.events", items(5000), "gzip")) for i in range(3)]
    status, out, terminal = run_with_terminal_stderr([*SHOEBOX, command, *paths],
                                                     tmp_path / "out")
    assert status == 0
    assert b"0/3 files" in terminal and b"2/3 files" in terminal
    assert terminal.endswith(b"\r\x1b[K")  # erased when done
    assert b"files" not in out


def test_cat_draws_no_bar_over_records_printed_on_the_terminal(tmp_path):
    path = write(tmp_path / "a.events", items(10))
    leader, follower = pty.openpty()
    try:
        result = subprocess.run([*SHOEBOX, "cat", str(path)], stdout=follower, stderr=follower,
                                env=subprocess_env(), check=False, timeout=60)
    finally:
        os.close(follower)
    try:
        terminal = drain(leader)
    finally:
        os.close(leader)
    assert result.returncode == 0
    assert b"files" not in terminal
    assert terminal.count(b"\n") == 10
