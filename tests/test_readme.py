"""The README's library example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

from shoebox import ReadingRollManager

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_library_example_writes_and_reads_back(tmp_path, monkeypatch):
    section = README.read_text().split("## The library", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    monkeypatch.chdir(tmp_path)
    exec(compile(match.group(1), str(README), "exec"), {})
    assert list(ReadingRollManager("*.events", directory=tmp_path / "archive")) == [
        ({"index": str(i)}, f"payload_{i}") for i in range(10)]
