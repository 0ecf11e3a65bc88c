"""Losses of AR-SPM: the face decoder's loss (paper eq. 4-6) and the speech encoder's tri-item loss (eq. 7).

Decoder loss, per batch:
    alpha * (1 - MS-SSIM(recon, target)) + (1 - alpha) * G.L1(recon, target)
    + cos_weight * mean_b(1 - cos(VGGFace(recon_b), VGGFace(target_b)))
- MS-SSIM is pytorch-msssim's ``ms_ssim`` (data_range=1, Gaussian window ``msssim_win_size`` / sigma
  ``gaussian_sigma``, default 5-scale weights), averaged over the batch.
- "G.L1" (the paper: "G is the parameters of Gaussian distribution in MS-SSIM", after Zhao et al., "Loss Functions
  for Image Restoration with Neural Networks"): the per-pixel absolute error map is filtered with the same
  normalised Gaussian window MS-SSIM uses at its finest scale (separable, ``valid`` borders exactly as
  pytorch-msssim filters), then averaged. So a uniform error ``d`` gives exactly ``d``, and the L1 term covers the
  same pixels as the finest-scale SSIM term. (Zhao et al. use the Gaussian of their largest sigma; with
  pytorch-msssim there is one window for all scales, so we use that one.)
- The cosine term compares the frozen face encoder's features of the reconstruction (computed by the caller WITH
  gradients flowing back into FD, never under ``no_grad``) and of the true face (or the true feature itself).
  Eq. 6 adds it with weight 1 (``cos_weight``). It is skipped when no features are given.
- pytorch-msssim asserts that the smaller image side exceeds ``(win_size - 1) * 16`` (160 px with the paper's
  window 11), whatever the number of scales; we check this up front and raise a ValueError naming the minimum.

Tri-item loss, per sample then averaged over the batch (F = true face feature, S = final speech feature):
    lambda1 * || F/|F| - S/|S| ||_2^2 + lambda2 * || fc1(F) - fc1(S) ||_1 + lambda3 * (1 - cos(fc8(F), fc8(S)))
- The unit normalisation is per sample (each row divided by its own L2 norm), not per batch.
- ||.||_1 is the L1 norm of each sample's fc1 difference (a sum over the fc1_dim = 1000 units), then averaged over
  the batch: eq. 7 writes a norm, and lambda2 = 0.04 only balances the other terms (which are O(1)) with the
  summed norm, not with a per-unit mean.
- fc1 is FD's first fc layer (pre-activation output of ``FaceDecoder.fc1``), fc8 is VGGFace's classifier applied
  to the fc7 feature (``VGGFace.classify``, which adds fc7's ReLU first when features are pre-ReLU).
- F's branch carries no gradient (it is data); S's branch does, through the frozen fc1/fc8 into the encoder.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from pytorch_msssim import ms_ssim
from torch import Tensor, nn
from torch.nn import functional as F

MSSSIM_DEFAULT_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
PAPER_LAMBDAS = (1.0, 0.04, 1.2)


def msssim_min_side(win_size: int) -> int:
    """Smallest image side pytorch-msssim's MS-SSIM accepts with this window (it needs side > (win-1)*16)."""
    return (win_size - 1) * 16 + 1


def gaussian_window(win_size: int, sigma: float) -> Tensor:
    """Normalised 1-D Gaussian window, identical to pytorch-msssim's ``_fspecial_gauss_1d``."""
    coords = torch.arange(win_size, dtype=torch.float32) - win_size // 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def gaussian_weighted_l1(x: Tensor, y: Tensor, window: Tensor) -> Tensor:
    """Mean of ``|x - y|`` filtered by the separable Gaussian ``window`` (valid borders); a scalar."""
    err = (x - y).abs()
    c = err.shape[1]
    w = window.to(err.dtype).to(err.device)
    err = F.conv2d(err, w.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    err = F.conv2d(err, w.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return err.mean()


def cosine_distance(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Per-sample ``1 - cos(a, b)`` over the last dimension."""
    return 1.0 - F.cosine_similarity(a, b, dim=-1, eps=eps)


class DecoderLoss(nn.Module):
    """FD loss: ``alpha*(1-MS-SSIM) + (1-alpha)*G.L1 + cos_weight*(1-cos)``; returns (loss, parts as floats).

    ``parts`` has ``msssim`` only when ``alpha`` > 0 (MS-SSIM is not computed otherwise)."""

    def __init__(self, alpha: float = 0.84, msssim_win_size: int = 11, msssim_weights: Sequence[float] | None = None,
                 gaussian_sigma: float = 1.5, cos_weight: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        if msssim_win_size < 1 or msssim_win_size % 2 == 0:
            raise ValueError(f"msssim_win_size must be a positive odd number, got {msssim_win_size}")
        self.alpha = float(alpha)
        self.win_size = int(msssim_win_size)
        self.sigma = float(gaussian_sigma)
        self.weights = list(msssim_weights) if msssim_weights is not None else list(MSSSIM_DEFAULT_WEIGHTS)
        self.cos_weight = float(cos_weight)
        self.register_buffer("window", gaussian_window(self.win_size, self.sigma), persistent=False)

    def check_size(self, height: int, width: int) -> None:
        """Raise ValueError when images are too small for MS-SSIM with this window."""
        need = msssim_min_side(self.win_size)
        if min(height, width) < need:
            raise ValueError(f"MS-SSIM with window {self.win_size} needs images of at least {need} px per side, "
                             f"got {height}x{width}: lower msssim_win_size (e.g. 3 for 64 px)")

    def forward(self, recon01: Tensor, target01: Tensor, recon_feature: Tensor | None = None,
                target_feature: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        if recon01.shape != target01.shape or recon01.dim() != 4:
            raise ValueError(f"DecoderLoss needs two (B, C, H, W) batches of the same shape, "
                             f"got {tuple(recon01.shape)} and {tuple(target01.shape)}")
        # Image terms in fp32 even under autocast: MS-SSIM's products of powers are unstable in bf16/fp16.
        recon32, target32 = recon01.float(), target01.float()
        with torch.autocast(device_type=recon01.device.type, enabled=False):
            l1 = gaussian_weighted_l1(recon32, target32, self.window)
            parts = {"l1": float(l1.detach())}
            loss = (1.0 - self.alpha) * l1
            if self.alpha > 0:  # with alpha 0 MS-SSIM would cost a fifth of an FD step for nothing
                self.check_size(*recon01.shape[-2:])
                msssim = ms_ssim(recon32, target32, data_range=1.0, size_average=True, win_size=self.win_size,
                                 win_sigma=self.sigma, weights=self.weights)
                loss = loss + self.alpha * (1.0 - msssim)
                parts["msssim"] = float(msssim.detach())
        parts["image"] = float(loss.detach())
        if (recon_feature is None) != (target_feature is None):
            raise ValueError("DecoderLoss needs both recon_feature and target_feature, or neither")
        if recon_feature is not None and target_feature is not None:
            cos = cosine_distance(recon_feature.float(), target_feature.float()).mean()
            loss = loss + self.cos_weight * cos
            parts["cos"] = float(cos.detach())
        else:
            parts["cos"] = 0.0
        parts["total"] = float(loss.detach())
        return loss, parts


def tri_item_loss(true_feature: Tensor, speech_feature: Tensor, decoder_fc1: Callable[[Tensor], Tensor],
                  face_classifier: Callable[[Tensor], Tensor],
                  lambdas: Sequence[float] = PAPER_LAMBDAS) -> tuple[Tensor, dict[str, float]]:
    """The encoder's tri-item loss (eq. 7), per sample, averaged over the batch; returns (loss, parts)."""
    if true_feature.shape != speech_feature.shape or true_feature.dim() != 2:
        raise ValueError(f"tri_item_loss needs two (B, D) feature batches of the same shape, "
                         f"got {tuple(true_feature.shape)} and {tuple(speech_feature.shape)}")
    if len(lambdas) != 3:
        raise ValueError(f"tri_item_loss needs three lambdas, got {list(lambdas)}")
    lam1, lam2, lam3 = (float(v) for v in lambdas)
    target = true_feature.detach()
    l2 = (F.normalize(target, dim=1, eps=1e-8) - F.normalize(speech_feature, dim=1, eps=1e-8)).pow(2).sum(1).mean()
    with torch.no_grad():
        target_hidden = decoder_fc1(target)
        target_logits = face_classifier(target)
    l1 = (decoder_fc1(speech_feature) - target_hidden).abs().sum(1).mean()
    cos = cosine_distance(face_classifier(speech_feature), target_logits).mean()
    loss = lam1 * l2 + lam2 * l1 + lam3 * cos
    parts = {"l2": float(l2.detach()), "l1": float(l1.detach()), "cos": float(cos.detach()),
             "total": float(loss.detach())}
    return loss, parts
