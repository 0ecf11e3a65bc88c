"""The manifest stage at AVSpeech scale: a generated 2,621,845-row AVSpeech-shaped CSV, rows/s and peak memory.

    python bench/bench_manifest.py                 # 2.6 M rows (the AVSpeech train CSV's size)
    python bench/bench_manifest.py --rows 200000   # quicker

The CSV looks like ``avspeech_train.csv``: no header, ``youtube_id,start,end,x,y``, about nine segments per video
(290 k videos), with a UTF-8 byte-order mark as spreadsheet tools save it, a few duplicate lines and a few bad ones.
It runs the real stage (``python -m stages.manifest``) in a child process and reports its wall time and peak
resident memory against the targets (issue: ≤ 30 s and ≤ 1.5 GB for 2.6 M rows on a 2-core machine).
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AVSPEECH_TRAIN_ROWS = 2_621_845
TARGET_SECONDS, TARGET_GIB = 30.0, 1.5


def write_csv(path: Path, rows: int, seed: int = 0) -> None:
    """An AVSpeech-shaped CSV of ``rows`` lines (BOM first; 1 in 10 000 duplicated, 1 in 50 000 malformed)."""
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "_-"
    with path.open("wb") as fh:
        fh.write(b"\xef\xbb\xbf")
        written = 0
        while written < rows:
            video = "".join(rng.choice(alphabet) for _ in range(11))
            t = rng.uniform(0, 30)
            for _ in range(min(rng.randint(6, 12), rows - written)):
                length = rng.uniform(3, 10)
                line = f"{video},{t:.6f},{t + length:.6f},{rng.random():.6f},{rng.random():.6f}\n"
                if written % 50_000 == 49_999:
                    line = f"{video},{t:.6f}\n"  # malformed: two fields
                fh.write(line.encode())
                if written % 10_000 == 9_999 and written + 1 < rows:
                    fh.write(line.encode())  # a duplicate line
                    written += 1
                written += 1
                t += length + rng.uniform(0, 5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=AVSPEECH_TRAIN_ROWS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv_path = tmp / "avspeech_train.csv"
        began = time.perf_counter()
        write_csv(csv_path, args.rows)
        print(f"generated {args.rows:,} rows ({csv_path.stat().st_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - began:.0f} s")
        params = tmp / "params.yaml"
        params.write_text("manifest:\n  csv: x\n  labels: ''\n  media: x\n  seed: 0\n  test_fraction: 0.05\n"
                          "  limit: 0\n", encoding="utf-8")
        began = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "stages.manifest", "--csv", str(csv_path), "--out",
                               str(tmp / "manifest"), "--params", str(params)], cwd=REPO, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        seconds = time.perf_counter() - began
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        print(proc.stdout.strip())
    scale = AVSPEECH_TRAIN_ROWS / args.rows
    print(f"manifest: {args.rows / seconds:,.0f} rows/s, {seconds:.1f} s, peak {peak_gib:.2f} GiB")
    print(f"at 2.6 M rows (linear): {seconds * scale:.1f} s (target {TARGET_SECONDS:.0f} s, ratio "
          f"{seconds * scale / TARGET_SECONDS:.2f}), peak ~{peak_gib * scale:.2f} GiB if memory is per row "
          f"(target {TARGET_GIB} GiB)" if scale != 1 else
          f"targets: {seconds:.1f} / {TARGET_SECONDS:.0f} s (ratio {seconds / TARGET_SECONDS:.2f}), "
          f"{peak_gib:.2f} / {TARGET_GIB} GiB (ratio {peak_gib / TARGET_GIB:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
