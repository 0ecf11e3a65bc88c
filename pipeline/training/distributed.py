"""Data-parallel training with torchrun: relaunching a stage under it, the process group, and rank-0 duties.

A training stage whose params say ``nproc`` > 1 re-runs its own command under ``torch.distributed.run``
(``--standalone`` on one node; ``--nnodes``/``--rdzv_endpoint`` with the c10d rendezvous across nodes), so DVC
still sees one stage with one command. Inside, ``pipeline.training.loop.fit`` wraps the model in
DistributedDataParallel (NCCL on CUDA, gloo on CPU), gives every rank the same number of samples
(``SplitDataset.split_for_rank``), and only rank 0 writes checkpoints, resume state, curves and metrics.
"""
from __future__ import annotations

import atexit
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import torch

from pipeline.common.errors import PipelineError


class DistributedError(PipelineError, ValueError):
    """The nproc / nnodes / rdzv_endpoint params cannot work."""


@dataclass(frozen=True)
class Rank:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def current() -> Rank:
    """The rank torchrun gave this process (its RANK, WORLD_SIZE, LOCAL_RANK), or a single process."""
    return Rank(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                int(os.environ.get("LOCAL_RANK", 0)))


def torchrun_command(params: dict[str, Any], module: str, argv: list[str]) -> list[str] | None:
    """The torchrun command line that reruns ``python -m module argv`` on ``nproc`` processes per node, or None
    when one process is asked for (or this process already runs under torchrun)."""
    nproc, nnodes = int(params.get("nproc", 1)), int(params.get("nnodes", 1))
    endpoint = str(params.get("rdzv_endpoint", "") or "")
    if nproc < 1 or nnodes < 1:
        raise DistributedError(f"nproc and nnodes must be 1 or more, got nproc {nproc}, nnodes {nnodes}")
    if nproc * nnodes == 1 or "LOCAL_RANK" in os.environ:
        return None
    check_processes(nproc, str(params.get("device", "auto")))
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"]
    if nnodes == 1 and not endpoint:
        command.append("--standalone")
    else:
        if not endpoint:
            raise DistributedError(f"nnodes {nnodes} needs rdzv_endpoint (host:port of the rendezvous, the same on "
                                   f"every node)")
        host = wait_for_rendezvous(endpoint)
        command += [f"--nnodes={nnodes}", "--rdzv_backend=c10d", f"--rdzv_endpoint={endpoint}"]
        local = _address_towards(endpoint)
        if local:  # what the other nodes reach this one at (torchrun would publish its hostname's address)
            command.append(f"--local_addr={local}")
        conf = []
        if host:  # torchrun guesses this from the hostname, which may not resolve to rdzv_endpoint's address
            conf.append("is_host=true")
        if params.get("dist_timeout_s"):  # the agents' store reads wait no longer than the ranks' collectives
            conf.append(f"read_timeout={int(params['dist_timeout_s'])}")
        if conf:
            command.append(f"--rdzv_conf={','.join(conf)}")
    return command + ["-m", module, *argv]


def check_processes(nproc: int, device: str) -> None:
    """One sentence when a node is asked for more processes than it has devices: one GPU per process on CUDA,
    at most one process per CPU core otherwise."""
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda and nproc > torch.cuda.device_count():
        raise DistributedError(f"nproc {nproc} asks for one GPU per process but this node has "
                               f"{torch.cuda.device_count()}")
    if not use_cuda and nproc > (os.cpu_count() or 1):
        raise DistributedError(f"nproc {nproc} is more processes than this node's {os.cpu_count()} CPU cores")


#: how long a node waits for the rendezvous host to open its port before it gives up (the host may start later)
RENDEZVOUS_WAIT_S = 120.0


def wait_for_rendezvous(endpoint: str, wait_s: float | None = None) -> bool:
    """Before torchrun (whose c10d rendezvous retries for 15 minutes by default): one sentence when the
    rendezvous host does not resolve, or, on a node other than the host, when nothing answers at ``endpoint``
    within ``RENDEZVOUS_WAIT_S``. The host's own node opens the port, so it does not wait for it. Returns whether
    this node is the rendezvous host."""
    import socket
    import time

    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit():
        raise DistributedError(f"rdzv_endpoint must be host:port, got {endpoint!r}")
    try:
        address = socket.gethostbyname(host)
    except OSError:
        raise DistributedError(f"the rendezvous host {host!r} of rdzv_endpoint does not resolve") from None
    if _is_this_machine(address):
        return True
    deadline = time.monotonic() + (RENDEZVOUS_WAIT_S if wait_s is None else wait_s)
    while True:
        try:
            with socket.create_connection((address, int(port)), timeout=5):
                return False
        except OSError:
            if time.monotonic() >= deadline:
                raise DistributedError(f"no rendezvous answers at {endpoint} (waited "
                                       f"{RENDEZVOUS_WAIT_S if wait_s is None else wait_s:.0f} s; start the "
                                       f"stage on the host node too, and check the port is open)") from None
            time.sleep(1.0)


def _address_towards(endpoint: str) -> str | None:
    """This node's own address on the route to ``endpoint`` (a UDP socket's connect sends nothing), or None."""
    import socket

    host, _, port = endpoint.rpartition(":")
    try:
        address = socket.gethostbyname(host.strip("[]"))
        if address.startswith("127."):
            return None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((address, int(port)))
            return sock.getsockname()[0]
    except (OSError, ValueError):
        return None


def _is_this_machine(address: str) -> bool:
    """Whether ``address`` is one of this machine's own (then its torchrun hosts the rendezvous): binding to it
    works only here, whatever the hostname resolves to (a node with several interfaces)."""
    import socket

    if address.startswith("127.") or address == "::1":
        return True
    try:
        with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as sock:
            sock.bind((address, 0))
        return True
    except OSError:
        return False


def relaunch(params: dict[str, Any], module: str, argv: list[str] | None = None) -> int | None:
    """Run this stage again under torchrun when its params ask for more than one process; return torchrun's exit
    code, or None to go on in this process."""
    command = torchrun_command(params, module, list(sys.argv[1:] if argv is None else argv))
    if command is None:
        return None
    return subprocess.run(command, check=False).returncode


def relaunched_summary(params: dict[str, Any], module: str, argv: list[str] | None, stage: str) -> str | None:
    """For a stage's body: rerun it under torchrun when ``params`` ask for more than one process and return the
    launcher's summary line, or None to train in this process. A failed torchrun raises DistributedError."""
    code = relaunch(params, module, argv)
    if code is None:
        return None
    processes = int(params.get("nproc", 1)) * int(params.get("nnodes", 1))
    if code != 0:
        raise DistributedError(f"the {processes} training processes under torchrun failed (exit code "
                               f"{code}); their errors are above")
    return f"{stage}: trained by {processes} processes under torchrun (rank 0 wrote the outputs)"


def relaunch_stage(stage: str, args: Any) -> str | None:
    """For ``pipeline.common.stage.run_stage``: rerun training stage ``stage`` (``python -m stages.<stage>``, its section
    of ``args.params``) under torchrun when it asks for more than one process; the launcher's summary, or None."""
    from pipeline.common.params import load_section

    return relaunched_summary(load_section(stage, args.params), f"stages.{stage}", args.command_line, stage)


def setup(device: torch.device, timeout_s: float | None = None) -> Rank:
    """Join the process group when running under torchrun (NCCL on CUDA, gloo otherwise); return this rank.

    ``timeout_s`` (the stage's ``dist_timeout_s``): how long a rank waits for the others in a collective before it
    fails, so that a node that stops answering (dead, or cut off the network) fails the run within that time
    instead of torch's default (30 min on gloo, 10 on NCCL)."""
    import datetime

    import torch.distributed as dist

    rank = current()
    if rank.distributed and not dist.is_initialized():
        timeout = datetime.timedelta(seconds=float(timeout_s)) if timeout_s else None
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return rank


def rank_device(device: torch.device) -> torch.device:
    """One GPU per process: ``cuda`` becomes ``cuda:<LOCAL_RANK>`` under torchrun."""
    if device.type == "cuda" and current().distributed:
        device = torch.device("cuda", current().local_rank)
        torch.cuda.set_device(device)
    return device


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (the values themselves when not distributed)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()
