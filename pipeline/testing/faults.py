"""Fault injection for tests: turn the pipeline's named fault points on (they are off otherwise).

The fault points themselves sit in production code and ask :func:`pipeline.common.faults.fault_setting` whether a
test turned them on; production code never imports this module (the import-linter contract in ``.importlinter``).
A test turns faults on with the environment it gives a stage's subprocess (:func:`fault_env`), or for code it runs
in its own process with :func:`faults_on`. Every known fault (:data:`KNOWN`, the keys of
``pipeline.common.faults.FAULTS``), with its setting:

- :data:`DOWNLOAD_CRASH_AFTER_SHARDS` (``download.crash_after_shards``, setting ``N``): once N shards of the run are
  complete, the download stage exits at once (code 70, like a kill) with the next shard's files in the work
  directory and no stats file (its completion marker) yet.
- :data:`ENGINE_KILL_WORKER_ONCE` (``engine.kill_worker_once``, setting a folder): on the Ray engine, the first task
  of every unit leaves ``<folder>/<unit>.killed`` and SIGKILLs its own worker half-way through the unit; Ray's
  retry then runs the unit undisturbed.
- :data:`TRAINING_KILL_RANK` (``training.kill_rank``, setting ``"RANK:EPOCH"``): that rank of a training run
  SIGKILLs itself once rank 0 has written the resume state of that epoch (1-based).
- :data:`TRAINING_PAUSE_RANKS` (``training.pause_ranks``, setting ``"EPOCH:DIR"``): every rank but 0 stops after that
  epoch's resume state, leaves ``DIR/rank<r>.pid`` and waits for ``DIR/release``: a test then kills a node or takes
  its link down.

Example::

    proc = subprocess.run(command, env={**os.environ, **fault_env({DOWNLOAD_CRASH_AFTER_SHARDS: 1})})
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator, Mapping

from pipeline.common.faults import ENV, FAULTS, parse_faults

DOWNLOAD_CRASH_AFTER_SHARDS = "download.crash_after_shards"
ENGINE_KILL_WORKER_ONCE = "engine.kill_worker_once"
TRAINING_KILL_RANK = "training.kill_rank"
TRAINING_PAUSE_RANKS = "training.pause_ranks"
#: every fault point the pipeline has, by name
KNOWN: tuple[str, ...] = tuple(sorted(FAULTS))


def fault_spec(faults: Mapping[str, Any]) -> str:
    """The ``SPEECH2FACE_FAULTS`` value that turns ``faults`` (``{name: setting}``) on."""
    items = []
    for name, setting in faults.items():
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r} (known: {', '.join(KNOWN)})")
        text = "" if setting is None else str(setting)
        if "," in text:
            raise ValueError(f"the setting of fault {name!r} may not contain a comma: {text!r}")
        items.append(f"{name}={text}")
    spec = ",".join(items)
    parse_faults(spec)  # round trip: what the fault points will read
    return spec


def fault_env(faults: Mapping[str, Any], env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: nothing else) plus the one variable that turns ``faults`` (``{name: setting}``) on in a
    stage's subprocess, e.g. ``subprocess.run(..., env={**os.environ, **fault_env({...})})``."""
    return {**(env or {}), ENV: fault_spec(faults)}


@contextlib.contextmanager
def faults_on(faults: Mapping[str, Any]) -> Iterator[None]:
    """Turn ``faults`` on in this process (and the subprocesses it starts) for the block; restored afterwards."""
    old = os.environ.get(ENV)
    os.environ[ENV] = fault_spec(faults)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old
