"""Preprocess throughput: clips/s and the time split per step (decode, detect, crop, STFT, encode, write).

    python bench/bench_preprocess.py [--grid-dir tests/fixtures/grid] [--n-generated 8]

Two inputs: the 11 real GRID clips with the dlib detector at 224x224, and generated sample-like clips
(160x160, 3-9 s, tone audio) with the ``center`` detector at 64x64 (the embedded default's settings).
Raw shards are built in a temp dir; nothing is written to the repository.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.data.preprocess import STEPS, PreprocessConfig, run_preprocess  # noqa: E402
from pipeline.data.recipes.grid import FACE_X, FACE_Y  # noqa: E402
from pipeline.testing.media import make_clip  # noqa: E402
from pipeline.testing.shards import write_raw_shard  # noqa: E402


def bench(name: str, raw: Path, out: Path, cfg: PreprocessConfig) -> None:
    t0 = time.perf_counter()
    m = run_preprocess(raw, out, cfg, progress=False)
    wall = time.perf_counter() - t0
    n = m["clips_processed_this_run"]
    steps = m["timings"]["seconds_per_step"]  # timings live in the metrics, not the shards
    total = sum(steps.values()) or 1.0
    split = "  ".join(f"{s} {steps[s] / max(n, 1) * 1000:.0f}ms ({steps[s] / total:.0%})" for s in STEPS)
    print(f"{name}: {n} clips, {m['samples_out']} samples, {wall:.2f} s wall, {n / wall:.2f} clips/s")
    print(f"  per clip: {split}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid-dir", default=str(Path(__file__).resolve().parents[1] / "tests/fixtures/grid"))
    parser.add_argument("--n-generated", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmp:
        tmp = Path(tmp)
        grid = sorted(Path(args.grid_dir).glob("*.mpg"))
        if grid:
            write_raw_shard(tmp / "grid_raw", "train", 0,
                            [(p.stem, p, {"x": FACE_X, "y": FACE_Y}) for p in grid])
            bench("GRID (dlib, 224px)", tmp / "grid_raw", tmp / "grid_out",
                  PreprocessConfig(detector="dlib", image_size=224))
        else:
            print(f"GRID clips not found in {args.grid_dir}: skipped")
        clips = [(f"gen{i:03d}", make_clip(tmp / "media" / f"gen{i:03d}.mp4", duration=3.0 + (6.0 * i) / max(
            args.n_generated - 1, 1), size=(160, 160), audio_rate=44100, tone_hz=200 + 20 * i),
                  {"x": 0.5, "y": 0.5}) for i in range(args.n_generated)]
        write_raw_shard(tmp / "gen_raw", "train", 0, clips)
        bench("generated sample-like (center, 64px)", tmp / "gen_raw", tmp / "gen_out",
              PreprocessConfig(detector="center", image_size=64))
    return 0


if __name__ == "__main__":
    sys.exit(main())
