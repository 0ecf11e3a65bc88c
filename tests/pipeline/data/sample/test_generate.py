"""The embedded sample generator on a tiny config: real decodable MP4s, declared durations, deterministic
bytes, and voices whose pitch separates the genders."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.media import probe
from pipeline.data.sample.generate import SampleConfig, SampleConfigError, generate_sample
from pipeline.data.sample.identity import make_speaker
from pipeline.testing.sample import decode_audio, median_pitch

TINY = SampleConfig(seed=3, n_speakers=4, clips_per_speaker=2, min_duration=1.0, max_duration=2.5,
                    frame_size=96, fps=25, audio_rate=16000)


@pytest.fixture(scope="module")
def tiny_sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "sample"
    summary = generate_sample(out, TINY, progress=False)
    assert summary.speakers == 4 and summary.clips == 8
    return out


def _rows(out: Path) -> list[list[str]]:
    return [line.split(",") for line in (out / "avspeech.csv").read_text().splitlines()]


def test_csv_is_avspeech_format_and_points_at_clips(tiny_sample: Path) -> None:
    rows = _rows(tiny_sample)
    assert len(rows) == 8
    for clip, start, end, x, y in rows:
        assert clip.startswith("clips/") and (tiny_sample / clip).is_file()
        assert 0.0 <= float(start) < float(end)
        assert 0.0 <= float(x) <= 1.0 and 0.0 <= float(y) <= 1.0
        assert len(start.split(".")[1]) == 3 and len(x.split(".")[1]) == 6  # fixed decimals
    with open(tiny_sample / "labels.csv", newline="") as fh:
        labels = list(csv.DictReader(fh))
    assert [r["video_id"] for r in labels] == [Path(r[0]).stem for r in rows]
    assert {r["gender"] for r in labels} == {"M", "F"}
    assert all(r["speaker_id"] == r["video_id"].split("_")[0] for r in labels)


def test_clips_are_h264_aac_with_declared_duration_and_rate(tiny_sample: Path) -> None:
    for clip, start, end, _, _ in _rows(tiny_sample):
        info = probe(tiny_sample / clip)
        assert (info.video_codec, info.audio_codec) == ("h264", "aac")
        assert (info.width, info.height) == (96, 96)
        assert info.audio_rate == 16000 and info.audio_channels == 1
        assert info.fps == pytest.approx(25.0)
        assert float(end) <= info.duration + 1e-3 and info.duration == pytest.approx(float(end), abs=0.05)
        seg = float(end) - float(start)
        assert TINY.min_duration - 0.05 <= seg <= TINY.max_duration + 0.05
        audio = decode_audio(tiny_sample / clip)
        assert len(audio) / 16000 == pytest.approx(info.duration, abs=0.1)  # AAC pads its last frame
        assert np.abs(audio).max() > 0.1  # actually speaks


def test_male_and_female_median_pitch_do_not_overlap(tiny_sample: Path) -> None:
    pitch: dict[str, list[float]] = {"M": [], "F": []}
    for clip, *_ in _rows(tiny_sample):
        speaker = make_speaker(TINY.seed, int(Path(clip).stem[3:6]))
        pitch[speaker.gender].append(median_pitch(decode_audio(tiny_sample / clip), 16000))
    assert not np.isnan(pitch["M"] + pitch["F"]).any()
    assert max(pitch["M"]) < 155.0 < 165.0 < min(pitch["F"]), pitch


def test_same_seed_gives_identical_bytes(tiny_sample: Path, tmp_path: Path) -> None:
    again = generate_sample(tmp_path / "again", TINY, progress=False, workers=2).out_dir  # parallel: same bytes
    files = sorted(p.relative_to(tiny_sample) for p in tiny_sample.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (tiny_sample / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_other_seed_changes_the_clips(tiny_sample: Path, tmp_path: Path) -> None:
    cfg = SampleConfig(**{**TINY.__dict__, "seed": 4, "n_speakers": 1, "clips_per_speaker": 1})
    other = generate_sample(tmp_path / "other", cfg, progress=False).out_dir
    assert (other / "clips/spk000_c0.mp4").read_bytes() != (tiny_sample / "clips/spk000_c0.mp4").read_bytes()


def test_voice_follows_face() -> None:
    speakers = [make_speaker(0, i) for i in range(48)]
    for gender in "MF":
        group = sorted((s for s in speakers if s.gender == gender), key=lambda s: s.head_height)
        # bigger head → lower formants and (on average) lower pitch
        assert group[0].formant_scale > group[-1].formant_scale
        assert np.corrcoef([s.head_height for s in group], [s.f0 for s in group])[0, 1] < -0.8
    assert max(s.f0 for s in speakers if s.gender == "M") < min(s.f0 for s in speakers if s.gender == "F")


def test_bad_config_is_a_clear_error() -> None:
    with pytest.raises(SampleConfigError, match="durations"):
        SampleConfig.from_params({"min_duration": 5.0, "max_duration": 3.0})
    with pytest.raises(SampleConfigError, match="unknown"):
        SampleConfig.from_params({"speakers": 3})
