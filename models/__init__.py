"""Pure ``nn.Module``s and losses of AR-SPM (no file I/O except weight loading), and a registry to build them.

``build_model(arch, config)`` is how stages and checkpoints construct a model from a JSON-able config: ``arch`` is
one of ``ARCHITECTURES`` and ``config`` holds constructor keyword arguments (unknown keys are an error, missing
keys take the paper's defaults).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from models.cbam import CBAM
from models.decoder import FaceDecoder
from models.encoder import SpeechEncoder
from models.gender import GENDER_CLASSES, VoiceGenderClassifier
from models.losses import DecoderLoss, tri_item_loss
from models.probe import AttributeProbe
from models.vggface import VGGFACE_MEAN, VGGFace, VGGFaceWeightsError, load_vggface_weights

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "vggface": VGGFace,
    "face_decoder": FaceDecoder,
    "speech_encoder": SpeechEncoder,
    "voice_gender": VoiceGenderClassifier,
    "attribute_probe": AttributeProbe,
}


class ModelConfigError(ValueError):
    """An unknown architecture name or a config key the architecture does not take."""


def build_model(arch: str, config: Mapping[str, Any] | None = None) -> nn.Module:
    """Construct architecture ``arch`` with keyword arguments ``config``; ModelConfigError when either is wrong."""
    if arch not in ARCHITECTURES:
        raise ModelConfigError(f"unknown model architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    cls = ARCHITECTURES[arch]
    config = dict(config or {})
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(config) - set(accepted))
    if unknown:
        raise ModelConfigError(f"{arch} does not take config key(s) {', '.join(unknown)}; "
                               f"it takes {', '.join(accepted)}")
    try:
        return cls(**config)
    except (TypeError, ValueError) as exc:
        raise ModelConfigError(f"cannot build {arch} from config {config}: {exc}") from exc


__all__ = [
    "ARCHITECTURES", "AttributeProbe", "CBAM", "DecoderLoss", "FaceDecoder", "GENDER_CLASSES", "ModelConfigError", "SpeechEncoder",
    "VGGFACE_MEAN", "VGGFace", "VGGFaceWeightsError", "VoiceGenderClassifier", "build_model",
    "load_vggface_weights", "tri_item_loss",
]
