"""Shard writer/reader: round trip (ours and webdataset's reader), deterministic bytes, completeness marker."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import webdataset as wds

from pipeline.data.shards import (
    ShardError,
    ShardWriter,
    decode_field,
    iter_samples,
    list_shards,
    shard_name,
)
from pipeline.testing.shards import dummy_sample, write_dummy_shards


def _digest(paths):
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_round_trip_through_our_reader_and_webdataset(tmp_path):
    paths = write_dummy_shards(tmp_path, "train", n_samples=5, per_shard=3, image_size=32)
    assert list_shards(tmp_path, "train") == paths and list_shards(tmp_path, "test") == []
    samples = list(iter_samples(paths))
    assert [s["key"] for s in samples] == [f"train_{i:05d}" for i in range(5)]
    for i, s in enumerate(samples):
        ref = dummy_sample(i, "train", 32)
        assert s["face"].shape == (32, 32, 3) and s["face"].dtype == np.uint8
        assert np.abs(s["face"].astype(int) - ref["face"]).max() <= 8       # JPEG q95
        np.testing.assert_array_equal(s["spec"], ref["spec"])               # float16 exact
        assert s["spec"].dtype == np.float16 and s["audio"].dtype == np.float32
        np.testing.assert_allclose(s["audio"], ref["audio"], atol=1 / 32767)  # 16-bit FLAC
        assert s["meta"] == ref["meta"]
    only = next(iter_samples(paths[:1], fields=["meta"]))
    assert set(only) == {"key", "meta"}
    ds = wds.WebDataset([str(p) for p in paths], shardshuffle=False)
    wsamples = list(ds)
    assert [w["__key__"] for w in wsamples] == [s["key"] for s in samples]
    assert decode_field("meta", wsamples[0]["meta.json"]) == samples[0]["meta"]
    np.testing.assert_array_equal(decode_field("spec", wsamples[0]["spec.npy"]), samples[0]["spec"])
    assert sorted(p.name for p in tmp_path.glob("*.stats.json")) == ["train-000000.stats.json",
                                                                    "train-000001.stats.json"]


def test_bytes_are_deterministic(tmp_path):
    a = write_dummy_shards(tmp_path / "a", "test", n_samples=3)
    b = write_dummy_shards(tmp_path / "b", "test", n_samples=3)
    assert _digest(a) == _digest(b)
    files = lambda d: {p.name: p.read_bytes() for p in sorted(d.iterdir())}  # noqa: E731
    assert files(tmp_path / "a") == files(tmp_path / "b")  # tars, status parquets and stats alike


def test_incomplete_shard_is_not_listed_and_failed_write_leaves_nothing(tmp_path):
    write_dummy_shards(tmp_path, "train", n_samples=2)
    (tmp_path / "train-000000.stats.json").unlink()
    assert list_shards(tmp_path, "train") == []
    with pytest.raises(RuntimeError):
        with ShardWriter(tmp_path / f"{shard_name('x', 0)}.tar") as writer:
            writer.add("k", {"meta": b"{}"})
            raise RuntimeError("interrupted")
    assert not list(tmp_path.glob("x-*")) and not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(ShardError):
        with ShardWriter(tmp_path / "y-000000.tar") as writer:
            writer.add("bad.key", {"meta": b"{}"})
