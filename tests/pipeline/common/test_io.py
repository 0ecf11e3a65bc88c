"""pipeline.common.io: the note an empty output directory gets (DVC warns about empty output directories)."""
from __future__ import annotations

from pipeline.common.io import EMPTY_NOTE, note_if_empty


def test_empty_output_gets_a_note_that_goes_once_it_has_files(tmp_path):
    note_if_empty(tmp_path, "Nothing here: no corpus.")
    assert (tmp_path / EMPTY_NOTE).read_text(encoding="utf-8") == "Nothing here: no corpus.\n"
    (tmp_path / "train-000000.tar").write_bytes(b"x")
    note_if_empty(tmp_path, "Nothing here: no corpus.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train-000000.tar"]
