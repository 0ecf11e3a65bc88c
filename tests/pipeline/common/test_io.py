"""pipeline.common.io: the note an empty output directory gets (DVC warns about empty output directories), and
the one file hash."""
from __future__ import annotations

import hashlib

from pipeline.common.io import EMPTY_NOTE, file_sha256, note_if_empty


def test_empty_output_gets_a_note_that_goes_once_it_has_files(tmp_path):
    note_if_empty(tmp_path, "Nothing here: no corpus.")
    assert (tmp_path / EMPTY_NOTE).read_text(encoding="utf-8") == "Nothing here: no corpus.\n"
    (tmp_path / "train-000000.tar").write_bytes(b"x")
    note_if_empty(tmp_path, "Nothing here: no corpus.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train-000000.tar"]


def test_file_sha256_is_hashlib_of_the_whole_file_for_any_chunk_size(tmp_path):
    from models.vggface import file_sha256 as models_file_sha256

    path = tmp_path / "weights.pth"
    path.write_bytes(bytes(range(256)) * 4099)  # not a multiple of any chunk size below
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    assert {file_sha256(path, chunk) for chunk in (7, 4096, 1 << 20)} == {expected}
    assert file_sha256(str(path)) == models_file_sha256(path) == expected  # models/ keeps its own copy
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()
