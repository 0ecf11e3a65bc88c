"""Tiny manifests for download tests: rows in the manifest schema (docs/contracts.md) written with pyarrow."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST_SCHEMA = pa.schema([
    ("key", pa.string()), ("source_kind", pa.string()), ("source", pa.string()), ("video_id", pa.string()),
    ("start", pa.float64()), ("end", pa.float64()), ("x", pa.float64()), ("y", pa.float64()),
    ("split", pa.string()), ("speaker_id", pa.string()), ("gender", pa.string()), ("age_group", pa.string()),
    ("row", pa.int64()), ("source_sha256", pa.string()),
])


def manifest_row(key: str, source: str, source_kind: str = "file", start: float = 0.0, end: float = 2.0,
                 split: str = "train", video_id: str | None = None, row: int = 1) -> dict[str, Any]:
    """One manifest row with the face centre in the middle of the frame and no labels."""
    return {"key": key, "source_kind": source_kind, "source": str(source), "video_id": video_id or key,
            "start": float(start), "end": float(end), "x": 0.5, "y": 0.5, "split": split, "speaker_id": None,
            "gender": None, "age_group": None, "row": int(row), "source_sha256": None}


def write_manifest(directory: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``rows`` as ``{split}.parquet`` files (sorted by key) under ``directory``; return the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for split in sorted({r["split"] for r in rows}):
        chunk = sorted((r for r in rows if r["split"] == split), key=lambda r: r["key"])
        pq.write_table(pa.Table.from_pylist(chunk, schema=MANIFEST_SCHEMA), directory / f"{split}.parquet")
    return directory


def write_params(path: str | Path, **download: Any) -> Path:
    """A params.yaml holding only a ``download`` section (fast test defaults, overridable)."""
    import yaml

    section = {"shard_size": 2, "concurrency": 2, "retries": 1, "backoff": 0.01, "sleep_interval_requests": 0.0,
               "cookies": "", "min_height": 0, "timeout": 60, "mirror_dir": "", "duration_tolerance": 0.25,
               "sleep_interval": 0.0, "max_sleep_interval": 0.0, "max_consecutive_blocked": 0, "extractor_args": []}
    section.update(download)
    path = Path(path)
    path.write_text(yaml.safe_dump({"download": section}, sort_keys=True), encoding="utf-8")
    return path
