"""SF2F's 40-band log-mel input, computed from the compressed STFT the shards store (``pipeline.data.audio``).

The shards hold float16 ``(2, 257, 598)``: Re and Im of a 512-point STFT (periodic Hann window of 400 samples,
hop 160 = 10 ms, 16 kHz), each compressed as ``sign(x)·|x|^POWER``. We undo the compression, take the power
``|X|² = Re² + Im²``, apply a 40-band HTK mel filterbank and ``log(· + 1e-6)``. Frames stay 10 ms: 598 of them.

How this differs from SF2F's own features (``python_speech_features.logfbank(nfilt=40)`` on the VAD-trimmed
waveform): the window is the shard's Hann rather than that library's default rectangular window, there is no 0.97
pre-emphasis and no ``1/NFFT`` power scaling (a constant offset of log 512 that the normalisation removes), and the
log floor is additive (1e-6) where the library replaces exact zeros by machine epsilon. The filterbank itself is
the library's. SF2F normalises with one global mean/std over all bands (``vox_mel``: 10.9915, 3.1661); we compute
per-band statistics over the train split (``band_stats``; ``per_band=False`` gives the reference's scalar form).

Also here: the training crop (one random length in [100, 150] frames per batch, as SF2F's ``collate_fn``, a random
start per item) and the fuser's segments (125 frames, stride 125: 4 per 598-frame clip).
"""
from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import torch

from pipeline.data.audio import FFT_LENGTH, POWER, SAMPLE_RATE

N_MELS = 40
LOG_FLOOR = 1e-6        # log(mel_energy + LOG_FLOOR)
STD_FLOOR = 1e-3        # lower bound on a band's std, in log units
CROP_FRAMES = (100, 150)
SEGMENT_FRAMES = 125
SEGMENT_STRIDE = 125


def hz_to_mel(hz):
    """HTK mel scale: ``2595·log10(1 + f/700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    """Inverse of ``hz_to_mel``: ``700·(10^(m/2595) − 1)``."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def htk_mel_filterbank(n_mels: int = N_MELS, n_fft: int = FFT_LENGTH, sample_rate: int = SAMPLE_RATE,
                       fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular mel filters ``(n_mels, n_fft // 2 + 1)``, float64, unnormalised (peak 1).

    Convention exactly as ``python_speech_features.get_filterbanks`` (SF2F's feature library): ``n_mels + 2``
    points equally spaced on the HTK mel scale from ``fmin`` to ``fmax`` (default ``sample_rate / 2``), mapped to
    FFT bins ``b = floor((n_fft + 1)·f / sample_rate)``; filter j is 0 at ``b[j]``, rises linearly to 1 at
    ``b[j+1]`` and falls linearly towards 0 at ``b[j+2]``: weight ``(i − b[j]) / (b[j+1] − b[j])`` for bins
    ``b[j] ≤ i < b[j+1]`` and ``(b[j+2] − i) / (b[j+2] − b[j+1])`` for ``b[j+1] ≤ i < b[j+2]``, 0 elsewhere (the
    upper edge bin itself gets 0). Not HTK's own continuous-frequency triangles: the edges snap to whole bins.
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    if n_mels < 1 or not 0 <= fmin < fmax <= sample_rate / 2:
        raise ValueError(f"htk_mel_filterbank needs n_mels ≥ 1 and 0 ≤ fmin < fmax ≤ {sample_rate / 2:g} Hz, "
                         f"got n_mels={n_mels}, fmin={fmin}, fmax={fmax}.")
    mels = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    edges = np.floor((n_fft + 1) * mel_to_hz(mels) / sample_rate)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    i = np.arange(n_fft // 2 + 1, dtype=np.float64)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        rise = np.where((i >= lo) & (i < mid), (i - lo) / (mid - lo), 0.0)
        fall = np.where((i >= mid) & (i < hi), (hi - i) / (hi - mid), 0.0)
    bank = rise + fall
    if not bank.any(axis=1).all():
        raise ValueError(f"{n_mels} mel bands are too many for a {n_fft}-point FFT: a band covers no FFT bin.")
    return bank


@lru_cache(maxsize=8)
def _filterbank(n_mels: int) -> np.ndarray:
    bank = htk_mel_filterbank(n_mels)
    bank.setflags(write=False)
    return bank


def decompress(c):
    """Undo the shards' compression: ``sign(c)·|c|^(1/POWER)`` (NumPy array or torch tensor)."""
    if isinstance(c, torch.Tensor):
        return torch.sign(c) * c.abs().pow(1.0 / POWER)
    c = np.asarray(c, dtype=np.float64)
    return np.sign(c) * np.abs(c) ** (1.0 / POWER)


def logmel_from_spec(spec: np.ndarray, n_mels: int = N_MELS) -> np.ndarray:
    """Shard spectrogram ``(2, 257, T)`` (float16 or any float) → log-mel ``(n_mels, T)`` float32, in float64 inside."""
    spec = np.asarray(spec)
    if spec.ndim != 3 or spec.shape[:2] != (2, FFT_LENGTH // 2 + 1):
        raise ValueError(f"logmel_from_spec expects (2, {FFT_LENGTH // 2 + 1}, T), got {spec.shape}.")
    re, im = decompress(spec[0]), decompress(spec[1])
    power = re * re + im * im                                   # (257, T)
    return np.log(_filterbank(n_mels) @ power + LOG_FLOOR).astype(np.float32)


def logmel_batch(spec: torch.Tensor, n_mels: int = N_MELS) -> torch.Tensor:
    """Torch batch version of ``logmel_from_spec``: ``(B, 2, 257, T)`` → ``(B, n_mels, T)``, on the input's device,
    in float32 (float64 when the input is float64)."""
    if spec.dim() != 4 or tuple(spec.shape[1:3]) != (2, FFT_LENGTH // 2 + 1):
        raise ValueError(f"logmel_batch expects (B, 2, {FFT_LENGTH // 2 + 1}, T), got {tuple(spec.shape)}.")
    dtype = torch.float64 if spec.dtype == torch.float64 else torch.float32
    x = decompress(spec.to(dtype))
    power = (x * x).sum(dim=1)                                  # (B, 257, T)
    bank = torch.tensor(_filterbank(n_mels), dtype=dtype, device=spec.device)
    return torch.log(torch.einsum("mf,bft->bmt", bank, power) + LOG_FLOOR)


def band_stats(mels: np.ndarray | torch.Tensor | Iterable[np.ndarray | torch.Tensor], per_band: bool = True,
               std_floor: float = STD_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of log-mels over every frame of a set (the train split), per band: ``(n_mels,)`` float32 each.

    ``mels``: one array ``(N, n_mels, T)`` or ``(n_mels, T)``, or an iterable of ``(n_mels, T)`` / ``(B, n_mels, T)``
    arrays or tensors (lengths may differ). Population std (ddof 0), floored at ``std_floor``. ``per_band=False``
    gives one mean/std over all bands (SF2F's ``vox_mel`` form), broadcast to ``(n_mels,)``.
    """
    if isinstance(mels, (np.ndarray, torch.Tensor)):
        mels = [mels]
    count, total, total_sq, n_mels = 0, None, None, None
    for mel in mels:
        m = mel.detach().cpu().numpy() if isinstance(mel, torch.Tensor) else np.asarray(mel)
        m = m.astype(np.float64).reshape(-1, *m.shape[-2:])     # (B, n_mels, T)
        m = np.moveaxis(m, 1, 0).reshape(m.shape[1], -1)        # (n_mels, B·T)
        if n_mels is None:
            n_mels, total, total_sq = m.shape[0], np.zeros(m.shape[0]), np.zeros(m.shape[0])
        elif m.shape[0] != n_mels:
            raise ValueError(f"band_stats got log-mels with {m.shape[0]} and {n_mels} bands in one set.")
        count += m.shape[1]
        total += m.sum(axis=1)
        total_sq += (m * m).sum(axis=1)
    if not count:
        raise ValueError("band_stats needs at least one frame.")
    if not per_band:
        total, total_sq, count = np.full(n_mels, total.sum()), np.full(n_mels, total_sq.sum()), count * n_mels
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    return mean.astype(np.float32), np.maximum(std, std_floor).astype(np.float32)


def normalize(mel, mean, std, std_floor: float = STD_FLOOR):
    """``(mel − mean) / max(std, std_floor)`` per band, for ``(..., n_mels, T)`` NumPy arrays or torch tensors."""
    if isinstance(mel, torch.Tensor):
        mean = torch.as_tensor(np.asarray(mean), dtype=mel.dtype, device=mel.device)
        std = torch.as_tensor(np.asarray(std), dtype=mel.dtype, device=mel.device).clamp_min(std_floor)
        return (mel - mean[:, None]) / std[:, None]
    mean, std = np.asarray(mean), np.maximum(np.asarray(std), std_floor)
    return ((mel - mean[:, None]) / std[:, None]).astype(np.result_type(mel, np.float32))


def random_crop(mel: torch.Tensor, generator: torch.Generator, min_frames: int = CROP_FRAMES[0],
                max_frames: int = CROP_FRAMES[1]) -> torch.Tensor:
    """A training crop: one length L uniform in ``[min_frames, max_frames]`` (both included) for the whole batch,
    a uniform start per item. ``(B, n_mels, T)`` → ``(B, n_mels, L)`` (``(n_mels, T)`` → ``(n_mels, L)``).

    Draws from ``generator`` only (a CPU ``torch.Generator``), so a seeded generator repeats the crops. Lengths
    above T are cut to T; T below ``min_frames`` raises ValueError.
    """
    if mel.dim() == 2:
        return random_crop(mel[None], generator, min_frames, max_frames)[0]
    b, c, t = mel.shape
    if not 1 <= min_frames <= max_frames:
        raise ValueError(f"random_crop needs 1 ≤ min_frames ≤ max_frames, got {min_frames} and {max_frames}.")
    if t < min_frames:
        raise ValueError(f"random_crop needs at least {min_frames} frames, got {t}.")
    hi = min(max_frames, t)
    length = int(torch.randint(min_frames, hi + 1, (1,), generator=generator))
    starts = torch.randint(0, t - length + 1, (b,), generator=generator)
    index = (starts[:, None] + torch.arange(length)).to(mel.device)
    return mel.gather(2, index[:, None, :].expand(b, c, length))


def segments(mel, length: int = SEGMENT_FRAMES, stride: int = SEGMENT_STRIDE, max_segments: int | None = None):
    """The fuser's sliding-window segments: ``(..., n_mels, T)`` → ``(..., N, n_mels, length)`` with
    ``N = (T − length) // stride + 1`` (4 for 598 frames), capped at ``max_segments`` (SF2F caps at 20).
    NumPy arrays give read-only views; torch tensors give views too (``unfold``)."""
    t = mel.shape[-1]
    if length < 1 or stride < 1 or t < length:
        raise ValueError(f"segments needs 1 ≤ length ≤ T and stride ≥ 1, got length={length}, stride={stride}, T={t}.")
    if isinstance(mel, torch.Tensor):
        out = mel.unfold(-1, length, stride).movedim(-2, -3)
    else:
        out = np.moveaxis(np.lib.stride_tricks.sliding_window_view(mel, length, axis=-1)[..., ::stride, :], -2, -3)
    return out if max_segments is None else out[..., :max_segments, :, :]
