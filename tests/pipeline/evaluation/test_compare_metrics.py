"""Unit tests of the family-comparison metrics: hand-computed tiny cases, perfect / random / constant generators,
SF2F's speaker blocks, the KID estimators (against torchmetrics) and the one-sentence errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pipeline.common.errors import PipelineError
from pipeline.evaluation import compare_metrics as C


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _demo_like(seed: int = 0, n_speakers: int = 11, clips: int = 3, dim: int = 16, noise: float = 0.5):
    """Clips of ``n_speakers`` speakers: the true face = the speaker's identity + per-clip noise."""
    rng = np.random.default_rng(seed)
    identity = np.repeat(rng.standard_normal((n_speakers, dim)), clips, axis=0)
    real = _unit(identity + noise * rng.standard_normal(identity.shape))
    speakers = [f"s{j:03d}" for j in range(n_speakers) for _ in range(clips)]
    return rng, identity, real, speakers


def _json_ok(result) -> None:
    json.dumps(result, allow_nan=False)


# --------------------------------------------------------------------------------------------- sample / speaker recall
def test_sample_recall_of_a_perfect_generator_is_one_with_chance_k_over_n():
    _, _, real, _ = _demo_like()
    out = C.sample_recall(real.copy(), real, ks=(1, 5, 10))
    assert out == {"recall@1": 1.0, "chance@1": 1 / 33, "recall@5": 1.0, "chance@5": 5 / 33,
                   "recall@10": 1.0, "chance@10": 10 / 33, "n": 33}
    _json_ok(out)


def test_sample_recall_hand_computed():
    real = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    gen = np.array([[1.0, 0.1],    # nearest real 0 (own): rank 0
                    [1.0, 0.2],    # real 0 (0.98) before own real 1 (0.20): rank 1
                    [0.0, 1.0]])   # own real 2 has cos 0, tied with real 0 (ties count against): rank 2
    out = C.sample_recall(gen, real, ks=(1, 2, 3))
    assert out["recall@1"] == pytest.approx(1 / 3)
    assert out["recall@2"] == pytest.approx(2 / 3)
    assert out["recall@3"] == pytest.approx(1.0)
    assert out["chance@2"] == pytest.approx(2 / 3)


def test_sample_recall_of_a_random_generator_is_near_chance():
    rng = np.random.default_rng(1)
    real, gen = _unit(rng.standard_normal((500, 32))), _unit(rng.standard_normal((500, 32)))
    out = C.sample_recall(gen, real, ks=(10, 50))
    for k in (10, 50):
        sd = math.sqrt(out[f"chance@{k}"] * (1 - out[f"chance@{k}"]) / 500)
        assert abs(out[f"recall@{k}"] - out[f"chance@{k}"]) < 4 * sd


def test_speaker_recall_of_a_perfect_generator_one_block_of_all_speakers():
    _, _, real, speakers = _demo_like()
    out = C.speaker_recall(real, real, speakers, ks=(1, 5))
    assert out["recall@1"] == 1.0 and out["recall@5"] == 1.0
    assert out["chance@1"] == pytest.approx(1 / 11) and out["chance@5"] == pytest.approx(5 / 11)
    assert (out["speakers"], out["block_size"], out["blocks"], out["dropped_speakers"], out["n"]) == (11, 11, 1, 0, 33)
    _json_ok(out)


def test_speaker_blocks_rule():
    # up to 100 speakers: one block of all; above: full blocks of 100, a trailing partial block dropped
    assert C.speaker_blocks(11) == [(0, 11)]
    assert C.speaker_blocks(100) == [(0, 100)]
    assert C.speaker_blocks(101) == [(0, 100)]
    assert C.speaker_blocks(250) == [(0, 100), (100, 200)]
    assert C.speaker_blocks(300) == [(0, 100), (100, 200), (200, 300)]


def test_speaker_recall_in_blocks_of_100_with_250_speakers():
    """Speaker j < 100's generated face is closer to speaker j+100's true face than to its own: retrieval among all
    250 fails for them, but inside block [0:100] its own face is the nearest. Speakers 200..249 are dropped."""
    rng = np.random.default_rng(2)
    n = 250
    true = _unit(rng.standard_normal((n, 256)))
    gen = true.copy()
    gen[:100] = 0.6 * true[:100] + 0.8 * true[100:200]
    speakers = [f"spk{j:03d}" for j in range(n)]
    order = rng.permutation(n)  # clip order does not matter: speakers are sorted by id
    out = C.speaker_recall(gen[order], true[order], [speakers[i] for i in order], ks=(1,))
    assert (out["blocks"], out["block_size"], out["dropped_speakers"], out["speakers"]) == (2, 100, 50, 250)
    assert out["recall@1"] == 1.0
    assert out["chance@1"] == pytest.approx(0.01)
    whole = C.speaker_recall(gen, true, speakers, ks=(1,), block=1000)
    assert whole["blocks"] == 1 and whole["block_size"] == 250
    assert whole["recall@1"] == pytest.approx(150 / 250)


def test_speaker_recall_averages_clip_embeddings_per_speaker():
    real = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    gen = np.array([[1.0, 0.3], [1.0, -0.3], [0.3, 1.0], [0.6, 1.0]])  # clip-level noise cancels in speaker means
    out = C.speaker_recall(gen, real, ["a", "a", "b", "b"], ks=(1,))
    assert out["recall@1"] == 1.0 and out["chance@1"] == 0.5


# --------------------------------------------------------------------------------------------- own vs other
def test_own_vs_other_cosine_hand_computed():
    real = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    speakers = ["a", "a", "b", "b"]
    out = C.own_vs_other_cosine(real, real, speakers)
    assert out == pytest.approx({"own": 1.0, "other": 0.0, "gap": 1.0, "n": 4, "speakers": 2})
    constant = np.tile([[1.0, 1.0]], (4, 1))
    out = C.own_vs_other_cosine(constant, real, speakers)
    assert out["own"] == pytest.approx(math.sqrt(0.5)) and out["other"] == pytest.approx(math.sqrt(0.5))
    assert out["gap"] == pytest.approx(0.0, abs=1e-12)
    _json_ok(out)


# --------------------------------------------------------------------------------------------- K-way
def test_kway_of_a_perfect_generator_is_one_and_too_large_k_has_a_reason():
    _, _, real, speakers = _demo_like()
    for trials in (5, "all"):
        out = C.kway_accuracy(real, real, speakers, ks=(2, 5, 10, 20), trials=trials)
        assert [out[f"accuracy@{k}"] for k in (2, 5, 10)] == pytest.approx([1.0, 1.0, 1.0])
        assert out["chance@2"] == 0.5 and out["chance@10"] == 0.1
        assert out["accuracy@20"] is None and "11 test speakers" in out["reason@20"]
        assert out["trials_per_query"] == trials and out["speakers"] == 11
        _json_ok(out)


def test_kway_hand_computed():
    s = math.sqrt(3) / 2
    real = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    gen = np.array([[s, 0.5],      # cos to own 0.87 > 0.5 and -0.87: beats both
                    [1.0, 0.0],    # own 0; beats real 2 (-1), loses to real 0 (1): 2-way 1/2, 3-way 0
                    [0.0, 1.0]])   # own 0; ties real 0 (a loss), loses to real 1: 0
    exact = C.kway_accuracy(gen, real, ["a", "b", "c"], ks=(2, 3), trials="all")
    assert exact["accuracy@2"] == pytest.approx(0.5)
    assert exact["accuracy@3"] == pytest.approx(1 / 3)
    sampled = C.kway_accuracy(gen, real, ["a", "b", "c"], ks=(2, 3), trials=4000, seed=3)
    assert sampled["accuracy@2"] == pytest.approx(0.5, abs=0.02)
    assert sampled["accuracy@3"] == pytest.approx(1 / 3)


def test_kway_sampled_is_seeded_and_agrees_with_the_exact_expectation():
    rng, identity, real, speakers = _demo_like(seed=4)
    gen = _unit(identity + 1.5 * rng.standard_normal(identity.shape))
    a = C.kway_accuracy(gen, real, speakers, ks=(2, 5, 10), trials=2000, seed=7)
    b = C.kway_accuracy(gen, real, speakers, ks=(2, 5, 10), trials=2000, seed=7)
    exact = C.kway_accuracy(gen, real, speakers, ks=(2, 5, 10), trials="all")
    assert a == b
    for k in (2, 5, 10):
        assert a[f"accuracy@{k}"] == pytest.approx(exact[f"accuracy@{k}"], abs=0.01)
        assert exact[f"accuracy@{k}"] > 1 / k  # the generator knows the identity a little


def test_kway_of_a_random_generator_is_near_chance():
    rng = np.random.default_rng(5)
    n_speakers, clips = 100, 4
    real = _unit(rng.standard_normal((n_speakers * clips, 32)))
    gen = _unit(rng.standard_normal(real.shape))
    speakers = [f"s{j}" for j in range(n_speakers) for _ in range(clips)]
    out = C.kway_accuracy(gen, real, speakers, ks=(2, 5, 10), trials="all")
    sampled = C.kway_accuracy(gen, real, speakers, ks=(2, 5, 10), trials=200, seed=0)
    for k in (2, 5, 10):
        assert out[f"accuracy@{k}"] == pytest.approx(1 / k, abs=0.05)
        assert sampled[f"accuracy@{k}"] == pytest.approx(out[f"accuracy@{k}"], abs=0.01)


@pytest.mark.parametrize("n_speakers, count", [(11, 9), (11, 1), (300, 9)])  # dense and sparse draws
def test_kway_negatives_are_distinct_other_speakers(n_speakers, count):
    rng = np.random.default_rng(11)
    own = rng.integers(0, n_speakers, size=50)
    drawn = C._other_speakers(rng, own, 40, n_speakers, count)
    assert drawn.shape == (50, 40, count) and drawn.min() >= 0 and drawn.max() < n_speakers
    assert not (drawn == own[:, None, None]).any()
    assert (np.diff(np.sort(drawn, axis=2), axis=2) > 0).all()
    assert set(np.unique(drawn).tolist()) == set(range(n_speakers))  # every speaker can be a negative


# --------------------------------------------------------------------------------------------- KID
def test_kid_of_identical_sets_is_zero_and_of_a_shifted_set_clearly_positive():
    rng, identity, real, speakers = _demo_like(seed=6)
    same = C.kernel_distance(real, real)
    assert same["kid_judge_mean"] == pytest.approx(0.0, abs=1e-12)  # "u": exactly 0 for x == y
    assert (same["kid_judge_subsets"], same["kid_judge_std"], same["kid_judge_subset_size"]) == (1, 0.0, 33)
    assert same["real_vs_real_splits"] == 10 and same["real_vs_real_subset_size"] == 16
    _json_ok(same)
    kid_same = C.kernel_distance(real, real, estimator="kid")["kid_judge_mean"]
    assert -0.05 < kid_same < 0  # torchmetrics' estimator: small, O(1/m) below 0 for x == y
    shifted = _unit(real + 0.8 * np.eye(16)[0])
    out = C.kernel_distance(shifted, real)
    assert out["kid_judge_mean"] > out["real_vs_real_mean"] + 3 * out["real_vs_real_std"] + 1e-3


def test_kid_of_two_samples_of_one_distribution_scatters_around_zero():
    rng = np.random.default_rng(7)
    scores = [C.kernel_distance(rng.standard_normal((40, 8)), rng.standard_normal((40, 8)),
                                reference_splits=0)["kid_judge_mean"] for _ in range(30)]
    shifted = C.kernel_distance(rng.standard_normal((40, 8)) + 1.0, rng.standard_normal((40, 8)),
                                reference_splits=0)["kid_judge_mean"]
    assert abs(np.mean(scores)) < 3 * np.std(scores) / math.sqrt(len(scores))
    assert shifted > max(scores)


def test_kid_u_estimator_is_not_fooled_by_paired_rows():
    """A generator that draws a fresh face of the clip's speaker has the true faces' distribution: the "u" estimator
    averages ~0 over seeds, while the all-pairs "kid" cross term counts each clip's own (alike) pair and goes low."""
    u, kid = [], []
    for seed in range(20):
        rng, identity, real, _ = _demo_like(seed=100 + seed)
        gen = _unit(identity + 0.5 * rng.standard_normal(identity.shape))
        u.append(C.kernel_distance(gen, real, reference_splits=0)["kid_judge_mean"])
        kid.append(C.kernel_distance(gen, real, estimator="kid", reference_splits=0)["kid_judge_mean"])
    assert abs(np.mean(u)) < 3 * np.std(u) / math.sqrt(len(u))
    assert np.mean(kid) < np.mean(u) - 3 * np.std(u) / math.sqrt(len(u))


def test_kid_subsets_are_seeded():
    rng = np.random.default_rng(8)
    gen, real = rng.standard_normal((60, 8)) + 0.3, rng.standard_normal((60, 8))
    a = C.kernel_distance(gen, real, subset_size=20, subsets=5, seed=1)
    assert a == C.kernel_distance(gen, real, subset_size=20, subsets=5, seed=1)
    assert (a["kid_judge_subset_size"], a["kid_judge_subsets"]) == (20, 5) and a["kid_judge_std"] > 0
    tiny = C.kernel_distance(gen[:3], real[:3])
    assert tiny["real_vs_real_mean"] is None and "3 real rows" in tiny["real_vs_real_reason"]


def test_kid_equals_torchmetrics_on_the_same_features():
    torch = pytest.importorskip("torch")
    kid_module = pytest.importorskip("torchmetrics.image.kid")
    rng = np.random.default_rng(9)
    gen, real = _unit(rng.standard_normal((33, 24)) + 0.2), _unit(rng.standard_normal((33, 24)))
    ours = C.kernel_distance(gen, real, estimator="kid", reference_splits=0)
    with pytest.warns(UserWarning, match="save all extracted features"):
        metric = kid_module.KernelInceptionDistance(feature=torch.nn.Identity(), subsets=1, subset_size=33)
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(gen), real=False)
    mean, std = metric.compute()
    assert ours["kid_judge_mean"] == pytest.approx(float(mean), rel=1e-10, abs=1e-14)
    assert float(std) == ours["kid_judge_std"] == 0.0
    reference = kid_module.poly_mmd(torch.from_numpy(real[:10]), torch.from_numpy(gen[:10]))
    assert C.mmd2(real[:10], gen[:10], estimator="kid") == pytest.approx(float(reference), rel=1e-10, abs=1e-14)


# --------------------------------------------------------------------------------------------- diversity
def test_pixel_diversity_ratio():
    rng = np.random.default_rng(10)
    true = rng.integers(0, 256, size=(300, 8, 8, 3), dtype=np.uint8)  # > one chunk of 256
    constant = np.repeat(true[:1], 300, axis=0)
    assert C.diversity_ratio(constant, true)["diversity_ratio"] == 0.0
    same = C.diversity_ratio(true, true)
    assert same["diversity_ratio"] == pytest.approx(1.0)
    # the project's definition: torch's std(0) (ddof=1) averaged over pixels, pixels in [0, 1]
    assert same["pixel_std_true"] == pytest.approx((true / 255.0).std(axis=0, ddof=1).mean(), rel=1e-12)
    two = np.array([[[[0]]], [[[255]]]], dtype=np.uint8)
    assert C.diversity_ratio(two, two)["pixel_std_gen"] == pytest.approx(math.sqrt(0.5))
    assert C.diversity_ratio(true, constant)["diversity_ratio"] is None
    _json_ok(same)


def test_embedding_diversity():
    basis = np.eye(4)
    out = C.embedding_diversity(np.tile([[1.0, 2.0, 0.0, 0.0]], (4, 1)), basis)
    assert out["gen_mean_cosine_distance"] == pytest.approx(0.0, abs=1e-12)
    assert out["real_mean_cosine_distance"] == pytest.approx(1.0)
    assert out["ratio"] == pytest.approx(0.0, abs=1e-12)
    pair = np.array([[1.0, 0.0, 0.0, 0.0], [0.5, math.sqrt(3) / 2, 0.0, 0.0]])  # 60 degrees: distance 0.5
    assert C.embedding_diversity(pair, basis)["gen_mean_cosine_distance"] == pytest.approx(0.5)
    assert C.embedding_diversity(basis, basis)["ratio"] == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------- attributes
def test_attribute_agreement_chance_is_the_majority_share_and_unknowns_are_skipped():
    labels = {"gender": ["M", "M", "F", None, "M"],
              "skin": [0, 1, -1, 1, float("nan")],
              "glasses": [True, False, False, False, True],
              "age": [None, None, None, None, None],
              "hair": ["black"] * 5}
    predicted = {"gender": ["M", "F", "F", "F", None],   # 2 of 4 labelled; the None prediction counts as wrong
                 "skin": [0, 1, 3, 1, 2],
                 "glasses": [False, False, False, False, False],
                 "age": ["adult"] * 5,
                 "hair": ["black", "grey", "black", "black", "black"],
                 "beard": [True] * 5}  # no labels: not scored
    out = C.attribute_agreement(predicted, labels)
    assert list(out) == ["gender", "skin", "glasses", "age", "hair"]
    assert out["gender"] == {"n_labelled": 4, "n_unknown": 1, "agreement": 0.5, "chance": 0.75,
                             "majority_class": "M", "classes_present": 2}
    assert out["skin"]["agreement"] == 1.0 and out["skin"]["n_unknown"] == 2 and out["skin"]["chance"] == 2 / 3
    assert out["glasses"]["agreement"] == 0.6 and out["glasses"]["chance"] == 0.6  # constant guess == chance
    assert out["age"]["agreement"] is None and out["age"]["n_labelled"] == 0
    assert out["hair"]["chance"] == 1.0 and "single class" in out["hair"]["note"]
    _json_ok(out)
    assert list(C.attribute_agreement(predicted, labels, attributes=["skin"])) == ["skin"]


def test_neighbour_vote_hand_computed():
    """Five reference voices on a circle; the query nearest to 0 and 1 (then 4), etc."""
    angles = np.deg2rad([0, 20, 90, 180, 340])
    reference = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    query = np.array([[1.0, 0.05], [0.1, 1.0], [-1.0, 0.0]])
    labels = {"gender": [0, 0, 1, 1, 1], "glasses": [-1, -1, -1, 1, 0], "age": [-1] * 5}
    out = C.neighbour_vote(query, reference, labels, k=3)
    # query 0: nearest 0 (0°), 1 (20°), 4 (340°) -> gender 0, 0, 1 -> 0
    # query 1 (84°): nearest 2 (90°), 1 (20°), 0 (0°) -> 1, 0, 0: 0 wins two votes to one
    # query 2: nearest 3 (180°), 2 (90°), then 4 (340°, 160° away) -> 1, 1, 1
    assert out["gender"].tolist() == [0, 0, 1]
    # glasses: query 0 sees one labelled voter (4: 0); query 2 two voters (3: 1, 4: 0) that tie: the nearer (3) wins
    assert out["glasses"].tolist() == [0, -1, 1]
    assert out["age"].tolist() == [-1, -1, -1]  # nobody labelled
    assert C.neighbour_vote(query, reference, labels, k=1)["gender"].tolist() == [0, 1, 1]
    assert C.neighbour_vote(query, reference, labels, k=50)["gender"].tolist() == [1, 1, 1]  # all five: 1 wins 3-2


def test_neighbour_vote_of_voices_that_carry_the_label_agrees_and_of_noise_is_near_chance():
    rng = np.random.default_rng(0)
    gender = rng.integers(0, 2, 400)
    direction = np.eye(8)[0] * 3
    voices = rng.standard_normal((400, 8)) + np.where(gender[:, None] == 1, direction, -direction)
    votes = C.neighbour_vote(voices[300:], voices[:300], {"gender": gender[:300]}, k=5)["gender"]
    assert (votes == gender[300:]).mean() > 0.95
    noise = rng.standard_normal((400, 8))
    votes = C.neighbour_vote(noise[300:], noise[:300], {"gender": gender[:300]}, k=5)["gender"]
    assert 0.3 < (votes == gender[300:]).mean() < 0.7


# --------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, fragment", [
    (lambda: C.sample_recall(np.ones((3, 4)), np.ones((4, 4))), "same shape"),
    (lambda: C.sample_recall(np.ones((1, 4)), np.ones((1, 4))), "at least 2"),
    (lambda: C.sample_recall(np.array([[1.0, np.nan], [1.0, 0.0]]), np.ones((2, 2))), "non-finite"),
    (lambda: C.sample_recall(np.ones(4), np.ones(4)), "2-d array"),
    (lambda: C.sample_recall(np.ones((3, 2)), np.ones((3, 2)), ks=(0,)), "integers >= 1"),
    (lambda: C.speaker_recall(np.ones((3, 2)), np.ones((3, 2)), ["a", "a", "a"]), "one speaker"),
    (lambda: C.speaker_recall(np.ones((3, 2)), np.ones((3, 2)), ["a", "b"]), "one per test clip"),
    (lambda: C.own_vs_other_cosine(np.ones((2, 2)), np.ones((2, 2)), ["a", None]), "no speaker id"),
    (lambda: C.kway_accuracy(np.ones((2, 2)), np.ones((2, 2)), ["a", "b"], ks=(1,)), "integers >= 2"),
    (lambda: C.kway_accuracy(np.ones((2, 2)), np.ones((2, 2)), ["a", "b"], trials="some"), "'all'"),
    (lambda: C.kway_accuracy(np.ones((2, 2)), np.ones((2, 2)), ["a", "b"], trials=[3]), "'all'"),
    (lambda: C.sample_recall(np.ones((3, 2)), np.ones((3, 2)), ks=("x",)), "integers >= 1"),
    (lambda: C.kernel_distance(np.ones((4, 2)), np.ones((4, 2)), subset_size=1), "subset_size"),
    (lambda: C.kernel_distance(np.ones((4, 2)), np.ones((4, 3))), "same space"),
    (lambda: C.kernel_distance(np.ones((4, 2)), np.ones((4, 2)), estimator="fid"), "estimator"),
    (lambda: C.diversity_ratio(np.zeros((1, 4, 4, 3)), np.zeros((2, 4, 4, 3))), "at least 2 images"),
    (lambda: C.diversity_ratio(np.zeros((2, 4, 4, 3)), np.zeros((2, 5, 4, 3))), "differ in size"),
    (lambda: C.attribute_agreement({"gender": ["M"]}, {"gender": ["M", "F"]}), "1 predictions for 2 labels"),
    (lambda: C.attribute_agreement({}, {"gender": ["M"]}), "no predictions"),
    (lambda: C.neighbour_vote(np.ones((2, 3)), np.ones((4, 2)), {}), "3-d but reference rows 2-d"),
    (lambda: C.neighbour_vote(np.ones((2, 2)), np.ones((4, 2)), {"gender": [0, 1]}), "2 labels for 4 reference"),
    (lambda: C.neighbour_vote(np.ones((2, 2)), np.ones((4, 2)), {}, k=0), "at least 1"),
])
def test_bad_inputs_raise_one_sentence(call, fragment):
    with pytest.raises(C.CompareError) as info:
        call()
    assert isinstance(info.value, PipelineError) and isinstance(info.value, ValueError)
    assert fragment in str(info.value) and "\n" not in str(info.value)
