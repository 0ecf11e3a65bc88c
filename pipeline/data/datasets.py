"""Streaming torch datasets over the WebDataset shards, optionally joined with the face features.

A split is read shard by shard (``pipeline.data.shards``); when a features directory is given, each shard's
memory-mapped ``{shard}.npy`` (written in the same order, docs/contracts.md) is opened beside it and rows are
joined by key. Memory stays O(one shard + shuffle buffer) whatever the split's size.

Shuffling is deterministic: the shard order and a fixed-size shuffle buffer are driven by a generator seeded
with ``(seed, epoch)``, so ``set_epoch`` gives a new but reproducible order every epoch.
"""
from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pipeline.common.errors import PipelineError
from pipeline.data.feature_files import FeaturesError, iter_feature_shards, load_shard_features

DEFAULT_FIELDS = ("face", "spec", "meta")


class DatasetError(PipelineError, ValueError):
    """A split has no shards, or shards and features do not match."""


def _shards_module():
    # Imported lazily: pipeline.data.shards is owned by the preprocess stage and pulls in media libraries.
    from pipeline.data import shards

    return shards


def face_to_tensor(face: np.ndarray) -> torch.Tensor:
    """uint8 ``HxWx3`` RGB → float32 ``3xHxW`` in [0, 1]."""
    array = np.ascontiguousarray(np.asarray(face, dtype=np.uint8).transpose(2, 0, 1))
    return torch.from_numpy(array).float().div_(255.0)


def spec_to_tensor(spec: np.ndarray) -> torch.Tensor:
    """float16 ``(2, 257, 598)`` → float16 tensor (no copy).

    Spectrograms stay float16 through batching and become float32 on the device (:func:`spec_batch`): the
    half→float conversion and float32 stacking dominated the loader's cost on the CPU (bench/bench_loader.py),
    and the loader must stay ≥ 10x faster than the training step.
    """
    return torch.from_numpy(np.ascontiguousarray(spec))


def spec_batch(batch: dict, device: torch.device | str, channels_last: bool = False) -> torch.Tensor:
    """The batch's spectrograms on ``device`` as float32 ``(B, 2, 257, 598)``.

    ``channels_last``: in NHWC memory order, for a model converted with ``.to(memory_format=torch.channels_last)``:
    the speech encoder's training step is 1.6-1.8x faster so on this CPU (bench/bench_models.py).
    """
    spec = batch["spec"].to(device, non_blocking=True).float()
    return spec.contiguous(memory_format=torch.channels_last) if channels_last else spec


def _convert(sample: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"key": str(sample["key"])}
    for name, value in sample.items():
        if name == "key":
            continue
        if name == "face":
            out["face"] = face_to_tensor(value)
        elif name == "spec":
            out["spec"] = spec_to_tensor(value)
        elif name == "audio":
            out["audio"] = torch.from_numpy(np.asarray(value, dtype=np.float32))
        else:
            out[name] = value
    return out


def _buffered_shuffle(items: Iterable[dict], buffer_size: int, rng: random.Random) -> Iterator[dict]:
    """Reservoir-style shuffle buffer: deterministic given ``rng``'s state."""
    buffer: list[dict] = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        index = rng.randrange(len(buffer))
        buffer[index], item = item, buffer[index]
        yield item
    rng.shuffle(buffer)
    yield from buffer


class SplitDataset(IterableDataset):
    """Streams samples of one split from the shards, optionally joined with their face features (by key).

    Yields dicts with ``key`` (str), ``face`` (float32 ``3xHxW`` in [0, 1]), ``spec`` (float16
    ``2x257x598``), ``audio`` (float32 ``[96000]``, if asked), ``meta`` (dict) and, when ``features_dir`` is
    given, ``feature`` (float32 ``[D]``). ``keep`` filters samples by their meta (e.g. one gender).
    """

    def __init__(
        self,
        shards_dir: str | Path | Sequence[str | Path],
        split: str,
        fields: Sequence[str] = DEFAULT_FIELDS,
        features_dir: str | Path | None = None,
        shuffle: bool = False,
        seed: int = 0,
        buffer_size: int = 1000,
        keep: Callable[[dict], bool] | None = None,
    ):
        super().__init__()
        # several folders (e.g. the face corpus and the clips' shards) are read as one split: their shards in one list
        dirs = [Path(d) for d in shards_dir] if isinstance(shards_dir, (list, tuple)) else [Path(shards_dir)]
        self.shards_dir = dirs[0]
        self.split = split
        self.fields = tuple(fields)
        self.features_dir = Path(features_dir) if features_dir is not None else None
        self.shuffle = shuffle
        self.seed = int(seed)
        self.buffer_size = max(1, int(buffer_size))
        self.keep = keep
        self.epoch = 0
        self.rank, self.world_size, self.per_rank, self.by_shards = 0, 1, None, False
        self._shard_counts: dict[Path, int] | None = None
        self.shard_paths = [Path(p) for d in dirs for p in _shards_module().list_shards(d, split)]
        if not self.shard_paths:
            raise DatasetError(f"no '{split}' shards in {' or '.join(map(str, dirs))} (empty split?)")
        if self.features_dir is not None:
            missing = [p.name for p in self.shard_paths if not (self.features_dir / f"{_stem(p)}.npy").is_file()]
            if missing:
                raise DatasetError(
                    f"features in {self.features_dir} do not cover shard(s) {', '.join(missing[:3])}"
                    " (rerun the features stage)"
                )

    def shard_counts(self) -> dict[Path, int]:
        """Samples each shard holds that ``keep`` keeps (one pass over the shards' meta, then cached)."""
        if self._shard_counts is None:
            shards = _shards_module()
            self._shard_counts = {path: sum(1 for sample in shards.iter_samples([path], fields=["meta"])
                                            if self.keep is None or self.keep(sample.get("meta") or {}))
                                  for path in self.shard_paths}
        return self._shard_counts

    def count(self) -> int:
        """Samples in the split that ``keep`` keeps."""
        return sum(self.shard_counts().values())

    def split_for_rank(self, rank: int, world_size: int, by: str = "samples", num_workers: int = 0) -> int:
        """Give this rank its part of every epoch, the same number of samples (and so batches) on every rank:
        DistributedDataParallel hangs at an epoch's end otherwise.

        ``by="samples"``: every ``world_size``-th sample of the epoch's (seeded, rank-independent) order, starting
        at ``rank``, stopping after ``count() // world_size``; the remainder, at most ``world_size - 1`` samples,
        waits for another epoch's order. Every rank reads every shard. ``by="shards"``: the epoch's shuffled shards
        are dealt out to the ranks and, within a rank, to its ``num_workers`` loader processes; each reads only its
        own shards and stops at the fewest samples any rank's same worker holds this epoch (what the others hold
        beyond that waits for another epoch's deal). Reading scales with the ranks, which very large runs need;
        a split with fewer shards than ranks x workers stops with one sentence. Returns the samples per rank
        (for ``shards``, the upper bound before the per-epoch cap)."""
        if by not in ("samples", "shards"):
            raise DatasetError(f"rank_split must be 'samples' or 'shards', got {by!r}")
        self.by_shards = by == "shards" and world_size > 1
        if self.by_shards:
            readers = int(world_size) * max(1, int(num_workers))
            if len(self.shard_paths) < readers:
                raise DatasetError(f"the '{self.split}' split has {len(self.shard_paths)} shard(s) for "
                                   f"{world_size} processes x {max(1, int(num_workers))} loader worker(s): "
                                   f"rank_split: shards needs at least {readers} (or use rank_split: samples)")
            self.rank, self.world_size, self.per_rank = int(rank), int(world_size), None
            return self.count() // int(world_size)
        if world_size > 1:
            total = self.count()
            if total < world_size:
                raise DatasetError(f"the '{self.split}' split has {total} sample(s) for {world_size} processes: "
                                   f"every process needs at least one")
            self.rank, self.world_size, self.per_rank = int(rank), int(world_size), total // int(world_size)
        else:
            self.rank, self.world_size, self.per_rank = 0, 1, None
        return self.per_rank if self.per_rank is not None else -1

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose shuffle order the next iteration uses (order = f(seed, epoch))."""
        self.epoch = int(epoch)

    def _read_fields(self) -> list[str]:
        fields = set(self.fields) | {"meta"}  # meta is needed for keep and is cheap
        return sorted(fields - {"key", "feature"})

    def _iter_shard(self, shard: Path) -> Iterator[dict]:
        shards = _shards_module()
        rows: dict[str, int] | None = None
        array = None
        if self.features_dir is not None:
            keys, array = load_shard_features(self.features_dir / f"{_stem(shard)}.npy")
            rows = {key: i for i, key in enumerate(keys)}
        for sample in shards.iter_samples([shard], fields=self._read_fields()):
            if self.keep is not None and not self.keep(sample.get("meta") or {}):
                continue
            item = _convert(sample)
            if "meta" not in self.fields:
                item.pop("meta", None)
            if rows is not None:
                row = rows.get(item["key"])
                if row is None:
                    raise DatasetError(f"sample {item['key']} of {shard.name} has no feature (rerun features)")
                item["feature"] = torch.from_numpy(np.array(array[row], dtype=np.float32))
            yield item

    def _shards_for_this_worker(self, rng: random.Random) -> tuple[list[Path], int | None]:
        """This loader worker's shards for the epoch, and (``rank_split: shards``) how many samples it may yield."""
        paths = list(self.shard_paths)
        if self.shuffle:
            rng.shuffle(paths)
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        if not self.by_shards:
            return (paths[worker::workers] if workers > 1 else paths), None
        # The same deal on every rank (the order depends on seed and epoch only), so each can compute the cap.
        counts = self.shard_counts()
        dealt = [paths[r::self.world_size][worker::workers] for r in range(self.world_size)]
        cap = min(sum(counts[p] for p in part) for part in dealt)
        if cap == 0:
            raise DatasetError(f"loader worker {worker} of some rank has no '{self.split}' sample this epoch "
                               f"(too few or too small shards for {self.world_size} processes x {workers} workers)")
        return dealt[self.rank], cap

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker = info.id if info is not None else 0
        shard_rng = random.Random(f"{self.seed}:{self.epoch}:shards")
        buffer_rng = random.Random(f"{self.seed}:{self.epoch}:buffer:{worker}")
        paths, cap = self._shards_for_this_worker(shard_rng)
        stream = (item for shard in paths for item in self._iter_shard(shard))
        if self.shuffle:
            stream = _buffered_shuffle(stream, self.buffer_size, buffer_rng)
        if cap is not None:  # DDP over shards: as many samples as the same worker of every other rank yields
            stream = itertools.islice(stream, cap)
        elif self.per_rank is not None:  # DDP: this rank's stride of the shared order, the same length on every rank
            stream = itertools.islice((item for i, item in enumerate(stream) if i % self.world_size == self.rank),
                                      self.per_rank)
        yield from stream


def _stem(path: Path) -> str:
    """``train-000000.tar`` → ``train-000000``."""
    name = Path(path).name
    return name.split(".", 1)[0]


def collate(batch: list[dict]) -> dict:
    """Stack tensors along a new batch dimension; keep ``key``, ``meta`` and other non-tensors as lists."""
    if not batch:
        raise DatasetError("cannot collate an empty batch")
    out: dict[str, Any] = {}
    for name in batch[0]:
        values = [item[name] for item in batch]
        if isinstance(values[0], torch.Tensor):
            out[name] = torch.stack(values)
        else:
            out[name] = values
    return out


def make_loader(dataset: IterableDataset, batch_size: int, num_workers: int = 0,
                pin_memory: bool = False) -> DataLoader:
    """A DataLoader over a streaming dataset with :func:`collate` (order comes from the dataset itself).

    With ``num_workers`` > 0 each worker reads its own shards (``SplitDataset``), so every sample is read once
    per epoch; the batch order then differs from ``num_workers`` 0. ``pin_memory`` for CUDA's non-blocking copies.
    """
    if int(num_workers) < 0:
        raise DatasetError(f"num_workers must be 0 or more, got {num_workers}")
    return DataLoader(
        dataset,
        batch_size=int(batch_size),
        num_workers=int(num_workers),
        collate_fn=collate,
        persistent_workers=False,
        pin_memory=bool(pin_memory),
    )


def load_features(features_dir: str | Path, split: str) -> tuple[list[str], np.ndarray]:
    """All keys and features of one split: ``(keys, float32 [N, D])`` in shard order.

    This concatenates every shard into memory; use :func:`pipeline.data.feature_files.iter_feature_shards` to stream.
    """
    all_keys: list[str] = []
    arrays: list[np.ndarray] = []
    for _, keys, array in iter_feature_shards(features_dir, split):
        all_keys.extend(keys)
        arrays.append(np.asarray(array, dtype=np.float32))
    if not arrays:
        raise FeaturesError(f"no '{split}' features in {features_dir}")
    return all_keys, np.concatenate(arrays, axis=0)
