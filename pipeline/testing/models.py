"""Tiny model builders for tests: small configs of every architecture and a fake converted VGG-Face file."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

import models.decoder  # noqa: F401  (each model module registers its architecture: TINY_CONFIGS builds them all)
import models.encoder  # noqa: F401
import models.gender  # noqa: F401
import models.probe  # noqa: F401
from models.vggface import VGGFace
from pipeline.common.io import file_sha256

# Key names of the converted Oxford model vgg_face_dag.pth (Albanie's vgg_face_dag.py), in file order.
VGG_FACE_DAG_KEYS = tuple(
    f"{layer}.{kind}"
    for layer in ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_1",
                  "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7", "fc8")
    for kind in ("weight", "bias")
)

TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "vggface": {"width": 0.0625, "image_size": 32, "fc_dim": 16, "num_classes": 5},
    "face_decoder": {"feature_dim": 16, "fc1_dim": 8, "image_size": 32, "width": 0.0625},
    "speech_encoder": {"feature_dim": 16, "width": 0.0625, "fusion": "none"},
    "voice_gender": {"width": 0.0625, "hidden": 8},
}


def write_converted_vggface(path: str | Path, model: VGGFace | None = None, seed: int = 0) -> str:
    """Write ``model``'s weights (default: a seeded tiny VGGFace) in the ``vgg_face_dag.pth`` layout; return SHA-256.

    The file is what the converter produces: ``torch.save`` of an OrderedDict of tensors keyed like the DAG model.
    """
    if model is None:
        torch.manual_seed(seed)
        model = VGGFace(**TINY_CONFIGS["vggface"])
    state = model.state_dict()
    ordered = OrderedDict((k, state[k].clone()) for k in VGG_FACE_DAG_KEYS)
    with open(path, "wb") as fh:
        torch.save(ordered, fh)
    return file_sha256(path)
