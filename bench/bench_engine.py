"""The data stages' engines: preprocess clips/s with the local engine vs Ray, Ray's per-task overhead, and what
AVSpeech (2.6 M clips) costs at the measured per-clip rates.

    python bench/bench_engine.py [--clips 24] [--per-shard 4] [--tasks 200] [--gpu-detector-ms 20]

Raw shards of generated sample-like clips (160x160, 3-9 s) are built in a temp dir and preprocessed twice, with
``engine: local`` and ``engine: ray`` (a Ray instance started for the run, every core of this machine), and the
outputs are compared byte for byte. The per-task overhead is the wall time per trivial task through the same
``run_units``. The paper-scale estimate multiplies the measured per-clip seconds (decode, STFT, encode, write and
the detector) by 2.6 M; the GPU detector's cost per frame is an input (``--gpu-detector-ms``), since this machine
has no GPU. Nothing is written to the repository.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.data import engine as eng  # noqa: E402
from pipeline.data.preprocess import STEPS, PreprocessConfig, run_preprocess  # noqa: E402
from pipeline.testing.media import make_clip  # noqa: E402
from pipeline.testing.ray_cluster import RAY_TEST_ENV, square_or_fail  # noqa: E402
from pipeline.testing.shards import write_raw_shard  # noqa: E402

AVSPEECH_CLIPS = 2_600_000


def digests(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.glob("*")) if p.is_file()}


def timed_preprocess(raw: Path, out: Path, cfg: PreprocessConfig, settings: eng.EngineSettings) -> tuple[float, dict]:
    began = time.perf_counter()
    metrics = run_preprocess(raw, out, cfg, progress=False, engine=settings)
    return time.perf_counter() - began, metrics


def cpu_detector_ms(repeats: int = 3) -> dict[str, float]:
    """Milliseconds per frame of the CPU face detectors on the first frame of a vendored GRID clip."""
    from pipeline.data.faces import make_detector
    from pipeline.data.media import decode_frame, probe

    clips = sorted((Path(__file__).resolve().parents[1] / "tests/fixtures/grid").glob("*.mpg"))
    if not clips:
        return {}
    info = probe(clips[0])
    frame = decode_frame(clips[0], 1.0, info.width, info.height)
    out = {}
    for name in ("dlib", "dlib_cnn"):
        detector = make_detector(name, device="cpu")
        detector.detect(frame)
        began = time.perf_counter()
        for _ in range(repeats):
            detector.detect(frame)
        out[name] = (time.perf_counter() - began) / repeats * 1000
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--per-shard", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--gpu-detector-ms", type=float, default=20.0,
                        help="assumed GPU face-detector time per frame (S3FD on one 224-px frame; not measured here)")
    parser.add_argument("--cores-per-node", type=int, default=32)
    args = parser.parse_args()
    os.environ.update({k: v for k, v in RAY_TEST_ENV.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"})
    cfg = PreprocessConfig(detector="center", image_size=64)
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        tmp = Path(tmp)
        clips = [(f"gen{i:03d}", make_clip(tmp / "media" / f"gen{i:03d}.mp4", duration=3.0 + 6.0 * (i % 7) / 6,
                                           size=(160, 160), audio_rate=44100, tone_hz=200 + 10 * i),
                  {"x": 0.5, "y": 0.5}) for i in range(args.clips)]
        for start in range(0, len(clips), args.per_shard):
            write_raw_shard(tmp / "raw", "train", start // args.per_shard, clips[start:start + args.per_shard])
        shards = -(-len(clips) // args.per_shard)

        local_s, local_m = timed_preprocess(tmp / "raw", tmp / "local", cfg, eng.EngineSettings())
        pool_settings = eng.EngineSettings(local_processes=0)   # one process per core
        pool_s, _ = timed_preprocess(tmp / "raw", tmp / "pool", cfg, pool_settings)
        pool_same = digests(tmp / "local") == digests(tmp / "pool")
        ray_settings = eng.EngineSettings("ray", "")
        began = time.perf_counter()
        eng.connect(ray_settings)
        start_s = time.perf_counter() - began
        list(eng.run_units(square_or_fail, [1, 2], ["w1", "w2"], ray_settings, "preprocess"))  # workers up
        ray_s, _ = timed_preprocess(tmp / "raw", tmp / "ray", cfg, ray_settings)
        same = digests(tmp / "local") == digests(tmp / "ray")

        began = time.perf_counter()
        list(eng.run_units(square_or_fail, list(range(args.tasks)), [str(i) for i in range(args.tasks)],
                           ray_settings, "download"))
        per_task_ms = (time.perf_counter() - began) / args.tasks * 1000
        cpus = eng.describe(ray_settings).get("cpus")
        eng.shutdown()

    n = local_m["clips_processed_this_run"]
    steps = local_m["timings"]["seconds_per_step"]
    per_clip = sum(steps.values()) / n
    detect = steps["detect"] / n
    print(f"preprocess, {n} generated clips in {shards} raw shards (center detector, 64 px), {os.cpu_count()} cores")
    print(f"  local engine, one process: {local_s:.2f} s, {n / local_s:.2f} clips/s")
    print(f"  local engine, local_processes 0 ({pool_settings.processes_for(shards)} processes): {pool_s:.2f} s, "
          f"{n / pool_s:.2f} clips/s = {local_s / pool_s:.2f}x one process; byte-identical: {pool_same}")
    print(f"  ray engine ({cpus:.0f} CPUs, one task per raw shard): {ray_s:.2f} s, {n / ray_s:.2f} clips/s "
          f"= {local_s / ray_s:.2f}x the local engine; Ray start-up {start_s:.1f} s (not included)")
    print(f"  outputs byte-identical: {same}")
    print(f"ray per-task overhead: {per_task_ms:.1f} ms per trivial task over {args.tasks} tasks "
          f"({per_task_ms / 1000 / per_clip / args.per_shard:.2%} of a {args.per_shard}-clip shard here)")
    print(f"per clip (local): {per_clip * 1000:.0f} ms = " + ", ".join(
        f"{s} {steps[s] / n * 1000:.0f}" for s in STEPS) + " ms")
    no_detector = per_clip - detect
    rows = [("the center detector", per_clip)]
    for detector, ms in cpu_detector_ms().items():
        print(f"CPU detector {detector} on a real 360x288 GRID frame: {ms:.0f} ms")
        rows.append((f"CPU detector {detector}", no_detector + ms / 1000))
    rows.append((f"GPU detector at {args.gpu_detector_ms:.0f} ms/frame (assumed)",
                 no_detector + args.gpu_detector_ms / 1000))
    for name, seconds in rows:
        core_hours = AVSPEECH_CLIPS * seconds / 3600
        print(f"AVSpeech preprocess, {name}: {seconds * 1000:.0f} ms/clip -> {core_hours:,.0f} core-hours = "
              f"{core_hours / args.cores_per_node:,.1f} hours on one {args.cores_per_node}-core node, "
              f"{core_hours / args.cores_per_node / 10:,.1f} on ten")
    print("  (224-px paper crops decode and encode more pixels: bench_preprocess.py's GRID run measures that size;"
          " download is bound by YouTube's pacing, download.sleep_interval per video per worker, not by CPU)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
