"""Audio fitting and the paper's spectrogram, checked against direct formulas; decoding through real ffmpeg."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.audio import (
    FRAME_LENGTH,
    FRAME_STEP,
    N_SAMPLES,
    AudioError,
    compress,
    fit_to_length,
    load_audio,
    periodic_hann,
    spectrogram,
    stft,
)
from pipeline.testing.media import make_clip


def test_fit_pad_repeats_end_to_end():
    clip = np.arange(40000, dtype=np.float32)
    out, fit = fit_to_length(clip)
    assert fit == "pad" and out.shape == (N_SAMPLES,) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:40000], clip)
    np.testing.assert_array_equal(out[40000:80000], clip)
    np.testing.assert_array_equal(out[80000:], clip[:16000])


def test_fit_cut_and_none_and_too_short():
    long = np.random.default_rng(0).standard_normal(100000).astype(np.float32)
    out, fit = fit_to_length(long)
    assert fit == "cut"
    np.testing.assert_array_equal(out, long[:N_SAMPLES])
    assert fit_to_length(long[:N_SAMPLES])[1] == "none"
    with pytest.raises(AudioError) as err:
        fit_to_length(np.zeros(7999, dtype=np.float32))
    assert err.value.reason == "audio_too_short"
    assert fit_to_length(np.zeros(8000, dtype=np.float32))[1] == "pad"


def test_periodic_hann_matches_definition():
    w = periodic_hann(400)
    n = np.arange(400)
    np.testing.assert_allclose(w, np.sin(np.pi * n / 400) ** 2, atol=1e-12)
    assert w[0] == 0 and w[200] == pytest.approx(1.0)  # periodic: peak at N/2, not symmetric end zeros


def test_stft_matches_direct_dft_formula():
    """Direct formula: S[t, k] = sum_{n<400} x[160 t + n] w[n] exp(-2πi k n / 512) (zeros after 400)."""
    x = np.random.default_rng(1).standard_normal(N_SAMPLES)
    s = stft(x)
    assert s.shape == (598, 257)
    n = np.arange(FRAME_LENGTH)
    k = np.arange(257)
    basis = np.exp(-2j * np.pi * np.outer(n, k) / 512)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * n / FRAME_LENGTH)
    for t in (0, 1, 297, 597):
        direct = (x[FRAME_STEP * t: FRAME_STEP * t + FRAME_LENGTH] * w) @ basis
        np.testing.assert_allclose(s[t], direct, rtol=1e-9, atol=1e-9)


def test_spectrogram_shape_dtype_and_compression_law():
    x = np.random.default_rng(2).standard_normal(N_SAMPLES).astype(np.float32) * 0.1
    spec = spectrogram(x)
    assert spec.shape == (2, 257, 598) and spec.dtype == np.float16
    s = stft(x).T
    expected_re = np.sign(s.real) * np.abs(s.real) ** 0.3
    expected_im = np.sign(s.imag) * np.abs(s.imag) ** 0.3
    np.testing.assert_allclose(spec[0].astype(np.float64), expected_re, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(spec[1].astype(np.float64), expected_im, rtol=2e-3, atol=2e-3)
    # the law per element, on values with known answers
    np.testing.assert_allclose(compress(np.array([-8.0, 0.0, 1.0, 1000.0])),
                               [-(8 ** 0.3), 0.0, 1.0, 1000 ** 0.3])


def test_tone_peaks_in_the_right_bin():
    freq = 1000.0  # bin = f / (16000 / 512) = 32
    t = np.arange(N_SAMPLES) / 16000
    spec = spectrogram(0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float64)
    # compression is monotonic in |x|, so |Re|^(1/0.3)+|Im|^(1/0.3) recovers the power ordering
    power = (np.abs(spec[0]) ** (1 / 0.3)) ** 2 + (np.abs(spec[1]) ** (1 / 0.3)) ** 2
    assert np.all(power.argmax(axis=0) == 32)


def test_load_audio_through_ffmpeg_pads_a_short_clip(tmp_path):
    clip = make_clip(tmp_path / "tone.mp4", duration=2.0, with_video=False, audio_rate=44100, tone_hz=500)
    audio = load_audio(clip)
    assert audio.fit == "pad" and audio.waveform.shape == (N_SAMPLES,)
    assert audio.orig_duration == pytest.approx(2.0, abs=0.06)
    assert 0.1 < np.abs(audio.waveform).max() <= 1.0
    with pytest.raises(AudioError) as err:
        load_audio(clip, has_audio=False)
    assert err.value.reason == "no_audio"
