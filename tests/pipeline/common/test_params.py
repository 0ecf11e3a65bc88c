"""params.yaml ↔ dvc.yaml consistency: load_section refuses typos and undeclared keys with one sentence."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.common.params import (
    ParamsError,
    declared_params,
    leaf_keys,
    load_params,
    load_section,
    require,
    validate_params,
)

DVC_YAML = """
stages:
  priors:
    cmd: python -m stages.priors --csv ${manifest.csv}
    params:
      - priors.n
      - priors.seed
      - params.yaml:
          - priors.convergence_n
  train:
    foreach: ${train.variants}
    do:
      cmd: python -m stages.train --variant ${item}
      params:
        - train.lr
"""

PARAMS = {
    "manifest": {"csv": "a.csv"},
    "priors": {"n": 10, "seed": 0, "convergence_n": [1, 2]},
    "train": {"variants": ["a", "b"], "lr": 0.1},
}


def write_project(tmp_path: Path, params: dict) -> Path:
    (tmp_path / "dvc.yaml").write_text(DVC_YAML, encoding="utf-8")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return tmp_path / "params.yaml"


def test_declared_params_reads_lists_mappings_and_interpolations(tmp_path: Path) -> None:
    write_project(tmp_path, PARAMS)
    assert declared_params(tmp_path / "dvc.yaml") == {
        "manifest": {"csv"},
        "priors": {"n", "seed", "convergence_n"},
        "train": {"variants", "lr"},
    }


def test_load_section_returns_consistent_section(tmp_path: Path) -> None:
    path = write_project(tmp_path, PARAMS)
    assert load_section("priors", path) == PARAMS["priors"]
    assert validate_params(load_params(path), tmp_path / "dvc.yaml") == []


def test_typo_key_is_refused_with_suggestion(tmp_path: Path) -> None:
    params = {**PARAMS, "priors": {"nn": 10, "seed": 0, "convergence_n": [1]}}
    path = write_project(tmp_path, params)
    with pytest.raises(ParamsError) as err:
        load_section("priors", path)
    message = str(err.value)
    assert "unknown params key 'priors.nn'" in message
    assert "did you mean 'n'?" in message
    assert "'priors.n' is declared in dvc.yaml but missing" in message
    assert "\n" not in message


def test_unknown_section_and_missing_section_reported(tmp_path: Path) -> None:
    params = {**PARAMS, "prios": {"n": 1}}
    del params["train"]
    path = write_project(tmp_path, params)
    problems = validate_params(load_params(path), tmp_path / "dvc.yaml")
    assert "unknown params section 'prios': no stage in dvc.yaml uses it (did you mean 'priors'?)" in problems
    assert "params section 'train' is used by dvc.yaml but missing from params.yaml" in problems
    with pytest.raises(ParamsError, match="has no 'train' section"):
        load_section("train", path)


def test_without_dvc_yaml_no_validation(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"x": {"anything": 1}}), encoding="utf-8")
    assert load_section("x", tmp_path / "params.yaml") == {"anything": 1}


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_section("x", tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("a: [1,\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_section("a", bad)


def test_require_names_missing_keys() -> None:
    require({"a": 1}, "a")
    with pytest.raises(ParamsError, match="missing params key\\(s\\) in section 's': b, c"):
        require({"a": 1}, "a", "b", "c", section="s")


def test_leaf_keys_nested() -> None:
    assert sorted(leaf_keys({"a": {"b": 1, "c": {"d": [1]}}, "e": {}})) == ["a.b", "a.c.d", "e"]


def test_repository_params_match_dvc_yaml(repo_root: Path) -> None:
    """Every key of the real params.yaml is used by a stage, and every declared key exists."""
    assert validate_params(load_params(repo_root / "params.yaml"), repo_root / "dvc.yaml") == []
