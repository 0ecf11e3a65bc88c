"""A VoxCeleb-shaped copy of the 11 GRID clips, for the VoxCeleb recipe's tests and the paper smoke run.

``make_voxceleb_layout(root)`` lays the clips out as VoxCeleb does (``<speaker id>/<YouTube id>/<clip>.mpg``, as
symbolic links) for five made-up speakers, two female and three male by the clips' perceived gender, and writes a
``vox2_meta.csv`` in the published file's format (comma-separated, with the spaces it has). Returns the meta path.
"""
from __future__ import annotations

import os
from pathlib import Path

from pipeline.testing.project import REPO_ROOT

GRID_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "grid"

# speaker id -> (gender, [(YouTube-like video id, GRID clip)])
SPEAKERS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "id00001": ("f", [("aaaaaaaaaa1", "brbk7n.mpg"), ("aaaaaaaaaa2", "lbbc2a.mpg")]),
    "id00002": ("f", [("bbbbbbbbbb1", "lrwp9a.mpg"), ("bbbbbbbbbb1", "lwbsza.mpg")]),
    "id00003": ("m", [("cccccccccc1", "bbaf2n.mpg"), ("cccccccccc2", "lbax4n.mpg")]),
    "id00004": ("m", [("dddddddddd1", "pwij3p.mpg"), ("dddddddddd2", "sbia1a.mpg")]),
    "id00005": ("m", [("eeeeeeeeee1", "sbwe5n.mpg"), ("eeeeeeeeee1", "swiz3n.mpg"),
                      ("eeeeeeeeee2", "id2_vcd_swwp2s.mpg")]),
}


def make_voxceleb_layout(root: str | Path, grid_dir: str | Path = GRID_FIXTURES) -> Path:
    """Link the GRID clips into ``root/mp4/<speaker>/<video>/<clip>`` and write ``root/vox2_meta.csv``."""
    root, grid_dir = Path(root), Path(grid_dir).resolve()
    lines = ["VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set "]
    for speaker, (gender, clips) in SPEAKERS.items():
        per_video: dict[str, int] = {}
        for video, clip in clips:
            per_video[video] = per_video.get(video, 0) + 1
            target = root / "mp4" / speaker / video / f"{per_video[video]:05d}.mpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(grid_dir / clip, target)
        lines.append(f"{speaker} ,n{speaker[2:]} ,{gender} ,dev ")
    meta = root / "vox2_meta.csv"
    meta.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return meta
