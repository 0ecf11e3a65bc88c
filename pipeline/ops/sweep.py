"""The prior-size sweep: one DVC experiment per prior size n, then a report that sets them beside the baseline.

The paper's own experiment (Table 1, Figure 2, "we finally take n equals 10000"): how the priors, and the speech
encoders that add them, change with n.

    make sweep-priors                                   # n over priors.convergence_n
    python -m pipeline.ops.sweep --n 10 20 50 --variants neutral_fc gender_fc

For each n it runs ``dvc exp run --temp -n priors-n<N>-<config> -S priors.n=<N> -S train_encoder.variants=[...]``:
a named DVC experiment, which ``dvc exp show`` lists and ``dvc exp push``/``pull`` share like any other. DVC's
run-cache restores every stage n does not touch (download, preprocessing, features, the decoder, ``non_prior``),
so only ``priors``, ``evaluate_decoder``, the chosen variants' ``train_encoder``/``evaluate``, SCLDM's
``scldm_train`` and ``scldm_sample`` (its face prior averages the neutral prior's faces, so each n retrains its
diffusion model), ``compare`` and ``report`` run.
The workspace's own ``priors.n`` is always one of the points: the baseline row.

``<config>`` is a short hash of every other parameter and of the code the stages run, so a sweep after a change of
either starts afresh, and an interrupted sweep resumes: an experiment of that name that already exists for the
current commit is reused, not rerun.

The report (``sweeps/priors/``; not ``reports/``, which is the ``report`` stage's output and would be overwritten):
``prior_sweep.md`` (a table per variant: recall@k, the Table 4 angle, the final training loss, and the priors'
own Table 1 convergence, against n; SCLDM's recall@k, gender agreement and diversity by the judge when ``compare``
draws it), ``prior_sweep.png`` (the same as curves) and ``prior_sweep_faces.png`` (the
paper's Figure 2 at every n: the face the decoder draws from the neutral, male and female prior, drawn by the same
function as ``evaluate_decoder``'s figure 2).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from pipeline.common.errors import PipelineError

EXP_PREFIX = "priors-n"
GROUPS = ("neutral", "male", "female")
OUT_DIR = Path("sweeps/priors")
# Code whose edits change what an experiment computes (hashed into the experiment name).
CODE_DIRS = ("stages", "pipeline", "models")


class SweepError(PipelineError, ValueError):
    """The sweep cannot start or an experiment failed; one sentence says why."""


@dataclass
class Point:
    """One prior size: its experiment and what it measured."""

    n: int
    name: str
    baseline: bool = False
    rev: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # file path -> JSON
    reused: bool = False
    seconds: float | None = None


def parse_sizes(values: Sequence[Any]) -> list[int]:
    """Sorted distinct prior sizes; anything but a positive integer stops with one sentence."""
    sizes = []
    for value in values:
        text = str(value).strip()
        if isinstance(value, bool) or not text.lstrip("+").isdigit() or int(text) <= 0:
            raise SweepError(f"prior sizes must be positive integers, got {value!r}: nothing was queued")
        sizes.append(int(text))
    if not sizes:
        raise SweepError("no prior size to sweep: give --n or set priors.convergence_n")
    return sorted(set(sizes))


def config_hash(params: dict[str, Any], variants: Sequence[str], repo: Path) -> str:
    """Six hex digits over every parameter but ``priors.n``, the swept variants, dvc.yaml and the code."""
    rest = json.loads(json.dumps(params))
    rest.get("priors", {}).pop("n", None)
    digest = hashlib.sha256(json.dumps([rest, list(variants)], sort_keys=True).encode())
    files = [repo / "dvc.yaml"] + sorted(
        p for d in CODE_DIRS for p in (repo / d).rglob("*.py")
        if p.name != "sweep.py" and "testing" not in p.relative_to(repo).parts)  # code no stage runs
    for path in files:
        digest.update(str(path.relative_to(repo)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:6]


def _dvc(repo: Path, *args: str, capture: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env, text=True,
                          capture_output=capture)


def _flatten(node: Any) -> dict[str, Any]:
    """``dvc exp show --json`` nests every file's content under ``{"data": ...}``; return ``{file: data}``."""
    return {path: (entry or {}).get("data") or {} for path, entry in (node or {}).items()}


def list_experiments(repo: Path) -> dict[str, dict[str, Any]]:
    """``{name: {"rev", "params", "metrics"}}`` of the experiments based on the current commit."""
    proc = _dvc(repo, "exp", "show", "--json", "--no-fetch")
    if proc.returncode != 0:
        raise SweepError(f"dvc exp show failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    found: dict[str, dict[str, Any]] = {}
    for baseline in json.loads(proc.stdout or "[]"):
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                name = rev.get("name")
                data = rev.get("data") or {}
                if name and not rev.get("error"):
                    found[name] = {"rev": rev.get("rev"), "params": _flatten(data.get("params")),
                                   "metrics": _flatten(data.get("metrics"))}
    return found


def run_point(repo: Path, point: Point, variants: Sequence[str] | None) -> None:
    """Run one experiment in a temporary copy of the workspace (the workspace itself is left as it is);
    ``variants`` replaces ``train_encoder.variants`` when given."""
    started = time.perf_counter()
    overrides = ["-S", f"priors.n={point.n}"]
    if variants is not None:
        overrides += ["-S", f"train_encoder.variants=[{','.join(variants)}]"]
    proc = _dvc(repo, "exp", "run", "--temp", "-n", point.name, *overrides, capture=False)
    if proc.returncode != 0:
        raise SweepError(f"experiment {point.name} (priors.n={point.n}) failed (dvc exp run exit {proc.returncode}); "
                         f"the finished experiments are kept and a rerun resumes after them")
    point.seconds = time.perf_counter() - started


def _read_json_at(repo: Path, rev: str | None, path: str) -> dict[str, Any]:
    """A JSON output as an experiment recorded it (from the DVC cache, by the experiment's commit)."""
    import dvc.api

    if rev is None:
        return {}
    return json.loads(dvc.api.read(path, repo=str(repo), rev=rev))


def _read_priors_at(repo: Path, rev: str | None) -> dict[str, Any]:
    """The neutral/male/female priors an experiment computed (``data/priors/priors.npz`` at its commit)."""
    import dvc.api
    import numpy as np

    if rev is None:
        return {}
    data = dvc.api.read("data/priors/priors.npz", repo=str(repo), rev=rev, mode="rb")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {g: np.asarray(npz[g]) for g in GROUPS if g in npz and np.asarray(npz[g]).size}


def _metric(point: Point, path: str, *keys: str) -> Any:
    node: Any = point.metrics.get(path) or {}
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return None
    return node


def convergence_rows(point: Point) -> list[dict[str, Any]]:
    """The Table 1 rows an experiment's priors stage wrote (``metrics/priors.json`` → ``convergence``)."""
    return list(_metric(point, "metrics/priors.json", "convergence") or [])


def _fmt(value: Any, digits: int = 3) -> str:
    return "–" if value is None else (f"{value:.{digits}f}" if isinstance(value, float) else str(value))


def sweep_markdown(points: Sequence[Point], variants: Sequence[str], recall_k: Sequence[int]) -> str:
    """The sweep's tables: one per variant, and the priors' own convergence (Table 1) against n."""
    lines = ["# Prior-size sweep", "",
             "One DVC experiment per prior size n (`dvc exp show` lists them). **Bold** = the baseline "
             "(the workspace's `priors.n`). For the balanced neutral prior n counts speakers (half of each gender), "
             "for the gender priors clips; `n used` is after capping to what the train split has.", ""]
    lines += ["## The priors", "", "| n | experiment | n used: neutral / male / female | run time |",
              "|---|---|---|---|"]
    for p in points:
        used = " / ".join(_fmt(_metric(p, "metrics/priors.json", "groups", g, "n_used")) for g in GROUPS)
        n = f"**{p.n}**" if p.baseline else str(p.n)
        took = "reused" if p.reused else (f"{p.seconds:.0f} s" if p.seconds is not None else "–")
        lines.append(f"| {n} | `{p.name}` | {used} | {took} |")
    largest = max(points, key=lambda p: p.n)
    lines += ["", f"Paper Table 1, the priors' own convergence (from `{largest.name}`, whose priors stage computed "
              "every smaller size): the L1 distance between the prior at n and at the next size.", "",
              "| n | next n | neutral | male | female |", "|---|---|---|---|---|"]
    for row in convergence_rows(largest):
        lines.append(f"| {row['n']} | {row.get('next_n', '–')} | " + " | ".join(_fmt(row.get(g), 1) for g in GROUPS)
                     + " |")
    for variant in variants:
        ks = " | ".join(f"R@{k}" for k in recall_k)
        lines += ["", f"## `{variant}`", "", f"| n | {ks} | angle (deg) | angle′ (deg) | final train loss |",
                  "|---" * (4 + len(recall_k)) + "|"]
        for p in points:
            path = f"metrics/eval-{variant}.json"
            recalls = " | ".join(_fmt(_metric(p, path, "recall", str(k))) for k in recall_k)
            n = f"**{p.n}**" if p.baseline else str(p.n)
            lines.append(f"| {n} | {recalls} | {_fmt(_metric(p, path, 'angle'), 2)} | "
                         f"{_fmt(_metric(p, path, 'primed_angle'), 2)} | "
                         f"{_fmt(_metric(p, f'metrics/encoder-{variant}.json', 'final', 'loss'))} |")
    if any(_metric(p, "metrics/compare.json", "families", "scldm") for p in points):
        # SCLDM's face prior is the mean latent of the neutral prior's faces: each n retrains its diffusion model
        ks = " | ".join(f"R@{k}" for k in recall_k)
        title = ("## SCLDM (its diffusion model retrained at every n: its face prior is the neutral prior's faces' "
                 "mean latent)")
        lines += ["", title, "", f"| n | {ks} | gender agreement | diversity | final train loss |",
                  "|---" * (4 + len(recall_k)) + "|"]
        for p in points:
            family = ("metrics/compare.json", "families", "scldm")
            recalls = " | ".join(_fmt(_metric(p, *family, "sample_recall", f"recall@{k}")) for k in recall_k)
            n = f"**{p.n}**" if p.baseline else str(p.n)
            lines.append(f"| {n} | {recalls} | {_fmt(_metric(p, *family, 'attributes', 'gender', 'accuracy'))} | "
                         f"{_fmt(_metric(p, *family, 'diversity', 'diversity_ratio'))} | "
                         f"{_fmt(_metric(p, 'metrics/scldm_train.json', 'final', 'loss'))} |")
    lines += ["", "Curves: `prior_sweep.png`. Faces (paper Figure 2): `prior_sweep_faces.png`, the decoder's face "
              "for each prior at each n.", ""]
    return "\n".join(lines)


def sweep_figure(points: Sequence[Point], variants: Sequence[str], recall_k: Sequence[int], path: Path) -> None:
    """Recall@k, angle and final loss per variant against n, beside the priors' convergence."""
    from pipeline.common.figures import pyplot, save_figure

    ns = [p.n for p in points]
    fig, axes = pyplot().subplots(1, 4, figsize=(16, 3.6))
    for variant in variants:
        path_eval = f"metrics/eval-{variant}.json"
        for k in recall_k:
            axes[0].plot(ns, [_metric(p, path_eval, "recall", str(k)) for p in points], marker="o",
                         label=f"{variant} R@{k}")
        axes[1].plot(ns, [_metric(p, path_eval, "angle") for p in points], marker="o", label=variant)
        axes[2].plot(ns, [_metric(p, f"metrics/encoder-{variant}.json", "final", "loss") for p in points],
                     marker="o", label=variant)
    table1 = convergence_rows(max(points, key=lambda p: p.n))
    for group in GROUPS:
        axes[3].plot([r["n"] for r in table1], [r.get(group) for r in table1], marker="o", label=group)
    titles = ("recall@k (test)", "angle to the true feature (deg)", "final training loss",
              "prior: L1 to the next size (Table 1)")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
        ax.set_xscale("log")
        ax.set_xlabel("prior size n")
        ax.legend(fontsize=7)
        baseline = next((p.n for p in points if p.baseline), None)
        if baseline is not None:
            ax.axvline(baseline, color="grey", linestyle=":", linewidth=1)
    fig.tight_layout()
    save_figure(fig, path)


def sweep_faces(points: Sequence[Point], repo: Path, decoder_path: Path, path: Path, device_name: str = "auto") -> None:
    """Paper Figure 2 at every n: FD of each experiment's neutral, male and female prior."""
    import numpy as np
    import torch

    from models.decoder import ARCH as ARCH_DECODER
    from pipeline.common.device import resolve_device
    from pipeline.common.figures import save_grid_png
    from pipeline.evaluation.evaluate_decoder import prior_faces
    from pipeline.training.frozen import load_frozen

    device = resolve_device(device_name)
    decoder, _ = load_frozen(decoder_path, ARCH_DECODER, device)
    priors = {p.n: _read_priors_at(repo, p.rev) for p in points}
    rows, labels = [], []
    for group in GROUPS:
        have = [p.n for p in points if group in priors[p.n]]
        if not have:
            continue
        vectors = torch.from_numpy(np.stack([priors[n][group] for n in have]).astype(np.float32))
        faces = list(prior_faces(decoder, vectors, device, batch_size=16))
        by_n = dict(zip(have, faces))
        blank = np.full_like(faces[0], 255)
        rows.append([by_n.get(p.n, blank) for p in points])
        labels.append(f"FD({group} prior)")
    if not rows:
        raise SweepError("no experiment has priors to draw")
    save_grid_png(path, rows, labels, column_labels=[f"n={p.n}" + (" (base)" if p.baseline else "")
                                                     for p in points])


def run_sweep(repo: Path, sizes: Sequence[int] | None, variants: Sequence[str] | None,
              out_dir: Path = OUT_DIR) -> list[Point]:
    """Run (or reuse) one experiment per size, then write the report; return the points in n order."""
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    baseline_n = int(params["priors"]["n"])
    sizes = parse_sizes(list(sizes) if sizes else list(params["priors"].get("convergence_n") or []))
    listed = [str(v) for v in params["train_encoder"]["variants"]]
    prior_variants = [v for v in listed if v != "non_prior"]
    variants = list(variants) if variants else prior_variants
    unknown = [v for v in variants if v not in listed]
    if unknown:
        raise SweepError(f"variants {', '.join(unknown)} are not in train_encoder.variants "
                         f"({', '.join(listed)}): nothing was queued")
    # The experiments keep non_prior (restored from the run-cache: it uses no prior) and drop the prior variants
    # not asked for; train_encoder.variants is left alone when every prior variant is swept.
    kept = [v for v in listed if v == "non_prior" or v in variants]
    override = None if kept == listed else kept
    tag = config_hash(params, kept, repo)
    points = [Point(n=n, name=f"{EXP_PREFIX}{n}-{tag}", baseline=(n == baseline_n))
              for n in sorted(set(sizes) | {baseline_n})]
    existing = list_experiments(repo)
    for point in points:
        if point.name in existing:
            point.reused = True
            print(f"sweep: {point.name} (n={point.n}) already done, reused", file=sys.stderr)
            continue
        print(f"sweep: running {point.name} (priors.n={point.n}, variants {', '.join(variants)})", file=sys.stderr)
        run_point(repo, point, override)
        existing = list_experiments(repo)
        if point.name not in existing:
            raise SweepError(f"experiment {point.name} ran but dvc exp show does not list it")
    for point in points:
        found = existing[point.name]
        point.rev, point.params, point.metrics = found["rev"], found["params"], found["metrics"]
        # dvc exp show leaves lists out of metrics; Table 1's rows are one: read the file at the experiment
        point.metrics["metrics/priors.json"] = _read_json_at(repo, point.rev, "metrics/priors.json")
    recall_k = [int(k) for k in params["evaluate"]["recall_k"]]
    out_dir = repo / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "prior_sweep.md").write_text(sweep_markdown(points, variants, recall_k), encoding="utf-8")
    sweep_figure(points, variants, recall_k, out_dir / "prior_sweep.png")
    sweep_faces(points, repo, repo / "data" / "models" / "decoder.pt", out_dir / "prior_sweep_faces.png")
    return points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sweep the prior size n: one DVC experiment per n, then a report")
    parser.add_argument("--n", nargs="+", default=None, help="prior sizes (default: priors.convergence_n)")
    parser.add_argument("--variants", nargs="+", default=None,
                        help="variants to train at every n (default: every variant of train_encoder.variants that "
                             "uses a prior)")
    parser.add_argument("--out", default=str(OUT_DIR), help="report directory")
    parser.add_argument("--repo", default=".", help="the project (default: the current directory)")
    args = parser.parse_args(argv)
    repo = Path(args.repo).resolve()
    started = time.perf_counter()
    try:
        points = run_sweep(repo, args.n, args.variants, Path(args.out))
    except SweepError as exc:
        print(f"sweep: error: {exc}", file=sys.stderr)
        return 2
    ran = sum(not p.reused for p in points)
    print(f"sweep: {len(points)} prior sizes ({', '.join(str(p.n) for p in points)}; {ran} run, "
          f"{len(points) - ran} reused) in {time.perf_counter() - started:.0f} s -> {Path(args.out)}/prior_sweep.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
