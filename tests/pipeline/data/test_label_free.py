"""The label-free reader: image, spectrogram, key and video id only, whatever the shards' meta holds; the last
partial batch of an epoch dropped."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.data.datasets import DatasetError, make_loader
from pipeline.data.label_free import LABEL_FREE_FIELDS, LabelFreeSplit
from pipeline.testing.shards import write_dummy_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("label_free")
    write_dummy_shards(out, "train", n_samples=11, per_shard=4, image_size=16, n_speakers=3)
    return out


def test_only_the_image_the_spectrogram_the_key_and_the_video_id_reach_a_step(shards: Path) -> None:
    items = list(LabelFreeSplit(shards, "train"))
    assert len(items) == 11
    for item in items:
        assert tuple(sorted(item)) == tuple(sorted(LABEL_FREE_FIELDS))  # no speaker id, gender, age, meta
        assert item["video_id"] == item["key"]  # the dummy shards' video ids are their keys
        assert item["face"].shape == (3, 16, 16) and item["spec"].shape == (2, 257, 598)
    batch = next(iter(make_loader(LabelFreeSplit(shards, "train"), 4)))
    assert sorted(batch) == sorted(LABEL_FREE_FIELDS)


def test_the_last_partial_batch_is_dropped_every_epoch(shards: Path) -> None:
    split = LabelFreeSplit(shards, "train", shuffle=True, seed=3, whole_batches=4)
    assert split.count() == 8
    seen = []
    for epoch in (0, 1):
        split.set_epoch(epoch)
        sizes = [len(batch["key"]) for batch in make_loader(split, 4)]
        assert sizes == [4, 4]
        seen.append([key for batch in make_loader(split, 4) for key in batch["key"]])
    assert seen[0] != seen[1]  # a new seeded order each epoch, so another remainder is left out
    with pytest.raises(DatasetError, match="has 11 sample\\(s\\), fewer than one batch of 12"):
        LabelFreeSplit(shards, "train", whole_batches=12)
