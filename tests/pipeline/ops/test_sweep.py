"""The prior-size sweep: sizes checked before anything is queued, one DVC experiment per n that reruns only what
uses the prior, a report with a baseline row, and a resumed sweep that redoes nothing."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.ops.sweep import Point, SweepError, config_hash, parse_sizes, sweep_markdown
from pipeline.testing.project import (
    REPO_ROOT,
    clone_workspace,
    ran_stages,
    read_params,
    run_dvc,
    session_base,
    shared_tiny_run,
    tool_env,
)


def test_sizes_must_be_positive_integers():
    assert parse_sizes([50, "10", 10, "+20"]) == [10, 20, 50]
    for bad in (0, -5, 2.5, "ten", True, ""):
        with pytest.raises(SweepError, match="positive integers.*nothing was queued"):
            parse_sizes([10, bad])
    with pytest.raises(SweepError, match="no prior size"):
        parse_sizes([])


def test_config_hash_ignores_n_but_not_the_rest():
    params = read_params(REPO_ROOT)
    base = config_hash(params, ["neutral_fc"], REPO_ROOT)
    other_n = {**params, "priors": {**params["priors"], "n": 7}}
    assert config_hash(other_n, ["neutral_fc"], REPO_ROOT) == base
    other_lr = {**params, "train_encoder": {**params["train_encoder"], "lr": 0.5}}
    assert config_hash(other_lr, ["neutral_fc"], REPO_ROOT) != base
    assert config_hash(params, ["gender_fc"], REPO_ROOT) != base


def test_markdown_marks_the_baseline_and_shows_missing_values():
    points = [
        Point(n=10, name="priors-n10-abc", metrics={
            "metrics/eval-neutral_fc.json": {"recall": {"1": 0.25, "5": 0.75}, "angle": 80.5, "primed_angle": 3.0},
            "metrics/encoder-neutral_fc.json": {"final": {"loss": 6.5}},
            "metrics/priors.json": {"groups": {"neutral": {"n_used": 10}}, "convergence": [{"n": 10, "neutral": 96.2}]},
        }),
        Point(n=100, name="priors-n100-abc", baseline=True, reused=True,
              metrics={"metrics/priors.json": {"convergence": [{"n": 10, "neutral": 96.2}]}}),
    ]
    text = sweep_markdown(points, ["neutral_fc"], [1, 5])
    assert "| 10 | 0.250 | 0.750 | 80.50 | 3.00 | 6.500 |" in text
    assert "| **100** | – | – | – | – | – |" in text
    assert "| 10 | `priors-n10-abc` | 10 / – / – |" in text
    assert "| 10 | – | 96.2 | – | – |" in text  # Table 1 from the largest experiment
    assert "SCLDM" not in text  # no comparison of SCLDM in these experiments
    points[0].metrics["metrics/compare.json"] = {"families": {"scldm": {
        "sample_recall": {"recall@1": 0.125, "recall@5": 0.5}, "attributes": {"gender": {"accuracy": 0.8}},
        "diversity": {"diversity_ratio": 0.4}}}}
    points[0].metrics["metrics/scldm_train.json"] = {"final": {"loss": 0.09}}
    text = sweep_markdown(points, ["neutral_fc"], [1, 5])
    assert "| 10 | 0.125 | 0.500 | 0.800 | 0.400 | 0.090 |" in text and "| **100** | – | – | – | – | – |" in text


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_tiny_run(session_base(tmp_path_factory))


def _sweep(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.ops.sweep", *args], cwd=project, env=tool_env(),
                          capture_output=True, text=True)


@pytest.mark.slow
@pytest.mark.longest(127)
def test_sweep_runs_one_experiment_per_n_reruns_only_prior_stages_and_resumes(tiny_run: Path, tmp_path: Path):
    project = clone_workspace(tiny_run, tmp_path / "project")
    proc = _sweep(project, "--n", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # n=2 is new; the baseline (n=4, the workspace's) is restored from the run-cache without running anything.
    # A new prior size reruns only the variants that use a prior (each depends on its own priors file; non_prior's
    # is the same empty archive whatever n is) and SCLDM's diffusion model, which depends on the neutral prior's
    # face list: the granularity promise for priors.n, tested here rather than by a second run of the same stages
    assert ran_stages(proc.stdout) == {"priors", "evaluate_decoder", "train_encoder@neutral_fc",
                                       "evaluate@neutral_fc", "scldm_train", "scldm_sample", "compare", "report"}
    report = (project / "sweeps/priors/prior_sweep.md").read_text(encoding="utf-8")
    assert "| **4** |" in report and "| 2 |" in report and "## `neutral_fc`" in report
    assert "## SCLDM (its diffusion model retrained at every n" in report
    for png in ("prior_sweep.png", "prior_sweep_faces.png"):
        assert (project / "sweeps/priors" / png).stat().st_size > 1000
    shown = run_dvc(project, "exp", "show", "--csv", check=True).stdout
    assert shown.count("priors-n2-") == 1 and shown.count("priors-n4-") == 1
    # resumed: both experiments exist, nothing runs again
    proc = _sweep(project, "--n", "2")
    assert proc.returncode == 0 and ran_stages(proc.stdout) == set()
    assert "2 prior sizes (2, 4; 0 run, 2 reused)" in proc.stdout
    # bad input stops before anything is queued
    proc = _sweep(project, "--n", "2", "0")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
