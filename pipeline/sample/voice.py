"""Source–filter voice synthesis for the embedded sample.

A glottal pulse train at the speaker's f0 (with intonation, vibrato and jitter), low-passed by the speaker's
spectral tilt, plus breath noise, is shaped per syllable by a cascade of formant resonators (Klatt-style
two-pole sections) for a vowel, scaled by the speaker's formant scale. Syllables are grouped in "words"
separated by pauses; every clip draws its own vowel sequence and intonation, the speaker fixes the rest.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from pipeline.sample.identity import Speaker

# Adult-male vowel formants (Hz) after Peterson & Barney; the speaker's formant scale moves them.
VOWELS: dict[str, tuple[float, float, float]] = {
    "i": (270.0, 2290.0, 3010.0),
    "e": (530.0, 1840.0, 2480.0),
    "a": (730.0, 1090.0, 2440.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
    "ae": (660.0, 1720.0, 2410.0),
}
BANDWIDTHS = (80.0, 100.0, 140.0, 200.0)
F4 = 3500.0


@dataclass(frozen=True)
class Utterance:
    """A synthesised clip's audio and its amplitude envelope (0–1, same length), for the mouth animation."""

    audio: np.ndarray     # float32 mono in [-1, 1]
    envelope: np.ndarray  # float32, per audio sample
    rate: int


def _resonator(freq: float, bandwidth: float, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients of a unity-DC-gain two-pole resonator (Klatt 1980)."""
    r = np.exp(-np.pi * bandwidth / rate)
    b1 = 2.0 * r * np.cos(2.0 * np.pi * freq / rate)
    b2 = -r * r
    return np.array([1.0 - b1 - b2]), np.array([1.0, -b1, -b2])


def _formant_filter(signal: np.ndarray, formants: tuple[float, ...], rate: int) -> np.ndarray:
    out = signal
    nyquist = rate / 2.0
    for freq, bw in zip(formants, BANDWIDTHS):
        if freq < 0.9 * nyquist:
            b, a = _resonator(freq, bw, rate)
            out = lfilter(b, a, out)
    return out


def _syllable_plan(rng: np.random.Generator, duration: float) -> list[tuple[float, float, str]]:
    """(start s, length s, vowel) for each syllable: words of 1–4 syllables with pauses between them."""
    plan: list[tuple[float, float, str]] = []
    t = float(rng.uniform(0.05, 0.25))
    names = sorted(VOWELS)
    while t < duration - 0.2:
        for _ in range(int(rng.integers(1, 5))):
            length = float(rng.uniform(0.14, 0.32))
            if t + length > duration - 0.05:
                break
            plan.append((t, length, names[int(rng.integers(len(names)))]))
            t += length * 0.85  # syllables of a word overlap a little (co-articulation)
        t += float(rng.uniform(0.12, 0.45))  # pause between words
    return plan


def _f0_contour(speaker: Speaker, rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    """Per-sample f0: declination over phrases of ~2 s, per-clip register shift, vibrato."""
    t = np.arange(n) / rate
    phrase = 2.0 + float(rng.uniform(-0.4, 0.4))
    declination = 1.08 - 0.16 * ((t % phrase) / phrase)
    register = 1.0 + float(rng.uniform(-0.04, 0.04))
    vibrato = 1.0 + 0.01 * np.sin(2 * np.pi * float(rng.uniform(4.5, 6.0)) * t)
    return speaker.f0 * register * declination * vibrato


def synthesize(speaker: Speaker, rng: np.random.Generator, duration: float, rate: int) -> Utterance:
    """Synthesise ``duration`` seconds of speech for ``speaker`` with clip-level randomness from ``rng``."""
    n = int(round(duration * rate))
    f0 = _f0_contour(speaker, rng, n, rate)
    # Glottal pulses where the integrated phase crosses an integer; jitter perturbs each period.
    jitter = 1.0 + speaker.jitter * rng.standard_normal(n)
    phase = np.cumsum(f0 * jitter / rate)
    pulses = np.zeros(n)
    pulses[1:][np.diff(np.floor(phase)) > 0] = 1.0
    # Two one-pole low-passes (glottal tilt) then a first difference (lip radiation).
    tilt = speaker.tilt
    source = lfilter([1.0 - tilt], [1.0, -tilt], pulses)
    source = lfilter([1.0 - tilt], [1.0, -tilt], source)
    source = np.diff(source, prepend=0.0)
    source /= np.max(np.abs(source)) + 1e-12
    noise = rng.standard_normal(n) * 0.25

    audio = np.zeros(n)
    envelope = np.zeros(n)
    tail = int(0.03 * rate)
    for start, length, vowel in _syllable_plan(rng, duration):
        i0 = int(start * rate)
        m = int(length * rate)
        i1 = min(n, i0 + m)
        win = np.sin(np.linspace(0.0, np.pi, i1 - i0)) ** 1.5
        excitation = (source[i0:i1] + speaker.breathiness * noise[i0:i1]) * win
        formants = tuple(f * speaker.formant_scale for f in (*VOWELS[vowel], F4))
        shaped = _formant_filter(np.concatenate([excitation, np.zeros(tail)]), formants, rate)
        j1 = min(n, i0 + len(shaped))
        audio[i0:j1] += shaped[: j1 - i0]
        envelope[i0:i1] = np.maximum(envelope[i0:i1], win)
    audio += 0.002 * rng.standard_normal(n)  # a quiet room, not digital silence
    audio *= 0.5 / (np.max(np.abs(audio)) + 1e-12)
    return Utterance(audio=audio.astype(np.float32), envelope=envelope.astype(np.float32), rate=rate)
