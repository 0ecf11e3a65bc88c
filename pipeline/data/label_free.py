"""The shards as a label-free family reads them: image, spectrogram, sample key and video id, nothing else.

The self-supervised family (``contrastive``, ``train_selfsup_gan``) learns from speech–face pairs alone: AVSpeech
has no identity, gender or age labels, and a family that never reads them is the one that scales to all of it.
The guard stands where the data is read: :class:`LabelFreeSplit` parses each sample's ``meta.json`` (the shards
store it beside the face and the spectrogram) and passes on its ``video_id`` alone, so no speaker id, gender, age
or attribute reaches a training step, whatever the shards' meta holds. The video id is the sample's provenance,
not a label: two clips of one video are of one speaker, which the contrastive loss uses to keep them from being
each other's negatives.

``whole_batches`` drops the last partial batch of every epoch (the split's order is seeded, so a different
remainder is dropped each epoch): an in-batch contrastive loss changes its difficulty with the batch size, and a
batch of one has no negative at all.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path

from pipeline.data.datasets import DatasetError, SplitDataset

#: the only fields a label-free family's training step sees
LABEL_FREE_FIELDS = ("key", "face", "spec", "video_id")


def video_id_of(meta: dict, key: str) -> str:
    """The sample's video id (its key when the shards' meta has none)."""
    return str(meta.get("video_id") or key)


class LabelFreeSplit(SplitDataset):
    """``SplitDataset`` of one split that yields ``{"key", "face", "spec", "video_id"}`` only (``LABEL_FREE_FIELDS``);
    with ``whole_batches`` = B, only the first ``count() // B · B`` samples of each epoch's order."""

    def __init__(self, shards_dir: str | Path | Sequence[str | Path], split: str, shuffle: bool = False,
                 seed: int = 0, buffer_size: int = 1000, whole_batches: int = 0):
        super().__init__(shards_dir, split, fields=("face", "spec", "meta"), shuffle=shuffle, seed=seed,
                         buffer_size=buffer_size)
        self.whole_batches = int(whole_batches)
        if self.whole_batches and self.count() < self.whole_batches:
            raise DatasetError(f"the '{split}' split has {super().count()} sample(s), fewer than one batch of "
                               f"{self.whole_batches}")

    def count(self) -> int:
        """Samples an epoch yields: the split's, rounded down to whole batches when ``whole_batches`` is set."""
        total = super().count()
        return total - total % self.whole_batches if self.whole_batches else total

    def _iter_shard(self, shard: Path) -> Iterator[dict]:
        for item in super()._iter_shard(shard):
            meta = item.pop("meta", None) or {}
            yield {"key": item["key"], "face": item["face"], "spec": item["spec"],
                   "video_id": video_id_of(meta, item["key"])}

    def __iter__(self) -> Iterator[dict]:
        stream = super().__iter__()
        if self.whole_batches and self.per_rank is None and not self.by_shards:
            stream = itertools.islice(stream, self.count())
        return stream
