"""The VoxCeleb recipe: metadata files in both published formats, the clip layout, and what it refuses."""
from __future__ import annotations

import csv
import subprocess
import sys
import wave

import pytest

from pipeline.data.gender_corpus import build_gender_corpus_manifest
from pipeline.data.manifest import ManifestConfig, ManifestError
from pipeline.data.recipes.voxceleb import VoxCelebError, choose_clips, prepare_voxceleb, read_voxceleb_meta
from pipeline.testing.voxceleb import make_voxceleb_layout


def test_reads_vox1_and_vox2_metadata(tmp_path):
    vox1 = tmp_path / "vox1_meta.csv"
    vox1.write_text("VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n"
                    "id10001\tA.J._Buckley\tm\tIreland\tdev\nid10002\tAJ_Cook\tf\tCanada\tdev\n"
                    "id10003\tSomeone\t?\tUSA\ttest\n", encoding="utf-8")
    genders, left_out = read_voxceleb_meta(vox1)
    assert genders == {"id10001": "M", "id10002": "F"} and left_out == {"unknown_gender": 1}
    vox2 = tmp_path / "vox2_meta.csv"
    vox2.write_text("\ufeffVoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set \nid00012 ,n000012 ,m ,dev \n"
                    "id00015 ,n000015 ,f ,test \nid00015 ,n000015 ,m ,test \n", encoding="utf-8")
    genders, left_out = read_voxceleb_meta(vox2)
    assert genders == {"id00012": "M", "id00015": "F"} and left_out == {"conflicting_speaker": 1}


def test_a_wrong_metadata_file_names_the_expected_columns(tmp_path):
    bad = tmp_path / "meta.csv"
    bad.write_text("speaker,sex\nid1,m\n", encoding="utf-8")
    with pytest.raises(VoxCelebError, match=r"not a VoxCeleb metadata file: expected a header with a 'VoxCeleb1 "
                                            r"ID' or 'VoxCeleb2 ID' column and a 'Gender' column"):
        read_voxceleb_meta(bad)
    proc = subprocess.run([sys.executable, "-m", "pipeline.data.recipes.voxceleb", "--meta", str(bad), "--root",
                           str(tmp_path), "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("voxceleb recipe: error: ")


def test_clips_are_chosen_round_robin_over_videos(tmp_path):
    for video, n in (("v1", 3), ("v2", 1), ("v3", 2)):
        (tmp_path / video).mkdir()
        for i in range(n):
            (tmp_path / video / f"{i:05d}.mp4").write_bytes(b"")
    chosen = [f"{v}/{p.stem}" for v, p in choose_clips(tmp_path, 4)]
    assert chosen == ["v1/00000", "v2/00000", "v3/00000", "v1/00001"]
    assert len(choose_clips(tmp_path, 0)) == 6


def test_recipe_on_a_voxceleb_layout_of_real_clips_gives_a_speaker_split_gender_corpus(tmp_path):
    meta = make_voxceleb_layout(tmp_path / "vox")
    with wave.open(str(tmp_path / "vox" / "mp4" / "id00003" / "cccccccccc1" / "00009.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000), w.writeframes(b"\0\0" * 16000)
    (tmp_path / "vox" / "mp4" / "id09999" / "zzzzzzzzzz1").mkdir(parents=True)  # a speaker not in the meta
    result = prepare_voxceleb(meta, tmp_path / "vox" / "mp4", tmp_path / "out", clips_per_speaker=0, jobs=2)
    c = result.counts
    assert (c["clips"], c["speakers_M"], c["speakers_F"]) == (11, 3, 2)
    assert c["clips_no_video"] == 1 and c["speakers_not_in_meta"] == 1
    rows = list(csv.reader(result.csv.open(encoding="utf-8")))
    assert len(rows) == 11 and rows[0][0] == "clips/id00001_aaaaaaaaaa1_00001.mpg"
    assert all(r[1] == "0.000" and 2.5 < float(r[2]) < 3.5 and r[3:] == ["0.500", "0.500"] for r in rows)
    assert (tmp_path / "out" / rows[0][0]).resolve().name == "brbk7n.mpg"
    manifest = build_gender_corpus_manifest(str(result.csv), str(result.labels),
                                            ManifestConfig(seed=0, test_fraction=0.4))
    kept = manifest.rows
    assert len(kept) == 11 and all(r.gender in ("M", "F") for r in kept)
    for speaker in {r.speaker_id for r in kept}:  # split by speaker: no speaker on both sides
        assert len({r.split for r in kept if r.speaker_id == speaker}) == 1
    assert {r.split for r in kept} == {"train", "test"}
    assert manifest.counts["genders"] == {"M": 7, "F": 4}


def test_gender_corpus_manifest_needs_both_paths_or_neither(tmp_path):
    cfg = ManifestConfig()
    empty = build_gender_corpus_manifest("", "", cfg)
    assert empty.rows == [] and empty.counts["configured"] is False and empty.counts["read"] == 0
    with pytest.raises(ManifestError, match="gender_corpus.labels is set but gender_corpus.csv is empty"):
        build_gender_corpus_manifest("", "labels.csv", cfg)
    with pytest.raises(ManifestError, match="gender_corpus.labels is empty"):
        build_gender_corpus_manifest("corpus.csv", "", cfg)
