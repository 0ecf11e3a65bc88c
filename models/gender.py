"""Voice gender classifier: the paper's "lightweight CNN" (§3.1) — five convolutions, three max-pools, two fc.

The paper gives only the layer counts. Our layout on the same spectrogram input ``(B, 2, 257, 598)``
(channel counts times ``width``, rounded, at least 1; BatchNorm + ReLU after every convolution):
    conv 7/s2 32 -> maxpool 3/s2 -> conv 5/s2 64 -> maxpool 3/s2 -> conv 3 128 -> conv 3 128 -> conv 3 256
    -> maxpool 3/s2 -> global average pooling -> fc 256 -> hidden, ReLU, dropout 0.5 -> fc hidden -> num_classes
Global average pooling before the first fc keeps the model small and independent of the spectrogram length.
Class index 0 is male ("M"), 1 is female ("F"): ``GENDER_CLASSES``.
"""
from __future__ import annotations

from torch import Tensor, nn

from models import register
from models._scale import scaled

#: this architecture's name in checkpoints and in ``models.build_model``
ARCH = "voice_gender"

GENDER_CLASSES = ("M", "F")


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


@register(ARCH)
class VoiceGenderClassifier(nn.Module):
    """Spectrogram -> gender logits ``(B, num_classes)``; class 0 = M, class 1 = F."""

    def __init__(self, width: float = 1.0, in_channels: int = 2, num_classes: int = 2, hidden: int = 256,
                 dropout: float = 0.5) -> None:
        super().__init__()
        c32, c64, c128, c256 = (scaled(c, width) for c in (32, 64, 128, 256))
        self.features = nn.Sequential(
            _conv(in_channels, c32, 7, 2), nn.MaxPool2d(3, 2, 1),
            _conv(c32, c64, 5, 2), nn.MaxPool2d(3, 2, 1),
            _conv(c64, c128, 3, 1), _conv(c128, c128, 3, 1), _conv(c128, c256, 3, 1), nn.MaxPool2d(3, 2, 1),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Sequential(nn.Linear(c256, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                        nn.Linear(hidden, num_classes))

    def forward(self, spec: Tensor) -> Tensor:
        if spec.dim() != 4:
            raise ValueError(f"VoiceGenderClassifier expects spectrograms (B, C, H, W), got {tuple(spec.shape)}")
        return self.classifier(self.features(spec))
