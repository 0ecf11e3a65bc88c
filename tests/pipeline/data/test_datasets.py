"""SplitDataset: streaming, feature join by key, deterministic shuffling, filtering, collate."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.data.datasets import DatasetError, SplitDataset, collate, load_features, make_loader, spec_batch
from pipeline.data.feature_files import FeaturesError
from pipeline.testing.features import write_dummy_features
from pipeline.testing.shards import write_dummy_shards


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    shards = root / "shards"
    write_dummy_shards(shards, split="train", n_samples=7, per_shard=3, image_size=16)
    write_dummy_shards(shards, split="test", n_samples=2, per_shard=3, image_size=16)
    features = write_dummy_features(shards, root / "features", dim=8)
    return shards, features


def test_streams_with_features_joined_by_key(tiny):
    shards, features = tiny
    items = list(SplitDataset(shards, "train", features_dir=features))
    assert [it["key"] for it in items] == [f"train_{i:05d}" for i in range(7)]
    keys, array = load_features(features, "train")
    assert keys == [it["key"] for it in items] and array.shape == (7, 8) and array.dtype == np.float32
    for i, it in enumerate(items):
        assert it["face"].shape == (3, 16, 16) and it["face"].dtype == torch.float32
        assert 0.0 <= float(it["face"].min()) and float(it["face"].max()) <= 1.0
        # float16 through the loader (cheap batching), float32 on the device via spec_batch
        assert it["spec"].shape == (2, 257, 598) and it["spec"].dtype == torch.float16
        assert it["meta"]["key"] == it["key"]
        assert torch.equal(it["feature"], torch.from_numpy(array[i]))
    batch = collate(items[:2])
    on_device = spec_batch(batch, "cpu")
    assert on_device.shape == (2, 2, 257, 598) and on_device.dtype == torch.float32


def test_shuffle_is_deterministic_per_epoch(tiny):
    shards, _ = tiny
    def order(epoch, seed=0):
        ds = SplitDataset(shards, "train", fields=("meta",), shuffle=True, seed=seed, buffer_size=3)
        ds.set_epoch(epoch)
        return [it["key"] for it in ds]
    assert order(0) == order(0)
    assert sorted(order(0)) == sorted(order(1)) == [f"train_{i:05d}" for i in range(7)]
    assert order(0) != order(1) or order(0) != order(2)
    assert order(0) != list(sorted(order(0))) or order(1) != list(sorted(order(1)))


def test_keep_filter_fields_and_loader(tiny):
    shards, features = tiny
    ds = SplitDataset(shards, "train", fields=("face",), features_dir=features, keep=lambda m: m["gender"] == "F")
    batches = list(make_loader(ds, batch_size=2))
    keys = [k for b in batches for k in b["key"]]
    assert keys == ["train_00001", "train_00003", "train_00005"]
    assert batches[0]["face"].shape == (2, 3, 16, 16) and batches[0]["feature"].shape == (2, 8)
    assert "meta" not in batches[0] and "spec" not in batches[0]
    assert collate([{"key": "a", "x": torch.zeros(2)}])["x"].shape == (1, 2)


def test_several_folders_read_as_one_split(tiny, tmp_path):
    """train_decoder.faces: both reads the face corpus and the clips' shards as one shuffled split."""
    shards, _ = tiny
    other = tmp_path / "corpus"
    write_dummy_shards(other, split="train", n_samples=4, per_shard=2, image_size=16, seed=1)
    ds = SplitDataset([shards, other], "train", fields=("face",), shuffle=True, seed=0)
    assert len(ds.shard_paths) == 3 + 2 and ds.count() == 7 + 4
    assert sum(1 for _ in ds) == 11
    with pytest.raises(DatasetError, match="no 'valid' shards in .* or "):
        SplitDataset([shards, other], "valid")


def test_empty_split_and_missing_features_are_clear_errors(tiny, tmp_path):
    shards, _ = tiny
    with pytest.raises(DatasetError, match="no 'valid' shards"):
        SplitDataset(shards, "valid")
    with pytest.raises(DatasetError, match="do not cover"):
        SplitDataset(shards, "train", features_dir=tmp_path)
    with pytest.raises(FeaturesError):
        load_features(tmp_path, "train")


def test_rank_split_by_shards_gives_disjoint_equal_parts_and_refuses_too_few_shards(tmp_path):
    root = tmp_path / "shards"
    write_dummy_shards(root, "train", n_samples=14, per_shard=4)  # shards of 4, 4, 4 and 2 samples
    parts = []
    for rank in range(2):
        dataset = SplitDataset(root, "train", fields=("meta",), shuffle=True, seed=3)
        dataset.split_for_rank(rank, 2, by="shards", num_workers=2)
        dataset.set_epoch(1)
        loader = make_loader(dataset, batch_size=2, num_workers=2)
        batches = [batch["key"] for batch in loader]
        parts.append((len(batches), {key for batch in batches for key in batch}))
    assert parts[0][0] == parts[1][0]  # the same number of batches on every rank: DDP cannot hang
    assert len(parts[0][1]) == len(parts[1][1]) and not parts[0][1] & parts[1][1]  # equal and disjoint
    dataset = SplitDataset(root, "train", fields=("meta",))
    with pytest.raises(DatasetError, match="4 shard\\(s\\) for 2 processes x 3 loader worker\\(s\\)"):
        dataset.split_for_rank(0, 2, by="shards", num_workers=3)
    with pytest.raises(DatasetError, match="rank_split must be"):
        dataset.split_for_rank(0, 2, by="nodes")
