"""The real infrastructure's cost: ``dvc push``/``dvc pull`` throughput to a real S3 store, and two "nodes" against
one for ``preprocess`` on Ray and one ``train_decoder`` epoch under torchrun.

    python bench/bench_two_nodes.py [--repeats 3] [--small-files 300 --small-kib 16] [--large-files 4 --large-mib 64]
    python bench/bench_two_nodes.py --skip-nodes     # the store only (no root needed)
    python bench/bench_two_nodes.py --keep /tmp/b2n  # build the tiny project there once and reuse it next time

**Store.** SeaweedFS's S3 gateway on 127.0.0.1 (``pipeline.ops.s3store.SeaweedStore``, what the tests and the docs
start). A fresh DVC project holds two tracked directories of random (incompressible, distinct) bytes: ``small``,
``--small-files`` files of ``--small-kib`` KiB, and ``large``, ``--large-files`` files of ``--large-mib`` MiB. Each
repeat pushes each directory as the writer to a fresh prefix of the bucket (so every object is uploaded), then
empties the cache and the workspace and pulls each back (``dvc pull``: download into a cache without its files, and
check out), checking the bytes. MB/s and files/s are of the data files (the ``.dir`` listing object not counted);
the times are the ``dvc`` CLI's wall time, so they include DVC's start-up and its query of the remote, which a no-op
push (everything already there) shows. That fixed cost is most of a small transfer's time, so read the rates as
what a ``dvc push``/``pull`` of that much data takes, not as the store's or the link's bandwidth.

**Nodes.** Two network namespaces joined by a veth pair (``pipeline.testing.netns.two_nodes``, as the two-node tests
make them; needs root) on the tiny project of the tests (``pipeline.testing.project.shared_tiny_run``):

- ``preprocess`` with ``engine: ray`` through ``dvc repro -f -s preprocess`` in the head's namespace, on one node
  (a head with 2 CPUs) against two (a head and a worker node with 1 CPU each, ``TwoNodeCluster``: token auth, a
  temp dir per node); the local engine (2 processes) for reference. Cluster start-up is not included; the outputs
  are checked byte-identical to the local engine's.
- one ``train_decoder`` epoch under torchrun: one node with 2 processes (``--standalone``) against two nodes with
  1 process each (``nnodes: 2``, c10d rendezvous at the first node's veth address, gloo over the veth). Both run
  the stage's own command directly (not ``dvc repro``), so DVC's cost is in neither.

Both "nodes" share this machine's cores, so the two-node numbers measure the overhead of crossing a network boundary
(rendezvous, gloo over the veth, Ray's object transfer and scheduling across nodes), not scaling.

Everything it starts is stopped at exit, even on failure or SIGTERM: the store (its process group), the Ray nodes
(their process groups and the workers naming their temp dirs; never ``ray stop``), every process left in the
namespaces, the namespaces, and the temp dirs (unless ``--keep``). Nothing is written to the repository.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from pipeline.ops.s3store import SeaweedStore
from pipeline.testing.netns import netns_unavailable, two_nodes
from pipeline.testing.project import (
    clone_workspace,
    run_dvc,
    run_git,
    shared_tiny_run,
    tool_env,
    write_params,
)
from pipeline.testing.ray_cluster import TwoNodeCluster
from pipeline.testing.remote import use_s3_remote

MB = 1e6


def spread(values: list[float], unit: str = "s", digits: int = 1) -> str:
    """``median (min-max) unit`` of ``values``."""
    return (f"{statistics.median(values):.{digits}f} {unit} ({min(values):.{digits}f}-{max(values):.{digits}f}, "
            f"n={len(values)})")


def loadavg() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(argv_or_call, *args, **kwargs) -> tuple[float, object]:
    began = time.perf_counter()
    result = argv_or_call(*args, **kwargs)
    return time.perf_counter() - began, result


def digests(root: Path, outs: tuple[str, ...]) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for out in outs for p in sorted((root / out).rglob("*")) if p.is_file()}


# --- the store -----------------------------------------------------------------------------------------------------

def write_random(directory: Path, count: int, size: int) -> int:
    directory.mkdir(parents=True)
    for i in range(count):
        (directory / f"f{i:05d}.bin").write_bytes(os.urandom(size))
    return count * size


def bench_store(args: argparse.Namespace, tmp: Path) -> bool:
    project = tmp / "store-project"
    project.mkdir()
    run_git(project, "init", "-q")
    run_dvc(project, "init", "-q", check=True)
    sets = {"small": (args.small_files, args.small_kib * 1024), "large": (args.large_files, args.large_mib * 2**20)}
    sizes = {name: write_random(project / name, count, size) for name, (count, size) in sets.items()}
    for name in sets:
        run_dvc(project, "add", name, check=True)
    expected = digests(project, tuple(sets))
    ok = True
    push: dict[str, list[float]] = {name: [] for name in sets}
    pull: dict[str, list[float]] = {name: [] for name in sets}
    noop: list[float] = []
    with SeaweedStore() as store:
        print(f"SeaweedFS S3 gateway at {store.endpoint} (data in {store.root}); dvc's default jobs "
              f"(4 x {os.cpu_count()} cores)", flush=True)
        for repeat in range(args.repeats):
            use_s3_remote(project, store, store.writer, prefix=f"bench-{repeat}")
            for name in sets:
                seconds, _ = timed(run_dvc, project, "push", f"{name}.dvc", check=True)
                push[name].append(seconds)
            seconds, _ = timed(run_dvc, project, "push", check=True)
            noop.append(seconds)
            shutil.rmtree(project / ".dvc" / "cache")  # neither set is in the cache or the workspace now
            for name in sets:
                shutil.rmtree(project / name)
            for name in sets:
                seconds, _ = timed(run_dvc, project, "pull", f"{name}.dvc", check=True)
                pull[name].append(seconds)
            if digests(project, tuple(sets)) != expected:
                print(f"  repeat {repeat}: the pulled bytes differ from the pushed ones")
                ok = False
            print(f"  repeat {repeat + 1}/{args.repeats}: " + ", ".join(
                f"{name} push {push[name][-1]:.1f} s pull {pull[name][-1]:.1f} s" for name in sets)
                + f", no-op push {noop[-1]:.1f} s; {loadavg()}", flush=True)
    for name, (count, size) in sets.items():
        total = sizes[name]
        what = f"{count} x {size / 1024:.0f} KiB" if size < 2**20 else f"{count} x {size / 2**20:.0f} MiB"
        for label, times in (("push", push[name]), ("pull", pull[name])):
            mbs = [total / MB / t for t in times]
            fps = [count / t for t in times]
            print(f"{label} {name} ({what} = {total / MB:.1f} MB): {spread(times)}; {spread(mbs, 'MB/s')}, "
                  f"{spread(fps, 'files/s')}")
    print(f"no-op dvc push (everything on the remote already: DVC's start-up and its query of the remote): "
          f"{spread(noop)}")
    return ok


# --- two nodes against one -----------------------------------------------------------------------------------------

def use_engine(project: Path, engine: str, address: str = "") -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["cluster"].update(engine=engine, ray_address=address)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def dvc_in(node, project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = node.command([str(Path(sys.executable).with_name("dvc")), *args])
    return subprocess.run(command, cwd=project, env=tool_env(env), capture_output=True, text=True, timeout=900,
                          check=False)


def preprocess_runs(tiny: Path, tmp: Path, node, env: dict[str, str], engine: str, address: str, label: str,
                    repeats: int, expected: dict[str, str]) -> tuple[list[float], list[float], dict]:
    """``repeats`` timed runs, after one untimed first run on ``ray`` (it starts the cluster's worker processes and
    ships the project's code to them: printed, not counted)."""
    walls, stage = [], []
    engine_info: dict = {}
    for repeat in range(-1 if engine == "ray" else 0, repeats):
        project = clone_workspace(tiny, tmp / f"pre-{label}-{repeat}")
        use_engine(project, engine, address)
        seconds, proc = timed(dvc_in, node, project, env, "repro", "-f", "-s", "preprocess")
        if proc.returncode != 0:
            raise RuntimeError(f"preprocess ({label}) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        timings = json.loads((project / "metrics" / "preprocess.json").read_text())["timings"]
        engine_info = timings["engine"]
        if repeat >= 0:
            walls.append(seconds)
            stage.append(timings["wall_seconds"])
        same = digests(project, ("data/shards",)) == expected
        run = f"repeat {repeat + 1}" if repeat >= 0 else "first run on the fresh cluster (not counted)"
        print(f"  preprocess, {label}, {run}: dvc repro {seconds:.1f} s, the stage's own wall "
              f"{timings['wall_seconds']:.1f} s; byte-identical to the local engine: {same}; {loadavg()}", flush=True)
        if not same:
            raise RuntimeError(f"preprocess ({label}) wrote other bytes than the local engine")
        shutil.rmtree(project)
    return walls, stage, engine_info


def stage_argv(project: Path) -> list[str]:
    argv = shlex.split(yaml.safe_load((project / "dvc.yaml").read_text())["stages"]["train_decoder"]["cmd"])
    return [sys.executable, *argv[1:]]


def run_group(procs: list[subprocess.Popen], timeout: float) -> list[tuple[int, str]]:
    """Wait for every process (each its own process group); kill the groups left after ``timeout`` s."""
    end = time.monotonic() + timeout
    results = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=max(1.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            for other in procs:
                try:
                    os.killpg(other.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _, err = proc.communicate()
            err += f"\n[killed after {timeout} s]"
        results.append((proc.returncode, err))
    return results


def train_runs(tiny: Path, tmp: Path, pair, two: bool, repeats: int) -> tuple[list[float], list[float]]:
    walls, train = [], []
    for repeat in range(repeats):
        project = clone_workspace(tiny, tmp / f"train-{'two' if two else 'one'}-{repeat}")
        common = {"epochs": 1, "dist_timeout_s": 120, "device": "cpu"}
        if two:
            write_params(project, {"train_decoder": {**common, "nproc": 1, "nnodes": 2,
                                                     "rdzv_endpoint": f"{pair.a.address}:{29400 + repeat}"}})
            nodes = [(pair.a, pair.a.dev), (pair.b, pair.b.dev)]
        else:
            write_params(project, {"train_decoder": {**common, "nproc": 2, "nnodes": 1, "rdzv_endpoint": ""}})
            nodes = [(pair.a, "lo")]
        argv = stage_argv(project)
        began = time.perf_counter()
        procs = [node.popen(argv, cwd=project, env=tool_env({"GLOO_SOCKET_IFNAME": dev}), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True) for node, dev in nodes]
        results = run_group(procs, 900)
        seconds = time.perf_counter() - began
        for code, err in results:
            if code != 0:
                raise RuntimeError(f"train_decoder ({'two nodes' if two else 'one node'}) failed:\n{err[-3000:]}")
        cost = json.loads((project / "metrics" / "cost" / "train_decoder.json").read_text())
        walls.append(seconds)
        train.append(cost["train_seconds"])
        print(f"  train_decoder 1 epoch, {'two nodes x 1 process' if two else 'one node x 2 processes'}, repeat "
              f"{repeat + 1}: command {seconds:.1f} s, training loop {cost['train_seconds']:.1f} s; {loadavg()}",
              flush=True)
        shutil.rmtree(project)
    return walls, train


def ratio(two: list[float], one: list[float]) -> str:
    return f"{statistics.median(two) / statistics.median(one):.2f}x"


def bench_nodes(args: argparse.Namespace, tmp: Path) -> None:
    base = Path(args.keep) if args.keep else tmp
    began = time.perf_counter()
    tiny = shared_tiny_run(base, targets=("train_decoder",), name="bench-tiny")
    print(f"tiny project (the tests' TINY_PARAMS, up to train_decoder) ready in {time.perf_counter() - began:.0f} s "
          f"at {tiny}", flush=True)
    expected = digests(tiny, ("data/shards",))
    clips = json.loads((tiny / "metrics" / "preprocess.json").read_text()).get("samples_out")
    print(f"preprocess of the tiny project: {len(expected)} shard files, {clips} samples")
    with two_nodes() as pair:
        print(f"two network namespaces {pair.a.ns} ({pair.a.address}) and {pair.b.ns} ({pair.b.address})",
              flush=True)
        local = preprocess_runs(tiny, tmp, pair.a, {}, "local", "", "local engine", args.repeats, expected)
        ray: dict[str, tuple] = {}
        for label, cpus, worker, port in (("one node", 2, False, 6379), ("two nodes", 1, True, 6380)):
            cluster = TwoNodeCluster(pair, head_cpus=cpus, worker_cpus=1, port=port)
            try:
                started, _ = timed(cluster.start, worker=worker)
                print(f"  Ray {label} up in {started:.1f} s", flush=True)
                ray[label] = preprocess_runs(tiny, tmp, pair.a, cluster.env, "ray", cluster.address, f"ray {label}",
                                             args.repeats, expected)
            finally:
                cluster.stop()
        one = train_runs(tiny, tmp, pair, False, args.repeats)
        two = train_runs(tiny, tmp, pair, True, args.repeats)

    print("two 'nodes' are two network namespaces on this one machine: both share its "
          f"{os.cpu_count()} cores, so these numbers measure the overhead of crossing a network boundary, not scaling")
    print(f"preprocess (dvc repro -f -s preprocess, {clips} samples): local engine {spread(local[0])} "
          f"(stage {spread(local[1])})")
    for label, (walls, stage, info) in ray.items():
        print(f"  ray {label} ({info.get('nodes')} node(s), {info.get('cpus')} CPUs): {spread(walls)} "
              f"(stage {spread(stage)})")
    print(f"  two nodes / one node: dvc repro {ratio(ray['two nodes'][0], ray['one node'][0])}, the stage "
          f"{ratio(ray['two nodes'][1], ray['one node'][1])}")
    print(f"train_decoder, 1 epoch (the stage's command under torchrun): one node x 2 processes {spread(one[0])} "
          f"(loop {spread(one[1])}); two nodes x 1 process {spread(two[0])} (loop {spread(two[1])})")
    print(f"  two nodes / one node: command {ratio(two[0], one[0])}, training loop {ratio(two[1], one[1])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small-files", type=int, default=300)
    parser.add_argument("--small-kib", type=int, default=16)
    parser.add_argument("--large-files", type=int, default=4)
    parser.add_argument("--large-mib", type=int, default=64)
    parser.add_argument("--skip-store", action="store_true")
    parser.add_argument("--skip-nodes", action="store_true")
    parser.add_argument("--keep", default=None, help="build (or reuse) the tiny project in this directory")
    args = parser.parse_args()
    os.environ["DVC_NO_ANALYTICS"] = "1"
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM cleans up like Ctrl-C
    print(f"{os.cpu_count()} cores, {loadavg()} at start", flush=True)
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-2n-", dir="/tmp") as tmp:
        if not args.skip_store:
            ok = bench_store(args, Path(tmp))
        if not args.skip_nodes:
            missing = netns_unavailable()
            if missing:
                print(f"two nodes: skipped, {missing}")
            else:
                bench_nodes(args, Path(tmp))
    print(f"{loadavg()} at the end")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
