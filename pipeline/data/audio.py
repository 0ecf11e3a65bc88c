"""Audio for the speech encoder: 16 kHz mono, exactly 6 s, and the paper's compressed complex spectrogram.

Spectrogram (docs/design.md, Fidelity to the paper; Looking-to-Listen, i.e. ``tf.signal.stft(frame_length=400, frame_step=160,
fft_length=512)``): frames of 400 samples every 160, no centre padding, each multiplied by a *periodic* Hann
window of length 400 and zero-padded at the end to 512 before the real FFT → 598 frames x 257 bins; then a
power-law compression applied per element to the real and imaginary parts of S (not to magnitude/phase):
``sign(x)·|x|^0.3``. Output ``(2, 257, 598)`` = (channel, frequency, time).

Why NumPy stride tricks and not ``torch.stft``/``librosa.stft``: both centre a short window *inside* the
n_fft frame (and pad the signal by default), which shifts the phase and the frame grid; TensorFlow's layout puts
the 400 windowed samples first and zeros after. ``sliding_window_view`` + ``np.fft.rfft(n=512)`` is that layout
by construction.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.data.media import MediaError, decode_audio

SAMPLE_RATE = 16000
DURATION_S = 6.0
N_SAMPLES = int(SAMPLE_RATE * DURATION_S)   # 96000
MIN_DURATION_S = 0.5
FRAME_LENGTH = 400                          # 25 ms
FRAME_STEP = 160                            # 10 ms
FFT_LENGTH = 512
POWER = 0.3
N_FRAMES = (N_SAMPLES - FRAME_LENGTH) // FRAME_STEP + 1   # 598
N_BINS = FFT_LENGTH // 2 + 1                               # 257


class AudioError(MediaError):
    """Audio that cannot become a sample; ``reason`` is ``no_audio`` | ``audio_too_short`` | ``corrupt``."""


@dataclass(frozen=True)
class FittedAudio:
    """A 6-s waveform and how it was obtained from the clip."""

    waveform: np.ndarray     # float32 (96000,)
    fit: str                 # pad | cut | none
    orig_duration: float     # seconds of decoded audio before fitting


def fit_to_length(waveform: np.ndarray, n_samples: int = N_SAMPLES,
                  min_samples: int = int(MIN_DURATION_S * SAMPLE_RATE)) -> tuple[np.ndarray, str]:
    """Repeat a short clip end to end (the paper "concatenates") or cut a long one to its first ``n_samples``.

    Returns ``(waveform, fit)`` with fit ``pad`` | ``cut`` | ``none``. Shorter than ``min_samples`` →
    AudioError('audio_too_short').
    """
    waveform = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if waveform.size < min_samples:
        raise AudioError("audio_too_short",
                         f"audio is {waveform.size / SAMPLE_RATE:.3f} s, shorter than {min_samples / SAMPLE_RATE:.2f} s")
    if waveform.size == n_samples:
        return waveform.copy(), "none"
    if waveform.size > n_samples:
        return waveform[:n_samples].copy(), "cut"
    reps = -(-n_samples // waveform.size)
    return np.tile(waveform, reps)[:n_samples].copy(), "pad"


def load_audio(path: str | Path, has_audio: bool = True) -> FittedAudio:
    """Decode ``path`` to 16 kHz mono float32 and fit it to exactly 6 s."""
    if not has_audio:
        raise AudioError("no_audio", f"{Path(path).name} has no audio stream")
    raw = decode_audio(path, SAMPLE_RATE)
    if raw.size == 0:
        raise AudioError("no_audio", f"{Path(path).name}: audio stream decodes to no samples")
    waveform, fit = fit_to_length(raw)
    return FittedAudio(waveform=waveform, fit=fit, orig_duration=round(raw.size / SAMPLE_RATE, 6))


def periodic_hann(length: int = FRAME_LENGTH) -> np.ndarray:
    """Periodic Hann window ``0.5 - 0.5·cos(2πn/N)``, n = 0..N-1 (TensorFlow's ``hann_window(periodic=True)``)."""
    n = np.arange(length, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)


def stft(waveform: np.ndarray) -> np.ndarray:
    """Complex STFT ``(frames, bins)`` in TensorFlow's layout (window first, zeros after, no centring)."""
    waveform = np.asarray(waveform, dtype=np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(waveform, FRAME_LENGTH)[::FRAME_STEP]
    return np.fft.rfft(frames * periodic_hann(), n=FFT_LENGTH, axis=-1)


def compress(x: np.ndarray, power: float = POWER) -> np.ndarray:
    """Power-law compression per element: ``sign(x)·|x|^power``."""
    return np.sign(x) * np.abs(x) ** power


def spectrogram(waveform: np.ndarray) -> np.ndarray:
    """6-s waveform → float16 ``(2, 257, 598)``: compressed Re S and Im S, (channel, frequency, time)."""
    waveform = np.asarray(waveform).reshape(-1)
    if waveform.size != N_SAMPLES:
        raise ValueError(f"spectrogram expects {N_SAMPLES} samples, got {waveform.size}")
    spec = stft(waveform).T  # (bins, frames)
    out = np.stack([compress(spec.real), compress(spec.imag)])
    return out.astype(np.float16)
