"""Face decoder FD of AR-SPM (paper Table 2), with the fifth upsampling needed to reach the image size.

Layout (paper size; every channel count times ``width``, rounded, at least 1):
    fc1 4096 -> 1000 (``self.fc1``, the layer the encoder's tri-item loss compares), ReLU
    fc2 1000 -> 512 * s * s with s = image_size / 32 (25088 = 512x7x7 at 224), ReLU, reshape to (512, s, s)
    ConvTrans1   5/s2 512  (s -> 2s)      ConvTrans2-5 5/s1 512     CBAM(512)
    ConvTrans6   5/s2 256  (-> 4s)        ConvTrans7-8 5/s1 256     CBAM(256)
    ConvTrans9   5/s2 64   (-> 8s)        ConvTrans10  5/s1 64      CBAM(64)
    ConvTrans11  5/s2 32   (-> 16s)
    ConvTrans12  5/s2 32   (-> 32s = image_size)   <- added, not in Table 2
    Conv1 1x1 -> 3, sigmoid

Decisions (the paper is silent or inconsistent; docs/design.md, Fidelity to the paper):
- Table 2's four stride-2 layers reach only 112x112 from 7x7; we add ConvTrans12 (same 5/s2/p2/op1 recipe as
  its neighbours, 32 channels) before the final 1x1 convolution so the output is image_size x image_size.
- CBAM is in FD but the paper does not say where: one CBAM closes each upsampling stage that has stride-1
  refinement layers (after ConvTrans5, ConvTrans8, ConvTrans10), i.e. at 14, 28 and 56 px for 224 — mirroring
  VGG's blocks, whose outputs FD inverts, and cheap at those resolutions. ``use_cbam=False`` drops them.
- Every transposed convolution is followed by BatchNorm and ReLU (as in Cole et al.'s decoder the paper cites);
  the output is a sigmoid so images are in [0, 1] like the inputs of VGGFace and MS-SSIM (data_range=1).
- fc1 and fc2 are followed by ReLU (a linear fc1->fc2 pair would collapse into one linear map).
- ``first_map`` (default ``image_size / 32``, the paper's 7 at 224) is the side of the map fc2 reshapes to. A
  larger first map (a power-of-two multiple) turns that many of the first stride-2 layers into stride-1 ones, so
  the output size is unchanged; at 64 px the default 2x2 map leaves fc2 almost no room for where things are.
"""
from __future__ import annotations

from torch import Tensor, nn

from models import register
from models._scale import scaled

#: this architecture's name in checkpoints and in ``models.build_model``
ARCH = "face_decoder"
from models.cbam import CBAM

# (out_channels, stride) per transposed convolution; "cbam" marks where a CBAM closes a stage.
_LAYERS: tuple[tuple[int, int] | str, ...] = (
    (512, 2), (512, 1), (512, 1), (512, 1), (512, 1), "cbam",
    (256, 2), (256, 1), (256, 1), "cbam",
    (64, 2), (64, 1), "cbam",
    (32, 2),
    (32, 2),  # ConvTrans12: the fifth upsampling
)


@register(ARCH)
class FaceDecoder(nn.Module):
    """Map a face feature ``(B, feature_dim)`` to an RGB image in [0, 1] ``(B, 3, image_size, image_size)``."""

    def __init__(self, feature_dim: int = 4096, fc1_dim: int = 1000, image_size: int = 224,
                 width: float = 1.0, use_cbam: bool = True, first_map: int | None = None) -> None:
        super().__init__()
        if image_size < 32 or image_size % 32:
            raise ValueError(f"FaceDecoder image_size must be a positive multiple of 32, got {image_size}")
        self.feature_dim = int(feature_dim)
        self.image_size = int(image_size)
        self.start_side = int(first_map) if first_map else image_size // 32
        ratio = self.start_side // (image_size // 32)
        skipped = ratio.bit_length() - 1  # stride-2 layers that become stride 1
        if ratio < 1 or ratio != 1 << skipped or ratio * (image_size // 32) != self.start_side or skipped > 5:
            raise ValueError(f"FaceDecoder first_map must be image_size/32 ({image_size // 32}) times a power of two "
                             f"up to 32, got {first_map}")
        self.start_channels = scaled(512, width)
        self.fc1 = nn.Linear(feature_dim, fc1_dim)
        self.fc2 = nn.Linear(fc1_dim, self.start_channels * self.start_side ** 2)
        layers: list[nn.Module] = []
        in_ch = self.start_channels
        for spec in _LAYERS:
            if spec == "cbam":
                if use_cbam:
                    layers.append(CBAM(in_ch))
                continue
            channels, stride = spec
            if stride == 2 and skipped > 0:
                stride, skipped = 1, skipped - 1
            out_ch = scaled(channels, width)
            layers += [
                nn.ConvTranspose2d(in_ch, out_ch, kernel_size=5, stride=stride, padding=2,
                                   output_padding=stride - 1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
            ]
            in_ch = out_ch
        self.upsample = nn.Sequential(*layers)
        self.to_rgb = nn.Conv2d(in_ch, 3, kernel_size=1)

    def forward(self, feature: Tensor) -> Tensor:
        if feature.dim() != 2 or feature.shape[1] != self.feature_dim:
            raise ValueError(f"FaceDecoder expects features of shape (B, {self.feature_dim}), "
                             f"got {tuple(feature.shape)}")
        x = self.fc2(self.fc1(feature).relu()).relu()
        x = x.view(-1, self.start_channels, self.start_side, self.start_side)
        return self.to_rgb(self.upsample(x)).sigmoid()
