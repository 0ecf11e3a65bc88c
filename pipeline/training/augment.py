"""Augmentations shared by training: image shifts for the face models (face encoder, attribute probe), time
masks and shifts for the speech encoder's spectrograms."""
from __future__ import annotations

import torch
from torch.nn import functional as F


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image of a ``(B, C, H, W)`` batch by up to ``pad`` pixels each way (replicate-pad, then crop)."""
    b, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])


def mask_and_roll_time(specs: torch.Tensor, masks: int, max_frames: int, roll: bool,
                       generator: torch.Generator) -> torch.Tensor:
    """SpecAugment-style time masking (Park et al. 2019) plus a random circular time shift, per sample.

    ``specs`` is a ``(B, C, F, T)`` batch of spectrograms. With ``roll``, each sample is shifted circularly by a
    random number of frames: what is said is not tied to where in the 6 s window it falls, and each clip is
    already a loop of its speech when shorter than 6 s. Then ``masks`` spans of 0..``max_frames`` frames each
    are set to zero (silence) at random places. Random numbers come from ``generator`` (on the CPU), so a seeded
    run augments the same way on any device. Returns a new tensor; ``specs`` is left unchanged.
    """
    b, _, _, t = specs.shape
    out = specs
    if roll:
        shifts = torch.randint(0, t, (b,), generator=generator)
        frames = (torch.arange(t)[None, :] - shifts[:, None]) % t  # (B, T): source frame of each output frame
        out = torch.gather(out, 3, frames.to(specs.device)[:, None, None, :].expand_as(out))
    if masks > 0 and max_frames > 0:
        frame = torch.arange(t)[None, :]
        keep = torch.ones(b, t, dtype=torch.bool)
        for _ in range(masks):
            width = torch.randint(0, min(max_frames, t) + 1, (b,), generator=generator)
            start = (torch.rand(b, generator=generator) * (t - width + 1)).long()
            keep &= (frame < start[:, None]) | (frame >= (start + width)[:, None])
        out = out * keep.to(device=specs.device, dtype=specs.dtype)[:, None, None, :]
    return out if out is not specs else specs.clone()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a ``(B, C, H, W)`` batch (replicate borders): decoded faces are smoother than
    crops, so the instruments that read them (the attribute probe, the judge) also train on blurred crops."""
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-x ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    c = images.shape[1]
    out = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def blur_half(images: torch.Tensor, generator: torch.Generator, blur_max: float) -> torch.Tensor:
    """Blur about half of a batch (each image with probability 1/2) with one sigma drawn in 0.3..``blur_max`` px
    (``blur_max`` itself when it is at most 0.3; nothing when it is 0), in place; returns the batch."""
    if blur_max <= 0:
        return images
    sigma = float(0.3 + (blur_max - 0.3) * torch.rand(1, generator=generator)) if blur_max > 0.3 else blur_max
    chosen = torch.rand(images.shape[0], generator=generator) < 0.5
    if chosen.any():
        images[chosen] = gaussian_blur(images[chosen], sigma)
    return images
