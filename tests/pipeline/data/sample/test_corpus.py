"""The face-image corpus: counts, labelled attributes, deterministic bytes, identities apart from the sample's
speakers, crops like preprocess's, and one-sentence refusals of bad settings and bad meta."""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.common.io import read_json
from pipeline.data.attributes import ATTRIBUTES, CorpusError, check_corpus_meta
from pipeline.data.sample.corpus import OFFSET, CorpusConfig, generate_face_corpus, iter_identities
from pipeline.data.sample.identity import make_speaker
from pipeline.data.shards import iter_samples, list_shards

TINY = CorpusConfig(seed=5, n_identities=7, images_per_identity=3, frame_size=96, image_size=32, shard_size=8)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus") / "corpus"
    counts = generate_face_corpus(out, TINY, progress=False)
    assert counts == {"identities": 7, "images": 21, "shards": 3}
    return out


def test_every_image_has_its_identity_and_attributes(corpus: Path) -> None:
    samples = list(iter_samples(list_shards(corpus, "train"), fields=["face", "meta"]))
    assert len(samples) == 21
    identities = read_json(corpus / "identities.json")
    for sample in samples:
        meta = sample["meta"]
        check_corpus_meta(meta, "test")
        assert sample["face"].shape == (32, 32, 3) and sample["face"].dtype == np.uint8
        assert {k: meta[k] for k in ATTRIBUTES} == identities[meta["speaker_id"]]
    assert sorted({s["meta"]["speaker_id"] for s in samples}) == sorted(identities)
    # images of one identity differ (background, lighting, position), images of the same key do not repeat
    by_id = [s["face"].astype(int) for s in samples if s["meta"]["speaker_id"] == "face00000"]
    assert len(by_id) == 3 and np.abs(by_id[0] - by_id[1]).mean() > 2


def test_same_config_same_bytes_and_identities_are_not_the_sample_speakers(corpus: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate_face_corpus(again, TINY, progress=False, workers=2)   # two drawing processes: the same bytes
    for path in sorted(corpus.iterdir()):
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name
    ids = dict(iter_identities(TINY))
    assert ids["face00003"] == make_speaker(TINY.seed, OFFSET + 3)
    assert ids["face00003"].index != make_speaker(TINY.seed, 3).index


def test_the_face_is_centred_like_a_preprocessed_clip_frame(corpus: Path) -> None:
    # The crop is the center detector's box plus margin: the skin-coloured head sits in the middle third.
    sample = next(iter_samples(list_shards(corpus, "train")[:1], fields=["face", "meta"]))
    face = sample["face"].astype(float)
    skin = np.array(make_speaker(TINY.seed, OFFSET).skin_rgb, dtype=float)
    close = np.abs(face - skin).sum(axis=2) < 60
    rows, cols = np.nonzero(close)
    assert close.sum() > 0.05 * close.size
    assert 10 < rows.mean() < 22 and 10 < cols.mean() < 22


def test_bad_settings_and_bad_meta_get_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="unknown face_corpus params: identities"):
        CorpusConfig.from_params({"identities": 3})
    with pytest.raises(CorpusError, match="n_identities >= 2"):
        CorpusConfig.from_params({"n_identities": 1})
    good = {"key": "k", "speaker_id": "face1", "gender": "M", "age_group": "adult", "skin": 2, "hair": "red",
            "glasses": False, "beard": True}
    check_corpus_meta(good, "x.tar")
    with pytest.raises(CorpusError, match=r"x\.tar: image k has no identity"):
        check_corpus_meta({**good, "speaker_id": None}, "x.tar")
    missing = dict(good)
    del missing["glasses"]
    with pytest.raises(CorpusError, match=r"x\.tar: image k has no 'glasses' attribute"):
        check_corpus_meta(missing, "x.tar")
    with pytest.raises(CorpusError, match="hair='pink'"):
        check_corpus_meta({**good, "hair": "pink"}, "x.tar")


def test_stage_cli_writes_the_corpus_and_refuses_a_bad_key(tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    from pipeline.testing.project import REPO_ROOT, tool_env

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"face_corpus": {"seed": 0, "n_identities": 3, "images_per_identity": 1,
                                                      "frame_size": 96, "image_size": 32, "margin": 0.35,
                                                      "center_box": 0.45, "shard_size": 10}}))
    cmd = [sys.executable, "-m", "stages.face_corpus", "--out", str(tmp_path / "out"), "--params", str(params)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=tool_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "3 identities x 1 images = 3 face crops of 32px" in proc.stdout
    with tarfile.open(tmp_path / "out" / "train-000000.tar") as tar:
        names = tar.getnames()
    assert names[:2] == ["face00000_i0.face.jpg", "face00000_i0.meta.json"]
    params.write_text(yaml.safe_dump({"face_corpus": {"seed": 0, "n_identity": 3}}))
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=tool_env(), capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "error:" in proc.stderr
    assert "Traceback" not in proc.stderr
