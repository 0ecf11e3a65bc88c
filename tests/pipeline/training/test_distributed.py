"""Data-parallel training under the real torchrun, gloo on 127.0.0.1, started and stopped by each test."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pipeline.testing.training import make_training_inputs
from pipeline.training import distributed
from pipeline.training.distributed import DistributedError, torchrun_command
from pipeline.training.loop import resume_path_for

REPO = Path(__file__).resolve().parents[3]
TIMEOUT = 240  # seconds: a DDP run whose ranks disagree on the number of batches hangs; the test then fails


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    make_training_inputs(root)  # 8 train samples with features
    return root


def _run(root, out, batch_size, nproc, drop=0, epochs=2, rank_split="samples", workers=0):
    module = ["-m", "pipeline.testing.ddp", "--root", str(root), "--out", str(out), "--batch-size", str(batch_size),
              "--drop", str(drop), "--epochs", str(epochs), "--rank-split", rank_split, "--workers", str(workers)]
    launcher = [sys.executable] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "DVC_NO_ANALYTICS": "1"}
    try:
        proc = subprocess.run(launcher + module, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{nproc}-process run did not finish in {TIMEOUT} s (ranks waiting on each other)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = json.loads(out.with_suffix(".json").read_text())
    log["stderr"] = proc.stderr
    return torch.load(out, weights_only=True), log


def _train_decoder_stage(inputs, tmp_path, **params) -> tuple[list[str], dict[str, str]]:
    """The train_decoder stage's command on the tiny inputs with ``nproc: 2`` (params.yaml in ``tmp_path``), and
    the environment for gloo on the loopback interface."""
    import yaml

    from pipeline.testing.training import TINY_DECODER

    section = {**TINY_DECODER, "precision": "fp32", "num_workers": 0, "nproc": 2, "nnodes": 1, "rdzv_endpoint": "",
               "dist_timeout_s": 120, "rank_split": "samples", **params}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train_decoder": section}), encoding="utf-8")
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "DVC_NO_ANALYTICS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "stages.train_decoder", "--corpus", str(inputs / "shards"),
               "--shards", str(inputs / "shards"), "--features", str(inputs / "features"),
               "--face-encoder", str(inputs / "models" / "face_encoder.pt"), "--out", str(tmp_path / "decoder.pt"),
               "--metrics", str(tmp_path / "decoder.json"), "--cost", str(tmp_path / "cost.json"),
               "--plots", str(tmp_path / "plots")]
    return command, env


@pytest.mark.slow
def test_two_processes_end_with_the_weights_of_one_on_the_same_global_batch(inputs, tmp_path):
    one, one_log = _run(inputs, tmp_path / "one.pt", batch_size=4, nproc=1)
    two, two_log = _run(inputs, tmp_path / "two.pt", batch_size=2, nproc=2)
    assert two_log["world_size"] == 2 and one_log["world_size"] == 1
    for name in one:
        assert torch.allclose(one[name], two[name], atol=1e-6), (name, (one[name] - two[name]).abs().max())
    assert [h["samples"] for h in two_log["history"]] == [8, 8]
    for a, b in zip(one_log["history"], two_log["history"]):
        assert abs(a["loss"] - b["loss"]) < 1e-6


@pytest.mark.slow
def test_an_uneven_sample_count_does_not_hang(inputs, tmp_path):
    # 7 samples for 2 ranks: each gets 3 (one waits for another epoch), batches of 2 then 1 on both ranks
    _, log = _run(inputs, tmp_path / "uneven.pt", batch_size=2, nproc=2, drop=1)
    assert [h["samples"] for h in log["history"]] == [4, 4]  # the 1-sample batch is skipped on both ranks


@pytest.mark.slow
def test_shards_dealt_to_ranks_and_loader_workers_of_uneven_size_do_not_hang(inputs, tmp_path):
    # shards of 5 and 3 samples, one per rank, each read by the rank's one loader worker process: both ranks stop
    # at 3 samples (batches of 2, then 1 skipped), so they run the same number of batches
    _, log = _run(inputs, tmp_path / "shards.pt", batch_size=2, nproc=2, rank_split="shards", workers=1)
    assert log["world_size"] == 2 and [h["samples"] for h in log["history"]] == [4, 4]


def test_torchrun_command_for_one_and_many_nodes(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert torchrun_command({"nproc": 1}, "stages.train_encoder", ["--x"]) is None
    single = torchrun_command({"nproc": 2}, "stages.train_encoder", ["--x"])
    assert single[1:] == ["-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m",
                          "stages.train_encoder", "--x"]
    waited = []
    monkeypatch.setattr(distributed, "wait_for_rendezvous", waited.append)
    multi = torchrun_command({"nproc": 2, "nnodes": 2, "rdzv_endpoint": "10.0.0.1:29400"}, "m", [])
    assert "--nnodes=2" in multi and "--rdzv_endpoint=10.0.0.1:29400" in multi and "--standalone" not in multi
    assert waited == ["10.0.0.1:29400"]
    # the rendezvous host's node tells torchrun so (its hostname may resolve elsewhere), and the store's reads wait
    # no longer than the collectives
    monkeypatch.setattr(distributed, "wait_for_rendezvous", lambda endpoint: True)
    host = torchrun_command({"nproc": 1, "nnodes": 2, "rdzv_endpoint": "10.0.0.1:29400", "dist_timeout_s": 20},
                            "m", [])
    assert "--rdzv_conf=is_host=true,read_timeout=20" in host
    assert distributed._is_this_machine("127.0.0.1") and not distributed._is_this_machine("198.51.100.7")
    with pytest.raises(DistributedError, match="nnodes 2 needs rdzv_endpoint"):
        torchrun_command({"nproc": 1, "nnodes": 2}, "m", [])
    monkeypatch.setenv("LOCAL_RANK", "0")  # already under torchrun: never launch again
    assert torchrun_command({"nproc": 2}, "m", []) is None


def test_more_processes_than_devices_is_one_sentence(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(distributed.os, "cpu_count", lambda: 2)
    with pytest.raises(DistributedError, match="^nproc 3 is more processes than this node's 2 CPU cores$"):
        torchrun_command({"nproc": 3, "device": "cpu"}, "m", [])
    monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DistributedError, match="^nproc 2 asks for one GPU per process but this node has 1$"):
        torchrun_command({"nproc": 2, "device": "auto"}, "m", [])


def test_an_unreachable_rendezvous_is_one_sentence_within_the_wait(monkeypatch):
    with socket.socket() as s:  # a loopback port nobody listens on, seen as another node's
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(distributed, "_is_this_machine", lambda address: False)
    started = time.monotonic()
    with pytest.raises(DistributedError, match=f"^no rendezvous answers at 127.0.0.1:{port} \\(waited 1 s"):
        distributed.wait_for_rendezvous(f"127.0.0.1:{port}", wait_s=1)
    assert time.monotonic() - started < 10
    with pytest.raises(DistributedError, match="rdzv_endpoint must be host:port"):
        distributed.wait_for_rendezvous("node1")
    monkeypatch.undo()
    distributed.wait_for_rendezvous(f"127.0.0.1:{port}", wait_s=60)  # this machine hosts it: nothing to wait for


@pytest.mark.slow
def test_the_train_decoder_stage_reruns_itself_under_torchrun(inputs, tmp_path):
    """The stage's own command with ``nproc: 2``: one launcher, two ranks, rank 0's checkpoint and metrics."""
    from pipeline.training.checkpoints import read_header

    command, env = _train_decoder_stage(inputs, tmp_path)
    try:
        proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the 2-process stage did not finish in {TIMEOUT} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == \
        "train_decoder: trained by 2 processes under torchrun (rank 0 wrote the outputs)"
    assert proc.stdout.count("train_decoder: 2 epochs") == 1  # rank 0's summary only
    metrics = json.loads((tmp_path / "decoder.json").read_text())
    assert metrics["world_size"] == 2 and metrics["samples_per_epoch"] == 8
    assert read_header(tmp_path / "decoder.pt")["config"]["feature_dim"] > 0


@pytest.mark.slow
def test_an_interrupted_ddp_run_resumes_from_its_last_epoch(inputs, tmp_path):
    """2 processes for 1 epoch leave rank 0's resume state; a 2-epoch run beside it starts at epoch 2 and ends
    with the weights of an uninterrupted 2-epoch run."""
    straight, _ = _run(inputs, tmp_path / "straight.pt", batch_size=2, nproc=2)
    _run(inputs, tmp_path / "resumed.pt", batch_size=2, nproc=2, epochs=1)
    assert resume_path_for(tmp_path / "resumed.pt").is_file()  # rank 0's state after epoch 1
    resumed, log = _run(inputs, tmp_path / "resumed.pt", batch_size=2, nproc=2)
    assert "resuming ddp-test from epoch 1" in log["stderr"] and [h["epoch"] for h in log["history"]] == [1, 2]
    for name in straight:
        assert torch.allclose(straight[name], resumed[name], atol=1e-6), name


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["face_encoder", "gender"])
def test_the_face_encoder_and_gender_stages_train_under_torchrun_too(stage, inputs, tmp_path):
    """Every training stage runs the one loop, so each reruns itself under torchrun with ``nproc: 2``."""
    import yaml

    from pipeline.data.sample.corpus import CorpusConfig, generate_face_corpus

    loop_keys = {"beta1": 0.9, "eps": 1e-8, "lr_decay": 1.0, "lr_decay_every": 1, "seed": 0, "device": "cpu",
                 "precision": "fp32", "num_workers": 0, "nproc": 2, "nnodes": 1, "rdzv_endpoint": "",
                 "dist_timeout_s": 120, "rank_split": "samples"}
    if stage == "face_encoder":
        corpus = tmp_path / "corpus"
        generate_face_corpus(corpus, CorpusConfig(n_identities=4, images_per_identity=3, image_size=64),
                             progress=False)
        section = {"source": "train", "weights": "", "sha256": "", "width": 0.0625, "fc_dim": 16, "epochs": 2,
                   "batch_size": 4, "lr": 0.001, "dropout": 0.0, "batch_norm": True, "attribute_weight": 1.0,
                   **loop_keys}
        command = ["--corpus", str(corpus), "--shards", str(inputs / "shards"), "--out", str(tmp_path / "fe.pt")]
    else:
        section = {"width": 0.0625, "epochs": 2, "batch_size": 4, "lr": 0.003, **loop_keys}
        command = ["--shards", str(inputs / "shards"), "--out", str(tmp_path / "gender")]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({stage: section}), encoding="utf-8")
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "DVC_NO_ANALYTICS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", f"stages.{stage}", *command, "--metrics", str(tmp_path / "m.json"),
               "--plots", str(tmp_path / "plots")]
    try:
        proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the 2-process {stage} stage did not finish in {TIMEOUT} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == f"{stage}: trained by 2 processes under torchrun (rank 0 wrote the outputs)"
    assert proc.stdout.count(f"{stage}: ") == 2  # rank 0's own summary, then the launcher's
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["world_size"] == 2 and len(metrics["history"]) == 2
    assert len((tmp_path / "plots/plots/metrics/train/loss.tsv").read_text().splitlines()) == 3
    assert not list(tmp_path.rglob("*.resume"))  # rank 0 removed the resume state once the model was saved


@pytest.mark.slow
def test_a_killed_rank_fails_the_stage_in_one_sentence_and_the_rerun_resumes(inputs, tmp_path):
    """Rank 1 dies (SIGKILL) after epoch 1 of 2: the stage stops with one sentence; the same command again resumes
    from rank 0's state at epoch 1 and finishes."""
    from pipeline.testing.faults import TRAINING_KILL_RANK, fault_env

    command, env = _train_decoder_stage(inputs, tmp_path)
    try:
        killed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT,
                                env=fault_env({TRAINING_KILL_RANK: "1:1"}, env))
        assert killed.returncode == 2, killed.stderr[-3000:]
        assert killed.stderr.strip().splitlines()[-1].startswith(
            "train_decoder: error: the 2 training processes under torchrun failed (exit code")
        assert not (tmp_path / "decoder.pt").exists() and resume_path_for(tmp_path / "decoder.pt").is_file()
        rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a 2-process run with a killed rank did not end in {TIMEOUT} s")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming train_decoder from epoch 1" in rerun.stderr
    assert json.loads((tmp_path / "decoder.json").read_text())["epochs"] == 2

