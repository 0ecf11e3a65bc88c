"""Face priors (paper §3.1): the neutral prior and the male/female priors, plus the convergence table (Table 1).

- neutral prior, ``neutral: balanced`` (eq. 3: the mean over "a large gender-balance face image dataset"): the
  mean of ``n`` training SPEAKERS, half male and half female (each speaker's gender by its label where known, else
  the voice classifier's majority prediction over its clips), each speaker weighted once (the mean of its clips'
  features), chosen by seeded permutations of each gender's speakers interleaved M, F, M, F, ... so every even
  prefix is balanced. Sizes are capped at twice the smaller gender's speaker count and rounded down to even;
- neutral prior, ``neutral: random`` (the earlier behaviour): the mean face feature of ``n`` training clips,
  chosen by a seeded permutation of the train split, whatever their gender or speaker;
- male / female prior = the mean of ``n`` training clips of that gender: the label where the labels CSV gives one,
  else the voice classifier's prediction (the paper, without labels: "Based on the classification results, we
  calculate the male and female prior face features using the same method as the neutral prior");
- Table 1: for growing n (``convergence_n`` plus the final ``n``), the L1 distance ``sum |p(n_i) - p(n_{i+1})|``
  between the priors at consecutive n, per group. The subsets are nested prefixes of one permutation, so the
  table shows how the mean settles as samples are added, as in the paper's Figure 2 / Table 1.

Everything streams over the memory-mapped per-shard feature arrays: memory is O(D x number of n), not O(N x D).
"""
from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_path
from pipeline.data.feature_files import feature_paths, iter_feature_shards, keys_path, read_keys

GROUPS = ("neutral", "male", "female")
GENDER_OF_GROUP = {"male": "M", "female": "F"}
# Fixed zip member date: np.savez would stamp the current time, making equal priors differ byte-wise.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


class PriorsError(PipelineError, ValueError):
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
    weight: np.ndarray | None = None  # [N_train] float64 per-sample weight (1 / clips of its speaker); None = 1
    step: int = 1  # prefix sizes are multiples of step (2: gender-balanced pairs)

    def size_at(self, n: int) -> int:
        """The prefix size actually used when ``n`` is asked for (capped, a multiple of ``step``)."""
        return min(int(n), self.n_available) // self.step * self.step


def _checkpoints(n: int, convergence_n: Iterable[int], available: int, step: int = 1) -> list[int]:
    wanted = sorted({int(x) for x in convergence_n} | {int(n)})
    sizes = {min(x, available) // step * step for x in wanted if x > 0 and available > 0}
    return sorted(c for c in sizes if c > 0)


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


@dataclass
class SpeakerBalance:
    """What a gender-balanced, per-speaker neutral prior needs: each train key's speaker and gender.

    ``gender_of`` maps a key to ``"M"``/``"F"`` (its label where known, else the voice classifier's prediction)
    or None.
    """

    speaker_of: Mapping[str, str]
    gender_of: Mapping[str, str | None]


def speaker_genders(keys: Sequence[str], balance: SpeakerBalance) -> dict[str, str | None]:
    """Each speaker's gender: the majority over its clips; None when unknown or tied."""
    votes: dict[str, dict[str, int]] = {}
    for key in keys:
        speaker = balance.speaker_of[key]
        tally = votes.setdefault(speaker, {"M": 0, "F": 0})
        gender = balance.gender_of.get(key)
        if gender in tally:
            tally[gender] += 1
    return {spk: (None if t["M"] == t["F"] else ("M" if t["M"] > t["F"] else "F")) for spk, t in votes.items()}


def read_speaker_balance(manifest_dir: str | Path, gender_of: Mapping[str, str | None]) -> SpeakerBalance:
    """Each train key's speaker (the manifest's ``speaker_id``, else its video: the manifest's split group) with
    ``gender_of`` (``pipeline.arspm.gender_predictions.known_genders``: label where known, else prediction)."""
    import pyarrow.parquet as pq

    path = Path(manifest_dir) / "train.parquet"
    if not path.is_file():
        raise PriorsError(f"manifest {path} not found (run the manifest stage first)")
    table = pq.read_table(path, columns=["key", "speaker_id", "video_id"]).to_pydict()
    speaker_of = {k: (f"speaker:{s}" if s else f"video:{v}")
                  for k, s, v in zip(table["key"], table["speaker_id"], table["video_id"])}
    return SpeakerBalance(speaker_of=speaker_of, gender_of=dict(gender_of))


def plan_balanced_neutral(keys: Sequence[str], balance: SpeakerBalance, n: int, convergence_n: Iterable[int],
                          seed: int) -> tuple[GroupPlan, dict]:
    """The neutral prior over speakers, gender-balanced (eq. 3); returns the plan and what it used, for metrics."""
    if int(n) < 2:
        raise PriorsError(f"priors.n must be at least 2 for a gender-balanced neutral prior (one speaker of each "
                          f"gender), got {n}")
    missing = [k for k in keys if k not in balance.speaker_of]
    if missing:
        raise PriorsError(f"{len(missing)} train features have no speaker in the manifest (first: {missing[0]}); "
                          f"rerun the stages from manifest on")
    genders = speaker_genders(keys, balance)
    by_gender = {g: sorted(s for s, sg in genders.items() if sg == g) for g in ("M", "F")}
    pairs = min(len(by_gender["M"]), len(by_gender["F"]))
    if pairs == 0:
        raise PriorsError(f"a gender-balanced neutral prior needs speakers of both genders, but the train split has "
                          f"{len(by_gender['M'])} male and {len(by_gender['F'])} female ones (labels or voice "
                          f"predictions); set priors.neutral: random to average clips regardless of gender")
    shuffled = {g: [by_gender[g][i] for i in np.random.default_rng([int(seed), GROUPS.index("neutral"), j])
                    .permutation(len(by_gender[g]))] for j, g in enumerate(("M", "F"))}
    order = [spk for pair in zip(shuffled["M"][:pairs], shuffled["F"][:pairs]) for spk in pair]
    speaker_rank = {spk: i for i, spk in enumerate(order)}
    clips: dict[str, int] = {}
    for key in keys:
        clips[balance.speaker_of[key]] = clips.get(balance.speaker_of[key], 0) + 1
    rank = np.array([speaker_rank.get(balance.speaker_of[k], -1) for k in keys], dtype=np.int64)
    weight = np.array([1.0 / clips[balance.speaker_of[k]] for k in keys], dtype=np.float64)
    plan = GroupPlan(name="neutral", rank=rank, n_available=2 * pairs,
                     checkpoints=_checkpoints(n, convergence_n, 2 * pairs, step=2), n_requested=int(n),
                     n_used=min(int(n), 2 * pairs) // 2 * 2, weight=weight, step=2)
    used = order[:plan.n_used]
    info = {"mode": "balanced", "unit": "speaker",
            "speakers": {"M": len(by_gender["M"]), "F": len(by_gender["F"]),
                         "unknown": sum(g is None for g in genders.values())},
            "used": {"M": sum(genders[s] == "M" for s in used), "F": sum(genders[s] == "F" for s in used)},
            "clips_used": int(sum(clips[s] for s in used))}
    return plan, info


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
                    rows = np.asarray(array[mask], dtype=np.float64)
                    if plan.weight is not None:
                        rows = rows * plan.weight[start : start + count][mask][:, None]
                    plan.sums[c] += rows.sum(axis=0)


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
            ca, cb = plan.size_at(a), plan.size_at(b)
            if plan.n_available == 0 or ca == 0 or ca == cb:
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
    balance: SpeakerBalance | None = None,
    neutral_faces: list[tuple[str, float]] | None = None,
) -> tuple[dict[str, np.ndarray], dict]:
    """Neutral, male and female priors over the train split and the metrics (counts, Table 1).

    With ``balance`` the neutral prior is gender-balanced over speakers (eq. 3); without it, ``n`` random clips.

    ``neutral_at``, when given, is filled with the neutral prior at every size of ``convergence_n`` and ``n``
    (capped at the train split's size): what the paper's Figure 2 decodes.

    ``neutral_faces``, when given, is filled with the neutral prior's train keys and their weights (each clip's
    share of its speaker when balanced, 1 when random), sorted by key: what SCLDM's face prior averages.

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
    if balance is not None:
        plans[GROUPS.index("neutral")], neutral_info = plan_balanced_neutral(keys, balance, n, convergence_n, seed)
    else:
        neutral_rank = plans[GROUPS.index("neutral")].rank
        n_used = plans[GROUPS.index("neutral")].n_used
        used = [keys[i] for i in np.flatnonzero((neutral_rank >= 0) & (neutral_rank < n_used))]
        neutral_info = {"mode": "random", "unit": "clip",
                        "used": {g: sum(predicted_gender.get(k) == g for k in used) for g in ("M", "F")},
                        "clips_used": len(used)}

    def shards():
        start = 0
        for _, shard_keys, array in iter_feature_shards(features_dir, "train"):
            yield array, start
            start += len(shard_keys)

    accumulate(plans, shards())
    if neutral_faces is not None:
        neutral = plans[GROUPS.index("neutral")]
        chosen = np.flatnonzero((neutral.rank >= 0) & (neutral.rank < neutral.n_used))
        neutral_faces.extend(sorted((keys[i], float(neutral.weight[i]) if neutral.weight is not None else 1.0)
                                    for i in chosen))
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
        "neutral_balance": neutral_info,
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


def save_variant_priors(out_dir: str | Path, priors: Mapping[str, np.ndarray], counts: Mapping[str, int],
                        needs: Mapping[str, Sequence[str]]) -> list[Path]:
    """Write ``variant-<name>.npz`` for each variant: only the priors it uses (none for ``non_prior``).

    Each ``train_encoder@V``/``evaluate@V`` stage depends on its own file, so a change of the prior size reruns
    the variants whose prior changed and leaves ``non_prior`` (whose file stays the same empty archive) alone.
    """
    written = []
    for variant, groups in sorted(needs.items()):
        members: dict[str, np.ndarray] = {}
        for name in groups:
            members[name] = np.asarray(priors.get(name, np.zeros(0, dtype=np.float32)), dtype=np.float32)
            members[f"n_{name}"] = np.asarray(int(counts.get(name, 0)), dtype=np.int64)
        path = Path(out_dir) / f"variant-{variant}.npz"
        _write_npz(path, members)
        written.append(path)
    return written


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


#: the neutral prior's faces (``run_priors``), for the families that average them in another space (SCLDM)
NEUTRAL_FACES = "neutral-faces.json"


def save_neutral_faces(path: str | Path, faces: Sequence[tuple[str, float]], mode: str) -> None:
    """Write the neutral prior's faces: ``{"mode", "clips", "faces": [[key, weight], ...]}`` (sorted by key),
    deterministically."""
    from pipeline.common.io import write_json

    write_json(path, {"mode": mode, "clips": len(faces), "faces": [[k, float(w)] for k, w in faces]})


def load_priors(path: str | Path) -> dict[str, np.ndarray]:
    """All members of ``priors.npz`` as arrays (``neutral``, ``male``, ``female``, ``n_*``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "priors.npz"
    if not path.is_file():
        raise PriorsError(f"priors file {path} not found (run the priors stage first)")
    with open(path, "rb") as fh:  # a text file, a pickle, a .npy: one sentence naming the file, not a traceback
        magic = fh.read(6)
    if not magic.startswith(b"PK"):
        what = ("it is empty" if not magic else "it is a single .npy array" if magic == b"\x93NUMPY"
                else "it is not a zip archive")
        raise PriorsError(f"priors file {path} is not an .npz archive of arrays ({what})")
    try:
        with np.load(path, allow_pickle=False) as data:
            members = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # truncated or corrupt
        detail = " ".join(str(exc).split()).split(". ")[0].rstrip(".") or type(exc).__name__
        raise PriorsError(f"priors file {path} is truncated or corrupt ({detail})") from None
    foreign = [name for name, value in members.items() if not isinstance(value, np.ndarray)]
    if foreign:
        raise PriorsError(f"priors file {path} is a zip archive but not of arrays (member {foreign[0]!r} is not a "
                          f".npy array)")
    return members


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


#: ``priors.neutral`` values: a gender-balanced set of speakers, or random training clips
NEUTRAL_MODES = ("balanced", "random")


def run_priors(features_dir: str | Path, genders: Mapping[str, str | None], manifest_dir: str | Path,
               out_dir: str | Path, params: Mapping) -> dict:
    """The ``priors`` stage: neutral and male/female priors from the train split's features, the convergence
    table (paper Table 1), one archive per Table 4 variant with only the priors it uses, and the neutral prior's faces
    (``neutral-faces.json``: what SCLDM's face prior averages); returns the metrics.

    ``genders``: each train sample's gender, its label where known, else the voice classifier's prediction
    (``pipeline.arspm.gender_predictions.known_genders``).
    """
    from pipeline.arspm.variants import VARIANTS, priors_needed
    from pipeline.common.params import ParamsError, require
    from pipeline.data.feature_files import feature_dim

    require(params, "n", "seed", "convergence_n", "neutral", section="priors")
    if params["neutral"] not in NEUTRAL_MODES:
        raise ParamsError(f"priors.neutral must be one of {', '.join(NEUTRAL_MODES)}, got {params['neutral']!r}")
    balance = read_speaker_balance(manifest_dir, genders) if params["neutral"] == "balanced" else None
    neutral_at: dict = {}
    neutral_faces: list[tuple[str, float]] = []
    priors, metrics = compute_priors(features_dir, genders, int(params["n"]), [int(x) for x in params["convergence_n"]],
                                     int(params["seed"]), neutral_at=neutral_at, balance=balance,
                                     neutral_faces=neutral_faces)
    if metrics["dim"] != feature_dim(features_dir):
        raise PriorsError(f"priors have dimension {metrics['dim']} but features meta says {feature_dim(features_dir)}")
    counts = {name: group["n_used"] for name, group in metrics["groups"].items()}
    save_priors(f"{out_dir}/priors.npz", priors, counts)
    save_convergence_priors(f"{out_dir}/convergence.npz", neutral_at)
    save_neutral_faces(f"{out_dir}/{NEUTRAL_FACES}", neutral_faces, str(params["neutral"]))
    save_variant_priors(out_dir, priors, counts, {name: priors_needed(v) for name, v in VARIANTS.items()})
    return metrics


def capped_messages(metrics: Mapping) -> list[str]:
    """One line per prior that got fewer samples than ``priors.n`` asked for."""
    lines = []
    for name, group in metrics["groups"].items():
        if group["capped"]:
            what = ("gender-balanced speakers" if name == "neutral" and metrics["neutral_balance"]["unit"] == "speaker"
                    else "train samples")
            lines.append(f"priors: {name}: asked for n={group['n_requested']} but only {group['n_available']} {what}; "
                         f"using {group['n_used']}")
    return lines


def summary_line(metrics: Mapping) -> str:
    """The stage's summary: the priors' sizes and the neutral prior's convergence (L1 between successive n)."""
    groups, balance = metrics["groups"], metrics["neutral_balance"]
    table = ", ".join(f"{row['n']}->{row['next_n']}: {row['neutral']:.3f}" for row in metrics["convergence"]
                      if row["neutral"] is not None)
    return (f"priors: dim {metrics['dim']}, neutral n={groups['neutral']['n_used']} {balance['unit']}s "
            f"({balance['mode']}: {balance['used']['M']} M / {balance['used']['F']} F), "
            f"male n={groups['male']['n_used']}, female n={groups['female']['n_used']}; neutral L1 {table}")
