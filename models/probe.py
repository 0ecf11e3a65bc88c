"""The attribute probe: a small CNN that reads face attributes (gender, hair colour, glasses, ...) from a face image.

It is an instrument, not part of AR-SPM: trained on true face crops with known attributes, it reads the same
attributes from decoded and generated faces, so "does the generated face have the speaker's gender, hair and
glasses" becomes a number. Layout (channels times ``width``, at least 1; BatchNorm + ReLU after each conv):
    conv 3/s2 32 -> conv 3/s2 64 -> conv 3/s2 128 -> conv 3/s2 128 -> global average pooling
    -> one linear head per attribute (``heads``: name -> number of classes)
Input is RGB in [0, 1] of any size >= 16 px; the output is a dict ``name -> logits (B, classes)``.
"""
from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from models import register
from models._scale import scaled

#: this architecture's name in checkpoints and in ``models.build_model``
ARCH = "attribute_probe"


@register(ARCH)
class AttributeProbe(nn.Module):
    """Face image -> logits per attribute."""

    def __init__(self, heads: Mapping[str, int], width: float = 1.0) -> None:
        super().__init__()
        if not heads or any(int(n) < 2 for n in heads.values()):
            raise ValueError(f"AttributeProbe needs at least one head of >= 2 classes, got {dict(heads)}")
        channels = [scaled(c, width) for c in (32, 64, 128, 128)]
        layers: list[nn.Module] = []
        in_ch = 3
        for out_ch in channels:
            layers += [nn.Conv2d(in_ch, out_ch, 3, 2, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]
            in_ch = out_ch
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head_names = sorted(heads)
        self.heads = nn.ModuleDict({name: nn.Linear(in_ch, int(heads[name])) for name in self.head_names})

    def forward(self, images01: Tensor) -> dict[str, Tensor]:
        if images01.dim() != 4 or images01.shape[1] != 3 or min(images01.shape[-2:]) < 16:
            raise ValueError(f"AttributeProbe expects (B, 3, H, W) images of at least 16 px, "
                             f"got {tuple(images01.shape)}")
        x = self.body(images01 * 2.0 - 1.0)
        return {name: head(x) for name, head in self.heads.items()}
