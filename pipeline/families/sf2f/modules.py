"""SF2F's networks as pure ``nn.Module``s (no I/O), after the official code (BAI-Yeqi/SF2F_PyTorch, Apache-2.0).

Paper sizes are the defaults; every width is a constructor argument so the demo can run narrow. Nothing here draws
random numbers of its own: weights come from PyTorch's default initialisers, so ``torch.manual_seed`` before
construction makes them reproducible.

Parameter counts at the defaults (64 px; tests/pipeline/families/sf2f/test_modules.py derives them from the
reference's layer list): VoiceEncoder 4,848,192; AttentionFuser 786,432; FaceDecoder 11,566,083 (64 px) and
11,568,387 (128 px); PatchDiscriminator 659,521; IdentityDiscriminator 923,457 + 1025·num_ids.

Inputs and outputs:

- ``VoiceEncoder``: log-mel ``(B, mel_bins, T)`` → unit embedding ``(B, embed_dim)``;
  ``segment_embeddings``: ``(B, N, mel_bins, L)`` → ``(B, N, embed_dim)``, each unit norm.
- ``AttentionFuser``: ``(B, N, dim)`` segment embeddings (+ optional ``(B, N)`` mask) → unit ``(B, dim)``.
- ``FaceDecoder``: ``(B, embed_dim)`` → images ``(B, 3, S, S)`` in [0, 1] (a sigmoid on the reference's head).
- ``PatchDiscriminator``: images ``(B, 3, S, S)`` → logits ``(B, 1, h, w)``.
- ``IdentityDiscriminator``: images → ``(real_fake_logits (B,), id_logits (B, num_ids))``.
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

INCEPTION_KERNELS = (2, 3, 5, 7)


class Inception1DBlock(nn.Module):
    """Four parallel ``Conv1d`` branches (k = 2, 3, 5, 7; stride 2; padding k//2; no bias), each BN1d + ReLU with
    ``out_ch // 4`` channels, concatenated to ``out_ch`` channels at half the length.

    With padding k//2 the k=3/5/7 branches give ``ceil(T/2)`` frames and the k=2 branch ``floor(T/2) + 1``, one more
    when T is even; as in the reference, that branch loses its last frame.
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        if out_ch < 4 or out_ch % 4:
            raise ValueError(f"Inception1DBlock needs out_ch to be a positive multiple of 4, got {out_ch}.")
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv1d(in_ch, out_ch // 4, k, stride=2, padding=k // 2, bias=False),
                          nn.BatchNorm1d(out_ch // 4), nn.ReLU(inplace=True))
            for k in INCEPTION_KERNELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        length = min(o.shape[-1] for o in outs)
        return torch.cat([o[..., :length] for o in outs], dim=1)


class VoiceEncoder(nn.Module):
    """SF2F's voice encoder (``V2F1DCNN`` with ``inception_mode``): Inception blocks through ``channels``, then
    ``Conv1d(channels[-1] → embed_dim, k3, s2, p1, bias)``, average pooling over time and L2 normalisation.

    Time shrinks 32× (five stride-2 layers); any T ≥ 1 works. ``forward``: ``(B, mel_bins, T)`` → ``(B, embed_dim)``.
    """

    def __init__(self, mel_bins: int = 40, channels: Sequence[int] = (256, 384, 576, 864), embed_dim: int = 512) -> None:
        super().__init__()
        if not channels:
            raise ValueError("VoiceEncoder needs at least one Inception block width in channels.")
        widths = [mel_bins, *channels]
        self.mel_bins = mel_bins
        self.embed_dim = embed_dim
        self.blocks = nn.Sequential(*(Inception1DBlock(a, b) for a, b in pairwise(widths)))
        self.proj = nn.Conv1d(widths[-1], embed_dim, 3, stride=2, padding=1, bias=True)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 3 or mel.shape[1] != self.mel_bins:
            raise ValueError(f"VoiceEncoder expects (B, {self.mel_bins}, T), got {tuple(mel.shape)}.")
        x = self.proj(self.blocks(mel))
        return F.normalize(x.mean(dim=-1), dim=-1)

    def segment_embeddings(self, segments: torch.Tensor) -> torch.Tensor:
        """``(B, N, mel_bins, L)`` segments → ``(B, N, embed_dim)`` unit embeddings, the fuser's input."""
        if segments.dim() != 4:
            raise ValueError(f"segment_embeddings expects (B, N, {self.mel_bins}, L), got {tuple(segments.shape)}.")
        b, n = segments.shape[:2]
        return self.forward(segments.reshape(b * n, *segments.shape[2:])).reshape(b, n, self.embed_dim)


class AttentionFuser(nn.Module):
    """SF2F's ``AttentionFuserV1`` (torchnlp-style "general" attention, ``ignore_tanh``) + ``normalize_fusion``.

    For segment embeddings h_1..h_N (rows of H): q_i = W_a h_i (``linear_in``, no bias); score_ij = q_i · h_j;
    a_i = softmax_j(score_i); mix_i = Σ_j a_ij h_j; o_i = W_o [mix_i; q_i] (``linear_out``, 2·dim → dim, no bias,
    as in the reference, which concatenates the *projected* query); output = L2-normalised mean of o_i over i.
    Permutation-invariant over the segments. ``mask`` ``(B, N)`` (True = real segment) drops padded segments
    from both the keys and the average; every row needs one real segment.
    """

    def __init__(self, dim: int = 512) -> None:
        super().__init__()
        self.dim = dim
        self.linear_in = nn.Linear(dim, dim, bias=False)
        self.linear_out = nn.Linear(2 * dim, dim, bias=False)

    def forward(self, segments: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if segments.dim() != 3 or segments.shape[-1] != self.dim:
            raise ValueError(f"AttentionFuser expects (B, N, {self.dim}), got {tuple(segments.shape)}.")
        query = self.linear_in(segments)                               # (B, N, D)
        scores = torch.bmm(query, segments.transpose(1, 2))            # (B, N, N)
        if mask is not None:
            mask = mask.to(dtype=torch.bool, device=segments.device)
            if mask.shape != segments.shape[:2]:
                raise ValueError(f"AttentionFuser mask must be (B, N) = {tuple(segments.shape[:2])}, "
                                 f"got {tuple(mask.shape)}.")
            if not bool(mask.any(dim=1).all()):
                raise ValueError("AttentionFuser mask leaves a row without any real segment.")
            scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        mix = torch.bmm(torch.softmax(scores, dim=-1), segments)       # (B, N, D)
        out = self.linear_out(torch.cat([mix, query], dim=-1))         # (B, N, D)
        if mask is None:
            fused = out.mean(dim=1)
        else:
            weights = mask.to(out.dtype)[..., None]
            fused = (out * weights).sum(dim=1) / weights.sum(dim=1)
        return F.normalize(fused, dim=-1)


def decoder_blocks(image_size: int) -> int:
    """How many ×2 upsampling blocks take the 4×4 seed to ``image_size`` (4·2^k, k ≥ 1); ValueError otherwise."""
    k = int(image_size).bit_length() - 3
    if int(image_size) != image_size or k < 1 or 4 << k != image_size:
        raise ValueError(f"FaceDecoder reaches only the image sizes 4·2^k with k ≥ 1 (8, 16, 32, 64, 128, 256 and so "
                         f"on), not {image_size!r}.")
    return k


def _up_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Nearest ×2, conv3×3 (in → 2·out, no bias), BN2d, GLU over channels → ``out_ch`` channels."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                         nn.Conv2d(in_ch, 2 * out_ch, 3, padding=1, bias=False),
                         nn.BatchNorm2d(2 * out_ch), nn.GLU(dim=1))


class FaceDecoder(nn.Module):
    """SF2F's ``FaceGanDecoder``: ``Linear(embed_dim → width·4·4·2, no bias)`` + BN1d + GLU → ``width×4×4``, then
    ``log2(image_size/4)`` upsampling blocks halving the channels (512→256→128→64→32 over 8/16/32/64 px at width
    512; 128 px adds a fifth block 32→16), then the head conv3×3(c→c, bias) + LeakyReLU + conv1×1(c→3, bias).

    Output range: **[0, 1]**, by a sigmoid on the head's output. The reference has no output activation (its
    targets are ImageNet-normalised); we train against face crops in [0, 1], so the sigmoid is ours.

    Channels never fall below 1 (``max(1, width // 2^i)``); sizes other than 4·2^k (k ≥ 1) raise ValueError.
    The 128-px variant returns only the 128-px image: the reference's ``FaceGanDecoder_v2`` also returns a 64-px
    image from a second head for a multi-scale loss, which we leave out (so 9,347 fewer parameters at paper size).
    ``head_slope`` 0.01 is the reference's: its head calls ``get_activation('leakyrelu')``, which is PyTorch's
    default slope (the ``leakyrelu-0.1``/``-0.2`` settings in its configs never reach the head).
    """

    output_range = (0.0, 1.0)

    def __init__(self, embed_dim: int = 512, image_size: int = 64, width: int = 512, head_slope: float = 0.01) -> None:
        super().__init__()
        n_blocks = decoder_blocks(image_size)
        if width < 1:
            raise ValueError(f"FaceDecoder needs a width of at least 1, got {width}.")
        self.embed_dim, self.image_size, self.width = embed_dim, image_size, width
        self.fc = nn.Sequential(nn.Linear(embed_dim, width * 4 * 4 * 2, bias=False),
                                nn.BatchNorm1d(width * 4 * 4 * 2), nn.GLU(dim=1))
        chans = [max(1, width >> i) for i in range(n_blocks + 1)]
        self.up = nn.Sequential(*(_up_block(a, b) for a, b in pairwise(chans)))
        c = chans[-1]
        self.head = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(head_slope),
                                  nn.Conv2d(c, 3, 1))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        x = self.fc(embedding.reshape(embedding.shape[0], self.embed_dim))
        x = self.up(x.view(x.shape[0], self.width, 4, 4))
        return torch.sigmoid(self.head(x))


def _patch_cnn(widths: Sequence[int], in_channels: int, negative_slope: float) -> nn.Sequential:
    """``layers.build_cnn('I3,C4-w0-2,C4-w1-2,...', normalization='batch', activation='leakyrelu-s', padding='valid')``:
    4×4 stride-2 convs with bias and no padding; every conv but the first preceded by BN2d + LeakyReLU; nothing
    after the last conv."""
    if not widths:
        raise ValueError("The discriminator needs at least one conv width.")
    layers: list[nn.Module] = []
    prev = in_channels
    for i, w in enumerate(widths):
        if i:
            layers += [nn.BatchNorm2d(prev), nn.LeakyReLU(negative_slope)]
        layers.append(nn.Conv2d(prev, w, 4, stride=2, padding=0))
        prev = w
    return nn.Sequential(*layers)


def patch_grid(image_size: int, n_convs: int) -> int:
    """Side of the score map after ``n_convs`` valid 4×4 stride-2 convs; ValueError when the image is too small."""
    side = image_size
    for _ in range(n_convs):
        side = (side - 4) // 2 + 1
        if side < 1:
            raise ValueError(f"A {image_size}-px image is too small for {n_convs} valid 4×4 stride-2 convolutions.")
    return side


class PatchDiscriminator(nn.Module):
    """SF2F's image discriminator ``I3,C4-64-2,C4-128-2,C4-256-2`` (batch norm, LeakyReLU 0.1, valid padding) and a
    1×1 conv to one logit per patch: ``(B, 3, S, S)`` → ``(B, 1, h, w)`` (6×6 at 64 px). ``widths=(64, 128, 256,
    512)`` is the reference's 128-px "mid" discriminator (also 6×6 at 128 px)."""

    def __init__(self, image_size: int = 64, widths: Sequence[int] = (64, 128, 256), negative_slope: float = 0.1,
                 in_channels: int = 3) -> None:
        super().__init__()
        self.grid = patch_grid(image_size, len(widths))
        self.cnn = _patch_cnn(widths, in_channels, negative_slope)
        self.classifier = nn.Conv2d(widths[-1], 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.cnn(images))


class IdentityDiscriminator(nn.Module):
    """SF2F's ``AcDiscriminator``: the patch CNN → global average pool → ``Linear(widths[-1] → hidden)`` feeding a
    real/fake head (``Linear(hidden → 1)``) and an identity head (``Linear(hidden → num_ids)``); no activation
    between the pool, the hidden layer and the heads, as in the reference. Returns
    ``(real_fake_logits (B,), id_logits (B, num_ids))``."""

    def __init__(self, image_size: int = 64, num_ids: int = 1, widths: Sequence[int] = (64, 128, 256),
                 hidden: int = 1024, negative_slope: float = 0.1, in_channels: int = 3) -> None:
        super().__init__()
        if num_ids < 1:
            raise ValueError(f"IdentityDiscriminator needs at least one identity, got num_ids={num_ids}.")
        self.grid = patch_grid(image_size, len(widths))
        self.cnn = _patch_cnn(widths, in_channels, negative_slope)
        self.fc = nn.Linear(widths[-1], hidden)
        self.real_fake = nn.Linear(hidden, 1)
        self.identity = nn.Linear(hidden, num_ids)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc(self.cnn(images).mean(dim=(2, 3)))
        return self.real_fake(h).squeeze(1), self.identity(h)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (trainable or not; BN running statistics are buffers and do not count)."""
    return sum(p.numel() for p in module.parameters())

