"""preflight: gender variants without any gender label are refused in one sentence, before anything runs."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from pipeline.data.preflight import PreflightError, check_gender_labels


def _labels(tmp_path, rows):
    path = tmp_path / "labels.csv"
    path.write_text("video_id,speaker_id,gender\n" + "".join(f"{r}\n" for r in rows), encoding="utf-8")
    return str(path)


def test_gender_variants_need_a_gender_label(tmp_path):
    assert check_gender_labels(["non_prior", "neutral_fc"], "") == \
        {"gender_variants": [], "gender_labels": None, "gender_corpus_labels": None}
    assert check_gender_labels(["gender", "male"], _labels(tmp_path, ["v1,s1,M", "v2,s2,", "v3,s3,F"])) == \
        {"gender_variants": ["gender", "male"], "gender_labels": 2, "gender_corpus_labels": 0}
    with pytest.raises(PreflightError, match=r"asks for gender_fc, female, .*manifest.labels is empty and there is no "
                       r"gender corpus.*drop those"):
        check_gender_labels(["non_prior", "gender_fc", "female"], "")
    with pytest.raises(PreflightError, match="has no row with a gender"):
        check_gender_labels(["male"], _labels(tmp_path, ["v1,s1,", "v2,s2,"]))
    with pytest.raises(PreflightError, match="not found"):
        check_gender_labels(["male"], str(tmp_path / "missing.csv"))



def test_a_labelled_gender_corpus_is_enough(tmp_path):
    """AVSpeech has no labels: the paper's gender variants train their classifier on a separate labelled corpus."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    checked = check_gender_labels(["gender", "female"], "", _labels(corpus, ["a,s1,F", "b,s2,M", "c,s3,"]))
    assert checked == {"gender_variants": ["gender", "female"], "gender_labels": 0, "gender_corpus_labels": 2}
    with pytest.raises(PreflightError, match=r"manifest.labels is empty and .*labels.csv has none either"):
        check_gender_labels(["male"], "", _labels(corpus, ["a,s1,", "b,s2,"]))


def test_stage_refuses_with_one_line_and_writes_no_marker(tmp_path, repo_root):
    params = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    params["manifest"]["labels"] = ""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    cmd = [sys.executable, "-m", "stages.preflight", "--out", str(tmp_path / "preflight.json"),
           "--params", str(tmp_path / "params.yaml")]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("preflight: error: train_encoder.variants asks for gender, gender_fc, male, female")
    assert proc.stderr.count("\n") == 1 and not (tmp_path / "preflight.json").exists()
    params["train_encoder"]["variants"] = ["non_prior", "neutral", "neutral_fc"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 0 and (tmp_path / "preflight.json").read_text() == '{"preflight": "passed"}\n'


def test_gender_variants_match_the_variant_registry():
    from pipeline.arspm.variants import VARIANTS
    from pipeline.data.preflight import GENDER_VARIANTS
    assert set(GENDER_VARIANTS) == {n for n, v in VARIANTS.items() if v.prior in ("gender", "male", "female")
                                    or v.subset is not None}
