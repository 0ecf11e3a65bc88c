"""A tiny, complete training workspace (shards, features, gender, priors, face encoder) for training tests.

``make_training_inputs(tmp_path)`` writes dummy shards of both splits, random features of dimension ``dim``,
gender predictions equal to the labels, priors and an untrained tiny face-encoder checkpoint, and returns the
paths as a dict (``shards``, ``features``, ``gender``, ``priors``, ``face_encoder``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pipeline.testing.features import write_dummy_features, write_dummy_gender, write_dummy_priors
from pipeline.testing.shards import write_dummy_shards

DIM = 16
IMAGE_SIZE = 64

TINY_TRAIN: dict[str, Any] = {
    "width": 0.0625, "epochs": 2, "batch_size": 4, "lr": 0.001, "beta1": 0.5, "eps": 0.0001, "lr_decay": 0.9,
    "lr_decay_every": 1, "seed": 0, "device": "cpu",
}
TINY_DECODER: dict[str, Any] = {**TINY_TRAIN, "faces": "shards", "first_map": 0, "fc1_dim": 8, "alpha": 0.84,
                                 "msssim_win_size": 3, "cos_weight": 1.0}
TINY_ENCODER: dict[str, Any] = {**TINY_TRAIN, "lambdas": [1.0, 0.04, 1.2], "time_masks": 2, "time_mask_frames": 60,
                                 "time_roll": True}
TINY_EVALUATE: dict[str, Any] = {"batch_size": 8, "recall_k": [1, 2], "grid_rows": 2, "device": "cpu"}


def make_training_inputs(root: str | Path, dim: int = DIM, n_train: int = 8, n_test: int = 6) -> dict[str, Path]:
    """Write every input of train_decoder/train_encoder/evaluate under ``root``; return their paths."""
    import models.probe  # noqa: F401  (registers the architectures built below)
    import models.vggface  # noqa: F401
    from models import build_model
    from pipeline.training.checkpoints import save_checkpoint

    root = Path(root)
    shards = root / "shards"
    write_dummy_shards(shards, "train", n_samples=n_train, per_shard=5, image_size=IMAGE_SIZE, n_speakers=4)
    write_dummy_shards(shards, "test", n_samples=n_test, per_shard=4, image_size=IMAGE_SIZE, n_speakers=4)
    features = write_dummy_features(shards, root / "features", dim=dim)
    gender = write_dummy_gender(shards, root / "gender")
    priors = write_dummy_priors(root / "priors", dim=dim).parent
    torch.manual_seed(0)
    config = {"width": 0.0625, "image_size": IMAGE_SIZE, "fc_dim": dim, "num_classes": 4}
    face_encoder = root / "models" / "face_encoder.pt"
    save_checkpoint(face_encoder, build_model("vggface", config), "vggface", config)
    from pipeline.data.attributes import ATTRIBUTES

    probe_config = {"heads": {name: len(c) for name, c in ATTRIBUTES.items()}, "width": 0.125}
    probe = root / "models" / "attribute_probe.pt"
    save_checkpoint(probe, build_model("attribute_probe", probe_config).eval(), "attribute_probe", probe_config)
    return {"shards": shards, "features": features, "gender": gender, "priors": priors,
            "face_encoder": face_encoder, "probe": probe, "models": root / "models"}
