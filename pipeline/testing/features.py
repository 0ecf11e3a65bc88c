"""Tiny feature directories, gender predictions and priors for tests of the stages that read them.

``write_dummy_features(shards_dir, tmp_path / "features", dim=16)`` writes one ``{split}-NNNNNN.npy`` +
``.keys.txt`` per shard of ``shards_dir`` (seeded noise, one row per sample, shard order) and ``meta.json``;
``write_dummy_gender(shards_dir, tmp_path / "gender")`` writes ``predictions.parquet`` from the shards' labels;
``write_dummy_priors(tmp_path / "priors", dim=16)`` writes a valid ``priors.npz``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.arspm.gender_predictions import write_predictions
from pipeline.arspm.priors import GROUPS, save_priors
from pipeline.data.shards import iter_samples, list_shards
from pipeline.faces.features import write_feature_shard, write_features_meta

SPLITS = ("train", "test")


def write_dummy_features(shards_dir: str | Path, out_dir: str | Path, dim: int = 16, seed: int = 0,
                         splits: tuple[str, ...] = SPLITS) -> Path:
    """Seeded random float32 features for every sample of every shard in ``shards_dir``; returns ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in splits:
        for shard in list_shards(shards_dir, split):
            keys = [s["key"] for s in iter_samples([shard], fields=["meta"])]
            rng = np.random.default_rng([seed, sum(ord(c) for c in shard.name)])
            array = np.abs(rng.standard_normal((len(keys), dim))).astype(np.float32)
            write_feature_shard(out_dir, shard.name.split(".")[0], keys, array)
    write_features_meta(out_dir, dim=dim, relu=True, face_encoder={"arch": "dummy"})
    return out_dir


def write_dummy_gender(shards_dir: str | Path, out_dir: str | Path, splits: tuple[str, ...] = SPLITS) -> Path:
    """``predictions.parquet`` whose predictions equal the shards' labels (p_female 0.9 / 0.1)."""
    rows = []
    for split in splits:
        for sample in iter_samples(list_shards(shards_dir, split), fields=["meta"]):
            label = sample["meta"].get("gender")
            rows.append({"key": sample["key"], "split": split, "label": label,
                         "p_female": 0.9 if label == "F" else 0.1, "pred": "F" if label == "F" else "M"})
    out_dir = Path(out_dir)
    write_predictions(out_dir / "predictions.parquet", rows)
    return out_dir


def write_dummy_priors(out_dir: str | Path, dim: int = 16, seed: int = 0) -> Path:
    """A valid ``priors.npz`` (neutral/male/female of dimension ``dim``); returns its path."""
    rng = np.random.default_rng(seed)
    priors = {name: np.abs(rng.standard_normal(dim)).astype(np.float32) for name in GROUPS}
    path = Path(out_dir) / "priors.npz"
    save_priors(path, priors, {name: 10 for name in GROUPS})
    return path
