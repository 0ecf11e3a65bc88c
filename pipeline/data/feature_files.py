"""The on-disk layout of ``data/features/`` (docs/contracts.md): one float32 ``.npy`` + ``.keys.txt`` per shard.

``{split}-{NNNNNN}.npy`` holds ``[N, D]`` float32 rows in the order of ``{split}-{NNNNNN}.keys.txt`` (one key a
line), which is the order of the shard of the same name. ``meta.json`` records the dimension and the layer.
Readers memory-map the arrays so that walking all shards costs O(one shard) of memory.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from pipeline.common.errors import PipelineError
from pipeline.common.io import read_json


class FeaturesError(PipelineError, ValueError):
    """A features directory is missing, incomplete or inconsistent."""


def feature_paths(features_dir: str | Path, split: str) -> list[Path]:
    """Sorted ``{split}-NNNNNN.npy`` files of one split (empty when the split has none)."""
    features_dir = Path(features_dir)
    if not features_dir.is_dir():
        raise FeaturesError(f"features directory {features_dir} not found (run the features stage first)")
    return sorted(p for p in features_dir.glob(f"{split}-*.npy") if p.stem.split("-")[-1].isdigit())


def keys_path(npy_path: str | Path) -> Path:
    """The ``.keys.txt`` file beside a per-shard feature array."""
    npy_path = Path(npy_path)
    return npy_path.with_name(npy_path.stem + ".keys.txt")


def read_keys(path: str | Path) -> list[str]:
    """Keys of a ``.keys.txt`` file, one a line."""
    text = Path(path).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line]


def load_shard_features(npy_path: str | Path, mmap: bool = True) -> tuple[list[str], np.ndarray]:
    """Keys and the (memory-mapped) float32 ``[N, D]`` array of one shard's features, checked for agreement."""
    npy_path = Path(npy_path)
    kpath = keys_path(npy_path)
    if not kpath.is_file():
        raise FeaturesError(f"{kpath.name} is missing beside {npy_path.name}")
    keys = read_keys(kpath)
    array = np.load(npy_path, mmap_mode="r" if mmap else None, allow_pickle=False)
    if array.ndim != 2 or array.shape[0] != len(keys):
        raise FeaturesError(f"{npy_path.name} has shape {array.shape} but {kpath.name} lists {len(keys)} keys")
    if array.dtype != np.float32:
        raise FeaturesError(f"{npy_path.name} has dtype {array.dtype}, expected float32")
    return keys, array


def iter_feature_shards(features_dir: str | Path, split: str) -> Iterator[tuple[str, list[str], np.ndarray]]:
    """Yield ``(shard_name, keys, mmap array)`` for every feature shard of ``split`` in order."""
    for path in feature_paths(features_dir, split):
        keys, array = load_shard_features(path)
        yield path.stem, keys, array


def read_features_meta(features_dir: str | Path) -> dict:
    """The features' ``meta.json`` (``dim``, ``layer``, ``relu``, ``face_encoder``)."""
    path = Path(features_dir) / "meta.json"
    if not path.is_file():
        raise FeaturesError(f"{path} not found (run the features stage first)")
    return read_json(path)


def feature_relu(features_dir: str | Path) -> bool:
    """Whether the features are fc7 after its ReLU (``meta.json``'s ``relu``): what every consumer must match."""
    meta = read_features_meta(features_dir)
    if not isinstance(meta.get("relu"), bool):
        raise FeaturesError(f"{Path(features_dir) / 'meta.json'} does not say whether the features are pre- or "
                            f"post-ReLU (key 'relu'); rerun the features stage")
    return meta["relu"]


def feature_kind(relu: bool) -> str:
    """``post-ReLU`` or ``pre-ReLU``: how errors name a feature type."""
    return "post-ReLU" if relu else "pre-ReLU"


def feature_dim(features_dir: str | Path) -> int:
    """The feature dimension recorded in ``meta.json``."""
    return int(read_features_meta(features_dir)["dim"])
