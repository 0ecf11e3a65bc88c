"""Pure metric functions that compare speech-to-face model families on one test set, each with its chance level.

Inputs, for one family: ``gen`` = judge embeddings of the generated faces ``[N, D]``; ``real`` = judge embeddings of
the true face crops of the same N test clips ``[N, D]`` (row ``i`` of both belongs to clip ``i``); ``speakers`` =
the speaker id of each clip. Embeddings are renormalised where a metric is a cosine, so unnormalised input is fine.
Every function returns a plain dict of floats, ints, strings and ``None`` (JSON-able), and bad input raises
:class:`CompareError` (a :class:`~pipeline.common.errors.PipelineError` and ``ValueError``) with one sentence.

- :func:`sample_recall`      — each generated face ranks all N true faces; chance ``k / N``.
- :func:`speaker_recall`     — one mean embedding per speaker; blocks of 100 speakers as SF2F; chance ``k / block``.
- :func:`own_vs_other_cosine`— cosine to the own speaker's mean true face vs to the other speakers' ones.
- :func:`kway_accuracy`      — own true face against K-1 faces of other speakers; chance ``1 / K``.
- :func:`kernel_distance`    — KID (MMD², cubic polynomial kernel) in the judge's space: ``kid_judge``.
- :func:`diversity_ratio`    — per-pixel std across generated faces / the same across true faces.
- :func:`embedding_diversity`— mean pairwise cosine distance among generated vs among true embeddings.
- :func:`attribute_agreement`— probe reading vs known attribute; chance = the majority class's share.
- :func:`neighbour_vote`     — each query's k nearest reference rows (cosine) vote on its attributes.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np

from pipeline.evaluation.scoring import ScoringError, chance_recall, recall_at_k, retrieval_ranks

#: SF2F computes speaker-level recall inside blocks of 100 identities ([0:100], [100:200], ...) and averages.
SPEAKER_BLOCK = 100


class CompareError(ScoringError):
    """Inputs of a family-comparison metric are mismatched, non-finite or too small."""


# --------------------------------------------------------------------------------------------- input checks
def _embeddings(x: Any, name: str, min_rows: int = 2) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise CompareError(f"{name} is not a numeric array ({exc})") from None
    if a.ndim != 2 or a.shape[1] < 1:
        raise CompareError(f"{name} must be a 2-d array [N, D] of embeddings, got shape {a.shape}")
    if a.shape[0] < min_rows:
        raise CompareError(f"{name} has {a.shape[0]} rows; this metric needs at least {min_rows}")
    if not np.isfinite(a).all():
        raise CompareError(f"{name} holds non-finite values (NaN or inf)")
    return a


def _paired(gen: Any, real: Any) -> tuple[np.ndarray, np.ndarray]:
    g, r = _embeddings(gen, "gen"), _embeddings(real, "real")
    if g.shape != r.shape:
        raise CompareError(f"gen {g.shape} and real {r.shape} must have the same shape (one row per test clip)")
    return g, r


def _speaker_codes(speakers: Sequence[Any], n: int) -> tuple[list[str], np.ndarray]:
    """Sorted distinct speaker ids and each clip's index into them; at least two speakers."""
    speakers = list(speakers)
    if len(speakers) != n:
        raise CompareError(f"{len(speakers)} speaker ids for {n} embeddings: there must be one per test clip")
    if any(s is None or str(s) == "" for s in speakers):
        raise CompareError("a test clip has no speaker id (None or empty)")
    ids = [str(s) for s in speakers]
    distinct = sorted(set(ids))
    if len(distinct) < 2:
        raise CompareError(f"all {n} test clips belong to one speaker; speaker metrics need at least two")
    index = {s: i for i, s in enumerate(distinct)}
    return distinct, np.array([index[s] for s in ids], dtype=np.int64)


def _is_int_at_least(value: Any, least: int) -> bool:
    try:
        return not isinstance(value, bool) and int(value) == value and int(value) >= least
    except (TypeError, ValueError):
        return False


def _ks(ks: Sequence[int], minimum: int, name: str) -> list[int]:
    ks = list(ks)
    if not ks:
        raise CompareError(f"{name} is empty")
    for k in ks:
        if not _is_int_at_least(k, minimum):
            raise CompareError(f"{name} must be integers >= {minimum}, got {k!r}")
    return [int(k) for k in ks]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _speaker_means(x: np.ndarray, codes: np.ndarray, n_speakers: int) -> np.ndarray:
    """Per speaker, the mean of its rows of ``x`` (rows unit-normalised first), renormalised → ``[S, D]``."""
    sums = np.zeros((n_speakers, x.shape[1]))
    np.add.at(sums, codes, _unit(x))
    return _unit(sums)


# --------------------------------------------------------------------------------------------- retrieval
def sample_recall(gen: Any, real: Any, ks: Sequence[int] = (1, 5, 10)) -> dict[str, Any]:
    """Each generated face ranks all N true faces by cosine; a hit when clip i's own true face is in the top k.

    Ties count against the query (``scoring.retrieval_ranks``). Returns ``{"recall@k", "chance@k" (= min(k, N) / N)
    for each k, "n"}``."""
    g, r = _paired(gen, real)
    ks = _ks(ks, 1, "ks")
    n = g.shape[0]
    recall = recall_at_k(retrieval_ranks(g, r), ks)
    out: dict[str, Any] = {}
    for k in ks:
        out[f"recall@{k}"] = recall[k]
        out[f"chance@{k}"] = chance_recall(k, n)
    out["n"] = n
    return out


def speaker_blocks(n_speakers: int, block: int = SPEAKER_BLOCK) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of the sorted speakers that speaker-level recall is computed in.

    Rule: up to ``block`` speakers form one block of all of them; above that, consecutive full blocks of ``block``
    (SF2F: [0:100], [100:200], ...) and a trailing block smaller than ``block`` is dropped, so every block has the
    same size and the same chance level (250 speakers → 2 blocks, the last 50 speakers unused)."""
    if block < 2:
        raise CompareError(f"the speaker block size must be at least 2, got {block}")
    if n_speakers <= block:
        return [(0, n_speakers)]
    return [(start, start + block) for start in range(0, n_speakers - block + 1, block)]


def speaker_recall(gen: Any, real: Any, speakers: Sequence[str], ks: Sequence[int] = (1, 5, 10),
                   block: int = SPEAKER_BLOCK) -> dict[str, Any]:
    """Speaker-level recall@k: one mean generated and one mean true embedding per test speaker (clips' unit
    embeddings averaged, renormalised); each speaker's generated mean ranks the true means of its block.

    Blocks follow :func:`speaker_blocks` over the speakers sorted by id; recall is averaged over blocks (all of one
    size). Returns ``{"recall@k", "chance@k" (= min(k, block_size) / block_size), "n", "speakers", "block_size",
    "blocks", "dropped_speakers"}``."""
    g, r = _paired(gen, real)
    ks = _ks(ks, 1, "ks")
    distinct, codes = _speaker_codes(speakers, g.shape[0])
    n_speakers = len(distinct)
    gen_means = _speaker_means(g, codes, n_speakers)
    real_means = _speaker_means(r, codes, n_speakers)
    blocks = speaker_blocks(n_speakers, int(block))
    per_block = [recall_at_k(retrieval_ranks(gen_means[a:b], real_means[a:b]), ks) for a, b in blocks]
    size = blocks[0][1] - blocks[0][0]
    out: dict[str, Any] = {}
    for k in ks:
        out[f"recall@{k}"] = float(np.mean([rec[k] for rec in per_block]))
        out[f"chance@{k}"] = chance_recall(k, size)
    out.update(n=int(g.shape[0]), speakers=n_speakers, block_size=size, blocks=len(blocks),
               dropped_speakers=n_speakers - size * len(blocks))
    return out


def own_vs_other_cosine(gen: Any, real: Any, speakers: Sequence[str]) -> dict[str, Any]:
    """Mean cosine of each generated face to its own speaker's mean true embedding (all of that speaker's clips,
    its own clip included) vs its mean cosine to every other speaker's mean true embedding, averaged over clips.

    Returns ``{"own", "other", "gap" (= own - other; 0 for a generator blind to identity), "n", "speakers"}``."""
    g, r = _paired(gen, real)
    distinct, codes = _speaker_codes(speakers, g.shape[0])
    n_speakers = len(distinct)
    cos = _unit(g) @ _speaker_means(r, codes, n_speakers).T  # [N, S]
    own = cos[np.arange(len(codes)), codes]
    other = (cos.sum(axis=1) - own) / (n_speakers - 1)
    return {"own": float(own.mean()), "other": float(other.mean()), "gap": float((own - other).mean()),
            "n": int(g.shape[0]), "speakers": n_speakers}


def kway_accuracy(gen: Any, real: Any, speakers: Sequence[str], ks: Sequence[int] = (2, 5, 10),
                  trials: int | str = 100, seed: int = 0) -> dict[str, Any]:
    """K-way matching: clip i's generated face against K true faces — clip i's own and K-1 others, one clip each of
    K-1 distinct other speakers (speakers uniformly without replacement, then a clip of each uniformly); correct when
    its own face has the strictly highest cosine (ties count as wrong).

    ``trials``: a number of seeded draws per query (``numpy.random.default_rng(seed)``), or ``"all"`` for the
    exact expectation over every such draw (no sampling noise). Returns ``{"accuracy@K", "chance@K" (= 1 / K),
    "n", "speakers", "trials_per_query", "seed"}``; a K above the number of speakers has ``accuracy@K: None`` and
    ``reason@K``."""
    g, r = _paired(gen, real)
    ks = _ks(ks, 2, "ks")
    distinct, codes = _speaker_codes(speakers, g.shape[0])
    n, n_speakers = g.shape[0], len(distinct)
    exact = trials == "all"
    if not exact and (isinstance(trials, str) or not _is_int_at_least(trials, 1)):
        raise CompareError(f"trials must be a positive integer or 'all', got {trials!r}")
    sims = _unit(g) @ _unit(r).T  # [N queries, N true faces]
    own = sims[np.arange(n), np.arange(n)]
    counts = np.bincount(codes, minlength=n_speakers)
    rng = np.random.default_rng(seed)
    shares = None
    out: dict[str, Any] = {}
    for k in ks:
        if k > n_speakers:
            out[f"accuracy@{k}"] = None
            out[f"chance@{k}"] = 1.0 / k
            out[f"reason@{k}"] = (f"only {n_speakers} test speakers; {k}-way matching needs {k - 1} other speakers "
                                  f"per query")
            continue
        if exact:
            if shares is None:
                shares = _below_share(sims, own, codes, counts)
            acc = _kway_exact(shares, k)
        else:
            acc = _kway_sampled(sims, own, codes, counts, k, int(trials), rng)
        out[f"accuracy@{k}"] = acc
        out[f"chance@{k}"] = 1.0 / k
    out.update(n=int(n), speakers=n_speakers, trials_per_query="all" if exact else int(trials), seed=int(seed))
    return out


def _other_speakers(rng: np.random.Generator, own_codes: np.ndarray, trials: int, n_speakers: int,
                    count: int) -> np.ndarray:
    """``[len(own_codes), trials, count]`` distinct speakers other than each query's own, uniformly at random."""
    shape = (len(own_codes), trials, count)
    if 4 * count > n_speakers - 1:  # dense: a random order of all speakers, the own one last
        keys = rng.random((*shape[:2], n_speakers))
        keys[np.arange(shape[0])[:, None], np.arange(trials)[None, :], own_codes[:, None]] = np.inf
        return np.argpartition(keys, count - 1, axis=2)[..., :count]
    # sparse: draw among the S-1 others and redraw the (query, trial) rows that repeat a speaker
    draws = rng.integers(0, n_speakers - 1, size=shape)
    while True:
        repeated = (np.diff(np.sort(draws, axis=2), axis=2) == 0).any(axis=2)
        if not repeated.any():
            break
        draws[repeated] = rng.integers(0, n_speakers - 1, size=(int(repeated.sum()), count))
    return draws + (draws >= own_codes[:, None, None])  # skip the own speaker


def _kway_sampled(sims: np.ndarray, own: np.ndarray, codes: np.ndarray, counts: np.ndarray, k: int, trials: int,
                  rng: np.random.Generator) -> float:
    n, n_speakers = sims.shape[0], len(counts)
    order = np.argsort(codes, kind="stable")  # clips grouped by speaker
    starts = np.cumsum(counts) - counts
    chunk = max(1, 2_000_000 // (trials * min(n_speakers, 4 * k)))
    correct = 0
    for lo in range(0, n, chunk):
        q = np.arange(lo, min(n, lo + chunk))
        others = _other_speakers(rng, codes[q], trials, n_speakers, k - 1)
        pick = (rng.random(others.shape) * counts[others]).astype(np.int64)  # one clip of each, uniformly
        clips = order[starts[others] + np.minimum(pick, counts[others] - 1)]
        negatives = sims[q[:, None, None], clips]
        correct += int((own[q][:, None, None] > negatives).all(axis=2).sum())
    return correct / (n * trials)


def _below_share(sims: np.ndarray, own: np.ndarray, codes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``[N, S]``: per query, the share of each speaker's true faces strictly less similar than its own (0 for the
    query's own speaker: never a negative)."""
    n = sims.shape[0]
    order = np.argsort(codes, kind="stable")
    starts = np.cumsum(counts) - counts
    below = np.add.reduceat((sims < own[:, None])[:, order].astype(np.float64), starts, axis=1)
    p = below / counts[None, :]
    p[np.arange(n), codes] = 0.0
    return p


def _kway_exact(p: np.ndarray, k: int) -> float:
    """Expected accuracy over every draw: with ``p_s`` from :func:`_below_share`, P(correct) = e_{K-1}(p) /
    C(S-1, K-1) (elementary symmetric polynomial: the mean over (K-1)-sets of other speakers of the product of their
    p). The recursion keeps ``e_j / C(s, j)`` so nothing overflows; the final factor S / (S-K+1) turns C(S, K-1)
    into C(S-1, K-1) (the own speaker's p is 0, so its sets add nothing)."""
    n, n_speakers = p.shape
    j = k - 1
    mean_prod = np.zeros((n, j + 1))
    mean_prod[:, 0] = 1.0
    for s in range(1, n_speakers + 1):
        top = min(j, s)
        idx = np.arange(1, top + 1)
        mean_prod[:, 1:top + 1] = ((s - idx) / s) * mean_prod[:, 1:top + 1] \
            + (idx / s) * p[:, s - 1:s] * mean_prod[:, 0:top]
    prob = mean_prod[:, j] * n_speakers / (n_speakers - j)
    return float(np.clip(prob, 0.0, 1.0).mean())


# --------------------------------------------------------------------------------------------- distributions
def _poly_kernel(a: np.ndarray, b: np.ndarray, degree: int, coef: float) -> np.ndarray:
    return (a @ b.T / a.shape[1] + coef) ** degree


#: ``estimator`` of :func:`kernel_distance` -> what it is
KID_ESTIMATORS = {
    "u": "MMD^2_u: matched rows (i, i) left out of the cross term as well (Gretton et al. 2012)",
    "kid": "KID's estimator (Binkowski et al. 2018; torch-fidelity, torchmetrics): cross term over all m^2 pairs",
}


def mmd2(x: np.ndarray, y: np.ndarray, degree: int = 3, coef: float = 1.0, estimator: str = "u") -> float:
    """MMD² between two equal-size sets with k(a, b) = (aᵀb / d + coef)^degree.

    ``"kid"``: ``mean_{i≠j} k(x_i, x_j) + mean_{i≠j} k(y_i, y_j) - 2 mean_{i,j} k(x_i, y_j)`` — torchmetrics'
    ``KernelInceptionDistance``, unbiased for independent sets but biased low when row i of both sets is the same
    test clip (a generator that matches its own clip lowers it: the (i, i) pairs are more alike than the rest).
    ``"u"``: the cross term over ``i≠j`` too, unbiased in both cases (exactly 0 for ``x == y``)."""
    if estimator not in KID_ESTIMATORS:
        raise CompareError(f"estimator must be one of {sorted(KID_ESTIMATORS)}, got {estimator!r}")
    m = x.shape[0]
    k_xx, k_yy, k_xy = (_poly_kernel(x, x, degree, coef), _poly_kernel(y, y, degree, coef),
                        _poly_kernel(x, y, degree, coef))
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    if estimator == "kid":
        return float(within - 2.0 * k_xy.sum() / (m * m))
    return float(within - 2.0 * (k_xy.sum() - np.trace(k_xy)) / (m * (m - 1)))


def _kid(x: np.ndarray, y: np.ndarray, subset_size: int, subsets: int, degree: int, coef: float, estimator: str,
         rng: np.random.Generator) -> tuple[float, float, int, int]:
    m = min(subset_size, x.shape[0], y.shape[0])
    if x.shape[0] == m and y.shape[0] == m:
        return mmd2(x, y, degree, coef, estimator), 0.0, m, 1
    scores = []
    for _ in range(subsets):
        gx = rng.permutation(x.shape[0])[:m]
        # "u" on aligned sets keeps the alignment (the same rows of both), so that (i, i) stays the left-out pair
        gy = gx if estimator == "u" and x.shape[0] == y.shape[0] else rng.permutation(y.shape[0])[:m]
        scores.append(mmd2(x[gx], y[gy], degree, coef, estimator))
    return float(np.mean(scores)), float(np.std(scores)), m, subsets


def kernel_distance(gen: Any, real: Any, subset_size: int = 1000, subsets: int = 100, degree: int = 3,
                    coef: float = 1.0, estimator: str = "u", seed: int = 0, reference_splits: int = 10,
                    ) -> dict[str, Any]:
    """KID in the judge's embedding space (``kid_judge``; not Inception KID): MMD² with k(x, y) = (xᵀy/d + 1)³
    between the generated and the true embedding sets, computed in numpy with a seeded ``numpy`` generator.

    ``estimator``: ``"u"`` (default) leaves the matched pairs (generated face of clip i, true face of clip i) out
    of the cross term: the sets are paired, and a generator that resembles its own clip's face must not look closer
    in *distribution* for it; ``"kid"`` is exactly torchmetrics' ``KernelInceptionDistance`` on these features
    (comparable with published KID numbers). See :func:`mmd2`.

    Subset rule: m = min(subset_size, n_gen, n_real). When both sets have exactly m rows (the demo's N = 33 with the
    default 1000) the estimate is the single full-set one (``kid_judge_subsets: 1``, std 0); otherwise ``subsets``
    random subsets of m rows (as torchmetrics), mean and population std.
    Reference ("real vs real", the level a generator can hope for and the noise at this size): the same estimator
    between two disjoint random halves of ``real`` (⌊n_real/2⌋ rows each, at most ``subset_size`` of each drawn),
    over ``reference_splits`` random splits: mean and population std across splits (0 splits: no reference; fewer
    than 4 real rows: ``None`` with ``real_vs_real_reason``). Keys: ``kid_judge_mean``, ``kid_judge_std``,
    ``kid_judge_subset_size``, ``kid_judge_subsets``, ``kid_judge_estimator``, ``n_gen``, ``n_real``, ``kernel``,
    ``seed``, ``real_vs_real_mean``, ``real_vs_real_std``, ``real_vs_real_subset_size``, ``real_vs_real_splits``."""
    g, r = _embeddings(gen, "gen"), _embeddings(real, "real")
    if g.shape[1] != r.shape[1]:
        raise CompareError(f"gen has dimension {g.shape[1]} and real {r.shape[1]}: they must be the same space")
    for name, value, least in (("subset_size", subset_size, 2), ("subsets", subsets, 1), ("degree", degree, 1),
                               ("reference_splits", reference_splits, 0)):
        if not _is_int_at_least(value, least):
            raise CompareError(f"{name} must be an integer of at least {least}, got {value!r}")
    if not (math.isfinite(coef) and coef > 0):
        raise CompareError(f"coef must be a positive number, got {coef!r}")
    if estimator not in KID_ESTIMATORS:
        raise CompareError(f"estimator must be one of {sorted(KID_ESTIMATORS)}, got {estimator!r}")
    rng = np.random.default_rng(seed)
    settings = (int(subset_size), int(subsets), int(degree), float(coef), estimator, rng)
    mean, std, m, used = _kid(g, r, *settings)
    out: dict[str, Any] = {"kid_judge_mean": mean, "kid_judge_std": std, "kid_judge_subset_size": m,
                           "kid_judge_subsets": used, "kid_judge_estimator": estimator, "n_gen": int(g.shape[0]),
                           "n_real": int(r.shape[0]), "kernel": f"(x.y/d + {coef:g})^{int(degree)}",
                           "seed": int(seed)}
    if int(reference_splits) > 0:
        half = r.shape[0] // 2
        if half < 2:
            out.update(real_vs_real_mean=None, real_vs_real_std=None,
                       real_vs_real_reason=f"{r.shape[0]} real rows cannot make two halves of at least 2 rows")
        else:
            m = min(int(subset_size), half)
            scores = []
            for _ in range(int(reference_splits)):
                perm = rng.permutation(r.shape[0])
                scores.append(mmd2(r[perm[:m]], r[perm[half:half + m]], int(degree), float(coef), estimator))
            out.update(real_vs_real_mean=float(np.mean(scores)), real_vs_real_std=float(np.std(scores)),
                       real_vs_real_subset_size=m, real_vs_real_splits=int(reference_splits))
    return out


def _images(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim < 2 or a.shape[0] < 2:
        raise CompareError(f"{name} must be a stack of at least 2 images [N, H, W, C], got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise CompareError(f"{name} must be numeric images, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise CompareError(f"{name} holds non-finite pixel values")
    return a


def _pixel_std(images: np.ndarray, chunk: int = 256) -> float:
    """Mean over pixels of the per-pixel std across images (ddof=1, as torch's ``std(0)``), pixels in [0, 1] for
    uint8 input; two passes over chunks so thousands of images never need a float copy of the whole stack."""
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    n = images.shape[0]
    total = np.zeros(images.shape[1:])
    for lo in range(0, n, chunk):
        total += images[lo:lo + chunk].astype(np.float64).sum(axis=0)
    mean = total / n
    squares = np.zeros(images.shape[1:])
    for lo in range(0, n, chunk):
        squares += ((images[lo:lo + chunk].astype(np.float64) - mean) ** 2).sum(axis=0)
    return float(np.sqrt(squares / (n - 1)).mean() / scale)


def diversity_ratio(gen_images: Any, true_images: Any) -> dict[str, Any]:
    """The project's diversity (``evaluate_decoder``): mean over pixels of the per-pixel std across the generated
    faces, divided by the same across the true faces. 1 ≈ as varied as real faces, 0 = one face for every voice.

    Returns ``{"diversity_ratio" (None when the true faces do not vary), "pixel_std_gen", "pixel_std_true",
    "n_gen", "n_true"}``."""
    g, t = _images(gen_images, "gen_images"), _images(true_images, "true_images")
    if g.shape[1:] != t.shape[1:]:
        raise CompareError(f"generated images {g.shape[1:]} and true images {t.shape[1:]} differ in size")
    std_gen, std_true = _pixel_std(g), _pixel_std(t)
    return {"diversity_ratio": std_gen / std_true if std_true > 0 else None, "pixel_std_gen": std_gen,
            "pixel_std_true": std_true, "n_gen": int(g.shape[0]), "n_true": int(t.shape[0])}


def _mean_pairwise_cosine_distance(x: np.ndarray) -> float:
    """``1 - mean_{i≠j} cos(x_i, x_j)`` in O(N·D): the sum over all pairs is ‖Σu‖² - Σ‖u‖² for unit rows u."""
    u = _unit(x)
    total = u.sum(axis=0)
    off_diagonal = float(total @ total) - float((u * u).sum())
    n = x.shape[0]
    return 1.0 - off_diagonal / (n * (n - 1))


def embedding_diversity(gen: Any, real: Any) -> dict[str, Any]:
    """Mean pairwise cosine distance among the generated embeddings vs among the true ones (sets may differ in
    size). Returns ``{"gen_mean_cosine_distance", "real_mean_cosine_distance", "ratio" (gen / real; None when the
    true embeddings are all parallel)}``."""
    g, r = _embeddings(gen, "gen"), _embeddings(real, "real")
    if g.shape[1] != r.shape[1]:
        raise CompareError(f"gen has dimension {g.shape[1]} and real {r.shape[1]}: they must be the same space")
    dg, dr = _mean_pairwise_cosine_distance(g), _mean_pairwise_cosine_distance(r)
    return {"gen_mean_cosine_distance": dg, "real_mean_cosine_distance": dr,
            "ratio": dg / dr if dr > 1e-12 else None}


# --------------------------------------------------------------------------------------------- attributes
def _is_unknown(label: Any) -> bool:
    """None, NaN, or the integer -1 (the "no label" of ``pipeline.faces.probe.labels_for``)."""
    if label is None:
        return True
    if isinstance(label, (bool, np.bool_)):
        return False
    if isinstance(label, (int, np.integer)):
        return int(label) == -1
    if isinstance(label, (float, np.floating)):
        return not math.isfinite(float(label))
    return False


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def attribute_agreement(predicted: Mapping[str, Sequence[Any]], labels: Mapping[str, Sequence[Any]],
                        attributes: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per attribute (gender, hair, glasses, skin, age, ... — every key of ``labels`` unless ``attributes`` names
    some): the share of labelled samples whose prediction equals the label.

    Chance = the majority class's share of the labelled samples (what always answering the most common class
    scores; the conservative choice, at least the Σ p_c² of guessing by the label distribution). Unknown labels
    (None, NaN, or -1) are skipped and counted; an unknown *prediction* on a labelled sample counts as wrong.
    Returns ``{attribute: {"agreement", "chance", "majority_class", "classes_present", "n_labelled",
    "n_unknown"}}``; with no labelled sample, agreement and chance are None; with a single class present a
    ``note`` says that chance is 1.0."""
    names = list(labels) if attributes is None else list(attributes)
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        if name not in labels:
            raise CompareError(f"attribute {name!r} has no labels")
        if name not in predicted:
            raise CompareError(f"attribute {name!r} has labels but no predictions")
        truth, guess = list(labels[name]), list(predicted[name])
        if len(truth) != len(guess):
            raise CompareError(f"attribute {name!r} has {len(guess)} predictions for {len(truth)} labels")
        keep = [i for i, label in enumerate(truth) if not _is_unknown(label)]
        entry: dict[str, Any] = {"n_labelled": len(keep), "n_unknown": len(truth) - len(keep)}
        if not keep:
            entry.update(agreement=None, chance=None, majority_class=None, classes_present=0,
                         note="no labelled samples")
            out[name] = entry
            continue
        counts = Counter(_plain(truth[i]) for i in keep)
        majority, top = counts.most_common(1)[0]  # ties: the class seen first
        hits = sum(1 for i in keep if not _is_unknown(guess[i]) and _plain(guess[i]) == _plain(truth[i]))
        entry.update(agreement=hits / len(keep), chance=top / len(keep), majority_class=majority,
                     classes_present=len(counts))
        if len(counts) == 1:
            entry["note"] = "a single class in these labels: chance is 1.0"
        out[name] = entry
    return out


def neighbour_vote(query: Any, reference: Any, reference_labels: Mapping[str, Sequence[int]],
                   k: int = 5) -> dict[str, np.ndarray]:
    """Per attribute, the class that each query row's ``k`` nearest ``reference`` rows (cosine) hold most often,
    among those with a known label (-1 = unknown); a tie goes to the class whose voters rank nearer (the sum of
    their ranks is smaller); -1 where none of the k is labelled. What a generator that draws the faces of its
    nearest training voices would score on the attributes: ``query`` = test voices, ``reference`` = training voices,
    both in one family's speech space."""
    q, r = _embeddings(query, "query", 1), _embeddings(reference, "reference", 1)
    if q.shape[1] != r.shape[1]:
        raise CompareError(f"query rows are {q.shape[1]}-d but reference rows {r.shape[1]}-d")
    if not _is_int_at_least(k, 1):
        raise CompareError(f"k must be an integer of at least 1, got {k!r}")
    k = min(int(k), len(r))
    nearest = np.argsort(-(_unit(q) @ _unit(r).T), axis=1, kind="stable")[:, :k]
    out: dict[str, np.ndarray] = {}
    for name, labels in reference_labels.items():
        labels = np.asarray(labels, dtype=np.int64)
        if len(labels) != len(r):
            raise CompareError(f"attribute {name!r} has {len(labels)} labels for {len(r)} reference rows")
        votes = np.full(len(q), -1, dtype=np.int64)
        for row, neighbours in enumerate(nearest):
            held = labels[neighbours]
            known = held >= 0
            if not known.any():
                continue
            classes = np.unique(held[known])
            count = np.array([(held == c).sum() for c in classes])
            ranks = np.array([np.flatnonzero(held == c).sum() for c in classes])
            best = np.lexsort((ranks, -count))[0]  # most votes, then the nearer voters
            votes[row] = classes[best]
        out[name] = votes
    return out
