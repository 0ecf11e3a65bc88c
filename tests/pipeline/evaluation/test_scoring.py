"""Unit tests of the Table 4 metrics, retrieval recall and gender agreement."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.evaluation import scoring as M


def test_angle_of_identical_vectors_is_zero():
    x = np.random.default_rng(0).standard_normal((5, 32))
    assert np.allclose(M.angle_degrees(x, x), 0.0, atol=1e-5)
    assert np.allclose(M.l1_distance(x, x), 0.0)
    assert np.allclose(M.l2_distance(x, x), 0.0)


def test_known_values():
    a = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = np.array([[0.0, 2.0], [-1.0, -1.0]])
    assert M.angle_degrees(a, b) == pytest.approx([90.0, 180.0])
    assert M.l1_distance(a, b) == pytest.approx([3.0, 4.0])
    assert M.l2_distance(a, b) == pytest.approx([np.sqrt(5.0), np.sqrt(8.0)])
    assert M.angle_degrees(np.array([1.0, 0.0]), np.array([1.0, 1.0]))[0] == pytest.approx(45.0)


def test_recall_of_a_perfect_predictor_is_one():
    gallery = np.random.default_rng(1).standard_normal((20, 16))
    ranks = M.retrieval_ranks(gallery * 3.0, gallery)
    assert (ranks == 0).all()
    assert M.recall_at_k(ranks, [1, 5, 10]) == {1: 1.0, 5: 1.0, 10: 1.0}


def test_constant_predictor_is_not_rewarded_and_chance_is_k_over_n():
    gallery = np.random.default_rng(2).standard_normal((10, 8))
    ranks = M.retrieval_ranks(np.ones((10, 8)), np.ones((10, 8)))
    assert (ranks == 9).all()  # ties count against the query
    assert M.chance_recall(5, 10) == 0.5 and M.chance_recall(20, 10) == 1.0
    shuffled = M.retrieval_ranks(gallery, gallery, targets=[1, 0, 2, 3, 4, 5, 6, 7, 8, 9])
    assert shuffled[2] == 0 and shuffled[0] > 0


def test_shape_errors_are_clear():
    with pytest.raises(M.ScoringError, match="shapes differ"):
        M.l1_distance(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(M.ScoringError):
        M.recall_at_k(np.array([]), [1])


def test_agreement():
    assert M.agreement(["M", "F", "M"], ["M", "M", None]) == (0.5, 2)
    assert M.agreement(["M"], [None]) == (None, 0)
