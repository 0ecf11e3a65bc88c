"""Feature-space metrics of the paper's Table 4, retrieval recall@k and gender agreement.

Conventions (the paper's Table 4 values — L1 ≈ 130, L2 ≈ 2.5 on 4096-d VGGFace fc7 — are only consistent with
raw, un-normalised features, so no normalisation is applied here):

- ``L1``    = ``sum_i |a_i - b_i|`` per sample, averaged over samples;
- ``L2``    = ``sqrt(sum_i (a_i - b_i)^2)`` (Euclidean distance) per sample, averaged;
- ``angle`` = ``degrees(arccos(cos(a, b)))`` per sample, averaged ("Cos(deg)" in the paper).

Retrieval follows SF2F: for every query (a predicted feature) all N gallery features (true test faces) are
ranked by cosine similarity; recall@k is the fraction of queries whose own face is among the top k. Chance
level is ``k / N``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from pipeline.common.errors import PipelineError


class ScoringError(PipelineError, ValueError):
    """Inputs of a metric have incompatible shapes or are empty."""


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    if a.shape != b.shape:
        raise ScoringError(f"feature shapes differ: {a.shape} vs {b.shape}")
    return a, b


def l1_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row L1 distance ``sum |a - b|`` of ``[N, D]`` arrays (or two vectors) → ``[N]``."""
    a, b = _pair(a, b)
    return np.abs(a - b).sum(axis=1)


def l2_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row Euclidean distance → ``[N]``."""
    a, b = _pair(a, b)
    return np.sqrt(((a - b) ** 2).sum(axis=1))


def cosine_similarity(a: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Per-row cosine similarity → ``[N]`` (a zero vector has similarity 0 with anything)."""
    a, b = _pair(a, b)
    denom = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), eps)
    return (a * b).sum(axis=1) / denom


def angle_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row angle in degrees between rows of ``a`` and ``b`` → ``[N]``."""
    cos = np.clip(cosine_similarity(a, b), -1.0, 1.0)
    return np.degrees(np.arccos(cos))


def feature_distances(pred: np.ndarray, true: np.ndarray) -> dict[str, np.ndarray]:
    """The three Table 4 per-sample columns: ``{"l1", "l2", "angle"}`` each ``[N]``."""
    return {"l1": l1_distance(pred, true), "l2": l2_distance(pred, true), "angle": angle_degrees(pred, true)}


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def retrieval_ranks(queries: np.ndarray, gallery: np.ndarray, targets: Sequence[int] | None = None) -> np.ndarray:
    """0-based rank of each query's target among all gallery rows, by cosine similarity (best first).

    ``targets[i]`` is the gallery row that query ``i`` should retrieve (default: row ``i``). Ties are counted
    pessimistically (an equally similar other row ranks ahead), so a constant predictor never looks good.
    """
    queries = np.atleast_2d(queries)
    gallery = np.atleast_2d(gallery)
    if queries.shape[0] == 0 or gallery.shape[0] == 0:
        raise ScoringError("retrieval needs at least one query and one gallery item")
    if queries.shape[1] != gallery.shape[1]:
        raise ScoringError(f"query dim {queries.shape[1]} != gallery dim {gallery.shape[1]}")
    targets = np.arange(queries.shape[0]) if targets is None else np.asarray(targets, dtype=np.int64)
    if targets.shape[0] != queries.shape[0] or targets.max() >= gallery.shape[0] or targets.min() < 0:
        raise ScoringError("retrieval targets must index the gallery, one per query")
    sims = _unit_rows(queries) @ _unit_rows(gallery).T
    target_sims = sims[np.arange(sims.shape[0]), targets]
    better_or_equal = sims >= target_sims[:, None] - 1e-12
    return better_or_equal.sum(axis=1) - 1


def recall_at_k(ranks: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """Fraction of queries whose target rank is below k, for each k."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ScoringError("recall of an empty query set")
    return {int(k): float((ranks < int(k)).mean()) for k in ks}


def chance_recall(k: int, n: int) -> float:
    """Expected recall@k of a random ranking of n gallery items: ``min(k, n) / n``."""
    if n <= 0:
        raise ScoringError("chance recall needs a non-empty gallery")
    return min(int(k), n) / n


def agreement(predicted: Sequence[str], labels: Sequence[str | None]) -> tuple[float | None, int]:
    """Fraction of labelled samples (label not None) whose prediction equals the label, and how many there were."""
    pairs = [(p, l) for p, l in zip(predicted, labels) if l in ("M", "F")]
    if not pairs:
        return None, 0
    return float(np.mean([p == l for p, l in pairs])), len(pairs)
