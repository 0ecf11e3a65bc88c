"""The shard plan: manifest rows of each split sorted by key, cut into ``shard_size``-row shards.

Each planned shard carries a fingerprint of its rows and of the params that change what gets downloaded;
a finished shard whose stats record the same fingerprint is kept on resume, anything else is redone.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.data.download.errors import DownloadConfigError

#: bump when the downloaded bytes would change for the same rows and params
CODE_VERSION = 1
SPLITS = ("train", "test")
KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
REQUIRED_COLUMNS = ("key", "source_kind", "source", "video_id", "start", "end", "x", "y", "split")


@dataclass(frozen=True)
class ShardPlan:
    """One output shard: its name (``train-000000``), split, index, rows and fingerprint."""

    split: str
    index: int
    rows: tuple[dict[str, Any], ...]
    fingerprint: str

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:06d}"


def _clean(value: Any) -> Any:
    """Parquet scalars → JSON-able Python values (NaN → None)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def read_manifest(manifest_dir: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Read ``{train,test}.parquet`` under ``manifest_dir`` → rows per split, sorted by key.

    Raises DownloadConfigError when no split file exists, a column is missing, or a key is invalid/duplicated.
    """
    manifest_dir = Path(manifest_dir)
    out: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for split in SPLITS:
        path = manifest_dir / f"{split}.parquet"
        if not path.is_file():
            continue
        table = pq.read_table(path)
        missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
        if missing:
            raise DownloadConfigError(f"manifest {path} lacks column(s): {', '.join(missing)}")
        rows = [{k: _clean(v) for k, v in row.items()} for row in table.to_pylist()]
        for row in rows:
            key = row["key"]
            if not isinstance(key, str) or not KEY_RE.match(key):
                raise DownloadConfigError(f"manifest {path} has an invalid key {key!r} (allowed: [A-Za-z0-9_-]+)")
            if key in seen:
                raise DownloadConfigError(f"manifest key {key!r} appears twice")
            seen.add(key)
        out[split] = sorted(rows, key=lambda r: r["key"])
    if not out:
        raise DownloadConfigError(f"no manifest found: expected {manifest_dir}/train.parquet and/or test.parquet")
    return out


def fingerprint(rows: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    """SHA-256 over the rows and the settings that change downloaded content."""
    payload = json.dumps({"code": CODE_VERSION, "rows": rows, "settings": settings},
                         sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(payload).hexdigest()


def plan_shards(rows_by_split: dict[str, list[dict[str, Any]]], shard_size: int,
                content_settings: dict[str, Any]) -> list[ShardPlan]:
    """Cut each split's sorted rows into consecutive shards of ``shard_size`` rows."""
    if int(shard_size) < 1:
        raise DownloadConfigError(f"download.shard_size must be >= 1, got {shard_size}")
    plans: list[ShardPlan] = []
    for split in sorted(rows_by_split):
        rows = rows_by_split[split]
        for index, start in enumerate(range(0, len(rows), int(shard_size))):
            chunk = rows[start:start + int(shard_size)]
            plans.append(ShardPlan(split, index, tuple(chunk), fingerprint(chunk, content_settings)))
    return plans
