"""The ``features`` stage: the face encoder's fc7 feature of every face crop, written per shard.

For each shard ``{split}-{NNNNNN}.tar`` of every split this writes ``{split}-{NNNNNN}.npy`` (float32 ``[N, D]``)
and ``{split}-{NNNNNN}.keys.txt`` (same order as the shard), then ``meta.json`` (``dim``, ``layer``, ``relu``,
``face_encoder`` header). ``np.save`` of a float32 array is header + raw bytes, so equal features give equal
files. Readers are in ``pipeline.data.feature_files``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from models.vggface import ARCH as ARCH_FACE_ENCODER
from pipeline.common.device import resolve_device
from pipeline.common.io import atomic_path, atomic_write_bytes, write_json
from pipeline.data.engine import EngineSettings, describe, run_units
from pipeline.data.feature_files import FeaturesError, keys_path

SPLITS = ("train", "test")


def write_feature_shard(out_dir: str | Path, stem: str, keys: Sequence[str], array: np.ndarray) -> Path:
    """Write ``{stem}.npy`` (float32) and ``{stem}.keys.txt`` atomically; returns the ``.npy`` path."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] != len(keys):
        raise FeaturesError(f"features of {stem} have shape {array.shape} for {len(keys)} keys")
    path = Path(out_dir) / f"{stem}.npy"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
    atomic_write_bytes(keys_path(path), "".join(f"{k}\n" for k in keys).encode("utf-8"))
    return path


def write_features_meta(out_dir: str | Path, dim: int, relu: bool, face_encoder: dict[str, Any],
                        layer: str = "fc7", counts: dict[str, int] | None = None) -> None:
    """Write ``meta.json`` describing the features (dimension, layer, ReLU, the face encoder's header)."""
    meta = {"dim": int(dim), "layer": layer, "relu": bool(relu), "face_encoder": face_encoder}
    if counts is not None:
        meta["counts"] = dict(counts)
    write_json(Path(out_dir) / "meta.json", meta)


def _batches(samples: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@torch.no_grad()
def encode_faces(model: torch.nn.Module, faces: Sequence[np.ndarray], device: torch.device) -> np.ndarray:
    """fc7 features of uint8 ``HxWx3`` faces, as float32 ``[B, D]`` on the CPU."""
    x = torch.from_numpy(np.stack([np.asarray(f, dtype=np.uint8) for f in faces]).transpose(0, 3, 1, 2).copy())
    x = x.to(device=device, dtype=torch.float32).div_(255.0)
    # NHWC: VGGFace's inference runs 1.8-2.1x faster so on this CPU (demo size, batch 64; 1.6-2.1x at paper size)
    return model.features(x.contiguous(memory_format=torch.channels_last)).float().cpu().numpy()


@dataclass(frozen=True)
class FeatureJob:
    """One features unit: a shard, the face encoder and where its features go (picklable, for Ray tasks)."""

    shard: str
    face_encoder: str
    out_dir: str
    fc7_relu: bool
    batch_size: int
    device: str


#: the face encoder loaded in this process, by (path, size, mtime, relu, device): a Ray worker keeps it between shards
_MODELS: dict[tuple, torch.nn.Module] = {}


def _face_encoder_for(job: FeatureJob) -> torch.nn.Module:
    from pipeline.training.checkpoints import load_checkpoint

    stat = Path(job.face_encoder).stat()
    key = (job.face_encoder, stat.st_size, stat.st_mtime_ns, job.fc7_relu, job.device)
    if key not in _MODELS:
        _MODELS.clear()
        model, _ = load_checkpoint(job.face_encoder, expected_arch=ARCH_FACE_ENCODER)
        model.fc7_relu = bool(job.fc7_relu)
        _MODELS[key] = model.eval().to(resolve_device(job.device), memory_format=torch.channels_last)
    return _MODELS[key]


def feature_shard(job: FeatureJob) -> int:
    """A unit of the features stage (here or as a Ray task): write ``{stem}.npy`` and ``{stem}.keys.txt`` of one
    shard; returns its sample count. ``job.device`` is resolved on the node that runs it (``auto``: its GPU)."""
    from pipeline.data.shards import iter_samples

    model = _face_encoder_for(job)
    device = next(model.parameters()).device
    shard = Path(job.shard)
    keys: list[str] = []
    parts: list[np.ndarray] = []
    for batch in _batches(iter_samples([shard], fields=["face"]), int(job.batch_size)):
        faces = [s["face"] for s in batch]
        size = faces[0].shape[0]
        if size != model.image_size:
            raise FeaturesError(f"shard {shard.name} has {size}x{size} faces but the face encoder expects "
                                f"{model.image_size}x{model.image_size}")
        keys.extend(s["key"] for s in batch)
        parts.append(encode_faces(model, faces, device))
    array = np.concatenate(parts) if parts else np.zeros((0, int(model.feature_dim)), dtype=np.float32)
    write_feature_shard(job.out_dir, shard.name.split(".")[0], keys, array)
    return len(keys)


def extract_features(
    shards_dir: str | Path,
    face_encoder_path: str | Path,
    out_dir: str | Path,
    fc7_relu: bool,
    batch_size: int,
    device: str,
    splits: Sequence[str] = SPLITS,
    engine: EngineSettings | None = None,
) -> dict[str, Any]:
    """Write the features of every shard of ``splits``, one unit of ``engine`` per shard (``pipeline.data.engine``),
    then ``meta.json`` (last); returns a summary (counts, dim, seconds). ``device``: ``auto``, ``cpu``, ``cuda``
    (resolved where each shard runs)."""
    from pipeline.data.shards import list_shards
    from pipeline.training.checkpoints import load_checkpoint

    model, header = load_checkpoint(face_encoder_path, expected_arch=ARCH_FACE_ENCODER)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = {split: list_shards(shards_dir, split) for split in splits}
    if not any(shards.values()):
        raise FeaturesError(f"no shards in {shards_dir} (run preprocess first)")
    dim = int(model.feature_dim)
    counts = {split: 0 for split in splits}
    started = time.perf_counter()
    jobs = [FeatureJob(str(Path(shard).resolve()), str(Path(face_encoder_path).resolve()), str(out_dir.resolve()),
                       bool(fc7_relu), int(batch_size), str(device))
            for split in splits for shard in shards[split]]
    split_of = [split for split in splits for _ in shards[split]]
    engine = engine or EngineSettings()
    with tqdm(total=len(jobs), desc="features", unit="shard") as bar:
        for result in run_units(feature_shard, jobs, [Path(j.shard).name for j in jobs], engine, "features",
                                # locally one process: the model uses every core (or the GPU) already
                                must_see=[shards_dir, out_dir, face_encoder_path], local_limit=1):
            counts[split_of[result.index]] += result.value
            bar.update(1)
            bar.set_postfix(samples=sum(counts.values()))
    write_features_meta(out_dir, dim=dim, relu=fc7_relu, face_encoder=_json_header(header), counts=counts)
    ran_on = str(resolve_device(device)) if engine.engine == "local" else "the Ray cluster"
    return {"dim": dim, "counts": counts, "shards": len(jobs), "seconds": time.perf_counter() - started,
            "engine": describe(engine), "ran_on": ran_on}


def _json_header(header: dict[str, Any]) -> dict[str, Any]:
    """The face encoder header without anything that is not plain JSON (it is recorded in meta.json)."""
    import json

    return json.loads(json.dumps(header, default=str, sort_keys=True))


def summary_line(summary: dict[str, Any], fc7_relu: bool) -> str:
    """The stage's one-line summary: faces per split, the feature's size and kind, and where it ran."""
    counts = ", ".join(f"{n} {split}" for split, n in summary["counts"].items())
    return (f"features: {counts} faces -> fc7 dim {summary['dim']} (relu={fc7_relu}) in {summary['shards']} shard "
            f"file(s), {summary['seconds']:.1f}s on {summary['ran_on']}")
