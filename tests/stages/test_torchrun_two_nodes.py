"""train_decoder on two nodes under the real torchrun: one process per network namespace, gloo over the veth.

Two "hosts" (``pipeline.testing.netns``): node A runs the stage through ``dvc repro -f -s train_decoder``, which
relaunches it under torchrun (``nnodes: 2``, the c10d rendezvous at A's veth address); node B runs the same entry
point (``python -m stages.train_decoder`` with the stage's own arguments), not a second ``dvc repro``, which DVC's
lock would refuse in the same repository. Both share the workspace (one filesystem), as cluster nodes share one.

The first test runs 2 epochs and ends with the weights of one node running 2 processes, within the DDP tests'
tolerance (here: identical), and ``dvc.lock`` records the outputs. The fault tests lose node B in the middle of a
2-epoch run: once rank 0 has written epoch 1's resume state, the other rank stops (the ``training.pause_ranks``
fault point) and the test SIGKILLs every process of node B, or takes its veth down. The stage on A must fail in
one sentence within ``dist_timeout_s`` (a param), and the same two commands then resume at epoch 2 and finish.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.testing.faults import TRAINING_PAUSE_RANKS, fault_env
from pipeline.testing.netns import require_netns, two_nodes
from pipeline.testing.project import (
    clone_workspace,
    session_base,
    shared_tiny_run,
    tool_env,
    write_params,
)

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 15  # train_decoder.dist_timeout_s in these runs
DECODER = "data/models/decoder.pt"
TRAINING = {"epochs": 2, "nproc": 1, "nnodes": 2, "dist_timeout_s": TIMEOUT_S, "device": "cpu"}


def _stage_argv(project: Path) -> list[str]:
    """train_decoder's command from dvc.yaml, with this environment's python."""
    cmd = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]["train_decoder"]["cmd"]
    argv = shlex.split(cmd)
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


def _weights(project: Path) -> dict[str, torch.Tensor]:
    return torch.load(project / DECODER, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return shared_tiny_run(session_base(tmp_path_factory))


@pytest.fixture(scope="module")
def one_node(tiny, tmp_path_factory):
    """The weights of one node with 2 processes (torchrun --standalone on 127.0.0.1), 2 epochs."""
    project = clone_workspace(tiny, tmp_path_factory.mktemp("one-node") / "p")
    write_params(project, {"train_decoder": {**TRAINING, "nproc": 2, "nnodes": 1, "rdzv_endpoint": ""}})
    proc = subprocess.run(_stage_argv(project), cwd=project, env=tool_env({"GLOO_SOCKET_IFNAME": "lo"}),
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _weights(project)


class TwoNodeRun:
    """The two commands of one two-node run, started together: ``dvc repro`` on A, the stage's entry point on B."""

    def __init__(self, pair, project: Path, extra_env: dict[str, str] | None = None):
        dvc = str(Path(sys.executable).with_name("dvc"))
        self.a = subprocess.Popen(pair.a.command([dvc, "repro", "-f", "-s", "train_decoder"]), cwd=project,
                                  env=tool_env({"GLOO_SOCKET_IFNAME": pair.a.dev, **(extra_env or {})}),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.b = subprocess.Popen(pair.b.command(_stage_argv(project)), cwd=project,
                                  env=tool_env({"GLOO_SOCKET_IFNAME": pair.b.dev, **(extra_env or {})}),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait(self, timeout: float) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
        done = []
        for proc in (self.a, self.b):
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                err += f"\n[the test killed it after {timeout} s]"
            done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
        return done[0], done[1]


@pytest.mark.slow
def test_train_decoder_on_two_nodes_matches_one_node_with_two_processes(tiny, one_node, tmp_path):
    require_netns()
    with two_nodes() as pair:
        project = clone_workspace(tiny, tmp_path / "p")
        write_params(project, {"train_decoder": {**TRAINING, "rdzv_endpoint": f"{pair.a.address}:29400"}})
        started = time.monotonic()
        a, b = TwoNodeRun(pair, project).wait(timeout=300)
        print(f"train_decoder on two nodes, 2 epochs: {time.monotonic() - started:.1f} s")
        assert a.returncode == 0 and b.returncode == 0, a.stderr[-3000:] + b.stderr[-3000:]
        assert "train_decoder: trained by 2 processes under torchrun (rank 0 wrote the outputs)" in a.stdout
        assert "Running stage 'train_decoder'" in a.stdout  # through DVC on node A
    two = _weights(project)
    assert two.keys() == one_node.keys()
    for name in one_node:
        assert torch.allclose(one_node[name], two[name], atol=1e-6), name
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["train_decoder"]
    assert {o["path"] for o in lock["outs"]} >= {DECODER, "metrics/decoder.json"}
    assert lock["params"]["params.yaml"]["train_decoder.nnodes"] == 2


@pytest.mark.slow
@pytest.mark.longest(57)
@pytest.mark.parametrize("fault", ["killed", "unreachable"])
def test_losing_a_node_mid_epoch_fails_in_one_sentence_and_the_rerun_resumes(fault, tiny, tmp_path):
    require_netns()
    with two_nodes() as pair:
        project = clone_workspace(tiny, tmp_path / "p")
        write_params(project, {"train_decoder": {**TRAINING, "rdzv_endpoint": f"{pair.a.address}:29400"}})
        pause = tmp_path / "pause"
        pause.mkdir()
        started = time.monotonic()
        run = TwoNodeRun(pair, project, fault_env({TRAINING_PAUSE_RANKS: f"1:{pause}"}))
        deadline = time.monotonic() + 240
        while not list(pause.glob("rank*.pid")):  # epoch 1 done on both nodes, rank 0's resume state written
            if run.a.poll() is not None or run.b.poll() is not None or time.monotonic() > deadline:
                a, b = run.wait(timeout=30)
                pytest.fail(f"epoch 1 did not end on both nodes:\nA: {a.stderr[-3000:]}\nB: {b.stderr[-3000:]}")
            time.sleep(0.1)
        lost = time.monotonic()
        if fault == "killed":
            pair.b.kill_all()  # node B dies: its torchrun agent, its rank and the stage's launcher
        else:
            pair.b.link(False)  # node B drops off the network
        (pause / "release").touch()  # a paused rank on A goes on into the collective that cannot complete
        a, b = run.wait(timeout=TIMEOUT_S + 120)
        failed_after = time.monotonic() - lost
        print(f"node B {fault} {lost - started:.1f} s into the run; the stage failed {failed_after:.1f} s later")
        assert a.returncode != 0, a.stdout[-2000:] + a.stderr[-3000:]
        last = [line for line in a.stderr.splitlines() if line.startswith("train_decoder: ")][-1:]
        assert last and last[0].startswith(
            "train_decoder: error: the 2 training processes under torchrun failed (exit code"), a.stderr[-3000:]
        assert failed_after < TIMEOUT_S + 60
        assert not (project / DECODER).exists()

        # the same two commands, node B back: the run resumes at epoch 2 and finishes
        pair.b.link(True)
        started = time.monotonic()
        a, b = TwoNodeRun(pair, project).wait(timeout=300)
        print(f"rerun on two nodes: {time.monotonic() - started:.1f} s")
        assert a.returncode == 0 and b.returncode == 0, a.stderr[-3000:] + b.stderr[-3000:]
        assert "resuming train_decoder from epoch 1" in a.stderr + b.stderr
        assert "train_decoder: trained by 2 processes under torchrun (rank 0 wrote the outputs)" in a.stdout
    assert json.loads((project / "metrics" / "decoder.json").read_text())["epochs"] == 2
    assert not os.path.exists(f"/run/netns/{pair.a.ns}")
