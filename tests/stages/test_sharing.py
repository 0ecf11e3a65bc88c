"""Team sharing through a DVC remote: a teammate's ``dvc repro --pull`` and ``dvc exp pull`` recompute nothing.

User A has run the tiny DAG; A pushes git to a local bare repository and the cache plus run-cache to a
local-directory DVC remote. User B clones and runs ``dvc repro --pull`` with a ``python`` on PATH that records any
call and fails: no stage command may execute. A then runs ``dvc exp run -S compare.kway_trials=7`` (only compare and
report rerun: which stages a change reruns is the granularity tests' and the prior sweep's; here the experiment is
what travels) and pushes it; B pulls and applies it, again without running anything.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.ops.remote import RemoteError, check_remote
from pipeline.testing.project import (
    changed_stages,
    clone_workspace,
    lock_outs,
    ran_stages,
    read_params,
    run_dvc,
    run_git,
    session_base,
    shared_tiny_run,
)

REPO = Path(__file__).resolve().parents[2]


def _no_python_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An env whose ``python`` (what every stage's cmd calls) logs its arguments and fails."""
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    log = tmp_path / "stage-commands.log"
    shim = shim_dir / "python"
    shim.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexit 97\n', encoding="utf-8")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    path = f"{shim_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {"PATH": path}, log


def _assert_nothing_ran(proc, log: Path) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert ran_stages(proc.stdout) == set(), output[-4000:]
    assert not log.exists(), f"stage commands executed: {log.read_text()}"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_tiny_run(session_base(tmp_path_factory))


@pytest.mark.slow
@pytest.mark.longest(70)
def test_teammate_gets_everything_without_recomputing(tiny_run: Path, tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    store = tmp_path / "dvc-store"
    run_git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))

    # user A: remote, push git + cache + run-cache
    user_a = clone_workspace(tiny_run, tmp_path / "user-a")
    run_dvc(user_a, "remote", "add", "-d", "shared", str(store), check=True)
    run_git(user_a, "add", ".dvc/config")
    run_git(user_a, "commit", "-q", "-m", "shared DVC remote")
    run_git(user_a, "remote", "add", "origin", str(origin))
    run_git(user_a, "push", "-q", "origin", "main")
    run_dvc(user_a, "push", "--run-cache", check=True)
    assert "is reachable" in check_remote(user_a)

    # user B: fresh clone, nothing computed
    user_b = tmp_path / "user-b"
    run_git(tmp_path, "clone", "-q", str(origin), str(user_b))
    env, log = _no_python_env(tmp_path)
    proc = run_dvc(user_b, "repro", "--pull", env=env)
    _assert_nothing_ran(proc, log)
    assert changed_stages(user_b) == set()
    assert (user_b / "data" / "priors" / "priors.npz").is_file()
    assert (user_b / "reports").is_dir()
    assert lock_outs(user_b) == lock_outs(user_a)

    # user A: an experiment with more K-way trials; only compare and report may run
    trials_before = read_params(user_a)["compare"]["kway_trials"]
    proc = run_dvc(user_a, "exp", "run", "-n", "trials-7", "-S", "compare.kway_trials=7")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    ran = ran_stages(proc.stdout)
    assert ran == {"compare", "report"}
    run_dvc(user_a, "exp", "push", "origin", "trials-7", check=True)
    exp_metrics = lock_outs(user_a)["metrics/compare.json"]

    # user B: pull the experiment and its outputs, nothing recomputed
    run_dvc(user_b, "exp", "pull", "origin", "trials-7", check=True)
    show = run_dvc(user_b, "exp", "show", "--csv", "--drop", ".*", "--keep", r"Experiment|compare\.kway_trials$",
                   check=True)
    rows = show.stdout.splitlines()
    assert rows[0] == "Experiment,compare.kway_trials"
    assert "trials-7,7" in rows and f",{trials_before}" in rows  # the experiment beside the baseline
    run_dvc(user_b, "exp", "apply", "trials-7", check=True)
    assert read_params(user_b)["compare"]["kway_trials"] == 7
    proc = run_dvc(user_b, "repro", "--pull", env=env)
    _assert_nothing_ran(proc, log)
    assert lock_outs(user_b)["metrics/compare.json"] == exp_metrics != lock_outs(tiny_run)["metrics/compare.json"]
    assert changed_stages(user_b) == set()


@pytest.mark.slow
def test_missing_or_unreachable_remote_is_reported(tiny_run: Path, tmp_path: Path) -> None:
    project = clone_workspace(tiny_run, tmp_path / "project")
    with pytest.raises(RemoteError, match="no default DVC remote is configured"):
        check_remote(project)
    proc = run_dvc(project, "push")
    assert proc.returncode != 0 and "no remote specified" in proc.stdout + proc.stderr

    run_dvc(project, "remote", "add", "-d", "shared", str(tmp_path / "not-there"), check=True)
    with pytest.raises(RemoteError, match="does not exist or is not reachable"):
        check_remote(project)
    cli = subprocess.run(
        [sys.executable, "-m", "pipeline.ops.remote", "--project", str(project)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert cli.returncode == 1 and cli.stderr.startswith("error: DVC remote 'shared'") and cli.stderr.count("\n") == 1
    with pytest.raises(RemoteError, match="'elsewhere' is not configured"):
        check_remote(project, "elsewhere")
