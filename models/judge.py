"""The judge: a small ResNet that maps a face image to an identity embedding, used only to score generated faces.

It is an instrument of the comparison between speech-to-face families, not part of any of them: trained on its
own corpus of identities (the judge corpus) that the face encoder never sees, with an architecture other than the
face encoder's VGG, so that a family cannot score well by copying what the face encoder encodes. No family trains
against it (``.importlinter``: "no family trains against the judge").

Layout (channels ``round(c x width)``, at least 1; BatchNorm after every conv)::

    stem: conv 3x3/s1 c0 -> BN -> ReLU
    4 stages, each: ``blocks`` BasicBlocks (He et al. 2016), the first of stride 2, of widths c1..c4
    global average pooling -> Linear(c4, embed_dim) -> BatchNorm1d -> L2 normalisation

with ``(c0, c1, c2, c3, c4) = (32, 64, 128, 256, 512)`` at width 1 (ResNet-18's widths, ``blocks = 2``: its depth).
Input: RGB in [0, 1], ``(B, 3, H, W)`` with H, W >= 16; output: ``(B, embed_dim)`` unit vectors.

:class:`CosFaceHead` is the training head (CosFace, Wang et al. 2018: normalised class weights, cosine logits
scaled by ``scale`` with an additive margin ``margin`` on the true class). It is a separate module: the judge's
checkpoint holds the embedding network only, so a loaded judge has no classifier to train against.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from models import register
from models._scale import scaled

#: this architecture's name in checkpoints and in ``models.build_model``
ARCH = "judge_resnet"

#: stem and stage widths at width 1
WIDTHS = (32, 64, 128, 256, 512)


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 convs with BatchNorm, and a shortcut (1x1 conv + BN when the shape changes)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = (nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
                         if stride != 1 or in_ch != out_ch else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


@register(ARCH)
class JudgeResNet(nn.Module):
    """Face image -> L2-normalised identity embedding."""

    def __init__(self, width: float = 1.0, embed_dim: int = 128, blocks: int = 2) -> None:
        super().__init__()
        if int(embed_dim) < 2 or int(blocks) < 1:
            raise ValueError(f"JudgeResNet needs embed_dim >= 2 and blocks >= 1, got {embed_dim} and {blocks}")
        c0, *stages = [scaled(c, width) for c in WIDTHS]
        self.stem = nn.Sequential(nn.Conv2d(3, c0, 3, 1, 1, bias=False), nn.BatchNorm2d(c0), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        in_ch = c0
        for out_ch in stages:
            for b in range(int(blocks)):
                layers.append(BasicBlock(in_ch, out_ch, 2 if b == 0 else 1))
                in_ch = out_ch
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, int(embed_dim))
        self.bn = nn.BatchNorm1d(int(embed_dim))
        self.embed_dim = int(embed_dim)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        for module in self.modules():  # each residual branch starts near zero: the block starts as its shortcut
            if isinstance(module, BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def forward(self, images01: Tensor) -> Tensor:
        if images01.dim() != 4 or images01.shape[1] != 3 or min(images01.shape[-2:]) < 16:
            raise ValueError(f"JudgeResNet expects (B, 3, H, W) images of at least 16 px, "
                             f"got {tuple(images01.shape)}")
        x = self.stages(self.stem(images01 * 2.0 - 1.0))
        x = self.bn(self.fc(torch.flatten(self.pool(x), 1)))
        return F.normalize(x, dim=1)


class CosFaceHead(nn.Module):
    """CosFace's large-margin cosine classifier (training only): ``scale x (cos(theta_y) - margin)`` for the true
    class ``y``, ``scale x cos(theta_j)`` for the others, with L2-normalised embeddings and class weights."""

    def __init__(self, embed_dim: int, num_classes: int, scale: float = 30.0, margin: float = 0.35) -> None:
        super().__init__()
        if int(num_classes) < 2 or not scale > 0 or not 0 <= margin < 1:
            raise ValueError(f"CosFaceHead needs >= 2 classes, scale > 0 and 0 <= margin < 1, got "
                             f"{num_classes}, {scale}, {margin}")
        self.weight = nn.Parameter(torch.empty(int(num_classes), int(embed_dim)))
        nn.init.xavier_uniform_(self.weight)
        self.scale = float(scale)
        self.margin = float(margin)

    def forward(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        """Logits ``(B, classes)``; with ``labels`` the true class's logit carries the margin (the loss's input)."""
        cosine = F.linear(F.normalize(embeddings, dim=1), F.normalize(self.weight, dim=1))
        if labels is not None:
            cosine = cosine - self.margin * F.one_hot(labels, cosine.shape[1]).to(cosine.dtype)
        return self.scale * cosine
