"""Tiny valid WebDataset shards from generated arrays, for other areas' tests (no media decoding needed).

``write_dummy_shards(tmp_path / "shards", split="train", n_samples=6)`` writes contract-honouring shards:
faces are flat colours with a darker square (per-sample colour), spectrograms and audio are seeded noise,
and meta carries a speaker id and gender so grouping code has something to group on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.shards import (
    AUDIO_SAMPLES,
    SPEC_SHAPE,
    ShardWriter,
    encode_sample,
    shard_name,
    write_shard_stats,
    write_status_table,
)


def dummy_sample(index: int, split: str = "train", image_size: int = 64, n_speakers: int = 4,
                 seed: int = 0, labelled: bool = True) -> dict[str, Any]:
    """Arrays and meta of one deterministic fake sample (key ``{split}_{index:05d}``; gender None unless
    ``labelled``)."""
    rng = np.random.default_rng(seed * 100003 + index)
    colour = rng.integers(40, 216, size=3, dtype=np.uint8)
    face = np.empty((image_size, image_size, 3), dtype=np.uint8)
    face[:] = colour
    q = image_size // 4
    face[q:3 * q, q:3 * q] = colour // 2
    spec = rng.standard_normal(SPEC_SHAPE).astype(np.float16)
    audio = (0.1 * rng.standard_normal(AUDIO_SAMPLES)).astype(np.float32)
    speaker = index % n_speakers
    key = f"{split}_{index:05d}"
    meta = {
        "key": key, "video_id": key, "speaker_id": f"spk{speaker:03d}", "gender": "MF"[speaker % 2] if labelled else None,
        "age_group": None, "split": split, "source": f"{key}.mp4", "start": 0.0, "end": 6.0,
        "face_box": [0, 0, image_size, image_size], "detector": "center", "detector_score": 1.0,
        "audio_fit": "none", "orig_duration": 6.0, "image_size": image_size,
    }
    return {"key": key, "face": face, "spec": spec, "audio": audio, "meta": meta}


def write_dummy_shards(out_dir: str | Path, split: str = "train", n_samples: int = 6, per_shard: int = 4,
                       image_size: int = 64, n_speakers: int = 4, seed: int = 0,
                       labelled: bool = True) -> list[Path]:
    """Write ``n_samples`` fake samples of ``split`` into shards of ``per_shard``; return the tar paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for shard_index, start in enumerate(range(0, n_samples, per_shard)):
        stem = shard_name(split, shard_index)
        rows = []
        with ShardWriter(out_dir / f"{stem}.tar") as writer:
            for i in range(start, min(start + per_shard, n_samples)):
                s = dummy_sample(i, split, image_size, n_speakers, seed, labelled)
                writer.add(s["key"], encode_sample(s["face"], s["spec"], s["audio"], s["meta"]))
                rows.append({"key": s["key"], "status": "ok"})
        write_status_table(out_dir / f"{stem}.parquet", rows)
        write_shard_stats(out_dir / f"{stem}.stats.json",
                          {"shard": stem, "split": split, "samples": writer.count, "rejected": 0,
                           "bytes": writer.bytes, "image_size": image_size})
        paths.append(out_dir / f"{stem}.tar")
    return paths


def write_raw_shard(raw_dir: str | Path, split: str, index: int,
                    clips: list[tuple[str, str | Path | bytes, dict[str, Any]]],
                    download_rejects: list[tuple[str, str]] = (), ext: str = "mp4") -> Path:
    """A raw shard as the download stage writes it (docs/contracts.md), for preprocess tests.

    ``clips``: ``(key, media file path or raw bytes, manifest row)``; each becomes ``{key}.{ext}`` (the media
    file's own suffix when a path is given) + ``{key}.json``. ``download_rejects``: ``(key, error_class)`` rows
    recorded as rejected attempts in the status parquet. The stats file is written last.
    """
    import io
    import json
    import tarfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.common.io import atomic_path, deterministic_tarinfo, write_json
    from pipeline.data.download.writer import ATTEMPT_SCHEMA

    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    stem = shard_name(split, index)
    attempts = []
    with atomic_path(raw_dir / f"{stem}.tar") as tmp, tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for key, media, row in sorted(clips, key=lambda c: c[0]):
            if isinstance(media, (str, Path)):
                suffix = Path(media).suffix.lstrip(".") or ext
                data = Path(media).read_bytes()
            else:
                suffix, data = ext, bytes(media)
            full_row = {"key": key, "split": split, "source_kind": "file", "source": f"{key}.{suffix}",
                        "video_id": key, "start": 0.0, "end": 3.0, "x": 0.5, "y": 0.5, "speaker_id": None,
                        "gender": None, "age_group": None, "downloaded_duration": 3.0, **row}
            meta = json.dumps(full_row, sort_keys=True).encode()
            tar.addfile(deterministic_tarinfo(f"{key}.{suffix}", len(data)), io.BytesIO(data))
            tar.addfile(deterministic_tarinfo(f"{key}.json", len(meta)), io.BytesIO(meta))
            attempts.append({"key": key, "source": full_row["source"], "status": "ok", "attempt": 1,
                             "error_class": "", "error_message": "", "bytes": len(data)})
    for key, error_class in download_rejects:
        attempts.append({"key": key, "source": key, "status": "rejected", "attempt": 1,
                         "error_class": error_class, "error_message": error_class, "bytes": 0})
    attempts.sort(key=lambda r: r["key"])
    with atomic_path(raw_dir / f"{stem}.parquet") as tmp:
        pq.write_table(pa.Table.from_pylist(attempts, schema=ATTEMPT_SCHEMA), tmp)
    write_json(raw_dir / f"{stem}.stats.json",
               {"shard": stem, "ok": len(clips), "rejected": len(download_rejects)})
    return raw_dir / f"{stem}.tar"
