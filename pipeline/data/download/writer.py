"""Deterministic outputs of a raw shard: the tar of clips, the attempts parquet and the stats JSON (last).

All three are byte-identical for the same manifest rows and params (so DVC hashes of ``data/raw`` match across
runs and machines): no wall-clock times, timestamps, hostnames or absolute work paths go into them. Timings are
reported in the stage's metrics JSON instead (``runner.run_download``).
"""
from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.common.io import atomic_path, deterministic_tarinfo, dumps_json, write_json

#: one row per attempt (docs/contracts.md, download → data/raw)
ATTEMPT_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("source", pa.string()),
    ("status", pa.string()),          # ok | rejected | retry
    ("attempt", pa.int64()),          # 1-based
    ("error_class", pa.string()),     # "" when ok
    ("error_message", pa.string()),
    ("bytes", pa.int64()),
])


def write_clip_tar(path: str | Path, clips: Iterable[tuple[str, str, Path, dict[str, Any]]]) -> int:
    """Write ``(key, ext, media_path, record)`` clips as ``{key}.json`` + ``{key}.{ext}`` members, atomically.

    Members are sorted by name with mtime 0, uid/gid 0 and empty owner names, so equal clips give equal bytes.
    Returns the tar's size in bytes.
    """
    members: list[tuple[str, Path | bytes]] = []
    for key, ext, media_path, record in clips:
        members.append((f"{key}.json", dumps_json(record).encode("utf-8")))
        members.append((f"{key}.{ext}", Path(media_path)))
    members.sort(key=lambda m: m[0])
    with atomic_path(path) as tmp:
        with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
            for name, content in members:
                if isinstance(content, bytes):
                    tar.addfile(deterministic_tarinfo(name, len(content)), io.BytesIO(content))
                else:
                    with content.open("rb") as fh:
                        tar.addfile(deterministic_tarinfo(name, content.stat().st_size), fh)
    return Path(path).stat().st_size


def write_attempts(path: str | Path, attempts: list[dict[str, Any]]) -> None:
    """Write the attempts table (rows sorted by key, then attempt) as parquet, atomically."""
    rows = sorted(attempts, key=lambda a: (a["key"], a["attempt"]))
    table = pa.Table.from_pylist(rows, schema=ATTEMPT_SCHEMA)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_attempts(path: str | Path) -> list[dict[str, Any]]:
    """Read an attempts parquet back as a list of dicts."""
    return pq.read_table(path).to_pylist()


def write_stats(path: str | Path, stats: dict[str, Any]) -> None:
    """Write the shard's stats JSON; call this last: its presence marks the shard complete."""
    write_json(path, stats)
