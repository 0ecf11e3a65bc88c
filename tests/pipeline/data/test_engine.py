"""pipeline.data.engine: settings, the local engine, a run's own Ray instance, and one-sentence failures."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from pipeline.common.errors import PipelineError
from pipeline.common.params import load_params, validate_params
from pipeline.data.engine import EngineError, EngineSettings, load_engine, run_units, shutdown
from pipeline.testing.ray_cluster import RAY_TEST_ENV, free_port, square_or_fail

REPO = Path(__file__).resolve().parents[3]


def test_settings_default_to_the_local_engine_and_refuse_bad_values(tmp_path):
    assert EngineSettings.from_params(None).engine == "local"
    ray = EngineSettings.from_params({"engine": "ray", "ray_address": "auto", "features": {"num_gpus": 1}})
    assert ray.resources["features"].num_gpus == 1 and ray.resources["download"].num_cpus == 1
    for bad, words in (({"engine": "spark"}, "cluster.engine must be one of local, ray"),
                       ({"engnie": "ray"}, r"unknown cluster param\(s\): engnie"),
                       ({"preprocess": {"num_gpu": 1}}, r"unknown cluster.preprocess param\(s\): num_gpu"),
                       ({"download": {"num_cpus": 0}}, "not both 0"),
                       ({"max_retries": -1}, "max_retries must be >= 0")):
        with pytest.raises(EngineError, match=words):
            EngineSettings.from_params(bad)
    cluster = {**load_params(REPO / "params.yaml")["cluster"], "engine": "ray"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"cluster": cluster}))
    assert load_engine(tmp_path / "params.yaml").engine == "ray"
    (tmp_path / "params.yaml").write_text("cluster:\n  engine: ray\n")  # a params file's section: every key
    with pytest.raises(PipelineError, match="params key 'cluster.ray_address' is missing"):
        load_engine(tmp_path / "params.yaml")
    (tmp_path / "other.yaml").write_text("download: {}\n")
    assert load_engine(tmp_path / "other.yaml").engine == "local"


def test_the_ray_engine_without_the_ray_package_is_one_sentence(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(EngineError, match="ray package is not installed"):
        EngineSettings.from_params({"engine": "ray"})
    assert EngineSettings.from_params({"engine": "local"}).engine == "local"


def test_the_cluster_section_is_a_runtime_section_no_stage_declares(repo_root):
    from pipeline.common.params import declared_params, load_params

    assert "cluster" not in declared_params(repo_root / "dvc.yaml")  # so DVC never reruns a stage for it
    assert validate_params(load_params(repo_root / "params.yaml"), repo_root / "dvc.yaml") == []


def test_local_engine_runs_units_in_order_and_raises_their_errors():
    local = EngineSettings()
    assert [(r.index, r.value) for r in run_units(square_or_fail, [3, 1, 2], ["a", "b", "c"], local, "features")] \
        == [(0, 9), (1, 1), (2, 4)]
    with pytest.raises(EngineError, match="unit -1 is negative"):
        list(run_units(square_or_fail, [1, -1], ["a", "b"], local, "features"))


def test_an_unreachable_address_is_one_sentence_within_seconds():
    address = f"127.0.0.1:{free_port()}"
    began = time.monotonic()
    with pytest.raises(EngineError, match=f"no Ray cluster answers at {address}"):
        list(run_units(square_or_fail, [1], ["a"], EngineSettings("ray", address), "features"))
    assert time.monotonic() - began < 15
    with pytest.raises(EngineError, match="is not 'auto', '' or host:port"):
        list(run_units(square_or_fail, [1], ["a"], EngineSettings("ray", "nonsense"), "features"))


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_an_empty_address_starts_a_ray_instance_for_the_run(monkeypatch):
    for key, value in RAY_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    settings = EngineSettings("ray", "")
    try:
        results = {r.index: r.value for r in run_units(square_or_fail, [2, 3, 4], ["a", "b", "c"], settings,
                                                       "features")}
        assert results == {0: 4, 1: 9, 2: 16}
        with pytest.raises(EngineError, match="unit -5 is negative"):  # the task's own exception, not Ray's
            list(run_units(square_or_fail, [-5], ["a"], settings, "features"))
    finally:
        shutdown()


def test_a_worker_with_other_packages_or_without_the_workspace_refuses_the_unit(tmp_path):
    from pipeline.data.engine import _run_unit, versions

    mine = versions()
    with pytest.raises(EngineError, match=r"has torch .* \(the driver: 0\.0\): every node needs the same"):
        _run_unit(square_or_fail, 2, "a", {**mine, "torch": "0.0"}, [], str(tmp_path))
    with pytest.raises(EngineError, match="cannot see .*missing: the workspace must be on a filesystem"):
        _run_unit(square_or_fail, 2, "a", mine, [str(tmp_path / "missing")], str(tmp_path))
    assert _run_unit(square_or_fail, 2, "a", mine, [str(tmp_path)], str(tmp_path)) == 4


def test_the_kill_worker_once_fault_arms_only_the_first_task_of_each_unit(tmp_path, monkeypatch):
    """Off, no task is armed; on, the first task of a unit leaves its marker and is armed for kill_point() while its
    unit runs, and the retry is not."""
    import pipeline.data.engine as engine
    from pipeline.common.faults import ENV
    from pipeline.testing.faults import ENGINE_KILL_WORKER_ONCE, faults_on

    def armed(unit):
        return engine._KILL_MIDWAY

    monkeypatch.delenv(ENV, raising=False)
    mine = engine.versions()
    assert engine._run_unit(armed, 0, "train-000000", mine, [], str(tmp_path)) is False
    kills = tmp_path / "kills"
    kills.mkdir()
    with faults_on({ENGINE_KILL_WORKER_ONCE: kills}):
        assert engine._run_unit(armed, 0, "train-000000", mine, [], str(tmp_path)) is True
        assert engine._KILL_MIDWAY is False  # disarmed once the unit returns
        assert engine._run_unit(armed, 0, "train-000000", mine, [], str(tmp_path)) is False  # Ray's retry
        assert engine._run_unit(armed, 0, "test-000000", mine, [], str(tmp_path)) is True
    assert sorted(p.name for p in kills.iterdir()) == ["test-000000.killed", "train-000000.killed"]
    engine.kill_point()  # not armed: returns


def test_local_processes_run_units_in_spawned_processes_and_raise_their_errors():
    two = EngineSettings.from_params({"local_processes": 2})
    assert two.processes_for(5) == 2 and two.processes_for(1) == 1 and two.processes_for(5, limit=1) == 1
    assert EngineSettings.from_params({"local_processes": 0}).processes_for(64) >= 1   # one per core
    with pytest.raises(EngineError, match="local_processes must be >= 0"):
        EngineSettings.from_params({"local_processes": -1})
    results = list(run_units(square_or_fail, [3, 1, 2], ["a", "b", "c"], two, "preprocess"))
    assert sorted((r.index, r.value) for r in results) == [(0, 9), (1, 1), (2, 4)]
    with pytest.raises(EngineError, match="unit -1 is negative"):
        list(run_units(square_or_fail, [1, -1, 2], ["a", "b", "c"], two, "preprocess"))
