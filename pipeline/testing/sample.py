"""Helpers for testing the embedded sample: decode a clip's audio and measure its pitch."""
from __future__ import annotations

from pathlib import Path

import ffmpeg
import numpy as np


def decode_audio(path: str | Path, rate: int = 16000) -> np.ndarray:
    """Decode ``path``'s audio through ffmpeg to mono float32 at ``rate``."""
    raw, _ = (
        ffmpeg.input(str(path))
        .output("pipe:", format="f32le", ac=1, ar=rate)
        .run(capture_stdout=True, capture_stderr=True)
    )
    return np.frombuffer(raw, dtype=np.float32)


def median_pitch(audio: np.ndarray, rate: int, fmin: float = 60.0, fmax: float = 400.0,
                 frame: float = 0.04, hop: float = 0.02) -> float:
    """Median f0 (Hz) over voiced frames by a plain normalised-autocorrelation estimator.

    A frame is voiced when its energy is in the upper half of the clip's frames and its best normalised
    autocorrelation peak in [1/fmax, 1/fmin] exceeds 0.5. Returns NaN when no frame is voiced."""
    n, step = int(frame * rate), int(hop * rate)
    lag_lo, lag_hi = int(rate / fmax), int(rate / fmin)
    frames = [audio[i:i + n] for i in range(0, len(audio) - n, step)]
    energies = np.array([float(np.dot(f, f)) for f in frames])
    if not len(frames):
        return float("nan")
    threshold = np.median(energies)
    pitches = []
    for f, e in zip(frames, energies):
        if e <= threshold or e == 0:
            continue
        f = f - f.mean()
        ac = np.correlate(f, f, mode="full")[n - 1:]
        ac = ac / (ac[0] + 1e-12)
        lag = lag_lo + int(np.argmax(ac[lag_lo:lag_hi]))
        if ac[lag] > 0.5:
            pitches.append(rate / lag)
    return float(np.median(pitches)) if pitches else float("nan")
