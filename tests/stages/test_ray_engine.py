"""download, preprocess and features on a real two-node Ray cluster give the local engine's bytes, through DVC.

Two "hosts": two network namespaces joined by a veth pair (``pipeline.testing.netns``), a Ray head with 1 CPU in
one and a worker node with 1 CPU in the other (``TwoNodeCluster``: token authentication, a temp dir per node), so
the two units of each stage run one per node, across the veth. ``dvc repro`` runs in the head's namespace.

The tiny project is computed once with the local engine (``shared_tiny_run``). A copy switches ``cluster.engine`` to
``ray`` and points it at the head: DVC must see nothing to do (the engine is not a param), and forcing each of the
three stages on the cluster must write byte-identical ``data/raw``, ``data/shards`` and ``data/features``. Faults: the
worker process running each unit killed half-way through it (Ray runs the unit again); the whole worker node killed
while it runs a unit, and the worker node cut off the network (its veth down) while it runs one: the run finishes
on the head, with the same bytes. Everything is stopped and the namespaces removed at the end, even on failure.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.testing.faults import ENGINE_KILL_WORKER_ONCE, fault_env
from pipeline.testing.netns import require_netns, two_nodes
from pipeline.testing.project import (
    clone_workspace,
    run_dvc,
    session_base,
    shared_tiny_run,
    tool_env,
)
from pipeline.testing.ray_cluster import TwoNodeCluster, busy_worker_pids

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
    require_netns()
    with two_nodes() as pair:
        started = time.monotonic()
        nodes = TwoNodeCluster(pair)
        try:
            nodes.start()
            print(f"two-node Ray cluster formed in {time.monotonic() - started:.1f} s")
            yield nodes
        finally:
            nodes.stop()


def _dvc_on_head(nodes: TwoNodeCluster, project: Path, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``dvc *args`` in ``project``, run in the head's namespace (the driver joins the cluster from there)."""
    command = nodes.pair.a.command([str(Path(sys.executable).with_name("dvc")), *args])
    return subprocess.run(command, cwd=project, env=tool_env({**nodes.env, **(env or {})}), capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    return shared_tiny_run(session_base(tmp_path_factory))


@pytest.mark.slow
def test_ray_engine_writes_the_local_engines_bytes_and_dvc_sees_no_change(local_run, cluster, tmp_path):
    project = clone_workspace(local_run, tmp_path / "ray")
    expected = _digests(local_run)
    assert any(k.startswith("data/raw/") for k in expected) and any(k.startswith("data/features/") for k in expected)
    _use_ray(project, cluster.address)
    status = run_dvc(project, "status", "--json", check=True)
    assert json.loads(status.stdout or "{}") == {}, "changing the engine must not make DVC rerun anything"
    for stage in DATA_STAGES:
        started = time.monotonic()
        proc = _dvc_on_head(cluster, project, "repro", "-f", "-s", stage)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        print(f"{stage} on two nodes: {time.monotonic() - started:.1f} s")
        metrics = json.loads((project / "metrics" / f"{stage}.json").read_text()) if stage != "features" else None
        if metrics is not None:
            engine = metrics["timings"]["engine"]
            assert engine["engine"] == "ray" and engine["nodes"] == 2 and engine["cpus"] == 2, engine
    assert _digests(project) == expected
    status = run_dvc(project, "status", "--json", check=True)
    assert json.loads(status.stdout or "{}") == {}


@pytest.mark.slow
def test_a_worker_killed_mid_shard_costs_only_that_shard(local_run, cluster, tmp_path):
    project = clone_workspace(local_run, tmp_path / "killed")
    expected = _digests(local_run)
    _use_ray(project, cluster.address)
    kills = tmp_path / "kills"
    kills.mkdir()
    for stage in ("download", "preprocess"):
        proc = _dvc_on_head(cluster, project, "repro", "-f", "-s", stage,
                            env=fault_env({ENGINE_KILL_WORKER_ONCE: kills}))
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


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["killed", "unreachable"])
def test_a_worker_node_lost_mid_run_the_run_finishes_on_the_head(fault, local_run, cluster, tmp_path):
    """The worker node dies (SIGKILL of its raylet, object store and workers) or drops off the network (its veth
    down) while it runs a unit of ``features``: the head's GCS declares it dead within about 4 s, Ray runs the unit
    again on the head, and the stage finishes with the local engine's bytes."""
    if not cluster.worker_alive():
        cluster.start_worker()
    project = clone_workspace(local_run, tmp_path / fault)
    expected = _digests(local_run)
    _use_ray(project, cluster.address)
    command = cluster.pair.a.command([str(Path(sys.executable).with_name("dvc")), "repro", "-f", "-s", "features"])
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=project, env=tool_env(cluster.env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        while not busy_worker_pids(cluster.worker_dir):  # the worker node has started its unit
            assert proc.poll() is None, "features finished before the worker node ran a unit"
            assert time.monotonic() - started < 120, "the worker node never ran a unit"
            time.sleep(0.05)
        lost = time.monotonic()
        if fault == "killed":
            cluster.kill_worker()
        else:
            cluster.pair.b.link(False)
        try:
            out, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"features did not end within 90 s of losing the worker node:\n{out[-3000:]}\n{err[-3000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"worker node {fault}: features ended {time.monotonic() - lost:.1f} s later")
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert time.monotonic() - lost < 60
    assert _digests(project) == expected
    cluster.start_worker()  # back, for the next test
