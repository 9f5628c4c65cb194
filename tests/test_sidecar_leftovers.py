"""Stale ``.shoebox-*.partial`` copies, left by processes killed while
shipping, are removed when the sidecar starts; copies a live process is
still working on (it holds their lock), young ones and other files stay."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

from _sidecar_support import write_archives
from archive_files import subprocess_env

from shoebox.destinations import DirectoryDestination
from shoebox.shipping import STALE_TEMPORARY_AGE, Shipper
from shoebox_sidecar.cli import main

# Prepares (compresses) an archive and, inside the with-block, says so and
# waits: the state of a process killed in the middle of shipping.
_PREPARING = textwrap.dedent("""
    import sys
    from shoebox.destinations import DirectoryDestination
    from shoebox.shipping import Shipper
    shipper = Shipper(DirectoryDestination(sys.argv[2]), tmp_dir=sys.argv[3])
    with shipper.prepare(sys.argv[1]) as prepared:
        print(prepared.path, flush=True)
        sys.stdin.read()
""")


def age(path: Any, seconds: float) -> None:
    """Make ``path`` look last modified ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_copy_being_prepared_is_locked_against_removal(tmp_path: Any) -> None:
    write_archives(tmp_path / "watch", 1)
    shipper = Shipper(DirectoryDestination(tmp_path / "dest"), tmp_dir=tmp_path / "tmp")
    with shipper.prepare(str(tmp_path / "watch" / "app-000.events")) as prepared:
        later = time.time() + 3600
        assert shipper.remove_stale_temporaries(now=later) == []
        assert os.path.exists(prepared.path)
    assert not os.path.exists(prepared.path)


def test_the_copy_of_a_killed_process_stays_while_it_lives_and_goes_after(
        tmp_path: Any) -> None:
    write_archives(tmp_path / "watch", 1, records=500)
    proc = subprocess.Popen(
        [sys.executable, "-c", _PREPARING, str(tmp_path / "watch" / "app-000.events"),
         str(tmp_path / "dest"), str(tmp_path / "tmp")],
        env=subprocess_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        partial = proc.stdout.readline().strip()
        assert os.path.basename(partial).startswith(".shoebox-")
        shipper = Shipper(DirectoryDestination(tmp_path / "dest"), tmp_dir=tmp_path / "tmp")
        later = time.time() + 3600
        assert shipper.remove_stale_temporaries(now=later) == []  # it is alive
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert os.path.exists(partial)  # what a kill leaves
        assert shipper.remove_stale_temporaries(now=later) == [partial]
        assert not os.path.exists(partial)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.stdout.close()


def test_the_sidecar_removes_stale_copies_at_start_and_nothing_else(
        tmp_path: Any, capsys: Any) -> None:
    tmp, dest = tmp_path / "tmp", tmp_path / "dest"
    tmp.mkdir()
    dest.mkdir()
    stale = [tmp / ".shoebox-abc123.partial", dest / ".shoebox-def456.partial"]
    young = tmp / ".shoebox-young.partial"
    others = [tmp / ".other-abc.partial", tmp / "shoebox-abc.partial",
              tmp / ".shoebox-abc.partial.keep", dest / "copy.events.gz"]
    for path in [*stale, young, *others]:
        path.write_bytes(b"leftover")
    for path in [*stale, *others]:
        age(path, STALE_TEMPORARY_AGE + 60)
    write_archives(tmp_path / "watch", 1)
    assert main([str(tmp_path / "watch"), "--dest", str(dest), "--tmp-dir", str(tmp),
                 "--once", "--key-template", "{name}{suffix}"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    removed = sorted(line["path"] for line in lines if line.get("event") == "removed_stale")
    assert removed == sorted(map(str, stale))
    assert not any(path.exists() for path in stale)
    assert young.exists() and all(path.exists() for path in others)
    assert (dest / "app-000.events.gz").exists()
