"""Archive names: variants of a taken name, and finalizing an ``.open`` archive."""

from __future__ import annotations

import itertools
import os

import pytest

from shoebox import naming


def test_candidates_are_the_name_then_variants_that_sort_after_it():
    names = list(itertools.islice(naming.candidates("/d/a.events"), 4))
    assert names == ["/d/a.events", "/d/a_1.events", "/d/a_2.events", "/d/a_3.events"]
    assert sorted(names) == names


def test_finalize_renames_to_the_first_free_variant_and_replaces_nothing(tmp_path):
    (tmp_path / "a.events").write_bytes(b"first")
    (tmp_path / "a_1.events").write_bytes(b"second")
    (tmp_path / "a.events.open").write_bytes(b"third")
    final = naming.finalize(str(tmp_path / "a.events.open"))
    assert final == str(tmp_path / "a_2.events")
    assert [(tmp_path / name).read_bytes() for name in ("a.events", "a_1.events", "a_2.events")
            ] == [b"first", b"second", b"third"]
    assert not (tmp_path / "a.events.open").exists()


def test_finalize_completes_a_rename_that_linked_but_did_not_unlink(tmp_path):
    """A crash between the link and the unlink of a rename leaves two names
    for one file: finalizing again drops the .open name, keeping one copy."""
    (tmp_path / "a.events.open").write_bytes(b"records")
    os.link(tmp_path / "a.events.open", tmp_path / "a.events")
    assert naming.finalize(str(tmp_path / "a.events.open")) == str(tmp_path / "a.events")
    assert os.listdir(tmp_path) == ["a.events"]


def test_finalize_refuses_a_name_that_is_not_open(tmp_path):
    (tmp_path / "a.events").write_bytes(b"")
    with pytest.raises(ValueError, match=r"a\.events is not an archive being written"):
        naming.finalize(str(tmp_path / "a.events"))
