"""The attribute probe: it learns attributes from corpus crops, reports accuracy with chance, says when a label
set has a single class, reads speakers.json, and refuses bad labels with one sentence."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.probe import AttributeProbe
from pipeline.data.attributes import ATTRIBUTES
from pipeline.data.sample.corpus import CorpusConfig, generate_face_corpus
from pipeline.faces.probe import (
    ProbeError,
    accuracy,
    labels_for,
    load_corpus,
    predict,
    speaker_attributes,
    split_identities,
    train_probe,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "corpus"
    generate_face_corpus(out, CorpusConfig(seed=1, n_identities=60, images_per_identity=2, frame_size=96,
                                           image_size=32, shard_size=64), progress=False)
    return out


def test_jitter_blurs_half_the_batch_and_keeps_the_range() -> None:
    from pipeline.faces.probe import _jitter
    from pipeline.training.augment import gaussian_blur as _blur
    images = torch.zeros(8, 3, 32, 32)
    images[:, :, :, 16:] = 1.0  # a sharp vertical edge
    out = _jitter(images, torch.Generator().manual_seed(0), blur_max=1.5)
    assert out.shape == images.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # blurred images have intermediate values at the edge; the sharp ones only the two (scaled) levels
    soft = [(((img > 0.05) & (img < 0.85)).any()).item() for img in out]
    assert 0 < sum(soft) < 8
    blurred = _blur(images[:1], 1.0)
    assert torch.allclose(blurred.sum(), images[:1].sum(), rtol=1e-4)  # a normalised kernel keeps the mass


def test_probe_learns_attributes_of_unseen_identities(corpus: Path) -> None:
    params = {"width": 0.5, "epochs": 12, "batch_size": 16, "lr": 0.003, "val_fraction": 0.25, "seed": 0,
              "blur_max": 1.0}
    model, config, metrics = train_probe(corpus, params, torch.device("cpu"))
    assert config["heads"] == {name: len(c) for name, c in ATTRIBUTES.items()}
    val = metrics["val"]
    assert metrics["n_val_identities"] >= 8
    # gender, glasses and hair are large, high-contrast features: clearly above the majority class
    for name in ("gender", "glasses", "hair"):
        assert val[name]["accuracy"] > val[name]["chance"] + 0.1, (name, val[name])


def test_accuracy_reports_chance_and_refuses_single_class_labels() -> None:
    labels = {"gender": np.array([0, 0, 1, 1, -1]), "glasses": np.array([1, 1, 1, 1, 1])}
    preds = {"gender": np.array([0, 1, 1, 1, 0]), "glasses": np.array([1, 1, 1, 1, 1])}
    out = accuracy(preds, labels)
    assert out["gender"] == {"n": 4, "classes_present": 2, "chance": 0.5, "accuracy": 0.75}
    assert out["glasses"]["accuracy"] is None and "single class (True)" in out["glasses"]["note"]
    assert accuracy({"gender": np.zeros(2)}, {"gender": np.array([-1, -1])})["gender"]["accuracy"] is None


def test_speakers_json_gives_labels_and_a_missing_attribute_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "speakers.json"
    record = {"gender": "F", "age_group": "senior", "skin": 1, "hair_colour": 3, "glasses": True, "beard": False}
    path.write_text(json.dumps({"spk000": record}))
    got = speaker_attributes(path)
    assert got["spk000"]["hair"] == ATTRIBUTES["hair"].index("grey")  # seniors are drawn grey
    assert got["spk000"]["gender"] == 1 and got["spk000"]["glasses"] == 1
    labels = labels_for(["spk000", "unknown"], got)
    assert labels["gender"].tolist() == [1, -1]
    assert speaker_attributes("") == {} and speaker_attributes(tmp_path / "none.json") == {}
    del record["glasses"]
    path.write_text(json.dumps({"spk000": record}))
    with pytest.raises(ProbeError, match=r"speakers\.json: speaker spk000 lacks a readable attribute"):
        speaker_attributes(path)


def test_validation_split_is_by_identity_and_seeded() -> None:
    ids = [f"face{i // 3:05d}" for i in range(300)]
    val = split_identities(ids, 0.2, seed=0)
    assert 0.1 < val.mean() < 0.35
    for i in range(0, 300, 3):
        assert val[i] == val[i + 1] == val[i + 2]
    assert (split_identities(ids, 0.2, seed=0) == val).all() and not (split_identities(ids, 0.2, seed=1) == val).all()


def test_model_shapes_and_bad_input() -> None:
    probe = AttributeProbe({"gender": 2, "hair": 5}, width=0.25)
    out = probe(torch.rand(3, 3, 64, 64))
    assert out["gender"].shape == (3, 2) and out["hair"].shape == (3, 5)
    with pytest.raises(ValueError, match="at least 16 px"):
        probe(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=">= 2 classes"):
        AttributeProbe({"gender": 1})
    reads = predict(probe, torch.rand(5, 3, 32, 32), torch.device("cpu"), batch_size=2)
    assert reads["gender"].shape == (5,)


def test_a_corpus_image_without_an_attribute_stops_with_the_file_name(tmp_path: Path, corpus: Path) -> None:
    from pipeline.data.attributes import CorpusError
    from pipeline.data.shards import ShardWriter, encode_face, encode_meta, write_shard_stats

    bad = tmp_path / "bad"
    bad.mkdir()
    with ShardWriter(bad / "train-000000.tar") as writer:
        writer.add("x0", {"face": encode_face(np.zeros((32, 32, 3), np.uint8)),
                          "meta": encode_meta({"key": "x0", "speaker_id": "a", "gender": "M"})})
    write_shard_stats(bad / "train-000000.stats.json", {"count": 1})
    with pytest.raises(CorpusError, match=r"train-000000\.tar: image x0 has no 'age_group' attribute"):
        load_corpus(bad)
    with pytest.raises(ProbeError, match="no face corpus shards"):
        load_corpus(tmp_path / "nothing")
