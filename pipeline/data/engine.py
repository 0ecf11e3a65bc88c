"""Where the data stages run their shards: in the stage's own process (``local``) or as Ray tasks (``ray``).

``download``, ``preprocess`` and ``features`` each turn a list of independent work units (shards) into files. The
stage hands the units to :func:`run_units`, which calls a module-level function once per unit, here or on a Ray
cluster (one task per unit, with the unit's CPUs and GPUs from params), and gives each result back to the stage's
process, the driver. The driver alone writes the completion markers (stats, ``meta.json``) and the metrics, so the
"counts add up" accounting stays in one place and both engines write the same bytes.

The engine is chosen by the ``cluster`` section of ``params.yaml``, which no stage declares in ``dvc.yaml``:
changing it never makes DVC rerun anything, because the outputs do not depend on it.

On a cluster:

- the workspace (``data/``) must be on a filesystem every node sees at the same path (NFS, Lustre, a Slurm
  cluster's shared home): tasks read and write the stage's folders directly. A task that cannot see them stops the
  stage with one sentence naming the node;
- the project's code travels with every run (``runtime_env`` ``py_modules``: ``pipeline`` and ``models``), so
  workers always run the driver's version of it; Python packages must be the same on every node (one image or
  one ``requirements.txt`` environment), and a task on a node with other torch or numpy versions stops the stage;
- a worker that dies in the middle of a unit loses only that unit: Ray runs the task again (``max_retries``), and
  a unit's files appear only once it is complete, so the result is the same as an undisturbed run.
"""
from __future__ import annotations

import importlib.util
import os
import platform
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Literal, Mapping, Sequence

import pipeline
from pipeline.common.errors import PipelineError
from pipeline.common.faults import ENV as FAULTS_ENV
from pipeline.common.faults import fault_setting
from pipeline.common.schema import Field, NonNegativeFloat, NonNegativeInt, Section, validate_section

ENGINES = ("local", "ray")
#: the params.yaml section read here; no stage declares it, so it never triggers a rerun
SECTION = "cluster"
#: stage kinds with their own resource requests (gender_corpus_download/preprocess use download/preprocess's)
KINDS = ("download", "preprocess", "features")
#: fault point (pipeline.common.faults), setting a folder: the first task of each unit kills its own worker process
#: mid-way (SIGKILL) and leaves ``<unit>.killed`` there, so a fault test can check that Ray's retry gives the
#: undisturbed output
KILL_WORKER_ONCE = "engine.kill_worker_once"
#: seconds to wait for a TCP answer from a cluster address before saying it cannot be reached
CONNECT_TIMEOUT = 10.0
_PACKAGE_ROOT = Path(pipeline.__file__).resolve().parents[1]  # the checkout: pipeline/ and models/ live here
#: set by a Ray task chosen by the KILL_WORKER_ONCE fault while its unit runs: kill_point() then kills the worker
_KILL_MIDWAY = False


class EngineError(PipelineError, ValueError):
    """The engine settings are invalid, the cluster cannot be reached, or a worker cannot run a unit."""


@dataclass(frozen=True)
class Resources:
    """What one task of a stage kind asks Ray for."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0


class _Resources(Section):
    num_cpus: NonNegativeFloat = Field(description="CPUs per task")
    num_gpus: NonNegativeFloat = Field(description="GPUs per task (> 0 for a GPU detector or face encoder)")


class _CpuResources(Section):
    num_cpus: NonNegativeFloat = Field(description="CPUs per task")


class ClusterParams(Section):
    """The runtime ``cluster`` section: who runs a data stage's shards (not a DVC param: it never reruns a stage)."""

    SECTION: ClassVar[str] = "cluster"
    engine: Literal["local", "ray"] = Field(description="local: in the stage's process | ray: one task per shard")
    ray_address: str = Field(description='engine ray: "" starts a Ray instance for the run; auto or host:port joins')
    max_retries: NonNegativeInt = Field(description="engine ray: times a shard is rerun when its worker dies")
    local_processes: NonNegativeInt = Field(description="engine local: processes at once (0 = one per core)")
    download: _CpuResources = Field(description="Ray resources per download task")
    preprocess: _Resources = Field(description="Ray resources per preprocess task")
    features: _Resources = Field(description="Ray resources per features task")


@dataclass(frozen=True)
class EngineSettings:
    """The ``cluster`` params section (see params.yaml)."""

    engine: str = "local"
    ray_address: str = ""
    max_retries: int = 3
    resources: Mapping[str, Resources] = field(default_factory=lambda: {kind: Resources() for kind in KINDS})
    local_processes: int = 1   # engine local: processes running a stage's units at once (0 = one per CPU core)

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> "EngineSettings":
        """Build from the section (None or absent: the local engine); one sentence for a bad key or value."""
        params = dict(params or {})
        known = {"engine", "ray_address", "max_retries", "local_processes", *KINDS}
        unknown = sorted(set(params) - known)
        if unknown:
            raise EngineError(f"unknown {SECTION} param(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        engine = str(params.get("engine", "local"))
        if engine not in ENGINES:
            raise EngineError(f"{SECTION}.engine must be one of {', '.join(ENGINES)}, got {engine!r}")
        if engine == "ray" and importlib.util.find_spec("ray") is None:
            raise EngineError(f"{SECTION}.engine is ray but the ray package is not installed "
                              f"(pip install -r requirements.txt installs it)")
        resources = {}
        for kind in KINDS:
            values = dict(params.get(kind) or {})
            extra = sorted(set(values) - {"num_cpus", "num_gpus"})
            if extra:
                raise EngineError(f"unknown {SECTION}.{kind} param(s): {', '.join(extra)} (known: num_cpus, num_gpus)")
            res = Resources(float(values.get("num_cpus", 1.0)), float(values.get("num_gpus", 0.0)))
            if res.num_cpus < 0 or res.num_gpus < 0 or res.num_cpus + res.num_gpus == 0:
                raise EngineError(f"{SECTION}.{kind} needs num_cpus >= 0 and num_gpus >= 0, not both 0")
            resources[kind] = res
        retries = int(params.get("max_retries", 3))
        if retries < 0:
            raise EngineError(f"{SECTION}.max_retries must be >= 0, got {retries}")
        processes = int(params.get("local_processes", 1))
        if processes < 0:
            raise EngineError(f"{SECTION}.local_processes must be >= 0 (0 = one per CPU core), got {processes}")
        return cls(engine, str(params.get("ray_address") or ""), retries, resources, processes)

    def processes_for(self, units: int, limit: int | None = None) -> int:
        """How many local processes run ``units`` units: ``local_processes`` (0 = this machine's CPU cores), at
        most one per unit and at most ``limit`` (a stage's own cap, e.g. 1 for a model on one GPU)."""
        wanted = self.local_processes or cpu_cores()
        return max(1, min(wanted, units, limit if limit is not None else wanted))


def load_engine(params_path: str | Path = "params.yaml") -> EngineSettings:
    """The engine settings of ``params_path``'s ``cluster`` section (the local engine when there is none)."""
    from pipeline.common.params import load_params

    path = Path(params_path)
    section = load_params(path).get(SECTION) if path.is_file() else None
    if section is not None:  # a params file's section: every key, checked by its schema
        validate_section(ClusterParams, section)
    return EngineSettings.from_params(section)


@dataclass
class UnitResult:
    """One unit's result as the driver receives it."""

    index: int
    value: Any


def versions() -> dict[str, str]:
    """The versions a worker must share with the driver (they change what the stages write)."""
    import numpy
    import torch

    return {"python": platform.python_version(), "numpy": numpy.__version__, "torch": torch.__version__}


def _run_unit(fn: Callable[..., Any], unit: Any, name: str, expected: dict[str, str],
              must_see: Sequence[str], cwd: str) -> Any:
    """A Ray task's body: check this node against the driver, then run ``fn(unit)`` in the driver's working
    directory (relative paths in the data, such as a manifest's local sources, mean what they mean there; a
    worker process runs one task at a time)."""
    node = socket.gethostname()
    if not Path(cwd).is_dir():
        raise EngineError(f"node {node} cannot see {cwd}: the workspace must be on a filesystem that every node "
                          f"mounts at the same path")
    mine = versions()
    different = {k: (mine.get(k), v) for k, v in expected.items() if mine.get(k) != v}
    if different:
        raise EngineError(f"node {node} has " + ", ".join(f"{k} {a} (the driver: {b})"
                                                          for k, (a, b) in different.items())
                          + ": every node needs the same Python packages (one image or requirements.txt)")
    for path in must_see:  # absolute paths (resolved by the driver)
        if not Path(path).exists():
            raise EngineError(f"node {node} cannot see {path}: the workspace must be on a filesystem that every "
                              f"node mounts at the same path")
    global _KILL_MIDWAY
    kill_dir = fault_setting(KILL_WORKER_ONCE)
    if kill_dir:
        marker = Path(kill_dir) / f"{name}.killed"
        if not marker.exists():
            marker.write_text(str(os.getpid()), encoding="utf-8")
            _KILL_MIDWAY = True  # read by kill_point(), in the middle of the unit
    before = os.getcwd()
    os.chdir(cwd)
    try:
        return fn(unit)
    finally:
        os.chdir(before)
        _KILL_MIDWAY = False


def kill_point() -> None:
    """Fault point, called by a unit in its middle: die like a killed worker when the KILL_WORKER_ONCE fault chose
    this task (a no-op otherwise)."""
    if _KILL_MIDWAY:
        os.kill(os.getpid(), signal.SIGKILL)


def _check_reachable(address: str) -> None:
    """Raise EngineError within ``CONNECT_TIMEOUT`` s when nothing answers at a ``host:port`` / ``ray://`` address
    (``ray.init`` itself would keep retrying for minutes)."""
    target = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise EngineError(f"{SECTION}.ray_address {address!r} is not 'auto', '' or host:port / ray://host:port")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise EngineError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one (ray start "
                          f"--head) or fix {SECTION}.ray_address") from None


def _is_loopback(address: str) -> bool:
    host = (address[len("ray://"):] if address.startswith("ray://") else address).rpartition(":")[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def connect(settings: EngineSettings):
    """``ray.init`` for the settings: ``""`` starts a Ray instance on this machine for the run (bound to the
    loopback interface), ``auto`` joins the cluster this machine belongs to, ``host:port`` or ``ray://host:port``
    joins that one. Returns the ``ray`` module."""
    address = settings.ray_address
    if address and address != "auto":
        _check_reachable(address)
    if not address or _is_loopback(address):
        # Ray replaces 127.0.0.1 with the machine's routable address unless told it runs on one machine; a run's
        # own instance (and a loopback test cluster) must not listen on the network.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray

    runtime_env = {"py_modules": [str(_PACKAGE_ROOT / "pipeline"), str(_PACKAGE_ROOT / "models")],
                   "env_vars": {k: v for k, v in os.environ.items() if k == FAULTS_ENV}}
    try:
        ray.init(address=address or "local", runtime_env=runtime_env, log_to_driver=False,
                 include_dashboard=False if not address else None, ignore_reinit_error=True,
                 logging_level="ERROR")
    except ConnectionError as exc:
        raise EngineError(f"cannot join the Ray cluster at {address or 'auto'}: {str(exc).splitlines()[0]}") from None
    return ray


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask, so a Slurm or container limit counts)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def run_units(fn: Callable[[Any], Any], units: Sequence[Any], names: Sequence[str], settings: EngineSettings,
              kind: str, must_see: Sequence[str | Path] = (), local_limit: int | None = None) -> Iterator[UnitResult]:
    """Run ``fn(unit)`` for every unit; yield each result (``UnitResult.index`` = its place in ``units``).

    ``local``: in this process, in order, or, with ``local_processes`` above 1 (0 = one per core; never more
    than ``local_limit``), in that many fresh processes, results in the order they finish. ``ray``: one task per
    unit with ``kind``'s resources, results in the order they finish; a unit whose worker dies is run again up to
    ``max_retries`` times. ``fn`` must be a module-level function and ``units`` picklable. ``must_see``: paths
    every worker must find (the workspace). An exception of ``fn`` cancels the remaining units and is raised here
    as itself.
    """
    if settings.engine == "local":
        processes = settings.processes_for(len(units), local_limit)
        if processes == 1:
            for index, unit in enumerate(units):
                yield UnitResult(index, fn(unit))
        else:
            yield from _run_in_processes(fn, units, processes)
        return
    if not units:
        return
    ray = connect(settings)
    from ray.exceptions import RayTaskError, WorkerCrashedError

    resources = settings.resources[kind]
    task = ray.remote(_run_unit).options(num_cpus=resources.num_cpus, num_gpus=resources.num_gpus,
                                         max_retries=settings.max_retries, retry_exceptions=False)
    expected = versions()
    seen = [str(Path(p).resolve()) for p in must_see]
    cwd = os.getcwd()
    pending = {task.remote(fn, unit, name, expected, seen, cwd): index
               for index, (unit, name) in enumerate(zip(units, names))}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(done[0])
            try:
                value = ray.get(done[0])
            except WorkerCrashedError:
                raise EngineError(f"the Ray workers running {names[index]} died {settings.max_retries + 1} times; "
                                  f"the finished units are kept, and a rerun does only the rest") from None
            except RayTaskError as exc:
                cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else None
                if cause is not None:
                    raise cause from None
                raise
            yield UnitResult(index, value)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)


def _run_in_processes(fn: Callable[[Any], Any], units: Sequence[Any], processes: int) -> Iterator[UnitResult]:
    """The local engine on several cores: ``fn(unit)`` in ``processes`` spawned interpreters (not forked: the
    stage's process may hold torch's thread pools, which a forked child can deadlock on)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"))
    pending = {pool.submit(fn, unit): index for index, unit in enumerate(units)}
    try:
        while pending:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in done:
                index = pending.pop(future)
                try:
                    value = future.result()
                except BrokenProcessPool:
                    raise EngineError(f"a local worker process died while running unit {index + 1} of "
                                      f"{len(units)}; the finished units are kept, and a rerun does only the rest") from None
                yield UnitResult(index, value)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def describe(settings: EngineSettings) -> dict[str, Any]:
    """How the run was executed, for the metrics (not the data): the engine and, with Ray, the cluster's size."""
    out: dict[str, Any] = {"engine": settings.engine}
    if settings.engine == "ray" and "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            res = ray.cluster_resources()
            out.update(nodes=len([n for n in ray.nodes() if n.get("Alive")]), cpus=res.get("CPU", 0),
                       gpus=res.get("GPU", 0))
    return out


def shutdown() -> None:
    """Disconnect from Ray (stopping the run's own instance) when it was used."""
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()
