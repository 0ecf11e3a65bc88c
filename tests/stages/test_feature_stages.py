"""face_encoder → features → gender → priors through their CLIs on tiny shards (and the pretrained path)."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from models.vggface import VGGFace
from pipeline.arspm.priors import load_prior, load_priors
from pipeline.common.io import read_json
from pipeline.data.datasets import load_features
from pipeline.data.sample.corpus import CorpusConfig, generate_face_corpus
from pipeline.data.shards import ShardWriter, encode_sample, write_shard_stats
from pipeline.testing.http import RangeHTTPServer
from pipeline.testing.shards import dummy_sample, write_dummy_shards
from pipeline.training.checkpoints import read_header
from stages import face_encoder, features, gender

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PARAMS = {
    "face_encoder": {"source": "train", "weights": "", "sha256": "", "width": 0.0625, "fc_dim": 16, "epochs": 2,
                     "batch_size": 4, "lr": 0.001, "beta1": 0.9, "eps": 1e-8, "lr_decay": 1.0, "lr_decay_every": 1,
                     "dropout": 0.0, "batch_norm": True, "attribute_weight": 1.0, "seed": 0, "device": "cpu",
                     "precision": "fp32", "num_workers": 0, "nproc": 1, "rank_split": "samples", "nnodes": 1,
                     "rdzv_endpoint": "", "dist_timeout_s": 600},
    "features": {"fc7_relu": True, "batch_size": 5, "device": "cpu"},
    "gender": {"width": 0.0625, "epochs": 1, "batch_size": 4, "lr": 0.001, "beta1": 0.9, "eps": 1e-8, "lr_decay": 1.0,
               "lr_decay_every": 1, "seed": 0, "device": "cpu", "precision": "fp32", "num_workers": 0, "nproc": 1,
               "rank_split": "samples", "nnodes": 1, "rdzv_endpoint": "", "dist_timeout_s": 600},
    "priors": {"n": 100, "seed": 0, "convergence_n": [2, 4], "neutral": "random"},  # balanced: test_pipeline_e2e
}


def write_params(path, **overrides):
    params = {k: dict(v) for k, v in PARAMS.items()}
    for section, values in overrides.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params))
    return str(path)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("feature_stages")
    shards = root / "shards"
    write_dummy_shards(shards, split="train", n_samples=8, per_shard=5, image_size=32, n_speakers=4)
    write_dummy_shards(shards, split="test", n_samples=4, per_shard=5, image_size=32, n_speakers=4, seed=1)
    params = write_params(root / "params.yaml")
    generate_face_corpus(root / "corpus", CorpusConfig(n_identities=4, images_per_identity=2, frame_size=96,
                                                       image_size=32), progress=False)
    assert face_encoder.main(["--corpus", str(root / "corpus"), "--shards", str(shards),
                              "--out", str(root / "face_encoder.pt"),
                              "--metrics", str(root / "face_encoder.json"), "--plots", str(root / "plots_fe"),
                              "--params", params]) == 0
    assert features.main(["--shards", str(shards), "--face-encoder", str(root / "face_encoder.pt"),
                          "--out", str(root / "features"), "--params", params]) == 0
    assert gender.main(["--shards", str(shards), "--out", str(root / "gender"),
                        "--metrics", str(root / "gender.json"), "--plots", str(root / "plots_gender"),
                        "--params", params]) == 0
    return root, shards, params


def test_face_encoder_trained_on_identities(project):
    root, _, _ = project
    header = read_header(root / "face_encoder.pt")
    assert header["arch"] == "vggface" and header["source"] == "train"
    assert header["n_identities"] == 4 and header["image_size"] == 32 and header["config"]["num_classes"] == 4
    metrics = read_json(root / "face_encoder.json")
    assert metrics["n_heldout"] == 4 and metrics["n_train"] == 4 and 0 <= metrics["heldout_acc"] <= 1
    assert len(metrics["history"]) == 2


def test_face_encoder_refuses_a_corpus_of_another_crop_size(project, tmp_path, capsys):
    root, shards, params = project
    generate_face_corpus(tmp_path / "corpus64", CorpusConfig(n_identities=2, images_per_identity=1, frame_size=96,
                                                             image_size=64), progress=False)
    assert face_encoder.main(["--corpus", str(tmp_path / "corpus64"), "--shards", str(shards),
                              "--out", str(tmp_path / "fe.pt"), "--metrics", str(tmp_path / "fe.json"),
                              "--plots", str(tmp_path / "plots"), "--params", params]) == 2
    err = capsys.readouterr().err
    assert "has 64px images but the shards have 32px crops" in err and err.count("\n") == 1


def test_features_per_shard_deterministic(project, tmp_path):
    root, shards, params = project
    meta = read_json(root / "features" / "meta.json")
    assert meta["dim"] == 16 and meta["layer"] == "fc7" and meta["relu"] is True
    assert meta["face_encoder"]["arch"] == "vggface" and meta["counts"] == {"train": 8, "test": 4}
    names = sorted(p.name for p in (root / "features").iterdir())
    assert names == ["meta.json", "test-000000.keys.txt", "test-000000.npy", "train-000000.keys.txt",
                     "train-000000.npy", "train-000001.keys.txt", "train-000001.npy"]
    keys, array = load_features(root / "features", "train")
    assert keys == [f"train_{i:05d}" for i in range(8)] and array.shape == (8, 16) and (array >= 0).all()
    assert features.main(["--shards", str(shards), "--face-encoder", str(root / "face_encoder.pt"),
                          "--out", str(tmp_path / "again"), "--params", params]) == 0
    for name in names:
        assert (tmp_path / "again" / name).read_bytes() == (root / "features" / name).read_bytes(), name


def test_gender_predicts_every_sample(project):
    root, _, _ = project
    table = pq.read_table(root / "gender" / "predictions.parquet").to_pylist()
    assert len(table) == 12 and {r["split"] for r in table} == {"train", "test"}
    assert all(r["pred"] in ("M", "F") and 0 <= r["p_female"] <= 1 for r in table)
    assert {r["label"] for r in table} == {"M", "F"}
    metrics = read_json(root / "gender.json")
    assert metrics["available"] and metrics["test"]["n"] == 4 and 0 <= metrics["test_accuracy"] <= 1
    assert read_header(root / "gender" / "model.pt")["arch"] == "voice_gender"


def test_priors_cli_subprocess(project):
    root, _, params = project
    out = root / "priors"
    cmd = [sys.executable, "-m", "stages.priors", "--features", str(root / "features"), "--gender",
           str(root / "gender"), "--manifest", str(root / "no-manifest"), "--out", str(out), "--metrics",
           str(root / "priors.json"), "--params", params]
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "asked for n=100 but only 8" in done.stderr and "priors: dim 16" in done.stdout
    data = load_priors(out)
    assert data["neutral"].shape == (16,) and int(data["n_neutral"]) == 8
    np.testing.assert_allclose(data["neutral"], load_features(root / "features", "train")[1].mean(0), rtol=1e-5)
    metrics = read_json(root / "priors.json")
    assert [(r["n"], r["next_n"]) for r in metrics["convergence"]] == [(2, 4), (4, 100)]
    first = (out / "priors.npz").read_bytes()
    assert subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, timeout=120).returncode == 0
    assert (out / "priors.npz").read_bytes() == first
    assert load_prior(out, "neutral", expected_dim=16).dtype == np.float32


def test_gender_without_labels_and_bad_inputs(project, tmp_path, capsys):
    root, _, params = project
    unlabelled = tmp_path / "shards"
    unlabelled.mkdir()
    with ShardWriter(unlabelled / "train-000000.tar") as writer:
        for i in range(3):
            s = dummy_sample(i, image_size=32)
            s["meta"]["gender"] = None
            writer.add(s["key"], encode_sample(s["face"], s["spec"], s["audio"], s["meta"]))
    write_shard_stats(unlabelled / "train-000000.stats.json", {"samples": 3})
    assert gender.main(["--shards", str(unlabelled), "--out", str(tmp_path / "u"),
                        "--metrics", str(tmp_path / "u.json"), "--plots", str(tmp_path / "pu"),
                        "--params", params]) == 0
    assert "no labelled train samples" in capsys.readouterr().out
    rows = pq.read_table(tmp_path / "u" / "predictions.parquet").to_pylist()
    assert len(rows) == 3 and all(r["pred"] is None and r["label"] is None for r in rows)
    assert read_json(tmp_path / "u.json")["available"] is False and not (tmp_path / "u" / "model.pt").exists()
    # no shards at all → one clear line, exit 2
    assert gender.main(["--shards", str(tmp_path / "none"), "--out", str(tmp_path / "g"),
                        "--metrics", str(tmp_path / "g.json"), "--plots", str(tmp_path / "pg"),
                        "--params", params]) == 2
    assert "error: no 'train' shards" in capsys.readouterr().err
    assert features.main(["--shards", str(root / "shards"), "--face-encoder", str(tmp_path / "missing.pt"),
                          "--out", str(tmp_path / "f"), "--params", params]) == 2
    assert "error: checkpoint" in capsys.readouterr().err


def make_dag_weights(path, image_size=32):
    """A file in the converted ``vgg_face_dag.pth`` layout (plain state dict), tiny."""
    torch.manual_seed(0)
    torch.save(VGGFace(width=0.0625, image_size=image_size, fc_dim=16, num_classes=5).state_dict(), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pretrained_from_path_and_url(project, tmp_path, monkeypatch, capsys):
    root, shards, _ = project
    monkeypatch.setenv("SPEECH2FACE_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "www" / "vgg_face_dag.pth"
    weights.parent.mkdir()
    digest = make_dag_weights(weights)
    out, metrics = tmp_path / "fe.pt", tmp_path / "fe.json"
    args = ["--corpus", str(root / "corpus"), "--shards", str(shards), "--out", str(out), "--metrics", str(metrics),
            "--plots", str(tmp_path / "plots")]
    params = write_params(tmp_path / "p.yaml", face_encoder={"source": "pretrained", "weights": str(weights),
                                                            "sha256": digest})
    assert face_encoder.main(args + ["--params", params]) == 0
    header = read_header(out)
    assert header["source"] == "pretrained" and header["config"]["num_classes"] == 5
    assert header["config"]["fc_dim"] == 16 and header["image_size"] == 32
    with RangeHTTPServer(weights.parent) as server:
        params = write_params(tmp_path / "p.yaml", face_encoder={"source": "pretrained", "sha256": digest,
                                                                "weights": server.url("vgg_face_dag.pth")})
        assert face_encoder.main(args + ["--params", params]) == 0
        assert (tmp_path / "cache" / "weights" / f"{digest}.pth").is_file()
        params = write_params(tmp_path / "p.yaml", face_encoder={"source": "pretrained", "sha256": "0" * 64,
                                                                "weights": server.url("vgg_face_dag.pth")})
        assert face_encoder.main(args + ["--params", params]) == 2
        assert "have SHA-256" in capsys.readouterr().err
    params = write_params(tmp_path / "p.yaml", face_encoder={"source": "pretrained", "weights": str(weights)})
    assert face_encoder.main(args + ["--params", params]) == 2
    assert "sha256 is empty" in capsys.readouterr().err
    big = tmp_path / "big.pth"
    params = write_params(tmp_path / "p.yaml", face_encoder={"source": "pretrained", "weights": str(big),
                                                            "sha256": make_dag_weights(big, image_size=64)})
    assert face_encoder.main(args + ["--params", params]) == 2
    assert "needs 64x64 face crops but the shards have 32x32" in capsys.readouterr().err
