"""Fault points: off unless a test turns them on through pipeline.testing.faults, one variable for all of them."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import pipeline.common.faults as production
import pipeline.testing.faults as testing
from pipeline.common.faults import ENV, FAULTS, FaultSpecError, fault_setting, parse_faults
from pipeline.testing.faults import (
    DOWNLOAD_CRASH_AFTER_SHARDS,
    ENGINE_KILL_WORKER_ONCE,
    KNOWN,
    TRAINING_KILL_RANK,
    TRAINING_PAUSE_RANKS,
    fault_env,
    fault_spec,
    faults_on,
)

REPO = Path(__file__).resolve().parents[3]


def test_every_fault_point_is_off_unless_a_test_turns_it_on(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert all(fault_setting(name) is None for name in KNOWN)
    with pytest.raises(KeyError, match="unknown fault point 'download.crash'"):
        fault_setting("download.crash")  # a fault point's own name must be a known one


def test_fault_env_and_faults_on_carry_the_settings(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    env = fault_env({DOWNLOAD_CRASH_AFTER_SHARDS: 1, ENGINE_KILL_WORKER_ONCE: tmp_path}, {"PATH": "/bin"})
    assert env == {"PATH": "/bin", ENV: f"download.crash_after_shards=1,engine.kill_worker_once={tmp_path}"}
    assert parse_faults(env[ENV]) == {DOWNLOAD_CRASH_AFTER_SHARDS: "1", ENGINE_KILL_WORKER_ONCE: str(tmp_path)}
    with faults_on({TRAINING_KILL_RANK: "1:1"}):
        assert fault_setting(TRAINING_KILL_RANK) == "1:1" and fault_setting(DOWNLOAD_CRASH_AFTER_SHARDS) is None
    assert fault_setting(TRAINING_KILL_RANK) is None
    with pytest.raises(ValueError, match="unknown fault 'training.kill'"):
        fault_spec({"training.kill": "1:1"})
    with pytest.raises(ValueError, match="may not contain a comma"):
        fault_env({ENGINE_KILL_WORKER_ONCE: "a,b"})
    monkeypatch.setenv(ENV, "download.crash_after_shard=1")  # a typo does not pass silently
    with pytest.raises(FaultSpecError, match="unknown fault 'download.crash_after_shard'"):
        fault_setting(DOWNLOAD_CRASH_AFTER_SHARDS)


def test_the_testing_names_are_the_production_fault_points_and_all_documented():
    from pipeline.data.download.runner import CRASH_AFTER_SHARDS
    from pipeline.data.engine import KILL_WORKER_ONCE
    from pipeline.training.loop import KILL_RANK, PAUSE_RANKS

    assert set(KNOWN) == set(FAULTS) == {DOWNLOAD_CRASH_AFTER_SHARDS, ENGINE_KILL_WORKER_ONCE, TRAINING_KILL_RANK,
                                         TRAINING_PAUSE_RANKS}
    assert (CRASH_AFTER_SHARDS, KILL_WORKER_ONCE, KILL_RANK, PAUSE_RANKS) == (
        DOWNLOAD_CRASH_AFTER_SHARDS, ENGINE_KILL_WORKER_ONCE, TRAINING_KILL_RANK, TRAINING_PAUSE_RANKS)
    for name in KNOWN:
        assert f"``{name}=" in production.__doc__ and f"``{name}``" in testing.__doc__, name


def _production_files() -> list[Path]:
    return [p for top in ("pipeline", "stages", "models") for p in sorted((REPO / top).rglob("*.py"))
            if "testing" not in p.relative_to(REPO).parts]


def test_production_code_reads_no_fault_variable_of_its_own():
    """The one variable is read in pipeline.common.faults alone; no other module names a fault-like variable."""
    fault_like = re.compile(r"FAIL|FAULT|CRASH|KILL|INJECT")
    offenders = []
    for path in _production_files():
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"[A-Z][A-Z0-9_]{2,}", node.value) and fault_like.search(node.value):
                if not (path.name == "faults.py" and node.value == ENV):
                    offenders.append(f"{path.relative_to(REPO)}: {node.value}")
        if "S2F_" in text:
            offenders.append(f"{path.relative_to(REPO)}: S2F_")
    assert offenders == []
