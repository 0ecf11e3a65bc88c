"""Face priors (paper §3.1): the neutral prior and the male/female priors, plus the convergence table (Table 1).

- neutral prior = mean face feature of ``n`` training samples, chosen by a seeded permutation of the train split;
- male / female prior = the same, over the training samples whose gender the voice classifier PREDICTS as male /
  female (the paper: "Based on the classification results, we calculate the male and female prior face
  features using the same method as the neutral prior");
- Table 1: for growing n (``convergence_n`` plus the final ``n``), the L1 distance ``sum |p(n_i) - p(n_{i+1})|``
  between the priors at consecutive n, per group. The subsets are nested prefixes of one permutation, so the
  table shows how the mean settles as samples are added, as in the paper's Figure 2 / Table 1.

Everything streams over the memory-mapped per-shard feature arrays: memory is O(D x number of n), not O(N x D).
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from pipeline.feature_files import iter_feature_shards, read_keys, feature_paths, keys_path
from pipeline.io import atomic_path

GROUPS = ("neutral", "male", "female")
GENDER_OF_GROUP = {"male": "M", "female": "F"}
# Fixed zip member date: np.savez would stamp the current time, making equal priors differ byte-wise.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class PriorsError(ValueError):
    """Priors cannot be computed or loaded as asked (no samples, missing group, wrong dimension)."""


@dataclass
class GroupPlan:
    """Which training samples (by global position in shard order) enter one group's prior, and in what order."""

    name: str
    rank: np.ndarray  # [N_train] int64: position of each sample in the group's seeded permutation, -1 if absent
    n_available: int
    checkpoints: list[int]  # capped, sorted, unique prefix sizes to accumulate
    n_requested: int
    n_used: int
    sums: dict[int, np.ndarray] = field(default_factory=dict)


def _checkpoints(n: int, convergence_n: Iterable[int], available: int) -> list[int]:
    wanted = sorted({int(x) for x in convergence_n} | {int(n)})
    return sorted({min(x, available) for x in wanted if x > 0 and available > 0})


def plan_group(
    name: str, members: Sequence[int], total: int, n: int, convergence_n: Iterable[int], seed: int
) -> GroupPlan:
    """Seeded permutation of ``members`` (global sample indices); the prior at n is the mean of its first n."""
    group_seed = [int(seed), GROUPS.index(name)]
    order = np.random.default_rng(group_seed).permutation(len(members))
    rank = np.full(int(total), -1, dtype=np.int64)
    rank[np.asarray(members, dtype=np.int64)[order]] = np.arange(len(members), dtype=np.int64)
    available = len(members)
    return GroupPlan(
        name=name,
        rank=rank,
        n_available=available,
        checkpoints=_checkpoints(n, convergence_n, available),
        n_requested=int(n),
        n_used=min(int(n), available),
    )


def accumulate(plans: Sequence[GroupPlan], shards: Iterable[tuple[np.ndarray, int]]) -> None:
    """Add each shard's rows to the running float64 sums of every checkpoint prefix that contains them.

    ``shards`` yields ``(array [N_s, D], first global index of the shard)``.
    """
    for array, start in shards:
        count = array.shape[0]
        for plan in plans:
            if not plan.checkpoints:
                continue
            ranks = plan.rank[start : start + count]
            for c in plan.checkpoints:
                mask = (ranks >= 0) & (ranks < c)
                if c not in plan.sums:
                    plan.sums[c] = np.zeros(array.shape[1], dtype=np.float64)
                if mask.any():
                    plan.sums[c] += np.asarray(array[mask], dtype=np.float64).sum(axis=0)


def prior_at(plan: GroupPlan, c: int) -> np.ndarray:
    """Mean feature of the first ``c`` samples of the group's permutation (``c`` must be a checkpoint)."""
    return plan.sums[c] / c


def convergence_table(plans: Sequence[GroupPlan], requested: Sequence[int]) -> list[dict]:
    """Rows ``{n, next_n, <group>: L1 or None}`` for consecutive requested n (the paper's Table 1 layout).

    Where a group has fewer than ``next_n`` samples its sizes are capped at what it has; a pair that collapses
    to the same capped size has no distance (None).
    """
    wanted = sorted({int(x) for x in requested if int(x) > 0})
    rows = []
    for a, b in zip(wanted[:-1], wanted[1:]):
        row: dict = {"n": a, "next_n": b}
        for plan in plans:
            ca, cb = min(a, plan.n_available), min(b, plan.n_available)
            if plan.n_available == 0 or ca == cb:
                row[plan.name] = None
            else:
                row[plan.name] = float(np.abs(prior_at(plan, ca) - prior_at(plan, cb)).sum())
        rows.append(row)
    return rows


def train_feature_index(features_dir: str | Path) -> list[str]:
    """All train keys in shard order (reads only the small ``.keys.txt`` files)."""
    keys: list[str] = []
    for path in feature_paths(features_dir, "train"):
        keys.extend(read_keys(keys_path(path)))
    return keys


def compute_priors(
    features_dir: str | Path,
    predicted_gender: Mapping[str, str | None],
    n: int,
    convergence_n: Sequence[int],
    seed: int,
    neutral_at: dict[int, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], dict]:
    """Neutral, male and female priors over the train split and the metrics (counts, Table 1).

    ``neutral_at``, when given, is filled with the neutral prior at every size of ``convergence_n`` and ``n``
    (capped at the train split's size): what the paper's Figure 2 decodes.

    ``predicted_gender`` maps train keys to ``"M"``/``"F"`` (or None when unknown). A group with no samples gets
    no array (absent from the returned dict) and ``n_used`` 0.
    """
    keys = train_feature_index(features_dir)
    if not keys:
        raise PriorsError(f"no train features in {features_dir} (empty train split?)")
    if int(n) <= 0:
        raise PriorsError(f"priors.n must be positive, got {n}")
    members = {
        "neutral": list(range(len(keys))),
        "male": [i for i, k in enumerate(keys) if predicted_gender.get(k) == "M"],
        "female": [i for i, k in enumerate(keys) if predicted_gender.get(k) == "F"],
    }
    plans = [plan_group(name, members[name], len(keys), n, convergence_n, seed) for name in GROUPS]

    def shards():
        start = 0
        for _, shard_keys, array in iter_feature_shards(features_dir, "train"):
            yield array, start
            start += len(shard_keys)

    accumulate(plans, shards())
    priors = {plan.name: prior_at(plan, plan.n_used).astype(np.float32) for plan in plans if plan.n_used > 0}
    if neutral_at is not None:
        neutral = plans[GROUPS.index("neutral")]
        neutral_at.update({c: prior_at(neutral, c).astype(np.float32) for c in neutral.checkpoints})
    dim = next(iter(priors.values())).shape[0]
    metrics = {
        "dim": int(dim),
        "seed": int(seed),
        "n_train": len(keys),
        "groups": {
            plan.name: {
                "n_requested": plan.n_requested,
                "n_available": plan.n_available,
                "n_used": plan.n_used,
                "capped": plan.n_used < plan.n_requested,
                "norm": float(np.linalg.norm(priors[plan.name])) if plan.name in priors else None,
            }
            for plan in plans
        },
        "convergence": convergence_table(plans, list(convergence_n) + [int(n)]),
    }
    return priors, metrics


def save_priors(path: str | Path, priors: Mapping[str, np.ndarray], counts: Mapping[str, int]) -> None:
    """Write ``priors.npz`` deterministically: arrays ``neutral``/``male``/``female`` + ints ``n_<group>``.

    A group without samples is stored as an empty ``[0]`` array with count 0 (``load_prior`` refuses it).
    Zip members get a fixed date and are stored uncompressed, so equal priors give identical bytes.
    """
    members: dict[str, np.ndarray] = {}
    for name in GROUPS:
        members[name] = np.asarray(priors.get(name, np.zeros(0, dtype=np.float32)), dtype=np.float32)
        members[f"n_{name}"] = np.asarray(int(counts.get(name, 0)), dtype=np.int64)
    _write_npz(path, members)


def _write_npz(path: str | Path, members: Mapping[str, np.ndarray]) -> None:
    """An ``np.load``-able zip of ``members``, uncompressed with fixed dates (equal arrays give equal bytes)."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for name in sorted(members):
                buffer = io.BytesIO()
                np.save(buffer, members[name], allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
                info.external_attr = 0o644 << 16
                zf.writestr(info, buffer.getvalue())


def save_convergence_priors(path: str | Path, neutral_at: Mapping[int, np.ndarray]) -> None:
    """Write ``convergence.npz``: ``n`` (int64 [K], ascending) and ``neutral`` (float32 [K, D]), deterministically."""
    sizes = sorted(int(n) for n in neutral_at)
    members = {"n": np.asarray(sizes, dtype=np.int64),
               "neutral": np.stack([np.asarray(neutral_at[n], dtype=np.float32) for n in sizes])}
    _write_npz(path, members)


def load_priors(path: str | Path) -> dict[str, np.ndarray]:
    """All members of ``priors.npz`` as arrays (``neutral``, ``male``, ``female``, ``n_*``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "priors.npz"
    if not path.is_file():
        raise PriorsError(f"priors file {path} not found (run the priors stage first)")
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def load_prior(path: str | Path, group: str, expected_dim: int | None = None) -> np.ndarray:
    """One prior (``neutral`` | ``male`` | ``female``) as float32 ``[D]``, checked for presence and dimension."""
    if group not in GROUPS:
        raise PriorsError(f"unknown prior '{group}' (expected one of {', '.join(GROUPS)})")
    data = load_priors(path)
    if group not in data or int(data.get(f"n_{group}", 0)) == 0 or data[group].size == 0:
        raise PriorsError(
            f"the {group} prior is unavailable (no training samples predicted {group}; gender labels missing?)"
        )
    prior = np.asarray(data[group], dtype=np.float32)
    if expected_dim is not None and prior.shape != (int(expected_dim),):
        raise PriorsError(f"the {group} prior has dimension {prior.shape[0]}, expected {expected_dim}")
    return prior
