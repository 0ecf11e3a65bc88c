"""Benchmark of the download stage: clips/s and time per step (yt-dlp/ffmpeg, probe, tar write).

Two sets, each through local-file mode (ffmpeg cut) and through yt-dlp against a loopback HTTP server:
(a) the embedded sample's clips (``data/sample`` when it exists, else a generated sample-like set) and
(b) the 11 real GRID clips vendored in ``tests/fixtures/grid``. Nothing touches the network.

    python bench/bench_download.py [--clips 12] [--concurrency 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

from pipeline.data.download.runner import STEP_KEYS, DownloadSettings, run_download  # noqa: E402
from pipeline.data.media import probe  # noqa: E402
from pipeline.testing.download import manifest_row, write_manifest  # noqa: E402
from pipeline.testing.http import RangeHTTPServer  # noqa: E402
from pipeline.testing.media import make_clip  # noqa: E402

GRID = REPO / "tests" / "fixtures" / "grid"
MEDIA_EXTS = {".mp4", ".mpg", ".mkv", ".webm", ".mov"}


def sample_clips(tmp: Path, n: int) -> tuple[str, list[Path]]:
    """The embedded sample's videos if generated, else ``n`` sample-like clips (160 px, 3–9 s, 25 fps)."""
    existing = sorted(p for p in (REPO / "data" / "sample").rglob("*") if p.suffix in MEDIA_EXTS)
    if existing:
        return "data/sample", existing[:n]
    clips = [make_clip(tmp / "sample" / f"s{i:03d}.mp4", duration=3.0 + (6.0 * i / max(n - 1, 1)), size=(160, 160),
                       tone_hz=200.0 + 20 * i) for i in range(n)]
    return "generated sample-like", clips


def bench(name: str, clips: list[Path], mode: str, tmp: Path, concurrency: int) -> None:
    """Download a whole-clip section of every file through ``mode`` (``file`` or ``http``) and print numbers."""
    work = tmp / f"{name.replace(' ', '_').replace('/', '_')}-{mode}"
    server = RangeHTTPServer(clips[0].parent).start() if mode == "http" else None
    try:
        rows = []
        for i, clip in enumerate(clips):
            duration = probe(clip).duration
            source = server.url(clip.name) if server else str(clip)
            rows.append(manifest_row(f"c{i:04d}", source, "url" if server else "file", start=0.0,
                                     end=round(duration - 0.05, 2)))
        settings = DownloadSettings(shard_size=64, concurrency=concurrency, retries=0, timeout=120, min_height=0)
        began = time.monotonic()
        totals = run_download(write_manifest(work / "manifest", rows), work / "raw", settings, progress=False)
        wall = time.monotonic() - began
    finally:
        if server:
            server.stop()
    steps = {k: totals["timings"][k] for k in STEP_KEYS}  # timings live in the metrics, not the shards
    busy = sum(steps.values()) or 1.0
    split = ", ".join(f"{k.split('_')[0]} {v:.2f} s ({100 * v / busy:.0f}%)" for k, v in steps.items())
    print(f"{name:<24} {mode:<5} {totals['ok']:>3}/{totals['rows_in']:<3} ok  {wall:6.2f} s  "
          f"{totals['rows_in'] / wall:5.2f} clips/s  | {split}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12, help="sample clips to use")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    print(f"download benchmark: concurrency {args.concurrency}, {os.cpu_count()} CPUs; "
          "step times are summed over rows (threads overlap)")
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp_name:
        tmp = Path(tmp_name)
        label, clips = sample_clips(tmp, args.clips)
        sets = [(label, clips)]
        if GRID.is_dir():
            sets.append(("GRID", sorted(GRID.glob("*.mpg"))))
        else:
            print(f"(GRID clips not found at {GRID}; skipped)")
        for name, files in sets:
            for mode in ("file", "http"):
                bench(name, files, mode, tmp, args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
