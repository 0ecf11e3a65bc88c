"""Throw-away copies of the project for end-to-end tests through DVC.

``copy_project(dst)`` copies what git would ship (tracked files plus untracked, not-ignored ones), makes ``dst`` a
git repository with one commit (DVC experiments need one) and returns it. ``write_params`` deep-merges overrides
into the copy's ``params.yaml``; ``TINY_PARAMS`` is the override set that runs the whole DAG in about a minute on
two CPU cores. ``run_dvc``/``run_git`` run the real tools there, offline and without analytics.

``shared_tiny_run(base)`` runs the tiny DAG once per test session, even across pytest-xdist workers (a file lock
under ``base``), so that several test modules can reuse one computed project instead of each paying for a run.
"""
from __future__ import annotations

import copy
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]

# A tiny configuration of the embedded sample: 8 speakers x 2 clips, a 20-identity face corpus, 96 px video, 64 px
# faces, 1/16 widths,
# one epoch per model and two encoder variants. 64 px (not 32) because the decoder's 5-scale MS-SSIM needs
# images larger than (win_size - 1) * 16 = 32 px with a 3-px window.
TINY_PARAMS: dict[str, Any] = {
    "sample": {
        "n_speakers": 8,
        "clips_per_speaker": 2,
        "min_duration": 3.0,
        "max_duration": 7.0,
        "frame_size": 96,
    },
    "face_corpus": {"n_identities": 20, "images_per_identity": 2, "frame_size": 96},
    "manifest": {"test_fraction": 0.3},
    "download": {"min_height": 96, "retries": 1, "backoff": 0.1},
    "preprocess": {"image_size": 64},
    "face_encoder": {"width": 0.0625, "fc_dim": 64, "epochs": 1, "batch_size": 8},
    "features": {"batch_size": 16},
    "gender": {"width": 0.0625, "epochs": 3, "batch_size": 8},  # 1 epoch may predict one gender only
    "priors": {"n": 4, "convergence_n": [2, 4]},
    "train_decoder": {"width": 0.0625, "fc1_dim": 32, "epochs": 1, "batch_size": 8},
    "attribute_probe": {"width": 0.125, "epochs": 1, "batch_size": 8, "val_fraction": 0.25},
    "judge_corpus": {"n_identities": 12, "images_per_identity": 2, "frame_size": 96},  # framed as face_corpus
    "judge": {"width": 0.125, "epochs": 1, "batch_size": 8, "val_fraction": 0.25},
    "train_encoder": {"variants": ["non_prior", "neutral_fc"], "width": 0.0625, "epochs": 1, "batch_size": 8},
    "evaluate": {"batch_size": 16, "recall_k": [1, 2], "grid_rows": 2},
    "evaluate_decoder": {"max_samples": 64, "batch_size": 16, "recall_k": [1, 2], "figure_columns": 3},
    "sf2f_train": {"encoder_channels": [8, 8], "embed_dim": 16, "decoder_width": 16, "discriminator_widths": [8, 8],
                   "discriminator_hidden": 16, "steps": 2, "batch_size": 4},
    "sf2f_fuser": {"steps": 2, "batch_size": 4},
    "contrastive": {"speech_channels": [8, 8], "face_widths": [8, 8, 8], "embed_dim": 8, "crop_frames": 100,
                    "steps": 2, "batch_size": 4},
    "train_selfsup_gan": {"noise_dim": 4, "generator_width": 4, "discriminator_widths": [4, 8], "steps": 2,
                          "batch_size": 4},
    "scldm_autoencoder": {"widths": [4, 8, 8], "latent_channels": 2, "steps": 2, "batch_size": 4},
    "scldm_train": {"widths": [8, 8], "train_timesteps": 100, "steps": 2, "batch_size": 4},
    "scldm_sample": {"ddim_steps": 2, "samples_per_voice": 2, "voices": 2},
    "compare": {"recall_k": [1, 2], "kway_k": [2], "kway_trials": 5, "batch_size": 8, "noise_voices": 2,
                "noise_draws": 2},
    "report": {"grid_columns": 2},
}

_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "speech2face tests",
    "GIT_AUTHOR_EMAIL": "tests@speech2face.invalid",
    "GIT_COMMITTER_NAME": "speech2face tests",
    "GIT_COMMITTER_EMAIL": "tests@speech2face.invalid",
}


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for subprocesses: the venv's bin first on PATH, no DVC analytics, a fixed git identity."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)  # not resolved: a venv's python is a symlink into the base install
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["DVC_NO_ANALYTICS"] = "1"
    env.setdefault("PYTHONUNBUFFERED", "1")
    # One BLAS/OpenMP thread: the tiny models gain nothing from more on a shared 2-core box, and a fixed thread
    # count keeps CPU float reductions in the same order from run to run.
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    for key, value in _GIT_IDENTITY.items():
        env.setdefault(key, value)
    if extra:
        env.update(extra)
    return env


def _dvc_command() -> list[str]:
    exe = Path(sys.executable).parent / "dvc"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dvc"]


def run_dvc(
    cwd: str | Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    check: bool = False,
    timeout: float | None = 900,
) -> subprocess.CompletedProcess[str]:
    """Run ``dvc *args`` in ``cwd`` and return the completed process (stdout/stderr captured as text).

    ``env`` adds to (does not replace) the tool environment. With ``check`` a failure raises with DVC's output.
    """
    proc = subprocess.run(
        [*_dvc_command(), *args],
        cwd=cwd,
        env=tool_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"dvc {' '.join(args)} failed ({proc.returncode}) in {cwd}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def run_git(
    cwd: str | Path, *args: str, env: Mapping[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``git *args`` in ``cwd`` (checked by default) and return the completed process."""
    proc = subprocess.run(["git", *args], cwd=cwd, env=tool_env(env), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def project_files(src: str | Path = REPO_ROOT) -> list[str]:
    """Paths (relative, sorted) that git would ship from ``src``: tracked plus untracked-not-ignored files."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=src,
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8")
    # dvc.lock records someone's last run of their params; a copy made to run other params starts without one.
    return sorted({p for p in out.split("\0") if p and p != "dvc.lock" and (Path(src) / p).is_file()})


def copy_project(dst: str | Path, src: str | Path = REPO_ROOT, commit: bool = True) -> Path:
    """Copy the project's shippable files from ``src`` into ``dst`` and make it a git repo with one commit.

    Files deleted in the working tree but still tracked are skipped. Returns ``dst`` as a Path.
    """
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for rel in project_files(src):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(src) / rel, target)
    run_git(dst, "init", "-q", "-b", "main")
    run_git(dst, "config", "user.name", _GIT_IDENTITY["GIT_AUTHOR_NAME"])
    run_git(dst, "config", "user.email", _GIT_IDENTITY["GIT_AUTHOR_EMAIL"])
    if commit:
        run_git(dst, "add", "-A")
        run_git(dst, "commit", "-q", "-m", "project copy for tests")
    return dst


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``overrides`` merged in recursively (mappings merge, everything else replaces)."""
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_params(project: str | Path) -> dict[str, Any]:
    """The parsed ``params.yaml`` of ``project``."""
    with (Path(project) / "params.yaml").open(encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def write_params(project: str | Path, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into ``project/params.yaml`` (section order kept) and return the result."""
    merged = deep_merge(read_params(project), overrides)
    text = yaml.safe_dump(merged, sort_keys=False, default_flow_style=False)
    (Path(project) / "params.yaml").write_text(text, encoding="utf-8")
    return merged


def make_tiny_project(dst: str | Path, overrides: Mapping[str, Any] | None = None) -> Path:
    """A committed project copy in ``dst`` with ``TINY_PARAMS`` (plus ``overrides``) written to params.yaml."""
    dst = copy_project(dst, commit=False)
    write_params(dst, deep_merge(TINY_PARAMS, overrides or {}))
    run_git(dst, "add", "-A")
    run_git(dst, "commit", "-q", "-m", "tiny project for tests")
    return dst


def stage_names(project: str | Path) -> list[str]:
    """Every stage name of the project's DAG as DVC reports it (``train_encoder@neutral`` for foreach items)."""
    proc = run_dvc(project, "stage", "list", "--name-only", check=True)
    return sorted(line.strip() for line in proc.stdout.splitlines() if line.strip())


def commit_all(project: str | Path, message: str) -> None:
    """``git add -A && git commit`` in a throw-away project (never use this in the real checkout)."""
    run_git(project, "add", "-A")
    if run_git(project, "status", "--porcelain").stdout.strip():
        run_git(project, "commit", "-q", "-m", message)


def session_base(tmp_path_factory: Any) -> Path:
    """A directory unique to this pytest session and shared by all its xdist workers (for ``shared_tiny_run``)."""
    base = Path(tmp_path_factory.getbasetemp())
    # Under xdist each worker has basetemp .../pytest-N/popen-gwK; .../pytest-N is the session's own directory.
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared_tiny_run(
    base: str | Path,
    targets: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
    name: str = "tiny-run",
) -> Path:
    """A tiny project under ``base/name`` on which ``dvc repro *targets`` has succeeded, built once.

    Safe to call from several pytest-xdist workers with the same ``base`` (e.g. the parent of
    ``tmp_path_factory.getbasetemp()``): the first caller builds it under a file lock, the others wait and reuse it.
    The result is committed (``dvc.lock`` included) and must be treated as read-only: copy it to change it
    (``clone_workspace``). A failed build is re-raised to every caller with DVC's output.
    """
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    project = base / name
    done = base / f"{name}.done"
    failed = base / f"{name}.failed"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if failed.exists():
                raise RuntimeError(failed.read_text(encoding="utf-8"))
            if not done.exists():
                if project.exists():
                    shutil.rmtree(project)
                make_tiny_project(project, overrides)
                proc = run_dvc(project, "repro", *targets)
                if proc.returncode != 0:
                    message = f"tiny dvc repro failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}"
                    failed.write_text(message, encoding="utf-8")
                    raise RuntimeError(message)
                commit_all(project, "tiny run")
                done.write_text(proc.stdout, encoding="utf-8")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return project


def clone_workspace(src: str | Path, dst: str | Path) -> Path:
    """A full copy of a project workspace (git history, DVC cache, outputs) that can be changed freely."""
    shutil.copytree(src, dst, symlinks=True)
    return Path(dst)


def ran_stages(dvc_output: str) -> set[str]:
    """Names of the stages whose command DVC executed, from ``dvc repro``/``dvc exp run`` output."""
    return set(re.findall(r"^Running stage '([^']+)':", dvc_output, flags=re.M))


def changed_stages(project: str | Path) -> set[str]:
    """Stages ``dvc status --json`` reports as changed themselves (not counting what they would trigger)."""
    proc = run_dvc(project, "status", "--json", check=True)
    return set(json.loads(proc.stdout or "{}"))


def dag_edges(project: str | Path) -> set[tuple[str, str]]:
    """``(upstream, downstream)`` stage pairs of the project's DAG, from ``dvc dag --dot``."""
    proc = run_dvc(project, "dag", "--dot", check=True)
    return set(re.findall(r'^"([^"]+)" -> "([^"]+)";', proc.stdout, flags=re.M))


def with_descendants(stages: set[str], edges: set[tuple[str, str]]) -> set[str]:
    """``stages`` plus every stage downstream of them: what one ``dvc repro`` may run after they change."""
    closure = set(stages)
    frontier = list(stages)
    while frontier:
        node = frontier.pop()
        for up, down in edges:
            if up == node and down not in closure:
                closure.add(down)
                frontier.append(down)
    return closure


def lock_outs(project: str | Path) -> dict[str, str]:
    """``{out path: md5}`` for every stage output recorded in the project's ``dvc.lock``."""
    with (Path(project) / "dvc.lock").open(encoding="utf-8") as fh:
        lock = yaml.safe_load(fh) or {}
    outs: dict[str, str] = {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            outs[out["path"]] = out.get("md5", "")
    return outs
