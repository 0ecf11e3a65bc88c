"""Raw clip shards (``data/raw``) → WebDataset sample shards (``data/shards``), accounting for every row.

For each clip: probe → decode audio (16 kHz mono, fitted to 6 s) → decode one frame at ``frame_time`` →
detect faces → keep the one nearest the manifest's (x, y) → square crop → spectrogram → encode → write.
Any failure becomes a recorded rejection with a reason (``corrupt``, ``no_video``, ``no_audio``,
``audio_too_short``, ``no_face``, ``face_off_centre``) and the stage continues.

Shard numbering and resume: raw shards of a split are processed in name order, each into one or more output
parts numbered consecutively (``{split}-{NNNNNN}``); a part closes at ``shard_max_count`` samples or
``shard_max_bytes``. Each part's stats file (written last) names its raw shard, part number and whether it is
the raw shard's last part. On a rerun, a raw shard whose parts are all complete is skipped; from the first raw
shard that is not, everything of that split is redone, so a resumed run gives the same files as a clean one.

Determinism: every file under the output directory (tars, status parquets, stats JSON) is byte-identical
between runs and machines for the same raw shards and params, so DVC hashes match and teammates reuse the
run-cache. Wall-clock timings never go into those files: the seconds per step, in total and per shard written in
this run, go to the metrics dict under ``timings`` (what the benchmark reads).
"""
from __future__ import annotations

import math
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq
from tqdm import tqdm

from pipeline.common.errors import PipelineError
from pipeline.common.io import note_if_empty, read_json
from pipeline.data.audio import AudioError, load_audio, spectrogram
from pipeline.data.engine import EngineSettings, describe, run_units
from pipeline.data.faces import (
    Detector,
    EyeLandmarks,
    FaceError,
    align_face,
    check_detector_name,
    choose_face,
    crop_face,
    make_detector,
)
from pipeline.data.media import MediaError, decode_frame, probe
from pipeline.data.shards import KEY_RE, ShardWriter, encode_sample, shard_name, write_shard_stats, write_status_table

STEPS = ("decode", "detect", "crop", "stft", "encode", "write")
RAW_RE = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{6})\.tar$")
MEDIA_EXTS = {"mp4", "mkv", "webm", "mov", "avi", "mpg", "mpeg", "m4v", "flv", "ts"}


class PreprocessError(PipelineError, RuntimeError):
    """The stage cannot run at all (bad params, unreadable raw directory); one sentence for the user."""


class CountsDoNotAddUp(PreprocessError):
    """Rows in (the download's keys) differ from samples out + rejections: a raw directory whose shards and status
    tables disagree, or a bug. The stage stops before its metrics mark the run complete."""


class Rejection(Exception):
    """A clip that cannot become a sample."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class PreprocessConfig:
    """The ``preprocess`` params section."""

    detector: str = "center"
    device: str = "auto"
    image_size: int = 64
    margin: float = 0.35
    frame_time: float = 0.0
    max_center_distance: float = 0.2
    jpeg_quality: int = 95
    shard_max_count: int = 1000
    shard_max_bytes: int = 256_000_000
    center_box: float = 0.45
    dlib_upsample: int = 1
    face_alignment_dir: str = ""
    align: str = "none"

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "PreprocessConfig":
        known = {k: params[k] for k in cls.__dataclass_fields__ if k in params}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise PreprocessError(f"unknown preprocess param(s): {', '.join(unknown)}")
        cfg = cls(**known)
        check_detector_name(cfg.detector)
        if cfg.image_size < 8:
            raise PreprocessError(f"preprocess.image_size must be >= 8, got {cfg.image_size}")
        if not 1 <= cfg.jpeg_quality <= 100 or cfg.jpeg_quality < 95:
            raise PreprocessError(f"preprocess.jpeg_quality must be in [95, 100], got {cfg.jpeg_quality}")
        if cfg.shard_max_count < 1 or cfg.shard_max_bytes < 1:
            raise PreprocessError("preprocess.shard_max_count and shard_max_bytes must be positive")
        if cfg.align not in ("none", "eyes"):
            raise PreprocessError(f"preprocess.align must be none or eyes, got {cfg.align!r}")
        if cfg.align == "eyes" and cfg.detector == "center":
            raise PreprocessError("preprocess.align: eyes needs a detector that finds the face (dlib, dlib_cnn or "
                                  "face_alignment), not center")
        if cfg.margin < 0 or cfg.frame_time < 0 or cfg.max_center_distance <= 0:
            raise PreprocessError("preprocess.margin, frame_time must be >= 0 and max_center_distance > 0")
        return cfg


@dataclass
class RawClip:
    """One clip from a raw shard: its key, container extension, bytes and manifest row."""

    key: str
    ext: str
    data: bytes
    row: dict[str, Any]


@dataclass
class ClipResult:
    """A processed clip: the encoded sample, or a rejection; plus the seconds spent per step."""

    key: str
    fields: dict[str, bytes] | None
    reason: str = ""
    detail: str = ""
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STEPS, 0.0))


# ---------------------------------------------------------------------------------------------- raw input

def list_raw_shards(raw_dir: str | Path) -> dict[str, list[Path]]:
    """``{split: [raw tar, ...]}`` sorted; a raw tar without its stats file means download did not finish."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise PreprocessError(f"raw directory {raw_dir} not found (run the download stage first)")
    out: dict[str, list[Path]] = {}
    for path in sorted(raw_dir.glob("*.tar")):
        match = RAW_RE.match(path.name)
        if not match:
            continue
        if not path.with_suffix(".stats.json").is_file():
            raise PreprocessError(f"raw shard {path.name} is incomplete (no stats file): rerun the download stage")
        out.setdefault(match["split"], []).append(path)
    return out


def iter_raw_clips(raw_tar: Path) -> Iterator[RawClip]:
    """Clips of a raw shard in key order. Members are ``{key}.{media ext}`` + ``{key}.json``."""
    import json

    media: dict[str, tuple[str, bytes]] = {}
    rows: dict[str, dict] = {}
    with tarfile.open(raw_tar, "r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, _, ext = member.name.rpartition(".")
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            if ext == "json":
                rows[key] = json.loads(data.decode("utf-8"))
            else:
                media[key] = (ext.lower(), data)
    for key in sorted(set(media) | set(rows)):
        ext, data = media.get(key, ("", b""))
        yield RawClip(key=key, ext=ext, data=data, row=rows.get(key, {"key": key}))


def download_outcomes(raw_dir: str | Path, split: str | None = None) -> tuple[set[str], Counter]:
    """Keys the download stage saw and its rejections by error class (the final attempt of each key decides)."""
    keys: set[str] = set()
    rejected: Counter = Counter()
    for path in sorted(Path(raw_dir).glob(f"{split or '*'}-*.parquet")):
        if not RAW_RE.match(path.with_suffix(".tar").name):
            continue
        table = pq.read_table(path).to_pylist()
        final: dict[str, dict] = {}
        for row in table:
            key = str(row.get("key"))
            if key not in final or int(row.get("attempt") or 0) >= int(final[key].get("attempt") or 0):
                final[key] = row
        keys.update(final)
        for row in final.values():
            if row.get("status") == "rejected":
                rejected[str(row.get("error_class") or "download_failed")] += 1
    return keys, rejected


# ---------------------------------------------------------------------------------------------- one clip

def _num(value: Any, default: float) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(out) else out


def build_meta(row: dict[str, Any], key: str, split: str, box, detector: str, audio_fit: str,
               orig_duration: float, image_size: int, eyes: tuple | None = None) -> dict[str, Any]:
    """meta.json of one sample (docs/contracts.md); ``eyes`` (frame pixels) only for eye-aligned crops."""
    meta = {
        "key": key,
        "video_id": row.get("video_id") or key,
        "speaker_id": row.get("speaker_id"),
        "gender": row.get("gender"),
        "age_group": row.get("age_group"),
        "split": split,
        "source": row.get("source"),
        "start": _num(row.get("start"), 0.0),
        "end": _num(row.get("end"), 0.0),
        "face_box": box.as_list(),
        "detector": detector,
        "detector_score": round(float(box.score), 6),
        "audio_fit": audio_fit,
        "orig_duration": orig_duration,
        "image_size": image_size,
    }
    if eyes is not None:  # absent otherwise, so unaligned samples keep their exact bytes
        meta["align"] = "eyes"
        meta["eyes"] = [[round(float(v), 2) for v in point] for point in eyes]
    return meta


def process_clip(clip: RawClip, split: str, detector: Detector, cfg: PreprocessConfig,
                 work_dir: Path, landmarks: EyeLandmarks | None = None) -> ClipResult:
    """Turn one raw clip into encoded sample fields, or a rejection with its reason."""
    result = ClipResult(key=clip.key, fields=None)
    sec = result.seconds
    try:
        if not KEY_RE.match(clip.key):
            raise Rejection("bad_key", f"key {clip.key!r} is not [A-Za-z0-9_-]+")
        if not clip.data:
            raise Rejection("corrupt", "raw shard has no media file for this key")
        if clip.ext not in MEDIA_EXTS:
            raise Rejection("corrupt", f"unexpected media extension .{clip.ext}")
        t0 = time.perf_counter()
        media_path = work_dir / f"clip.{clip.ext}"
        media_path.write_bytes(clip.data)
        info = probe(media_path)
        if not info.has_video:
            raise Rejection("no_video", "file has no video stream")
        if not info.has_audio:
            raise Rejection("no_audio", "file has no audio stream")
        if info.width <= 0 or info.height <= 0:
            raise Rejection("corrupt", "video stream has no frame size")
        audio = load_audio(media_path, has_audio=True)
        frame = decode_frame(media_path, cfg.frame_time, info.width, info.height)
        sec["decode"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        center = (_num(clip.row.get("x"), 0.5), _num(clip.row.get("y"), 0.5))
        boxes = detector.detect(frame, center=center)
        box = choose_face(boxes, center, info.width, info.height, cfg.max_center_distance)
        sec["detect"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        eyes = None
        if landmarks is not None:
            eyes = landmarks.eyes(frame, box)
            face = align_face(frame, eyes[0], eyes[1], cfg.margin, cfg.image_size)
        else:
            face = crop_face(frame, box, cfg.margin, cfg.image_size)
        sec["crop"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        spec = spectrogram(audio.waveform)
        sec["stft"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        meta = build_meta(clip.row, clip.key, split, box, detector.name, audio.fit, audio.orig_duration,
                          cfg.image_size, eyes)
        result.fields = encode_sample(face, spec, audio.waveform, meta, cfg.jpeg_quality)
        sec["encode"] = time.perf_counter() - t0
    except Rejection as exc:
        result.reason, result.detail = exc.reason, exc.detail
    except (AudioError, FaceError, MediaError) as exc:
        result.reason, result.detail = exc.reason, clean_detail(str(exc), work_dir)
    return result


#: ffmpeg prefixes some messages with the address of its context (``[mov,mp4 @ 0x55d1c0a2b440]``)
_POINTER_RE = re.compile(r" @ 0x[0-9a-fA-F]+")


def clean_detail(message: str, work_dir: Path) -> str:
    """A rejection's detail without what differs between runs and machines: the temp work directory's path
    (the clip file is named by its key's shard row anyway) and ffmpeg's memory addresses."""
    return _POINTER_RE.sub("", message.replace(f"{work_dir}/", "").replace(str(work_dir), ""))


# ---------------------------------------------------------------------------------------------- shards

class _Part:
    """One output part being written into the staging folder: tar writer + its status rows + its totals."""

    def __init__(self, staging: Path, name: str, index: int):
        self.name = f"{name}.part{index:04d}"
        self.staging, self.index = staging, index
        self.writer = ShardWriter(staging / f"{self.name}.tar")
        self.rows: list[dict[str, Any]] = []
        self.rejections: Counter = Counter()
        self.seconds = dict.fromkeys(STEPS, 0.0)   # this run's timing: for the metrics, never the shard

    def record(self, result: ClipResult) -> None:
        if result.fields is not None:
            t0 = time.perf_counter()
            self.writer.add(result.key, result.fields)
            result.seconds["write"] = time.perf_counter() - t0
        else:
            self.rejections[result.reason] += 1
        for step in STEPS:
            self.seconds[step] += result.seconds[step]
        self.rows.append({
            "key": result.key, "status": "ok" if result.fields is not None else "rejected",
            "reason": result.reason, "detail": result.detail,
        })

    def finish(self) -> dict[str, Any]:
        """Close the tar, write the status parquet; returns what the driver needs to commit the part."""
        self.writer.close()
        write_status_table(self.staging / f"{self.name}.parquet", self.rows)
        return {"name": self.name, "samples": self.writer.count, "rejected": sum(self.rejections.values()),
                "rejections": dict(sorted(self.rejections.items())), "bytes": self.writer.bytes,
                "keys_in": len(self.rows),
                "timings": {**{s: round(v, 4) for s, v in self.seconds.items()}, "clips": len(self.rows)}}


@dataclass(frozen=True)
class RawShardJob:
    """One preprocess unit: a raw shard, its split, the config and the staging folder (picklable, for Ray)."""

    raw: str
    split: str
    cfg: PreprocessConfig
    staging: str


#: detectors already built in this process, by configuration (a Ray worker keeps its model between shards)
_DETECTORS: dict[tuple, tuple[Detector, EyeLandmarks | None]] = {}


#: detectors that run a neural network on ``preprocess.device`` (the others run on the CPU)
MODEL_DETECTORS = ("dlib_cnn", "face_alignment")


def local_process_limit(cfg: PreprocessConfig) -> int | None:
    """At most one local process when the detector's network runs on a GPU (each process would load its own copy
    onto the one device); CPU detectors may use every core (``cluster.local_processes``)."""
    if cfg.detector in MODEL_DETECTORS and cfg.device != "cpu":
        from pipeline.common.device import resolve_device

        if resolve_device(cfg.device).type == "cuda":
            return 1
    return None


def _detector_for(cfg: PreprocessConfig) -> tuple[Detector, EyeLandmarks | None]:
    key = (cfg.detector, cfg.device, cfg.center_box, cfg.dlib_upsample, cfg.face_alignment_dir, cfg.align)
    if key not in _DETECTORS:
        _DETECTORS.clear()
        detector = make_detector(cfg.detector, device=cfg.device, center_box=cfg.center_box,
                                 dlib_upsample=cfg.dlib_upsample, face_alignment_dir=cfg.face_alignment_dir)
        _DETECTORS[key] = (detector, EyeLandmarks() if cfg.align == "eyes" else None)
    return _DETECTORS[key]


def preprocess_raw_shard(job: RawShardJob) -> list[dict[str, Any]]:
    """A unit of the preprocess stage (here or as a Ray task): every clip of one raw shard into parts of at most
    ``shard_max_count`` samples / ``shard_max_bytes``, written into the staging folder as
    ``<split>.<raw>.partNNNN.tar/.parquet``. Returns the parts in order (``_Part.finish``); the driver gives
    them their shard names and writes their stats."""
    from pipeline.data.engine import kill_point

    cfg, staging = job.cfg, Path(job.staging)
    detector, landmarks = _detector_for(cfg)
    name = f"{job.split}.{Path(job.raw).name.split('.')[0]}"
    clips = list(iter_raw_clips(Path(job.raw)))
    parts: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="preprocess-") as tmp:
        part = _Part(staging, name, 0)
        for i, clip in enumerate(clips):
            part.record(process_clip(clip, job.split, detector, cfg, Path(tmp), landmarks))
            if i == len(clips) // 2:
                kill_point()  # fault test: a worker killed half-way through a raw shard
            full = part.writer.count >= cfg.shard_max_count or part.writer.bytes >= cfg.shard_max_bytes
            if full and i < len(clips) - 1:
                parts.append(part.finish())
                part = _Part(staging, name, part.index + 1)
        parts.append(part.finish())
    return parts


def _commit_parts(parts: list[dict[str, Any]], staging: Path, out_dir: Path, split: str, start: int,
                  raw_name: str, cfg: PreprocessConfig) -> list[dict[str, Any]]:
    """Move a raw shard's staged parts to their shard names from index ``start``; stats last, one per part."""
    all_stats = []
    for number, part in enumerate(parts):
        stem = shard_name(split, start + number)
        for suffix in (".tar", ".parquet"):
            os.replace(staging / f"{part['name']}{suffix}", out_dir / f"{stem}{suffix}")
        stats = {
            "shard": stem, "split": split, "raw_shard": raw_name, "part": number,
            "last_part": number == len(parts) - 1, "samples": part["samples"], "rejected": part["rejected"],
            "rejections": part["rejections"], "bytes": part["bytes"], "keys_in": part["keys_in"],
            "image_size": cfg.image_size, "detector": cfg.detector,
        }
        write_shard_stats(out_dir / f"{stem}.stats.json", stats)
        all_stats.append(stats)
    return all_stats


def _completed_parts(out_dir: Path, split: str, start: int, raw_name: str) -> list[dict[str, Any]] | None:
    """Stats of the complete parts of ``raw_name`` starting at index ``start``, or None if not all done."""
    parts = []
    index = start
    while True:
        stem = shard_name(split, index)
        stats_path = out_dir / f"{stem}.stats.json"
        if not (stats_path.is_file() and (out_dir / f"{stem}.tar").is_file()
                and (out_dir / f"{stem}.parquet").is_file()):
            return None
        stats = read_json(stats_path)
        if stats.get("raw_shard") != raw_name or stats.get("part") != len(parts):
            return None
        parts.append(stats)
        if stats.get("last_part"):
            return parts
        index += 1


def _remove_from(out_dir: Path, split: str, start: int) -> None:
    """Delete every output file of ``split`` with index >= ``start`` (stale or incomplete)."""
    for path in out_dir.glob(f"{split}-*"):
        match = re.match(rf"^{re.escape(split)}-(\d{{6}})\.", path.name)
        if match and int(match.group(1)) >= start:
            path.unlink()


def run_preprocess(raw_dir: str | Path, out_dir: str | Path, cfg: PreprocessConfig, progress: bool = True,
                   engine: EngineSettings | None = None) -> dict[str, Any]:
    """Process every raw shard into ``out_dir``; returns the metrics dict (counts add up, by reason), or raises
    CountsDoNotAddUp, so that the stage writes no metrics, when they do not.

    A split's shards are numbered in raw-shard order, so the raw shards already processed are the complete
    prefix of each split, kept as they are; every raw shard after the first incomplete one is one unit of
    ``engine`` (``pipeline.data.engine``: this process or a Ray task), which writes its parts into
    ``<out>.partial``. This process moves them to their names in raw-shard order as the units finish, stats last.
    """
    engine = engine or EngineSettings()
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    raw_shards = list_raw_shards(raw_dir)
    clips_in = {path: _clip_count(path) for paths in raw_shards.values() for path in paths}
    check_raw_counts(raw_dir, sum(clips_in.values()))  # before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    for tmp in out_dir.glob(".*.tmp"):
        tmp.unlink()
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)  # parts of a killed run: redone (they have no stats)
    staging.mkdir(parents=True)

    all_stats: dict[str, list[dict[str, Any]]] = {}
    jobs: list[RawShardJob] = []
    next_index: dict[str, int] = {}
    bar = tqdm(total=sum(clips_in.values()), desc="preprocess", unit="clip", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    for split in sorted(raw_shards):
        index, redo = 0, False
        for raw in raw_shards[split]:
            done = None if redo else _completed_parts(out_dir, split, index, raw.name)
            if done is None:  # this raw shard and every later one of the split (their numbers may shift)
                redo = True
                jobs.append(RawShardJob(str(raw.resolve()), split, cfg, str(staging.resolve())))
                continue
            all_stats[f"{split}/{raw.name}"] = done
            index += len(done)
            bar.update(sum(s["keys_in"] for s in done))
        _remove_from(out_dir, split, index)
        next_index[split] = index

    shard_timings: dict[str, dict[str, float]] = {}   # stem → seconds per step + clips, shards written now
    started = time.perf_counter()
    processed = 0
    waiting: dict[int, list[dict[str, Any]]] = {}
    committed = 0
    try:
        for result in run_units(preprocess_raw_shard, jobs, [f"{j.split}.{Path(j.raw).name}" for j in jobs],
                                engine, "preprocess", must_see=[raw_dir, staging],
                                local_limit=local_process_limit(cfg)):
            waiting[result.index] = result.value
            clips = sum(p["keys_in"] for p in result.value)
            processed += clips
            bar.update(clips)
            while committed in waiting:  # shard numbers follow raw-shard order: commit the finished prefix
                parts, job = waiting.pop(committed), jobs[committed]
                raw = Path(job.raw)
                stats = _commit_parts(parts, staging, out_dir, job.split, next_index[job.split], raw.name, cfg)
                for part, st in zip(parts, stats):
                    shard_timings[st["shard"]] = part["timings"]
                next_index[job.split] += len(stats)
                all_stats[f"{job.split}/{raw.name}"] = stats
                committed += 1
    finally:
        bar.close()
    shutil.rmtree(staging, ignore_errors=True)
    elapsed = time.perf_counter() - started
    ordered = [st for split in sorted(raw_shards) for raw in raw_shards[split]
               for st in all_stats.get(f"{split}/{raw.name}", [])]
    metrics = count_outcomes(raw_dir, ordered, cfg, processed)
    metrics["timings"] = summarize_timings(shard_timings, processed, elapsed)
    metrics["timings"]["engine"] = describe(engine)
    note_if_empty(out_dir, "No sample shards: there were no raw clips (an optional corpus that is not configured).")
    return metrics


def check_raw_counts(raw_dir: Path, clips: int) -> None:
    """Stop before any shard is written when the counts cannot add up: every row of the download's status tables
    must be one clip of a raw shard or one download rejection (each clip then becomes one sample or one preprocess
    rejection, which ``count_outcomes`` checks at the end)."""
    keys, rejected = download_outcomes(raw_dir)
    if keys and len(keys) != clips + sum(rejected.values()):
        raise CountsDoNotAddUp(
            f"preprocess counts do not add up: the status tables of {raw_dir} list {len(keys)} rows, but its raw "
            f"shards hold {clips} clip(s) and the download rejected {sum(rejected.values())} row(s) "
            f"({clips + sum(rejected.values())} in all), so nothing was processed (rerun the download stage)")


def _clip_count(raw_tar: Path) -> int:
    with tarfile.open(raw_tar, "r:") as tar:
        return len({m.name.rpartition(".")[0] for m in tar if m.isfile()})


def summarize_timings(shard_timings: dict[str, dict[str, float]], processed: int,
                      elapsed: float) -> dict[str, Any]:
    """The metrics' ``timings``: wall clock, clips/s, seconds per step (total) and per shard written this run.

    Shards kept from an earlier run are absent: their timings were never stored (shard files are timing-free).
    """
    return {
        "wall_seconds": round(elapsed, 3),
        "clips_per_s": round(processed / elapsed, 3) if processed and elapsed > 0 else None,
        "seconds_per_step": {s: round(sum(t[s] for t in shard_timings.values()), 3) for s in STEPS},
        "shards": {stem: dict(t) for stem, t in sorted(shard_timings.items())},
    }


def count_outcomes(raw_dir: Path, all_stats: list[dict[str, Any]], cfg: PreprocessConfig,
              processed: int) -> dict[str, Any]:
    """Metrics: rows in (download's keys) = samples out + download rejections + preprocess rejections.

    Raises CountsDoNotAddUp (one sentence naming the counts) when that equation does not hold.
    """
    download_keys, download_rejected = download_outcomes(raw_dir)
    pre_rejected: Counter = Counter()
    by_split: dict[str, dict[str, int]] = {}
    samples = clips_in = 0
    for stats in all_stats:
        pre_rejected.update(stats["rejections"])
        samples += stats["samples"]
        clips_in += stats["keys_in"]
        split = by_split.setdefault(stats["split"], {"samples": 0, "rejected": 0, "shards": 0})
        split["samples"] += stats["samples"]
        split["rejected"] += stats["rejected"]
        split["shards"] += 1
    rows_in = len(download_keys) if download_keys else clips_in
    rejected_total = sum(download_rejected.values()) + sum(pre_rejected.values())
    if rows_in != samples + rejected_total:
        raise CountsDoNotAddUp(
            f"preprocess counts do not add up: {rows_in} rows in, but {samples} samples out + "
            f"{sum(download_rejected.values())} download rejections + {sum(pre_rejected.values())} preprocess "
            f"rejections = {samples + rejected_total}, so no metrics were written")
    return {
        "rows_in": rows_in,
        "samples_out": samples,
        "rejections_total": rejected_total,
        "download_rejections": dict(sorted(download_rejected.items())),
        "preprocess_rejections": dict(sorted(pre_rejected.items())),
        "counts_add_up": rows_in == samples + rejected_total,
        "by_split": dict(sorted(by_split.items())),
        "shards": len(all_stats),
        "detector": cfg.detector,
        "align": cfg.align,
        "image_size": cfg.image_size,
        "clips_processed_this_run": processed,
    }


def summary_line(metrics: dict[str, Any]) -> str:
    """The stage's one-line summary: rows in, samples out and rejections by reason (metrics only exist for counts
    that add up: ``count_outcomes`` raises otherwise)."""
    reasons: Counter = Counter(metrics["download_rejections"])
    reasons.update(metrics["preprocess_rejections"])
    by_reason = ", ".join(f"{r}={n}" for r, n in sorted(reasons.items())) or "none"
    return (f"preprocess: {metrics['rows_in']} rows in, {metrics['samples_out']} samples out "
            f"in {metrics['shards']} shard(s), {metrics['rejections_total']} rejected ({by_reason})")
