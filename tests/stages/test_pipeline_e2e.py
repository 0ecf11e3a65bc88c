"""THE end-to-end test: ``dvc repro`` of the whole DAG on a tiny config in a throw-away copy of the project.

Checks every stage's outputs exist with the right shapes and keys, that ``dvc plots show`` renders the loss
curves, that a second ``dvc repro`` has nothing to do, and that the training/evaluation stages refuse bad input
with one line. Tiny config: ``pipeline.testing.project.TINY_PARAMS`` (8 speakers x 2 clips, 64 px faces,
1/16 widths, 1 epoch, variants non_prior and neutral_fc).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pipeline.testing.project import TINY_PARAMS, run_dvc, shared_tiny_run, tool_env

VARIANTS = TINY_PARAMS["train_encoder"]["variants"]
# One worker runs these: the tiny DAG is run once per session behind a file lock, and a second worker would only
# wait on it. Slow: with the four families the tiny DAG takes 150-190 s of one worker, more than half of
# make test-fast's 3 minutes
pytestmark = [pytest.mark.xdist_group("tiny_run"), pytest.mark.slow]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    # Under pytest-xdist the parent of a worker's basetemp is this session's directory (shared by the workers);
    # without xdist the parent is shared by every session, so a stale run could be reused: use basetemp then.
    base = tmp_path_factory.getbasetemp()
    return shared_tiny_run(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)


def test_every_output_exists_with_the_right_shapes(project):
    from pipeline.data.feature_files import feature_dim
    from pipeline.data.shards import iter_samples, list_shards
    from pipeline.training.checkpoints import read_header

    for split in ("train", "test"):
        shards = list_shards(project / "data/shards", split)
        assert shards, split
        sample = next(iter_samples(shards[:1]))
        assert sample["face"].shape == (64, 64, 3) and sample["spec"].shape == (2, 257, 598)
    dim = feature_dim(project / "data/features")
    with np.load(project / "data/priors/priors.npz") as priors:
        assert priors["neutral"].shape == (dim,)  # a 1-epoch gender model may predict one gender only
    decoder = read_header(project / "data/models/decoder.pt")
    assert decoder["arch"] == "face_decoder" and decoder["config"]["feature_dim"] == dim
    assert decoder["config"]["image_size"] == 64
    assert json.loads((project / "metrics/decoder.json").read_text())["epochs"] == 1
    assert (project / "plots/decoder/plots/metrics/train/loss.tsv").is_file()
    for v in VARIANTS:
        header = read_header(project / f"data/models/encoder-{v}.pt")
        assert header["variant"] == v and header["config"]["feature_dim"] == dim
        assert (project / f"plots/encoder-{v}/plots/metrics/train/loss.tsv").is_file()
        m = json.loads((project / f"metrics/eval-{v}.json").read_text())
        assert {"l1", "l2", "angle", "primed_l1", "primed_l2", "primed_angle", "face_to_face_angle", "recall",
                "recall_chance", "speaker_recall", "gender_agreement", "attributes"} <= set(m)
        assert set(m["attributes"]) == {"generated", "face_to_face", "true_face"}
        assert set(m["recall"]) == {"1", "2"} and m["n_samples"] > 0
        for name in ("per_sample.parquet", "faces.npz", "grid.png", "metrics.json", "history.json"):
            assert (project / f"data/eval/{v}/{name}").is_file(), name
    for name in ("table4.md", "figure6.png", "figure5.png", "figure4.png", "figure2.png", "summary.json"):
        assert (project / "reports" / name).stat().st_size > 0, name
    corpus = list_shards(project / "data/face_corpus", "train")
    assert sum(1 for _ in iter_samples(corpus, fields=["meta"])) == 40  # 20 identities x 2 images
    assert json.loads((project / "metrics/decoder.json").read_text())["faces"] == "corpus"
    dec = json.loads((project / "metrics/eval-decoder.json").read_text())
    assert {"l1_ratio", "diversity", "speaker_mean_l1_ratio"} <= set(dec["test"])
    assert set(dec["face_to_face_retrieval"]["recall"]) == {"1", "2"}
    # Table 4's Face-to-Face row: once, over the whole test split (not a variant's gender subset)
    f2f = dec["face_to_face_distances"]
    assert f2f["n"] == dec["test"]["n"] and {"l1", "l2", "angle"} <= set(f2f)
    assert f"| Face-to-Face | – | – | – | {f2f['l1']:.3f} |" in (project / "reports/table4.md").read_text()
    balance = json.loads((project / "metrics/priors.json").read_text())["neutral_balance"]
    assert balance["mode"] == "balanced" and balance["used"]["M"] == balance["used"]["F"] > 0
    assert set(dec["attributes"]["true_face"]) == {"gender", "age_group", "skin", "hair", "glasses", "beard"}
    assert dec["attributes"]["labelled_samples"] > 0  # speakers.json labels every test speaker
    assert set(json.loads((project / "metrics/attribute_probe.json").read_text())["val"]) == \
        set(dec["attributes"]["true_face"])
    table = (project / "reports/table4.md").read_text()
    assert all(f"| {v} |" in table for v in VARIANTS)
    # the real recognizer ran on every test face: found rates are numbers, never left out
    identity = json.loads((project / "metrics/eval-neutral_fc.json").read_text())["identity"]
    assert set(identity["face_found"]) == {"true_face", "face_to_face", "generated"}
    assert all(0.0 <= r <= 1.0 for r in identity["face_found"].values())
    assert "## Identity by a face recognizer trained on real faces" in table
    leak = dec["identity_leakage"]  # the leakage check ran on one face per train speaker and every test face
    train_speakers = {s["meta"]["speaker_id"] for s in iter_samples(list_shards(project / "data/shards", "train"),
                                                                     fields=["meta"])}
    assert leak["train_faces"] == len(train_speakers) < dec["train"]["n"] and leak["test_speakers"] > 0
    assert "Identity leakage" in table
    summary = subprocess.run([sys.executable, "-m", "pipeline.ops.summary"], cwd=project, env=tool_env(),
                             capture_output=True, text=True)
    assert summary.returncode == 0 and "recall@" in summary.stdout


def test_the_self_supervised_family_trains_label_free_and_is_compared(project):
    """contrastive and train_selfsup_gan ran through DVC; the comparison scores the family with the judge, its
    encoders on the true faces, and draws its disentanglement grid."""
    from pipeline.training.checkpoints import read_header

    header = read_header(project / "data/models/contrastive.pt")
    assert (header["family"], header["embed_dim"]) == ("contrastive", TINY_PARAMS["contrastive"]["embed_dim"])
    assert json.loads((project / "metrics/contrastive.json").read_text())["test"]["kway"]["chance@2"] == 0.5
    gan = read_header(project / "data/models/selfsup_gan.pt")
    assert (gan["family"], gan["image_size"], gan["cond_dim"]) == ("selfsup", 64, header["embed_dim"])
    compared = json.loads((project / "metrics/compare.json").read_text())["families"]
    assert set(compared) == {"arspm", "sf2f", "selfsup", "scldm"} and "encoders" not in compared["sf2f"]
    selfsup = compared["selfsup"]
    assert {"sample_recall", "kway", "attributes", "kid", "diversity"} <= set(selfsup)
    assert selfsup["encoders"]["kway"]["chance@2"] == 0.5 and selfsup["noise"]["voices"] == 2
    neighbours = selfsup["encoders"]["voice_neighbours"]  # the train split's voices vote on each test speaker
    assert neighbours["training_voices"] > neighbours["k"] == 5
    scored = {a: v["accuracy"] for a, v in neighbours["attributes"].items() if v["accuracy"] is not None}
    assert scored and all(0 <= x <= 1 for x in scored.values())  # the tiny test split: one gender, two ages
    assert compared["scldm"]["encoders"]["voice_neighbours"] == neighbours  # one contrastive space, one vote
    assert "5 nearest training voices" in (project / "reports/families.md").read_text()
    with np.load(project / "data/compare/faces.npz") as faces:
        assert faces["noise_selfsup"].shape == (2, 2, 64, 64, 3) and "noise_sf2f" not in faces.files
    assert (project / "reports/disentanglement-selfsup.png").stat().st_size > 0
    assert "true, its own encoders" in (project / "reports/families.md").read_text()
    cost = json.loads((project / "metrics/compare_cost.json").read_text())["families"]["selfsup"]
    assert cost["train_stages"] == ["contrastive", "train_selfsup_gan"] and cost["train_seconds"] > 0


def test_the_diffusion_family_trains_samples_and_is_compared(project):
    """scldm_autoencoder, scldm_train and scldm_sample ran through DVC on the priors stage's face list; the
    comparison scores SCLDM with the judge, at the sampler's settings, and draws its samples per voice."""
    from pipeline.training.checkpoints import read_header

    ae = read_header(project / "data/models/scldm_autoencoder.pt")
    assert (ae["family"], ae["stage"], ae["latent_shape"]) == ("scldm", "autoencoder", [2, 16, 16])
    assert ae["scaling_factor"] > 0 and (project / "plots/scldm_autoencoder/reconstructions.png").is_file()
    assert 0 < json.loads((project / "metrics/scldm_autoencoder.json").read_text())["test"]["reconstruction_l1"] < 1
    diffusion = read_header(project / "data/models/scldm.pt")
    assert (diffusion["stage"], diffusion["latent_shape"], diffusion["prior"]) == ("diffusion", [2, 16, 16], True)
    assert diffusion["scheduler"]["clip_sample"] is False
    faces = json.loads((project / "data/priors/neutral-faces.json").read_text())
    assert diffusion["prior_faces"] == len(faces["faces"]) > 0
    assert json.loads((project / "data/scldm_sample/sampler.json").read_text())["ddim_steps"] == 2
    assert (project / "data/scldm_sample/samples.png").stat().st_size > 0
    assert json.loads((project / "metrics/cost/scldm_sample.json").read_text())["ms_per_face"] > 0
    scldm = json.loads((project / "metrics/compare.json").read_text())["families"]["scldm"]
    assert {"sample_recall", "kway", "attributes", "kid", "diversity", "encoders", "noise"} <= set(scldm)
    assert "DDIM 2 steps" in scldm["generator"]
    assert (project / "reports/disentanglement-scldm.png").stat().st_size > 0
    cost = json.loads((project / "metrics/compare_cost.json").read_text())["families"]["scldm"]
    assert cost["train_stages"] == ["contrastive", "scldm_autoencoder", "scldm_train"] and cost["ms_per_face"] > 0


def test_nothing_to_do_and_plots_render(project, tmp_path):
    status = run_dvc(project, "status", check=True)
    assert "changed" not in status.stdout, status.stdout
    proc = run_dvc(project, "plots", "show", "-o", str(tmp_path / "plots"), check=True)
    html = (tmp_path / "plots" / "index.html").read_text()
    assert "encoder-non_prior" in html and "decoder" in html, proc.stdout


def test_stages_refuse_bad_input_with_one_line(project):
    cmd = [sys.executable, "-m", "stages.evaluate", "--variant", "neutral_fc", "--shards", "data/shards",
           "--features", "data/features", "--priors", "data/priors", "--gender", "data/gender",
           "--encoder", "data/models/encoder-non_prior.pt", "--decoder", "data/models/decoder.pt",
           "--face-encoder", "data/models/face_encoder.pt", "--probe", "data/models/attribute_probe.pt",
           "--out", "/dev/null/x", "--metrics", "/dev/null/y"]
    proc = subprocess.run(cmd, cwd=project, env=tool_env(), capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("evaluate: error:")
    assert "trained as variant 'non_prior'" in proc.stderr.strip().splitlines()[-1]
    cmd = [sys.executable, "-m", "stages.train_encoder", "--variant", "neutral", "--shards", "data/shards",
           "--features", "data/features", "--priors", "data/nope", "--gender", "data/gender",
           "--decoder", "data/models/decoder.pt", "--face-encoder", "data/models/face_encoder.pt",
           "--out", "/dev/null/x", "--metrics", "/dev/null/y", "--cost", "/dev/null/c", "--plots", "/dev/null/z"]
    proc = subprocess.run(cmd, cwd=project, env=tool_env(), capture_output=True, text=True)
    assert proc.returncode == 2 and "priors file" in proc.stderr and "Traceback" not in proc.stderr
