"""The paper configuration end to end through ``dvc repro`` on the 11 real GRID clips, at full model sizes (but
SCLDM's autoencoder's widths) and 224 px with one epoch per training stage (pipeline.testing.paper_smoke); and the
same overlay without gender labels stops at preflight, before any download."""
from __future__ import annotations

import json

import pytest

from pipeline.common.io import file_sha256
from pipeline.testing.paper_smoke import WEIGHTS, make_paper_smoke_project
from pipeline.testing.project import commit_all, ran_stages, read_params, run_dvc, write_params
from pipeline.training.checkpoints import read_header

PAPER_VARIANTS = ("non_prior", "neutral", "neutral_fc", "gender", "gender_fc", "male", "female")


@pytest.fixture(scope="module")
def paper_project(tmp_path_factory):
    return make_paper_smoke_project(tmp_path_factory.mktemp("paper") / "project")


@pytest.mark.slow
def test_paper_overlay_without_gender_labels_stops_at_preflight(tmp_path):
    project = make_paper_smoke_project(tmp_path / "nolabels")
    write_params(project, {"manifest": {"labels": ""}, "gender_corpus": {"csv": "", "labels": ""}})
    commit_all(project, "no labels")
    proc = run_dvc(project, "repro")
    assert proc.returncode != 0
    assert "train_encoder.variants asks for gender, gender_fc, male, female" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "there is no gender corpus" in proc.stdout + proc.stderr
    assert ran_stages(proc.stdout) <= {"sample", "face_corpus", "preflight"}
    assert not (project / "data" / "raw").exists() and not (project / "data" / "manifest").exists()


@pytest.mark.slow
@pytest.mark.longest(516)
def test_paper_configuration_runs_end_to_end_on_grid(paper_project):
    project = paper_project
    params = read_params(project)
    assert params["preprocess"]["image_size"] == 224 and params["train_decoder"]["alpha"] == 0.84
    assert params["train_decoder"]["cos_weight"] == 1.0 and params["train_encoder"]["lambdas"] == [1.0, 0.04, 1.2]
    assert tuple(params["train_encoder"]["variants"]) == PAPER_VARIANTS and params["priors"]["n"] == 10000
    assert params["face_encoder"]["sha256"] == file_sha256(project / WEIGHTS)
    proc = run_dvc(project, "repro")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    face_encoder = read_header(project / "data/models/face_encoder.pt")
    assert face_encoder["config"]["fc_dim"] == 4096 and face_encoder["config"]["width"] == 1.0
    decoder = read_header(project / "data/models/decoder.pt")
    assert decoder["config"]["fc1_dim"] == 1000 and decoder["config"]["image_size"] == 224
    assert decoder["config"]["width"] == 1.0 and decoder["config"]["feature_dim"] == 4096
    preprocess = json.loads((project / "metrics/preprocess.json").read_text())
    assert preprocess["samples_out"] == 11 and preprocess["detector"] == "dlib_cnn" and preprocess["align"] == "eyes"
    table = (project / "reports/table4.md").read_text()
    for variant in PAPER_VARIANTS:
        assert f"| {variant} |" in table, variant
        assert read_header(project / f"data/models/encoder-{variant}.pt")["config"]["width"] == 1.0
    # The voice gender classifier trained on the separate labelled corpus and was scored on its held-out speakers.
    corpus = json.loads((project / "metrics/gender_corpus_preprocess.json").read_text())
    gender = json.loads((project / "metrics/gender.json").read_text())
    # (x,y = 0.5,0.5 as VoxCeleb's face tracks; one GRID face sits too low for that and is a recorded rejection)
    assert corpus["rows_in"] == 11 and corpus["samples_out"] >= 10 and corpus["counts_add_up"]
    assert gender["trained_on"] == "gender_corpus" and gender["corpus_test"]["n"] > 0
    assert gender["corpus_test"]["n"] + gender["corpus_train"]["n"] == corpus["samples_out"]
    # real faces: the recognizer finds them, so the leakage check between the splits has something to count
    leak = json.loads((project / "metrics/eval-decoder.json").read_text())["identity_leakage"]
    assert leak["test_speakers_found"] > 0 and leak["test_speakers_with_train_match"] is not None
    priors = json.loads((project / "metrics/priors.json").read_text())
    assert priors["groups"]["neutral"]["capped"] and priors["neutral_balance"]["mode"] == "balanced"
