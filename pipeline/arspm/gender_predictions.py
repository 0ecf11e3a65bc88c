"""The voice gender classifier's ``predictions.parquet``: its schema, reading and writing, and each sample's known
gender (label where known, else prediction).

Apart from the classifier's training code (``pipeline.arspm.gender``), so that the stages reading the predictions
(priors) do not depend on how the classifier is trained: only on its output file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_path

CLASSES = ("M", "F")  # class index -> label
PREDICTIONS_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("split", pa.string()),
    ("label", pa.string()),
    ("p_female", pa.float64()),
    ("pred", pa.string()),
])
SPLITS = ("train", "test")


class GenderError(PipelineError, ValueError):
    """Gender predictions are missing or malformed."""


def write_predictions(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``predictions.parquet`` (sorted by split then key) atomically and deterministically."""
    rows = sorted(rows, key=lambda r: (r["split"], r["key"]))
    columns = {name: [row.get(name) for row in rows] for name in PREDICTIONS_SCHEMA.names}
    table = pa.table(columns, schema=PREDICTIONS_SCHEMA)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=False, write_statistics=False)


def read_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Rows of ``predictions.parquet`` (a directory means its ``predictions.parquet``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "predictions.parquet"
    if not path.is_file():
        raise GenderError(f"gender predictions {path} not found (run the gender stage first)")
    return pq.read_table(path).to_pylist()


def known_genders(path: str | Path, split: str | None = None) -> dict[str, str | None]:
    """``{key: "M" | "F" | None}``: each sample's label where known, else the voice classifier's prediction.

    What the gender priors and the balanced neutral prior group by: labels are better than predictions, and a
    briefly trained classifier that predicts one gender only then still leaves both gender priors.
    """
    out: dict[str, str | None] = {}
    for r in read_predictions(path):
        if split is None or r["split"] == split:
            label, pred = r.get("label"), r.get("pred")
            out[str(r["key"])] = label if label in CLASSES else (pred if pred in CLASSES else None)
    return out
