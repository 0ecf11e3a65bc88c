"""Streaming priors: equal the batch mean of the seeded choice, handle n > N, write deterministic bytes."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.datasets import load_features
from pipeline.features import write_feature_shard, write_features_meta
from pipeline.priors import PriorsError, compute_priors, load_prior, load_priors, save_priors


@pytest.fixture()
def features(tmp_path):
    rng = np.random.default_rng(3)
    keys = [f"k{i:03d}" for i in range(23)]
    array = rng.standard_normal((23, 6)).astype(np.float32)
    for shard, (a, b) in enumerate([(0, 10), (10, 17), (17, 23)]):
        write_feature_shard(tmp_path, f"train-{shard:06d}", keys[a:b], array[a:b])
    write_feature_shard(tmp_path, "test-000000", ["t0"], rng.standard_normal((1, 6)).astype(np.float32))
    write_features_meta(tmp_path, dim=6, relu=False, face_encoder={})
    genders = {k: ("M" if i % 3 else "F") for i, k in enumerate(keys)}
    return tmp_path, keys, array, genders


def test_streaming_prior_equals_batch_mean_of_seeded_choice(features):
    path, keys, array, genders = features
    priors, metrics = compute_priors(path, genders, n=7, convergence_n=[2, 5], seed=11)
    chosen = np.random.default_rng([11, 0]).permutation(23)[:7]
    np.testing.assert_allclose(priors["neutral"], array[chosen].mean(0), rtol=1e-6, atol=1e-6)
    male = [i for i, k in enumerate(keys) if genders[k] == "M"]
    chosen_m = np.asarray(male)[np.random.default_rng([11, 1]).permutation(len(male))[:7]]
    np.testing.assert_allclose(priors["male"], array[chosen_m].mean(0), rtol=1e-6, atol=1e-6)
    assert metrics["groups"]["female"]["n_used"] == 7 and metrics["groups"]["male"]["n_available"] == 15
    rows = metrics["convergence"]
    assert [(r["n"], r["next_n"]) for r in rows] == [(2, 5), (5, 7)]
    p2 = array[np.random.default_rng([11, 0]).permutation(23)[:2]].mean(0)
    p5 = array[np.random.default_rng([11, 0]).permutation(23)[:5]].mean(0)
    assert rows[0]["neutral"] == pytest.approx(float(np.abs(p2 - p5).sum()), rel=1e-6)
    assert load_features(path, "train")[1].shape == (23, 6)


def test_n_larger_than_train_uses_all_and_says_so(features):
    path, keys, array, genders = features
    priors, metrics = compute_priors(path, genders, n=1000, convergence_n=[10, 100], seed=0)
    np.testing.assert_allclose(priors["neutral"], array.mean(0), rtol=1e-6, atol=1e-6)
    neutral = metrics["groups"]["neutral"]
    assert (neutral["n_requested"], neutral["n_used"], neutral["capped"]) == (1000, 23, True)
    # 100 -> 1000 both cap at 23: no distance rather than a fake 0
    assert metrics["convergence"][-1]["neutral"] is None
    assert metrics["convergence"][0]["neutral"] > 0


def test_priors_file_is_deterministic_and_checked(features, tmp_path):
    path, _, _, genders = features
    out = []
    for name in ("a", "b"):
        priors, metrics = compute_priors(path, genders, n=5, convergence_n=[2], seed=1)
        save_priors(tmp_path / name / "priors.npz", priors, {g: m["n_used"] for g, m in metrics["groups"].items()})
        out.append((tmp_path / name / "priors.npz").read_bytes())
    assert out[0] == out[1]
    data = load_priors(tmp_path / "a")
    assert data["neutral"].dtype == np.float32 and data["neutral"].shape == (6,) and int(data["n_neutral"]) == 5
    assert load_prior(tmp_path / "a", "male", expected_dim=6).shape == (6,)
    with pytest.raises(PriorsError, match="dimension 6, expected 8"):
        load_prior(tmp_path / "a", "neutral", expected_dim=8)


def test_no_gender_predictions_leaves_gender_priors_unavailable(features, tmp_path):
    path, keys, _, _ = features
    priors, metrics = compute_priors(path, {k: None for k in keys}, n=5, convergence_n=[2], seed=0)
    assert set(priors) == {"neutral"} and metrics["groups"]["male"]["n_used"] == 0
    save_priors(tmp_path / "priors.npz", priors, {"neutral": 5})
    with pytest.raises(PriorsError, match="male prior is unavailable"):
        load_prior(tmp_path / "priors.npz", "male")
    with pytest.raises(PriorsError, match="no train features"):
        (tmp_path / "empty").mkdir()
        compute_priors(tmp_path / "empty", {}, n=5, convergence_n=[], seed=0)
