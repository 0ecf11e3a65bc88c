"""VoxCeleb recipe (lhotse style): a local VoxCeleb copy + its metadata CSV → an AVSpeech-format CSV + labels CSV.

The paper trains its voice gender classifier on a separately labelled corpus. VoxCeleb publishes every speaker's
gender in its metadata file, and its clips are face tracks with the speaker's voice, so a local copy of it goes
through the same download and preprocess code as the main corpus (``gender_corpus.*`` in params.yaml).

    python -m pipeline.data.recipes.voxceleb --meta vox2_meta.csv --root /data/voxceleb2/dev/mp4 --out data/voxceleb

* ``--meta``: ``vox1_meta.csv`` (tab-separated: ``VoxCeleb1 ID, VGGFace1 ID, Gender, Nationality, Set``) or
  ``vox2_meta.csv`` (comma-separated: ``VoxCeleb2 ID, VGGFace2 ID, Gender, Set``); header cells and values may
  carry spaces, as the published files do. Gender is ``m``/``f``.
* ``--root``: the clips as VoxCeleb lays them out, ``<speaker id>/<YouTube id>/<clip>.mp4``. A clip needs a video
  and an audio stream (VoxCeleb2's mp4 release; VoxCeleb1's wav-only release has no faces and is counted as
  ``no_video``).

It writes, under ``--out``:

* ``clips/<speaker>_<YouTube id>_<clip>.<ext>``: symbolic links to the chosen clips. VoxCeleb's clip names
  (``00001.mp4``) repeat across speakers, and the manifest names a local clip by its file name;
* ``avspeech.csv``: ``clips/<name>,0.000,<duration>,0.500,0.500`` per clip (no header; VoxCeleb clips are face
  tracks, so the face is at the centre for the whole clip);
* ``labels.csv``: ``video_id,speaker_id,gender,age_group`` (video_id = the link's stem, gender M/F).

``--clips-per-speaker`` (default 8) keeps the corpus small enough to probe and preprocess: the classifier needs
many speakers more than many clips per speaker. Clips are taken round-robin over the speaker's videos.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_write_bytes
from pipeline.data.media import MediaError, probe

CLIP_EXTS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".m4a", ".wav")  # audio-only: counted
GENDERS = {"m": "M", "f": "F", "male": "M", "female": "F"}


class VoxCelebError(PipelineError, ValueError):
    """The metadata file or the clip directory cannot give a corpus; one sentence says why."""


@dataclass
class RecipeResult:
    """Paths written and what happened to every speaker and clip."""

    csv: Path
    labels: Path
    counts: Counter = field(default_factory=Counter)


def read_voxceleb_meta(path: str | Path) -> tuple[dict[str, str], Counter]:
    """``{speaker id: "M" | "F"}`` from ``vox1_meta.csv`` / ``vox2_meta.csv``, and counts of rows left out."""
    path = Path(path)
    expected = ("expected a header with a 'VoxCeleb1 ID' or 'VoxCeleb2 ID' column and a 'Gender' column, "
                "tab- or comma-separated as vox1_meta.csv and vox2_meta.csv")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise VoxCelebError(f"VoxCeleb metadata file {path} not found") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise VoxCelebError(f"VoxCeleb metadata file {path} cannot be read as UTF-8 text ({exc})") from None
    lines = text.splitlines()
    if not lines:
        raise VoxCelebError(f"VoxCeleb metadata file {path} is empty; {expected}")
    delimiter = "\t" if "\t" in lines[0] else ","
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    header = [cell.strip().lower() for cell in rows[0]]
    id_col = next((i for i, h in enumerate(header) if h.startswith("voxceleb") and h.endswith("id")), None)
    gender_col = header.index("gender") if "gender" in header else None
    if id_col is None or gender_col is None:
        raise VoxCelebError(f"{path} is not a VoxCeleb metadata file: {expected}, got {rows[0]}")
    genders: dict[str, str] = {}
    left_out: Counter = Counter()
    for row in rows[1:]:
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(id_col, gender_col):
            left_out["malformed"] += 1
            continue
        speaker, gender = row[id_col].strip(), GENDERS.get(row[gender_col].strip().lower())
        if not speaker:
            left_out["malformed"] += 1
        elif gender is None:
            left_out["unknown_gender"] += 1
        elif genders.get(speaker, gender) != gender:
            left_out["conflicting_speaker"] += 1
        else:
            genders[speaker] = gender
    if not genders:
        raise VoxCelebError(f"no speaker with a gender (m/f) in {path} ({sum(left_out.values())} rows left out)")
    return genders, left_out


def choose_clips(speaker_dir: Path, clips_per_speaker: int) -> list[tuple[str, Path]]:
    """``[(YouTube id, clip path)]`` of one speaker: round-robin over the sorted videos, at most ``clips_per_speaker``
    (0 = all)."""
    per_video = [
        (video.name, sorted(p for p in video.iterdir() if p.suffix.lower() in CLIP_EXTS))
        for video in sorted(d for d in speaker_dir.iterdir() if d.is_dir())
    ]
    chosen: list[tuple[str, Path]] = []
    depth = 0
    while any(depth < len(clips) for _, clips in per_video):
        for video, clips in per_video:
            if depth < len(clips):
                chosen.append((video, clips[depth]))
        depth += 1
    return chosen[:clips_per_speaker] if clips_per_speaker > 0 else chosen


def _probe(path: Path) -> tuple[str, float]:
    """``("ok", duration)`` or ``(reason, 0)``: a clip the pipeline can use has a video and an audio stream."""
    try:
        info = probe(path)
    except MediaError:
        return "unreadable", 0.0
    if not info.has_video:
        return "no_video", 0.0
    if not info.has_audio:
        return "no_audio", 0.0
    return "ok", info.duration


def prepare_voxceleb(meta: str | Path, root: str | Path, out_dir: str | Path, clips_per_speaker: int = 8,
                     jobs: int = 4) -> RecipeResult:
    """Write ``clips/``, ``avspeech.csv`` and ``labels.csv`` under ``out_dir`` (see the module docstring)."""
    genders, left_out = read_voxceleb_meta(meta)
    root, out_dir = Path(root).resolve(), Path(out_dir)
    if not root.is_dir():
        raise VoxCelebError(f"VoxCeleb clip directory {root} not found")
    counts: Counter = Counter({f"meta_{k}": v for k, v in left_out.items()})
    on_disk = sorted(d.name for d in root.iterdir() if d.is_dir())
    counts["speakers_not_in_meta"] = sum(s not in genders for s in on_disk)
    candidates: list[tuple[str, str, Path]] = []
    for speaker in (s for s in on_disk if s in genders):
        candidates += [(speaker, video, clip) for video, clip in choose_clips(root / speaker, clips_per_speaker)]
    if not candidates:
        raise VoxCelebError(f"no clip of a speaker listed in {meta} under {root} (expected <speaker id>/<YouTube "
                            f"id>/<clip>.mp4, e.g. id00012/21Uxsk56VDQ/00001.mp4)")
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        probed = list(pool.map(_probe, [clip for _, _, clip in candidates]))
    clips_dir = out_dir / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    manifest, labels = io.StringIO(), io.StringIO()
    manifest_writer = csv.writer(manifest, lineterminator="\n")
    labels_writer = csv.writer(labels, lineterminator="\n")
    labels_writer.writerow(["video_id", "speaker_id", "gender", "age_group"])
    speakers: dict[str, set[str]] = defaultdict(set)
    for (speaker, video, clip), (status, duration) in zip(candidates, probed):
        if status != "ok":
            counts[f"clips_{status}"] += 1
            continue
        name = f"{speaker}_{video}_{clip.stem}{clip.suffix.lower()}"
        link = clips_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(clip, link)
        manifest_writer.writerow([f"clips/{name}", "0.000", f"{duration:.3f}", "0.500", "0.500"])
        labels_writer.writerow([Path(name).stem, speaker, genders[speaker], ""])
        speakers[genders[speaker]].add(speaker)
        counts["clips"] += 1
    if not counts["clips"]:
        raise VoxCelebError(f"none of the {len(candidates)} clips under {root} has both a video and an audio stream "
                            f"({', '.join(f'{k} {v}' for k, v in sorted(counts.items()) if k.startswith('clips_'))})")
    counts["speakers_M"], counts["speakers_F"] = len(speakers["M"]), len(speakers["F"])
    atomic_write_bytes(out_dir / "avspeech.csv", manifest.getvalue().encode("utf-8"))
    atomic_write_bytes(out_dir / "labels.csv", labels.getvalue().encode("utf-8"))
    return RecipeResult(out_dir / "avspeech.csv", out_dir / "labels.csv", counts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Turn a local VoxCeleb copy into an AVSpeech-format CSV + labels")
    parser.add_argument("--meta", required=True, help="vox1_meta.csv or vox2_meta.csv")
    parser.add_argument("--root", required=True, help="clips as <speaker id>/<YouTube id>/<clip>.mp4")
    parser.add_argument("--out", default="data/voxceleb", help="output directory (clips/, avspeech.csv, labels.csv)")
    parser.add_argument("--clips-per-speaker", type=int, default=8, help="0 = every clip")
    parser.add_argument("--jobs", type=int, default=4, help="parallel ffprobe calls")
    args = parser.parse_args(argv)
    try:
        result = prepare_voxceleb(args.meta, args.root, args.out, args.clips_per_speaker, args.jobs)
    except VoxCelebError as exc:
        print(f"voxceleb recipe: error: {exc}", file=sys.stderr)
        return 1
    c = result.counts
    skipped = ", ".join(f"{k} {v}" for k, v in sorted(c.items())
                        if v and k not in ("clips", "speakers_M", "speakers_F")) or "none"
    print(f"voxceleb recipe: {c['clips']} clips of {c['speakers_M']} male and {c['speakers_F']} female speakers "
          f"listed in {result.csv} (labels: {result.labels}); left out: {skipped}")
    print(f"use it with: gender_corpus.csv={result.csv} gender_corpus.labels={result.labels} "
          f"gender_corpus.media={Path(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
