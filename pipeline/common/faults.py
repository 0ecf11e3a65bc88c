"""Fault points: where a fault test makes a stage die the way a real crash would. Off unless a test turns one on.

Production code asks :func:`fault_setting` for a fault by name at the point where that crash belongs; the answer is
``None`` (do nothing) unless the one environment variable ``SPEECH2FACE_FAULTS`` names the fault. Tests turn faults
on with :mod:`pipeline.testing.faults` (production code never imports it): the stages under test run as
subprocesses (of pytest, DVC or torchrun, or as Ray workers, which get the variable through the runtime
environment), so an environment variable is what carries the request.

``SPEECH2FACE_FAULTS`` is a comma-separated list of ``name=setting`` (or a bare ``name``: setting ``""``). The
faults (:data:`FAULTS`):

``download.crash_after_shards=N``
    once N shards of this run are complete, the download stage's process exits at once (``os._exit(70)``, like a
    kill) with the next shard's files in the work directory but not yet its stats (the shard's completion marker).
``engine.kill_worker_once=DIR``
    on the Ray engine, the first task of every unit leaves ``DIR/<unit>.killed`` and SIGKILLs its own worker
    half-way through the unit (at ``pipeline.data.engine.kill_point``); Ray's retry then runs the unit undisturbed.
``training.kill_rank=RANK:EPOCH``
    that rank of a training run SIGKILLs itself once rank 0 has written the resume state of that epoch (1-based),
    the way a crashed node loses one rank of a DDP run.
``training.pause_ranks=EPOCH:DIR``
    every rank but 0 of a training run stops once rank 0 has written the resume state of that epoch, leaves
    ``DIR/rank<r>.pid`` and waits for ``DIR/release`` (at most 5 minutes), while rank 0 waits for it in the next
    epoch's first collective: the moment at which a test kills a node, or cuts it off the network.
"""
from __future__ import annotations

import os

from pipeline.common.errors import PipelineError

#: the one environment variable that turns fault points on
ENV = "SPEECH2FACE_FAULTS"

#: every fault point: name → its setting (documented in this module's docstring)
FAULTS: dict[str, str] = {
    "download.crash_after_shards": "N",
    "engine.kill_worker_once": "DIR",
    "training.kill_rank": "RANK:EPOCH",
    "training.pause_ranks": "EPOCH:DIR",
}


class FaultSpecError(PipelineError, ValueError):
    """``SPEECH2FACE_FAULTS`` names a fault that does not exist (a typo in a test must not pass silently)."""


def parse_faults(text: str) -> dict[str, str]:
    """``{name: setting}`` of a ``SPEECH2FACE_FAULTS`` value; raises FaultSpecError for an unknown name."""
    faults: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, _, setting = item.partition("=")
        name = name.strip()
        if name not in FAULTS:
            raise FaultSpecError(f"{ENV} names unknown fault {name!r} (known: {', '.join(sorted(FAULTS))})")
        faults[name] = setting.strip()
    return faults


def fault_setting(name: str) -> str | None:
    """The setting of fault ``name`` when a test turned it on, else None (always None in a normal run)."""
    if name not in FAULTS:
        raise KeyError(f"unknown fault point {name!r}: add it to pipeline.common.faults.FAULTS")
    text = os.environ.get(ENV)
    if not text:
        return None
    return parse_faults(text).get(name)
