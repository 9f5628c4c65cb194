"""The README's "see it work" command: the demo logs, ships and reads back."""

from __future__ import annotations

import re
import subprocess
import sys

from archive_files import ROOT, subprocess_env


def test_the_demo_ships_every_record_it_logs_and_reads_them_back():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "see_it_work.py"), "--records", "1200"],
        capture_output=True, text=True, env=subprocess_env(), timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    closed = int(re.search(r"(\d+) closed archives, 1200 records", out).group(1))
    assert closed >= 2
    assert re.search(rf"{closed} archives, [\d,]+ -> [\d,]+ bytes; 0 left in", out)
    assert "1200 records in" in out
    assert "all 1200 records shipped and read back." in out
    assert ".events.gz" in out
