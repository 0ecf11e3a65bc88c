"""SF2F's perceptual loss, on the project's face encoder instead of FaceNet.

SF2F compares generated and true faces in four hidden states of a FaceNet (InceptionResnetV1 trained on
VGGFace2): ``repeat_1``, ``repeat_2``, ``repeat_3`` and the final embedding, an L1 each, weighted 1/16, 1/8, 1/4
and 1, the targets computed without gradient. FaceNet's weights are downloaded at run time, which this project
does not do, so the same loss runs on four hidden states of the project's own face encoder (the VGG-16 of the
``face_encoder`` stage), from shallow to deep as FaceNet's: the ReLU outputs of ``conv2_2``, ``conv3_3`` and
``conv4_3`` and the fc7 face feature, with SF2F's weights. The face encoder is frozen; faces of another size than
its own are resized to it first (bilinear, antialiased).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: the face encoder's hidden states the loss compares, from shallow to deep, and their weights (SF2F's for FaceNet)
LAYERS = ("conv2_2", "conv3_3", "conv4_3", "fc7")
WEIGHTS = (1 / 16, 1 / 8, 1 / 4, 1.0)


def hidden_states(vgg: nn.Module, images01: torch.Tensor, layers: tuple[str, ...] = LAYERS) -> dict[str, torch.Tensor]:
    """The named hidden states of a ``models.vggface.VGGFace`` for RGB images in [0, 1] at its image size: a
    convolution's output after its BatchNorm and ReLU (before any pooling), or ``fc7`` (the face feature)."""
    names = list(vgg.conv_names)
    x = vgg.preprocess(images01)
    out: dict[str, torch.Tensor] = {}
    for i, name in enumerate(names):
        x = getattr(vgg, name)(x)
        if vgg.batch_norm:
            x = getattr(vgg, "bn" + name[len("conv"):])(x)
        x = F.relu(x)
        if name in layers:
            out[name] = x
        block = name.split("_")[0]
        if i + 1 == len(names) or names[i + 1].split("_")[0] != block:  # a 2x2 max-pool ends every block
            x = F.max_pool2d(x, kernel_size=2, stride=2)
    if "fc7" in layers:
        x = F.relu(vgg.fc6(torch.flatten(x, 1)))
        x = vgg.fc7(x)
        out["fc7"] = F.relu(x) if vgg.fc7_relu else x
    return out


class FaceEncoderPerceptualLoss(nn.Module):
    """Σ weight · mean |h(fake) − h(real)| over :data:`LAYERS` of a frozen face encoder (targets without grad)."""

    def __init__(self, face_encoder: nn.Module, layers: tuple[str, ...] = LAYERS,
                 weights: tuple[float, ...] = WEIGHTS):
        super().__init__()
        missing = [name for name in layers if name != "fc7" and name not in face_encoder.conv_names]
        if missing or len(layers) != len(weights):
            raise ValueError(f"the face encoder has no layer {', '.join(missing)}" if missing else
                             f"{len(layers)} layers but {len(weights)} weights")
        self.face_encoder = face_encoder.eval()
        for p in self.face_encoder.parameters():
            p.requires_grad_(False)
        self.layers, self.weights = tuple(layers), tuple(float(w) for w in weights)
        self.size = int(face_encoder.image_size)

    def train(self, mode: bool = True) -> FaceEncoderPerceptualLoss:  # the face encoder stays in eval mode
        super().train(mode)
        self.face_encoder.eval()
        return self

    def _fit(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] == self.size:
            return images
        return F.interpolate(images, size=(self.size, self.size), mode="bilinear", antialias=True,
                             align_corners=False)

    def forward(self, fake01: torch.Tensor, real01: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = hidden_states(self.face_encoder, self._fit(real01.float()), self.layers)
        got = hidden_states(self.face_encoder, self._fit(fake01.float()), self.layers)
        return sum(w * (got[name] - target[name]).abs().mean() for name, w in zip(self.layers, self.weights))
