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
