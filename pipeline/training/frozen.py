"""The frozen networks the trainers and evaluations run through: checkpoints loaded in eval mode without
gradients, the face encoder set to the kind of fc7 feature (pre/post-ReLU) the features hold, and the names of
the architectures in checkpoints.
"""
from __future__ import annotations

from pathlib import Path

import torch

from models.vggface import ARCH as ARCH_FACE_ENCODER
from pipeline.common.errors import TrainingError


def load_frozen(path: str | Path, arch: str, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """Load a checkpoint as a frozen module (eval mode, no parameter gradients)."""
    from pipeline.training.checkpoints import load_checkpoint

    if not Path(path).is_file():
        raise TrainingError(f"checkpoint {path} not found")
    model, header = load_checkpoint(path, arch)
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, header


def load_face_encoder(path: str | Path, features_dir: str | Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """The frozen face encoder, set to give the kind of fc7 feature (pre/post-ReLU) that ``features_dir`` holds.

    Its fc7 feature (FD's cosine term, Face-to-Face retrieval) and its fc8 logits (the tri-item loss, which add
    fc7's ReLU only to pre-ReLU features) then compare like with like, whatever the checkpoint was saved with.
    """
    from pipeline.data.feature_files import feature_relu

    model, header = load_frozen(path, ARCH_FACE_ENCODER, device)
    model.fc7_relu = feature_relu(features_dir)
    return model, header


def check_feature_kind(header: dict, path: str | Path, features_dir: str | Path) -> None:
    """Refuse a decoder or encoder checkpoint trained on the other kind of fc7 feature than ``features_dir``'s."""
    from pipeline.data.feature_files import feature_kind, feature_relu

    trained = header.get("feature_relu")
    relu = feature_relu(features_dir)
    if trained is not None and bool(trained) != relu:
        raise TrainingError(f"{path} was trained on {feature_kind(bool(trained))} face features but {features_dir} "
                            f"holds {feature_kind(relu)} ones (features.fc7_relu changed: rerun the stages after "
                            f"features)")


def peek_image_size(dataset) -> int:
    """Side of the face crops of a split (from its first sample)."""
    for item in dataset:
        return int(item["face"].shape[-1])
    raise TrainingError(f"split '{dataset.split}' has no samples")
