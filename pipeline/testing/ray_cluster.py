"""A real Ray cluster on the loopback interface, started and stopped by a test.

``loopback_cluster(num_cpus)`` runs ``ray start --head --block`` on 127.0.0.1 in its own process group and yields
its address and the environment a driver needs to join it; at exit (even on failure) the whole group is killed,
so no Ray process outlives the test. Ray refuses to add a second node on 127.0.0.1 on Linux (it only binds to the
loopback interface in its single-machine mode), so the "cluster" is one head with ``num_cpus`` worker processes.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

#: what a process needs to join the loopback cluster (no token auth on a test cluster, no usage reports)
RAY_TEST_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def worker_pids(temp_dir: str | Path) -> list[int]:
    """PIDs of the cluster's Python worker processes (``ray::...`` tasks and idle workers)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()[1:]
            if line.split(None, 1)[1:] and line.split(None, 1)[1].startswith("ray::")
            and str(temp_dir) in _environ_of(int(line.split()[0]))]


def _environ_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace") + Path(f"/proc/{pid}/environ").read_text(
            errors="replace")
    except OSError:
        return ""


@contextmanager
def loopback_cluster(num_cpus: int = 2, timeout: float = 60.0) -> Iterator[tuple[str, dict[str, str]]]:
    """Start a Ray head on 127.0.0.1; yield ``(address, env)``; kill every process of it at exit."""
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, **RAY_TEST_ENV}
    ray_cli = str(Path(sys.executable).with_name("ray"))
    log = open(Path(temp_dir) / "head.log", "wb")
    head = subprocess.Popen(
        [ray_cli, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
         f"--num-cpus={num_cpus}", "--num-gpus=0", "--include-dashboard=false", f"--temp-dir={temp_dir}",
         "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        end = time.monotonic() + timeout
        while not _answers(port):
            if head.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"the test Ray head did not start: {(Path(temp_dir) / 'head.log').read_text()}")
            time.sleep(0.2)
        time.sleep(1.0)  # the raylet registers a moment after the GCS answers
        yield f"127.0.0.1:{port}", dict(RAY_TEST_ENV)
    finally:
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait()
        log.close()
        # workers a raylet started may sit in other groups for a moment: kill what still names this cluster
        for pid in worker_pids(temp_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)


def square_or_fail(unit: int) -> int:
    """A unit function for engine tests (module-level, so Ray workers can import it): ``unit**2``, or an
    EngineError for a negative unit."""
    from pipeline.data.engine import EngineError

    if unit < 0:
        raise EngineError(f"unit {unit} is negative")
    return unit * unit


def busy_worker_pids(temp_dir: str | Path) -> list[int]:
    """PIDs of the cluster's worker processes that are running a unit of the engine now (``ray::_run_unit``)."""
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=False).stdout
    return [int(line.split()[0]) for line in out.splitlines()[1:]
            if line.split(None, 1)[1:] and line.split(None, 1)[1].startswith("ray::_run_unit")
            and str(temp_dir) in _environ_of(int(line.split()[0]))]


def _kill_group(proc: subprocess.Popen, temp_dir: str | Path) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    for pid in worker_pids(temp_dir):  # workers a raylet started may sit in other groups for a moment
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


#: the head's GCS declares a node dead after 3 missed health checks 1 s apart (Ray's default: 5 of 3 s, plus 10 s
#: timeouts); a partitioned node's raylet gives up on the GCS after 5 s (default 60 s) and stops its workers; a gRPC
#: call to a silent peer is abandoned after a 2 s keepalive ping went unanswered for 2 s (Ray's default: 300 + 120 s,
#: which held the retry of a unit lost with a cut-off node for 7 minutes)
FAST_FAILURE_ENV = {"RAY_health_check_initial_delay_ms": "1000", "RAY_health_check_period_ms": "1000",
                    "RAY_health_check_timeout_ms": "1000", "RAY_health_check_failure_threshold": "3",
                    "RAY_gcs_rpc_server_reconnect_timeout_s": "5", "RAY_grpc_client_keepalive_time_ms": "2000",
                    "RAY_grpc_client_keepalive_timeout_ms": "2000"}


class TwoNodeCluster:
    """A Ray head in namespace ``pair.a`` and a worker node in ``pair.b`` (``pipeline.testing.netns``).

    Authentication: Ray's token mode (``RAY_AUTH_MODE=token``) with a token generated here, given to both nodes and
    to every driver through :attr:`env`. Each node has its own ``--temp-dir`` (Ray keeps its sockets and session
    there; two nodes sharing one would clash on one machine). Nothing calls ``ray stop`` (machine-wide): each node
    is one process group, SIGKILLed with the workers that name its temp dir.
    """

    def __init__(self, pair, head_cpus: int = 1, worker_cpus: int = 1, port: int = 6379, timeout: float = 60.0):
        import secrets

        self.pair, self.port, self.timeout = pair, port, timeout
        self.head_cpus, self.worker_cpus = head_cpus, worker_cpus
        self.env = {**RAY_TEST_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
                    **FAST_FAILURE_ENV}
        self.env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        self.address = f"{pair.a.address}:{port}"
        self.head_dir = tempfile.mkdtemp(prefix="rayh", dir="/tmp")  # short: socket paths must fit 107 bytes
        self.worker_dir = tempfile.mkdtemp(prefix="rayw", dir="/tmp")
        self.head: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self._ray = str(Path(sys.executable).with_name("ray"))

    def _start(self, node, argv: list[str], temp_dir: str) -> subprocess.Popen:
        with open(Path(temp_dir) / "node.log", "ab") as log:
            return node.popen([self._ray, "start", "--block", f"--node-ip-address={node.address}", "--num-gpus=0",
                               f"--temp-dir={temp_dir}", "--disable-usage-stats", *argv],
                              env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT)

    def _wait_for(self, proc: subprocess.Popen, temp_dir: str, what: str) -> None:
        log = Path(temp_dir) / "node.log"
        end = time.monotonic() + self.timeout
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError(f"the test Ray {what} did not start: {log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def start(self, worker: bool = True) -> TwoNodeCluster:
        """Start the head and, with ``worker`` (the default), the worker node; without it a one-node cluster of
        the head alone (what bench/bench_two_nodes.py compares two nodes with)."""
        self.head = self._start(self.pair.a, ["--head", f"--port={self.port}", f"--num-cpus={self.head_cpus}",
                                              "--include-dashboard=false"], self.head_dir)
        self._wait_for(self.head, self.head_dir, "head")
        if worker:
            self.start_worker()
        return self

    def start_worker(self) -> None:
        """Start (or restart) the worker node, with its link up, and wait until it has joined."""
        self.pair.b.link(True)
        if self.worker is not None:
            self.kill_worker()
        (Path(self.worker_dir) / "node.log").unlink(missing_ok=True)
        self.worker = self._start(self.pair.b, [f"--address={self.address}", f"--num-cpus={self.worker_cpus}"],
                                  self.worker_dir)
        self._wait_for(self.worker, self.worker_dir, "worker node")

    def worker_alive(self) -> bool:
        return self.worker is not None and self.worker.poll() is None

    def kill_worker(self) -> None:
        """SIGKILL the worker node: its raylet, object store and every worker process (a machine that dies)."""
        if self.worker is not None:
            _kill_group(self.worker, self.worker_dir)

    def stop(self) -> None:
        for proc, temp_dir in ((self.worker, self.worker_dir), (self.head, self.head_dir)):
            if proc is not None:
                _kill_group(proc, temp_dir)
            shutil.rmtree(temp_dir, ignore_errors=True)
