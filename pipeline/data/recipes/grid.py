"""GRID recipe (lhotse style): list the GRID sample clips as an AVSpeech-format manifest CSV + a labels CSV.

    python -m pipeline.data.recipes.grid --grid-dir tests/fixtures/grid --out data/grid

writes ``data/grid/avspeech.csv`` (no header: ``path,start,end,x,y``; absolute paths, start 0, end = the clip's
duration from ffprobe, x,y = 0.5,0.55: GRID's 360x288 frames show one frontal face a little below the frame
centre, measured with dlib on all 11 clips) and ``data/grid/labels.csv`` (``video_id,speaker_id,gender,age_group``;
video_id = speaker_id = file stem, since GRID file names do not identify the speaker reliably; gender = the
perceived gender of ``labels.csv``; age group unknown).
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from pipeline.common.io import atomic_write_bytes
from pipeline.data.media import MediaError, probe

FACE_X, FACE_Y = 0.5, 0.55
VIDEO_EXTS = (".mpg", ".mp4", ".avi", ".mov", ".mkv", ".webm")


def prepare_grid(grid_dir: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``avspeech.csv`` and ``labels.csv`` for every video in ``grid_dir``; return their paths."""
    grid_dir = Path(grid_dir).resolve()
    clips = sorted(p for p in grid_dir.iterdir() if p.suffix.lower() in VIDEO_EXTS)
    if not clips:
        raise FileNotFoundError(f"no video clips in {grid_dir}")
    genders: dict[str, str] = {}
    labels_in = grid_dir / "labels.csv"
    if labels_in.is_file():
        with labels_in.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                genders[Path(row["file"]).stem] = (row.get("perceived_gender") or "").strip().upper()
    manifest, labels = io.StringIO(), io.StringIO()
    mw = csv.writer(manifest, lineterminator="\n")
    lw = csv.writer(labels, lineterminator="\n")
    lw.writerow(["video_id", "speaker_id", "gender", "age_group"])
    for clip in clips:
        info = probe(clip)
        mw.writerow([str(clip), "0.000", f"{info.duration:.3f}", f"{FACE_X:.3f}", f"{FACE_Y:.3f}"])
        gender = genders.get(clip.stem, "")
        lw.writerow([clip.stem, clip.stem, gender if gender in ("M", "F") else "", ""])
    out_dir = Path(out_dir)
    atomic_write_bytes(out_dir / "avspeech.csv", manifest.getvalue().encode("utf-8"))
    atomic_write_bytes(out_dir / "labels.csv", labels.getvalue().encode("utf-8"))
    return out_dir / "avspeech.csv", out_dir / "labels.csv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write an AVSpeech-format CSV + labels CSV for the GRID clips")
    parser.add_argument("--grid-dir", default="tests/fixtures/grid", help="the clips and their labels.csv (default: "
                        "the 11 clips vendored for the tests)")
    parser.add_argument("--out", default="data/grid")
    args = parser.parse_args(argv)
    try:
        manifest, labels = prepare_grid(args.grid_dir, args.out)
    except (FileNotFoundError, MediaError) as exc:
        print(f"grid recipe: error: {exc}", file=sys.stderr)
        return 1
    n = len(manifest.read_text(encoding="utf-8").splitlines())
    print(f"grid recipe: {n} clips listed in {manifest} (labels: {labels})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
