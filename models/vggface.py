"""VGG-Face (Parkhi et al. 2015) in the layout of the converted Oxford model ``vgg_face_dag.pth``.

The layer attributes carry the converted model's names (``conv1_1`` ... ``conv5_3``, ``fc6``, ``fc7``, ``fc8``), so
the converted state dict (Albanie's ``vgg_face_dag.py``: 13 3x3 convolutions with bias, 5 2x2 max-pools, ``fc6``
stored as a ``Linear(25088, 4096)`` over the NCHW-flattened ``pool5`` map, ``fc7`` 4096->4096, ``fc8`` 4096->2622)
loads key for key, and our own checkpoints of this class use the same keys.

Decisions (the paper leaves these open; docs/design.md, Fidelity to the paper):
- Input is float RGB in [0, 1]; the model itself does ``x * 255 - VGGFACE_MEAN`` (RGB order, std 1), the
  preprocessing the converted model expects. The mean is the rounded value in docs/design.md; the converted model's
  meta holds (129.186279296875, 104.76238250732422, 93.59396362304688), a difference below 3e-4 grey levels.
- ``fc7_relu`` picks the face feature: fc7 after its ReLU (True, default) or before it (False).
  ``classify(feature)`` always applies the ReLU itself when the feature is pre-ReLU, so
  ``classify(features(x)) == forward(x)[1]`` (in eval mode) either way.
- ``batch_norm`` (off for the converted model, whose layout has none) puts a BatchNorm after every convolution,
  as torchvision's ``vgg16_bn``: named ``bn{block}_{i}``, so such checkpoints never load as ``vgg_face_dag``.
  A plain 16-layer VGG trained from scratch needs hundreds of epochs to leave chance; with BatchNorm it learns
  the face corpus's identities in a few epochs (the ``face_encoder`` stage's ``train`` source).
- ``width`` scales the five conv blocks (64, 128, 256, 512, 512; rounded, at least 1 channel); ``fc_dim`` is
  fc6/fc7's width; ``image_size`` must be a multiple of 32 (five pools): fc6 reads ``C5 * (image_size/32)**2``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models import register
from models._scale import scaled

#: this architecture's name in checkpoints and in ``models.build_model``
ARCH = "vggface"

VGGFACE_MEAN = (129.186, 104.762, 93.594)  # RGB, 0-255 scale
_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
_POOL_AFTER = frozenset(f"conv{block}_{repeats}" for block, (_, repeats) in enumerate(_BLOCKS, start=1))


class VGGFaceWeightsError(RuntimeError):
    """VGG-Face weights are missing, fail their checksum, or do not fit the model."""


@register(ARCH)
class VGGFace(nn.Module):
    """VGG-16 face classifier returning the fc7 face feature and fc8 identity logits."""

    def __init__(self, width: float = 1.0, image_size: int = 224, fc_dim: int = 4096,
                 num_classes: int = 2622, fc7_relu: bool = True, dropout: float = 0.5,
                 batch_norm: bool = False) -> None:
        super().__init__()
        if image_size < 32 or image_size % 32:
            raise ValueError(f"VGGFace image_size must be a positive multiple of 32, got {image_size}")
        self.image_size = int(image_size)
        self.fc7_relu = bool(fc7_relu)
        self.feature_dim = int(fc_dim)
        self.batch_norm = bool(batch_norm)
        self.conv_names: list[str] = []
        in_ch = 3
        for block, (channels, repeats) in enumerate(_BLOCKS, start=1):
            out_ch = scaled(channels, width)
            for i in range(1, repeats + 1):
                name = f"conv{block}_{i}"
                setattr(self, name, nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1))
                if batch_norm:
                    setattr(self, f"bn{block}_{i}", nn.BatchNorm2d(out_ch))
                self.conv_names.append(name)
                in_ch = out_ch
        side = image_size // 32
        self.fc6 = nn.Linear(in_ch * side * side, fc_dim)
        self.fc7 = nn.Linear(fc_dim, fc_dim)
        self.fc8 = nn.Linear(fc_dim, num_classes)
        self.dropout6 = nn.Dropout(dropout)
        self.dropout7 = nn.Dropout(dropout)
        # Not persistent: the converted state dict has no mean, and the key sets must match exactly.
        self.register_buffer("mean", torch.tensor(VGGFACE_MEAN).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, images01: Tensor) -> Tensor:
        """RGB in [0, 1] -> RGB 0-255 minus the VGG-Face mean."""
        return images01 * 255.0 - self.mean.to(images01.dtype)

    def conv_features(self, images01: Tensor) -> Tensor:
        """The pool5 map ``(B, C5, image_size/32, image_size/32)``."""
        if images01.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"VGGFace expects {self.image_size}x{self.image_size} images, "
                             f"got {tuple(images01.shape[-2:])}")
        x = self.preprocess(images01)
        for name in self.conv_names:
            x = getattr(self, name)(x)
            if self.batch_norm:
                x = getattr(self, "bn" + name[len("conv"):])(x)
            x = F.relu(x)
            if name in _POOL_AFTER:
                x = F.max_pool2d(x, kernel_size=2, stride=2)
        return x

    def features(self, images01: Tensor) -> Tensor:
        """The fc7 face feature ``(B, fc_dim)``, after its ReLU when ``fc7_relu`` else before."""
        x = torch.flatten(self.conv_features(images01), 1)
        x = self.dropout6(F.relu(self.fc6(x)))
        x = self.fc7(x)
        return F.relu(x) if self.fc7_relu else x

    def classify(self, feature: Tensor) -> Tensor:
        """fc8 identity logits from an fc7 feature (pre- or post-ReLU as configured)."""
        if not self.fc7_relu:
            feature = F.relu(feature)
        return self.fc8(self.dropout7(feature))

    def forward(self, images01: Tensor) -> tuple[Tensor, Tensor]:
        feature = self.features(images01)
        return feature, self.classify(feature)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (the real weights are ~580 MB).

    The same as ``pipeline.common.io.file_sha256``, which the pipeline uses: ``models`` imports no pipeline code (the
    import-linter contract), and the loader checks the checksum itself before it unpickles anything.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def load_vggface_weights(model: VGGFace, path: str | Path, sha256: str) -> None:
    """Load converted ``vgg_face_dag.pth`` weights into ``model`` after verifying their SHA-256.

    The checksum is checked before anything is unpickled; the file is then read with ``weights_only=True``.
    Raises VGGFaceWeightsError with one sentence for: an empty checksum, a missing file, a checksum mismatch, a
    file that is not a plain tensor state dict, missing/unexpected keys, or shapes that do not fit the model.
    """
    path = Path(path)
    expected = (sha256 or "").strip().lower()
    if not expected:
        raise VGGFaceWeightsError(f"refusing to load VGGFace weights {path}: no SHA-256 given (set face_encoder.sha256)")
    if not path.is_file():
        raise VGGFaceWeightsError(f"VGGFace weights file {path} not found")
    actual = file_sha256(path)
    if actual != expected:
        raise VGGFaceWeightsError(f"VGGFace weights {path} have SHA-256 {actual}, expected {expected}: refusing to load")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses arbitrary pickled objects with an UnpicklingError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VGGFaceWeightsError(f"VGGFace weights {path} are not a plain tensor state dict ({first})") from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise VGGFaceWeightsError(f"VGGFace weights {path} are not a state dict of tensors "
                                  f"(got {type(state).__name__})")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise VGGFaceWeightsError(f"VGGFace weights {path} do not match the vgg_face_dag layout: "
                                  f"missing {missing or 'none'}, unexpected {unexpected or 'none'}")
    bad = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items() if state[k].shape != v.shape]
    if bad:
        raise VGGFaceWeightsError(f"VGGFace weights {path} have wrong shapes for this model config: {'; '.join(bad)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
