"""download, preprocess and features on a real Ray cluster (loopback) give the local engine's bytes, through DVC.

The tiny project is computed once with the local engine (``shared_tiny_run``). A copy switches ``cluster.engine`` to
``ray`` and points it at a Ray head started by the test on 127.0.0.1: DVC must see nothing to do (the engine is
not a param), and forcing each of the three stages on the cluster must write byte-identical ``data/raw``,
``data/shards`` and ``data/features``. The fault test kills the worker running each unit half-way through it, once:
Ray runs the unit again and the output is still identical. The cluster is stopped at the end, even on failure.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from pipeline.testing.faults import ENGINE_KILL_WORKER_ONCE, fault_env
from pipeline.testing.project import clone_workspace, run_dvc, session_base, shared_tiny_run
from pipeline.testing.ray_cluster import loopback_cluster

pytestmark = pytest.mark.xdist_group("ray")  # one cluster at a time on this machine

DATA_STAGES = ("download", "preprocess", "features")
OUTPUTS = ("data/raw", "data/shards", "data/features")


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for out in OUTPUTS for p in sorted((root / out).rglob("*")) if p.is_file()}


def _use_ray(project: Path, address: str) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["cluster"].update(engine="ray", ray_address=address)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def cluster():
    with loopback_cluster(num_cpus=2) as (address, env):
        yield address, env


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    return shared_tiny_run(session_base(tmp_path_factory))


@pytest.mark.slow
def test_ray_engine_writes_the_local_engines_bytes_and_dvc_sees_no_change(local_run, cluster, tmp_path):
    address, env = cluster
    project = clone_workspace(local_run, tmp_path / "ray")
    expected = _digests(local_run)
    assert any(k.startswith("data/raw/") for k in expected) and any(k.startswith("data/features/") for k in expected)
    _use_ray(project, address)
    status = run_dvc(project, "status", "--json", env=env, check=True)
    assert json.loads(status.stdout or "{}") == {}, "changing the engine must not make DVC rerun anything"
    for stage in DATA_STAGES:
        proc = run_dvc(project, "repro", "-f", "-s", stage, env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        metrics = json.loads((project / "metrics" / f"{stage}.json").read_text()) if stage != "features" else None
        if metrics is not None:
            assert metrics["timings"]["engine"]["engine"] == "ray" and metrics["timings"]["engine"]["cpus"] == 2
    assert _digests(project) == expected
    status = run_dvc(project, "status", "--json", env=env, check=True)
    assert json.loads(status.stdout or "{}") == {}


@pytest.mark.slow
def test_a_worker_killed_mid_shard_costs_only_that_shard(local_run, cluster, tmp_path):
    address, env = cluster
    project = clone_workspace(local_run, tmp_path / "killed")
    expected = _digests(local_run)
    _use_ray(project, address)
    kills = tmp_path / "kills"
    kills.mkdir()
    for stage in ("download", "preprocess"):
        proc = run_dvc(project, "repro", "-f", "-s", stage, env=fault_env({ENGINE_KILL_WORKER_ONCE: kills}, env),
                       timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    killed = sorted(p.name for p in kills.iterdir())
    # every unit's first worker died half-way (two raw shards: train and test), and Ray ran each one again
    assert len(killed) == 4 and all(name.endswith(".killed") for name in killed), killed
    assert _digests(project) == expected


@pytest.mark.slow
def test_an_unreachable_cluster_stops_the_stage_with_one_sentence(local_run, tmp_path):
    from pipeline.testing.ray_cluster import free_port

    project = clone_workspace(local_run, tmp_path / "unreachable")
    address = f"127.0.0.1:{free_port()}"
    _use_ray(project, address)
    proc = run_dvc(project, "repro", "-f", "-s", "features", timeout=120)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if address in line]
    assert lines and "no Ray cluster answers at" in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
