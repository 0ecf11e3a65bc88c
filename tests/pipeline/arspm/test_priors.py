"""Streaming priors: equal the batch mean of the seeded choice, handle n > N, write deterministic bytes."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.arspm.priors import PriorsError, compute_priors, load_prior, load_priors, save_priors
from pipeline.data.datasets import load_features
from pipeline.faces.features import write_feature_shard, write_features_meta


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


def _balance(keys, speaker_of_index, gender_of_speaker):
    from pipeline.arspm.priors import SpeakerBalance
    speaker_of = {k: f"s{speaker_of_index(i)}" for i, k in enumerate(keys)}
    return SpeakerBalance(speaker_of=speaker_of,
                          gender_of={k: gender_of_speaker(speaker_of[k]) for k in keys})


def test_balanced_neutral_prior_is_half_men_half_women_each_speaker_once(features):
    path, keys, array, _ = features
    # 23 clips of 8 speakers (s0..s7, unequal clip counts); s0-s4 men, s5-s7 women
    speaker_index = lambda i: min(i // 3, 7)  # noqa: E731
    balance = _balance(keys, speaker_index, lambda s: "M" if int(s[1:]) < 5 else "F")
    neutral_at: dict = {}
    priors, metrics = compute_priors(path, {}, n=100, convergence_n=[2, 3, 4], seed=5, neutral_at=neutral_at,
                                     balance=balance)
    info = metrics["neutral_balance"]
    assert info["speakers"] == {"M": 5, "F": 3, "unknown": 0}
    # capped at 3 pairs and rounded to even sizes: 2, 4, 6 speakers (3 -> 2 is the same prior, no distance)
    assert metrics["groups"]["neutral"]["n_used"] == 6 and info["used"] == {"M": 3, "F": 3}
    assert sorted(neutral_at) == [2, 4, 6]
    speaker_means = {s: array[[i for i in range(23) if speaker_index(i) == s]].mean(0) for s in range(8)}
    men = [0, 1, 2, 3, 4][:]
    m_order = [men[i] for i in np.random.default_rng([5, 0, 0]).permutation(5)]
    f_order = [[5, 6, 7][i] for i in np.random.default_rng([5, 0, 1]).permutation(3)]
    chosen = m_order[:3] + f_order[:3]
    np.testing.assert_allclose(priors["neutral"], np.mean([speaker_means[s] for s in chosen], axis=0),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(neutral_at[2], (speaker_means[m_order[0]] + speaker_means[f_order[0]]) / 2,
                               rtol=1e-6, atol=1e-6)
    rows = {(r["n"], r["next_n"]): r["neutral"] for r in metrics["convergence"]}
    assert rows[(2, 3)] is None and rows[(3, 4)] > 0 and rows[(4, 100)] > 0


def test_balanced_neutral_prior_needs_both_genders_and_every_speaker(features):
    path, keys, _, _ = features
    with pytest.raises(PriorsError, match="0 female ones.*priors.neutral: random"):
        compute_priors(path, {}, n=4, convergence_n=[], seed=0,
                       balance=_balance(keys, lambda i: i // 3, lambda s: "M"))
    with pytest.raises(PriorsError, match="at least 2 for a gender-balanced"):
        compute_priors(path, {}, n=1, convergence_n=[], seed=0,
                       balance=_balance(keys, lambda i: i // 3, lambda s: "M" if int(s[1:]) % 2 else "F"))
    partial = _balance(keys, lambda i: i // 3, lambda s: "M")
    partial.speaker_of.pop(keys[4])
    with pytest.raises(PriorsError, match="1 train features have no speaker"):
        compute_priors(path, {}, n=4, convergence_n=[], seed=0, balance=partial)


def test_random_neutral_prior_reports_the_genders_it_used(features):
    path, keys, _, genders = features
    _, metrics = compute_priors(path, genders, n=1000, convergence_n=[], seed=0)
    assert metrics["neutral_balance"] == {"mode": "random", "unit": "clip", "used": {"M": 15, "F": 8},
                                          "clips_used": 23}


def test_variant_priors_hold_only_what_each_variant_uses(tmp_path):
    from pipeline.arspm.priors import save_variant_priors
    from pipeline.arspm.variant_inputs import load_variant_priors as load_for_training
    from pipeline.arspm.variants import VARIANTS, priors_needed
    needs = {name: priors_needed(v) for name, v in VARIANTS.items()}
    rng = np.random.default_rng(0)
    for run in ("a", "b"):  # two different sets of priors
        priors = {g: rng.standard_normal(6).astype(np.float32) for g in ("neutral", "male", "female")}
        save_variant_priors(tmp_path / run, priors, {"neutral": 4, "male": 2, "female": 2}, needs)
    assert (tmp_path / "a/variant-non_prior.npz").read_bytes() == (tmp_path / "b/variant-non_prior.npz").read_bytes()
    assert (tmp_path / "a/variant-neutral.npz").read_bytes() != (tmp_path / "b/variant-neutral.npz").read_bytes()
    assert set(load_for_training(tmp_path / "a/variant-gender_fc.npz", 6, ("male", "female"))) == {"male", "female"}
    assert set(load_for_training(tmp_path / "a/variant-neutral.npz", 6)) == {"neutral"}
    assert load_for_training(tmp_path / "a/variant-non_prior.npz", 6, ()) == {}


def test_known_genders_prefer_the_label_then_the_prediction(tmp_path):
    from pipeline.arspm.gender_predictions import known_genders, write_predictions
    write_predictions(tmp_path / "predictions.parquet", [
        {"key": "a", "split": "train", "label": "F", "p_female": 0.1, "pred": "M"},
        {"key": "b", "split": "train", "label": None, "p_female": 0.9, "pred": "F"},
        {"key": "c", "split": "train", "label": None, "p_female": None, "pred": None},
        {"key": "d", "split": "test", "label": "M", "p_female": 0.2, "pred": "M"}])
    assert known_genders(tmp_path, split="train") == {"a": "F", "b": "F", "c": None}


@pytest.mark.parametrize("balanced", [True, False])
def test_neutral_faces_list_reproduces_the_neutral_prior(features, balanced):
    """The list the priors stage writes for SCLDM: its faces' weighted mean is the neutral prior itself."""
    path, keys, array, genders = features
    balance = (_balance(keys, lambda i: min(i // 3, 7), lambda s: "M" if int(s[1:]) < 5 else "F") if balanced
               else None)
    faces: list = []
    priors, _ = compute_priors(path, genders, n=4, convergence_n=[2], seed=5, balance=balance, neutral_faces=faces)
    assert [k for k, _ in faces] == sorted(k for k, _ in faces)
    where = {k: i for i, k in enumerate(keys)}
    weights = np.array([w for _, w in faces])
    rows = array[[where[k] for k, _ in faces]]
    np.testing.assert_allclose(priors["neutral"], (rows * weights[:, None]).sum(0) / weights.sum(), rtol=1e-5,
                               atol=1e-6)
    if not balanced:
        assert len(faces) == 4 and set(weights) == {1.0}
