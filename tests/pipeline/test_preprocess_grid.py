"""All 11 real GRID clips through the recipe CSV and the real dlib detector: one 224x224 face each, padded audio."""
from __future__ import annotations

import csv

import numpy as np
from PIL import Image

from pipeline.audio import N_SAMPLES
from pipeline.preprocess import PreprocessConfig, run_preprocess
from pipeline.recipes.grid import prepare_grid
from pipeline.shards import iter_samples, list_shards
from pipeline.testing.shards import write_raw_shard


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
