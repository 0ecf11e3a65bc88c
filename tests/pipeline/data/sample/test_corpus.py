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


# ------------------------------------------------------------------------------------- the generator offset

#: SHA-256 of TINY's meta.json and identities.json as written before the offset was an argument: the face corpus's
#: files must not change (DVC would rerun everything after face_corpus)
TINY_JSON_SHA256 = {
    "identities.json": "334584036b1c3983a0f0f290dd0b3a0f3fc288af6249b368d919d60ee674bc47",
    "meta.json": "5b4c281ff57f71aaab925a75fcad102c50701c404408ac6f9b37a78ed2754888",
}


def test_the_default_offset_writes_the_face_corpus_bytes_as_before(corpus: Path, tmp_path: Path) -> None:
    from pipeline.common.io import file_sha256

    for name, digest in TINY_JSON_SHA256.items():
        assert file_sha256(corpus / name) == digest, name
    explicit = tmp_path / "explicit"
    generate_face_corpus(explicit, TINY, progress=False, offset=OFFSET)
    assert sorted(p.name for p in explicit.iterdir()) == sorted(p.name for p in corpus.iterdir())
    for path in sorted(corpus.iterdir()):
        assert (explicit / path.name).read_bytes() == path.read_bytes(), path.name
    assert "generator" not in read_json(corpus / "meta.json")


def test_a_judge_corpus_is_drawn_apart_and_records_its_generator_indices(corpus: Path, tmp_path: Path) -> None:
    from pipeline.data.corpus_index import corpus_generator
    from pipeline.data.sample.corpus import JUDGE_OFFSET, attributes_of

    judge = tmp_path / "judge"
    counts = generate_face_corpus(judge, TINY, progress=False, offset=JUDGE_OFFSET, section="judge_corpus")
    assert counts == {"identities": 7, "images": 21, "shards": 3}
    meta, identities = read_json(judge / "meta.json"), read_json(judge / "identities.json")
    assert meta["generator"]["offset"] == JUDGE_OFFSET == 2_000_000
    assert (meta["generator"]["first_index"], meta["generator"]["last_index"]) == (JUDGE_OFFSET, JUDGE_OFFSET + 6)
    assert sorted(identities) == [f"judge{i:05d}" for i in range(7)]
    assert identities["judge00003"]["generator_index"] == JUDGE_OFFSET + 3
    assert {k: v for k, v in identities["judge00003"].items() if k != "generator_index"} == attributes_of(
        make_speaker(TINY.seed, JUDGE_OFFSET + 3))
    for sample in iter_samples(list_shards(judge, "train"), fields=["meta"]):
        check_corpus_meta(sample["meta"], "judge")
        assert sample["meta"]["speaker_id"].startswith("judge")
    # read back from the files: the face corpus (nothing recorded: OFFSET) and the judge's, disjoint
    face, drawn = corpus_generator(corpus), corpus_generator(judge)
    assert face["recorded"] is False and face["offset"] == OFFSET
    assert set(face["indices"].values()) == set(range(OFFSET, OFFSET + 7))
    assert drawn["recorded"] is True and set(drawn["indices"].values()) == set(range(JUDGE_OFFSET, JUDGE_OFFSET + 7))
    # the same people are not drawn twice: the crops differ from the face corpus's
    a = next(iter_samples(list_shards(corpus, "train")[:1], fields=["face"]))["face"].astype(int)
    b = next(iter_samples(list_shards(judge, "train")[:1], fields=["face"]))["face"].astype(int)
    assert np.abs(a - b).mean() > 1


def test_a_corpus_that_would_reach_the_next_band_is_refused_in_one_sentence(tmp_path: Path) -> None:
    from pipeline.data.sample.corpus import JUDGE_OFFSET

    big = CorpusConfig(n_identities=1_000_000)
    with pytest.raises(CorpusError, match=r"^judge_corpus\.n_identities = 1,000,000 is too many: .* indices "
                                          r"\(2,000,000\.\.\.2,999,999\) never reach another corpus's band .*"
                                          r"\(use fewer than 1,000,000\)$"):
        generate_face_corpus(tmp_path / "big", big, progress=False, offset=JUDGE_OFFSET, section="judge_corpus")
    with pytest.raises(CorpusError, match="speech sample's speakers"):
        generate_face_corpus(tmp_path / "low", TINY, progress=False, offset=10)
    assert not (tmp_path / "big").exists() and not (tmp_path / "low").exists()


def test_unreadable_generator_records_are_one_sentence(corpus: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from pipeline.data.corpus_index import corpus_generator

    with pytest.raises(CorpusError, match="not a finished face corpus"):
        corpus_generator(tmp_path)
    renamed = tmp_path / "renamed"
    shutil.copytree(corpus, renamed)
    identities = read_json(renamed / "identities.json")
    identities["someone"] = identities.pop("face00000")
    (renamed / "identities.json").write_text(json.dumps(identities))
    with pytest.raises(CorpusError, match="records no generator offset"):
        corpus_generator(renamed)


def test_judge_corpus_stage_cli_draws_at_the_judge_offset_and_refuses_too_many_identities(tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    from pipeline.testing.project import REPO_ROOT, tool_env

    section = {"seed": 0, "n_identities": 3, "images_per_identity": 1, "frame_size": 96, "image_size": 32,
               "margin": 0.35, "center_box": 0.45, "shard_size": 10}
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"judge_corpus": section}))
    cmd = [sys.executable, "-m", "stages.judge_corpus", "--out", str(tmp_path / "out"), "--params", str(params)]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=tool_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "3 identities (generator indices 2,000,000..2,000,002)" in proc.stdout
    assert read_json(tmp_path / "out" / "meta.json")["generator"]["offset"] == 2_000_000
    params.write_text(yaml.safe_dump({"judge_corpus": {**section, "n_identities": 1_000_000}}))
    proc = subprocess.run(cmd[:3] + ["--out", str(tmp_path / "big"), "--params", str(params)], cwd=REPO_ROOT,
                          env=tool_env(), capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "judge_corpus.n_identities' = 1000000 is not allowed: it must be less than 1000000" in proc.stderr
    assert not (tmp_path / "big").exists()
