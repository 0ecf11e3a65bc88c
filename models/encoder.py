"""Speech encoder SE of AR-SPM (paper Table 3), with residual prior fusion.

Layout on a spectrogram ``(B, 2, 257, 598)`` (channels = compressed real/imag, H = 257 frequency bins,
W = 598 frames), channel counts times ``width`` (rounded, at least 1):
    Conv1 7/s2/p1 64 -> MaxPool1 3/s2 -> Conv2 5/s2/p1 128 -> MaxPool2 3/s2 -> Conv3 3/s1/p1 256
    -> Conv4 3/s1/p1 512 -> Conv5 3/s1/p1 512 -> MaxPool3 (5,3)/(3,2) -> CBAM(512)
    -> Fc1: 1x1 convolution to feature_dim (4096) -> global average pooling -> Fc2: Linear feature_dim -> feature_dim
Spatial sizes at paper input: 127x297, 63x148, 31x73, 15x36, 15x36, 4x17, then 1x1 after pooling.

Decisions (paper silent or ambiguous; docs/design.md, Fidelity to the paper):
- "Fc1, kernel 1, 4096" is read as a 1x1 convolution (flattening would make a 151M-parameter layer), followed by
  global average pooling ("AvgPool1"); Fc2 is a Linear layer. ``feature_dim`` is not scaled by ``width``: it must
  equal the face feature's size.
- BatchNorm + ReLU follow every convolution including Fc1, as in Speech2Face; Fc2 is linear (no activation), since
  the target feature may be pre-ReLU fc7.
- The (5,3)/(3,2) pool is applied as written to (H=frequency, W=time) of our (B, 2, 257, 598) layout.
- Fusion (paper §3.1, Table 3 calls Fc2 "a fusion layer"): ``none`` returns SE(s) (the non-prior variant);
  ``sum`` returns SE(s) + prior; ``fc`` returns fc(SE(s) + prior) with an extra Linear feature_dim -> feature_dim
  (``self.fusion_fc``), the "+fc" models of Table 4.
"""
from __future__ import annotations

from torch import Tensor, nn

from models import register
from models._scale import scaled

#: this architecture's name in checkpoints and in ``models.build_model``
ARCH = "speech_encoder"
from models.cbam import CBAM

FUSIONS = ("none", "sum", "fc")


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


@register(ARCH)
class SpeechEncoder(nn.Module):
    """Spectrogram -> final speech feature ``(B, feature_dim)``, optionally fused with a face prior."""

    def __init__(self, feature_dim: int = 4096, width: float = 1.0, fusion: str = "none",
                 use_cbam: bool = True, in_channels: int = 2) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"SpeechEncoder fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        self.feature_dim = int(feature_dim)
        self.fusion = fusion
        c64, c128, c256, c512 = (scaled(c, width) for c in (64, 128, 256, 512))
        self.body = nn.Sequential(
            _conv_bn_relu(in_channels, c64, 7, 2, 1),
            nn.MaxPool2d(3, 2),
            _conv_bn_relu(c64, c128, 5, 2, 1),
            nn.MaxPool2d(3, 2),
            _conv_bn_relu(c128, c256, 3, 1, 1),
            _conv_bn_relu(c256, c512, 3, 1, 1),
            _conv_bn_relu(c512, c512, 3, 1, 1),
            nn.MaxPool2d((5, 3), (3, 2)),
        )
        self.cbam = CBAM(c512) if use_cbam else nn.Identity()
        self.fc1 = _conv_bn_relu(c512, feature_dim, 1, 1, 0)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc2 = nn.Linear(feature_dim, feature_dim)
        self.fusion_fc = nn.Linear(feature_dim, feature_dim) if fusion == "fc" else None

    def speech_feature(self, spec: Tensor) -> Tensor:
        """SE(s): the encoder's own output before any prior fusion."""
        if spec.dim() != 4:
            raise ValueError(f"SpeechEncoder expects spectrograms (B, C, 257, 598), got {tuple(spec.shape)}")
        x = self.cbam(self.body(spec))
        return self.fc2(self.pool(self.fc1(x)).flatten(1))

    def forward(self, spec: Tensor, prior: Tensor | None = None) -> Tensor:
        feature = self.speech_feature(spec)
        if self.fusion == "none":
            if prior is not None:
                raise ValueError("SpeechEncoder with fusion 'none' takes no prior; use fusion 'sum' or 'fc'")
            return feature
        if prior is None:
            raise ValueError(f"SpeechEncoder with fusion '{self.fusion}' needs a prior feature")
        if prior.shape[-1] != self.feature_dim or prior.dim() not in (1, 2) or (
                prior.dim() == 2 and prior.shape[0] not in (1, feature.shape[0])):
            raise ValueError(f"prior must have shape ({self.feature_dim},) or (B, {self.feature_dim}) "
                             f"with B = {feature.shape[0]}, got {tuple(prior.shape)}")
        fused = feature + prior.to(feature.dtype)
        return self.fusion_fc(fused) if self.fusion_fc is not None else fused
