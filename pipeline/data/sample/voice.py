"""Source–filter voice synthesis for the embedded sample.

A glottal pulse train at the speaker's f0 (with intonation, vibrato and jitter), low-passed by the speaker's
spectral tilt, plus breath noise, is shaped per syllable by a cascade of formant resonators (Klatt-style
two-pole sections) for a vowel, scaled by the speaker's formant scale, plus a parallel narrow resonance at the
speaker's timbre frequency (the hair colour). Syllables are grouped in "words" separated by pauses; the speaker
fixes the syllable lengths (speaking rate), vibrato, f0, formants, tilt, breath and timbre; every clip draws its
own vowel sequence, word lengths, pauses and intonation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from pipeline.data.sample.identity import Speaker

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
# The hair-colour resonance: narrow, driven by the differentiated excitation (flat-ish spectrum up there).
TIMBRE_BANDWIDTH = 150.0
TIMBRE_GAIN = 0.5


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


def _syllable_plan(speaker: Speaker, rng: np.random.Generator,
                   duration: float) -> list[tuple[float, float, str]]:
    """(start s, length s, vowel) for each syllable: words of 1–4 syllables with pauses between them; syllable
    lengths in the speaker's range (speaking rate)."""
    plan: list[tuple[float, float, str]] = []
    t = float(rng.uniform(0.05, 0.25))
    names = sorted(VOWELS)
    while t < duration - 0.2:
        for _ in range(int(rng.integers(1, 5))):
            length = float(rng.uniform(speaker.syllable_min, speaker.syllable_max))
            if t + length > duration - 0.05:
                break
            plan.append((t, length, names[int(rng.integers(len(names)))]))
            t += length * 0.85  # syllables of a word overlap a little (co-articulation)
        t += float(rng.uniform(0.12, 0.45))  # pause between words
    return plan


def _f0_contour(speaker: Speaker, rng: np.random.Generator, n: int, rate: int) -> np.ndarray:
    """Per-sample f0: declination over phrases of ~2 s, per-clip register shift, the speaker's vibrato."""
    t = np.arange(n) / rate
    phrase = 2.0 + float(rng.uniform(-0.4, 0.4))
    declination = 1.08 - 0.16 * ((t % phrase) / phrase)
    register = 1.0 + float(rng.uniform(-0.04, 0.04))
    rate_hz = speaker.vibrato_rate * float(rng.uniform(0.9, 1.1))
    vibrato = 1.0 + speaker.vibrato_depth * np.sin(2 * np.pi * rate_hz * t + float(rng.uniform(0, 2 * np.pi)))
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
    timbre_b, timbre_a = _resonator(speaker.timbre_hz, TIMBRE_BANDWIDTH, rate)
    for start, length, vowel in _syllable_plan(speaker, rng, duration):
        i0 = int(start * rate)
        m = int(length * rate)
        i1 = min(n, i0 + m)
        win = np.sin(np.linspace(0.0, np.pi, i1 - i0)) ** 1.5
        excitation = (source[i0:i1] + speaker.breathiness * noise[i0:i1]) * win
        formants = tuple(f * speaker.formant_scale for f in (*VOWELS[vowel], F4))
        padded = np.concatenate([excitation, np.zeros(tail)])
        shaped = _formant_filter(padded, formants, rate)
        # The timbre resonance sits in parallel (its own gain), so it rings at the same level for every vowel.
        shaped += TIMBRE_GAIN * lfilter(timbre_b, timbre_a, np.diff(padded, prepend=0.0))
        j1 = min(n, i0 + len(shaped))
        audio[i0:j1] += shaped[: j1 - i0]
        envelope[i0:i1] = np.maximum(envelope[i0:i1], win)
    audio += 0.002 * rng.standard_normal(n)  # a quiet room, not digital silence
    audio *= 0.5 / (np.max(np.abs(audio)) + 1e-12)
    return Utterance(audio=audio.astype(np.float32), envelope=envelope.astype(np.float32), rate=rate)
