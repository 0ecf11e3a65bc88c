"""SF2F log-mel from the shard spectrogram, against an independent NumPy computation from the waveform; the torch
batch path, the per-band normalisation, the training crops and the fuser's segments."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.data.audio import spectrogram
from pipeline.families.sf2f.logmel import (
    band_stats,
    htk_mel_filterbank,
    logmel_batch,
    logmel_from_spec,
    normalize,
    random_crop,
    segments,
)

SR = 16000

# float16 keeps 11 significant bits: each stored c = |x|^0.3 is off by at most 2^-11 ≈ 4.9e-4 relative, so
# x = c^(1/0.3) by at most (1/0.3)·4.9e-4 ≈ 1.6e-3, the power x² and any positive sum of powers (a mel band) by
# ≈ 3.3e-3, and its log by ≈ 3.3e-3 absolute (the 1e-6 floor only shrinks it). We allow 4e-3.
FLOAT16_LOG_ATOL = 4e-3


def chirp(seed: int, seconds: float = 6.0) -> np.ndarray:
    """A 6-s linear chirp 100 Hz → 7.5 kHz at amplitude 0.5, plus seeded white noise at 0.02."""
    t = np.arange(int(seconds * SR)) / SR
    f0, f1 = 100.0, 7500.0
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * seconds))
    noise = np.random.default_rng(seed).standard_normal(t.size)
    return (0.5 * np.sin(phase + seed) + 0.02 * noise).astype(np.float32)


def own_filterbank(n_mels: int = 40, n_fft: int = 512, sr: int = SR) -> np.ndarray:
    """python_speech_features' triangles, written out with loops: HTK mel points, floored FFT bins."""
    def to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def to_hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    top = to_mel(sr / 2)
    points = [to_hz(top * j / (n_mels + 1)) for j in range(n_mels + 2)]
    bins = [int(np.floor((n_fft + 1) * f / sr)) for f in points]
    bank = np.zeros((n_mels, n_fft // 2 + 1))
    for j in range(n_mels):
        for i in range(bins[j], bins[j + 1]):
            bank[j, i] = (i - bins[j]) / (bins[j + 1] - bins[j])
        for i in range(bins[j + 1], bins[j + 2]):
            bank[j, i] = (bins[j + 2] - i) / (bins[j + 2] - bins[j + 1])
    return bank


def own_logmel(wave: np.ndarray) -> np.ndarray:
    """Straight from the waveform: 400-sample frames every 160, periodic Hann, zero-padded 512-point FFT, |X|²."""
    n = np.arange(400)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / 400)
    n_frames = (wave.size - 400) // 160 + 1
    frames = np.stack([wave[i * 160:i * 160 + 400].astype(np.float64) * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, n=512, axis=1)) ** 2       # (T, 257)
    return np.log(own_filterbank() @ power.T + 1e-6)              # (40, T)


def test_filterbank_is_python_speech_features_convention() -> None:
    bank = htk_mel_filterbank()
    assert bank.shape == (40, 257)
    np.testing.assert_allclose(bank, own_filterbank(), rtol=0, atol=1e-12)
    assert np.allclose(bank.max(axis=1), 1.0)
    assert bank[:, -1].sum() == 0  # the top edge bin (256) gets no weight, as in the library


def test_logmel_from_the_float16_shard_matches_the_waveform() -> None:
    wave = chirp(0)
    spec = spectrogram(wave)
    assert spec.dtype == np.float16 and spec.shape == (2, 257, 598)
    mel = logmel_from_spec(spec)
    expected = own_logmel(wave)
    assert mel.shape == (40, 598) and mel.dtype == np.float32
    assert expected.min() > np.log(1e-6) + 5  # every band carries signal well above the floor
    np.testing.assert_allclose(mel, expected, rtol=0, atol=FLOAT16_LOG_ATOL)


def test_torch_batch_equals_the_numpy_path() -> None:
    specs = np.stack([spectrogram(chirp(1)), spectrogram(chirp(2))])
    batch = logmel_batch(torch.from_numpy(specs))
    assert batch.shape == (2, 40, 598) and batch.dtype == torch.float32
    for i in range(2):
        np.testing.assert_allclose(batch[i].numpy(), logmel_from_spec(specs[i]), rtol=0, atol=1e-4)
    batch64 = logmel_batch(torch.from_numpy(specs).double())
    assert batch64.dtype == torch.float64
    np.testing.assert_allclose(batch64[0].numpy(), logmel_from_spec(specs[0]), rtol=0, atol=1e-6)


def test_band_stats_and_normalize() -> None:
    rng = np.random.default_rng(0)
    mels = [rng.normal(np.arange(40)[:, None], 1 + np.arange(40)[:, None] / 10, (40, t)) for t in (598, 300, 125)]
    mean, std = band_stats(iter(mels))
    flat = np.concatenate(mels, axis=1)
    np.testing.assert_allclose(mean, flat.mean(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std, flat.std(axis=1), rtol=1e-5)
    assert mean.shape == std.shape == (40,) and mean.dtype == np.float32
    normed = normalize(flat, mean, std)
    np.testing.assert_allclose(normed.mean(axis=1), 0, atol=1e-4)
    np.testing.assert_allclose(normed.std(axis=1), 1, atol=1e-4)
    # the same from one batch tensor, and the torch normalisation agrees with NumPy's
    t_mean, _ = band_stats(torch.from_numpy(np.stack([m[:, :125] for m in mels])))
    np.testing.assert_allclose(t_mean, band_stats([m[:, :125] for m in mels])[0], rtol=1e-6)
    np.testing.assert_allclose(normalize(torch.from_numpy(flat), mean, std).numpy(), normed, rtol=1e-5, atol=1e-5)
    # the scalar (reference) form: one mean/std for all bands
    g_mean, g_std = band_stats(mels, per_band=False)
    assert np.allclose(g_mean, flat.mean()) and np.allclose(g_std, flat.std(), rtol=1e-5)


def test_a_constant_band_gets_the_std_floor_not_a_division_by_zero() -> None:
    mel = np.random.default_rng(0).normal(size=(40, 200))
    mel[3] = -13.8
    mean, std = band_stats([mel])
    assert std[3] == pytest.approx(1e-3)
    out = normalize(mel, mean, std)
    assert np.isfinite(out).all() and np.allclose(out[3], 0, atol=1e-3)
    assert np.isfinite(normalize(mel, mean, np.zeros(40, np.float32))).all()


def test_random_crop_lengths_and_content() -> None:
    mel = torch.randn(4, 40, 598)
    lengths = set()
    for seed in range(60):
        crop = random_crop(mel, torch.Generator().manual_seed(seed))
        assert crop.shape[:2] == (4, 40) and 100 <= crop.shape[-1] <= 150
        lengths.add(crop.shape[-1])
        # every item is a contiguous slice of its own mel
        for b in range(4):
            windows = mel[b].unfold(-1, crop.shape[-1], 1)                    # (40, starts, L)
            assert (windows == crop[b][:, None, :]).all(dim=(0, 2)).any()
    assert len(lengths) > 10
    a = random_crop(mel, torch.Generator().manual_seed(7))
    b = random_crop(mel, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert random_crop(mel[0], torch.Generator().manual_seed(0)).dim() == 2
    with pytest.raises(ValueError):
        random_crop(torch.randn(1, 40, 99), torch.Generator().manual_seed(0))


def test_segments_of_a_598_frame_clip() -> None:
    mel = np.random.default_rng(0).normal(size=(40, 598)).astype(np.float32)
    segs = segments(mel)
    assert segs.shape == (4, 40, 125)
    for i in range(4):
        np.testing.assert_array_equal(segs[i], mel[:, 125 * i:125 * (i + 1)])
    batch = segments(torch.from_numpy(np.stack([mel, mel * 2])))
    assert batch.shape == (2, 4, 40, 125)
    torch.testing.assert_close(batch[0], torch.from_numpy(np.ascontiguousarray(segs)))
    torch.testing.assert_close(batch[1, 3], torch.from_numpy(mel[:, 375:500] * 2))
    assert segments(mel, max_segments=2).shape == (2, 40, 125)
    assert segments(mel, length=100, stride=50).shape == ((598 - 100) // 50 + 1, 40, 100)
