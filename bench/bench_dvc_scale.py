"""DVC over a full AVSpeech run's shard files: how many files, and how long a no-op ``dvc status`` takes over them.

    python bench/bench_dvc_scale.py                    # the paper config's shard sizes (configs/paper.yaml)
    python bench/bench_dvc_scale.py --shard-size 256   # a raw shard size to compare with

A full AVSpeech train run has 2,621,845 rows. ``data/raw`` holds three files per raw shard of
``download.shard_size`` rows (tar, attempts parquet, stats); ``data/shards`` three per preprocess part, and a part
closes at ``preprocess.shard_max_count`` samples or ``shard_max_bytes``. This writes that many small placeholder
files (the sizes are not the real ones: after the first hash DVC decides "unchanged" from each file's size, mtime
and inode, so the time per file, not per byte, is what a no-op costs), commits them as one stage's outputs in a
temporary DVC project, and times the real ``dvc status`` CLI: the first call after the commit and the median of
the next ``--repeats``.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
AVSPEECH_TRAIN_ROWS = 2_621_845
#: a preprocessed sample at 224 px: a 6-s spectrogram .npy (~615 KB), 16 kHz FLAC (~105 KB), JPEG (~20 KB), meta
SAMPLE_BYTES = 745_000


def shard_counts(rows: int, shard_size: int, max_count: int, max_bytes: int) -> tuple[int, int]:
    """(raw shards, preprocess parts) for ``rows`` clips: each raw shard is cut into parts by count or bytes."""
    raw = math.ceil(rows / shard_size)
    per_part = max(1, min(max_count, max_bytes // SAMPLE_BYTES))
    parts_per_raw = math.ceil(shard_size / per_part)
    return raw, raw * parts_per_raw


def write_placeholders(directory: Path, shards: int) -> int:
    """``shards`` × (tar, parquet, stats.json) small distinct files, named as the stages name theirs."""
    directory.mkdir(parents=True)
    for i in range(shards):
        stem = directory / f"train-{i:06d}"
        for suffix in (".tar", ".parquet", ".stats.json"):
            Path(f"{stem}{suffix}").write_bytes(f"{stem.name}{suffix}\n".encode() * 8)
    return shards * 3


def dvc(args: list[str], cwd: Path) -> float:
    """Run ``dvc`` in ``cwd``; return its wall time in seconds (raises when it fails)."""
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    return time.perf_counter() - began


def main() -> int:
    paper = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text(encoding="utf-8"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=AVSPEECH_TRAIN_ROWS)
    parser.add_argument("--shard-size", type=int, default=paper["download"]["shard_size"])
    parser.add_argument("--max-count", type=int, default=paper["preprocess"]["shard_max_count"])
    parser.add_argument("--max-bytes", type=int, default=paper["preprocess"]["shard_max_bytes"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    raw, parts = shard_counts(args.rows, args.shard_size, args.max_count, args.max_bytes)
    print(f"{args.rows:,} rows: download.shard_size {args.shard_size} -> {raw:,} raw shards; preprocess "
          f"shard_max_count {args.max_count}, shard_max_bytes {args.max_bytes:,} -> {parts:,} parts "
          f"(~{min(args.max_count, args.max_bytes // SAMPLE_BYTES) * SAMPLE_BYTES / 1e6:.0f} MB each)")
    with tempfile.TemporaryDirectory(prefix="bench-dvc-scale-") as tmp:
        root = Path(tmp)
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        dvc(["init", "-q"], root)
        began = time.perf_counter()
        files = write_placeholders(root / "data" / "raw", raw) + write_placeholders(root / "data" / "shards", parts)
        print(f"files: data/raw {raw * 3:,}, data/shards {parts * 3:,}, {files:,} in all "
              f"(written in {time.perf_counter() - began:.1f} s)")
        stage = {"stages": {"placeholder": {"cmd": "true", "outs": ["data/raw", "data/shards"]}}}
        (root / "dvc.yaml").write_text(yaml.safe_dump(stage), encoding="utf-8")
        print(f"dvc commit (hashes and caches every file): {dvc(['commit', '-f', '-q'], root):.1f} s")
        first = dvc(["status", "-q"], root)
        warm = [dvc(["status", "-q"], root) for _ in range(args.repeats)]
        floor = statistics.median(dvc(["--version"], root) for _ in range(args.repeats))
        print(f"dvc status, no-op: first {first:.2f} s, then median {statistics.median(warm):.2f} s "
              f"(range {min(warm):.2f}-{max(warm):.2f} s over {args.repeats}); dvc --version alone {floor:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
