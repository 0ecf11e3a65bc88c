"""pipeline.ops.params_check: params.yaml, configs/paper.yaml over it, and the runtime cluster section go through
the stages' own schemas; a bad value anywhere is one sentence."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def _check(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.ops.params_check", *args], cwd=repo_root,
                          capture_output=True, text=True)


def test_params_yaml_and_the_paper_configuration_are_valid(repo_root: Path) -> None:
    for args in ((), ("--overlay", "configs/paper.yaml")):
        proc = _check(repo_root, *args)
        assert proc.returncode == 0, proc.stderr
        assert "every section is valid" in proc.stdout


def test_a_bad_overlay_value_and_an_unknown_overlay_key_are_one_sentence_each(repo_root: Path,
                                                                            tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"train_decoder": {"lr": float("nan")},
                                                       "cluster": {"engine": "spark"}}))
    proc = _check(repo_root, "--overlay", str(tmp_path / "bad.yaml"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert "params: error: params key 'train_decoder.lr' = nan is not allowed: it must be a finite number" in lines
    assert any(line.startswith("params: error: params key 'cluster.engine' = 'spark'") for line in lines)
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({"priors": {"nn": 5}}))
    proc = _check(repo_root, "--overlay", str(tmp_path / "typo.yaml"))
    assert proc.returncode == 2 and "sets priors.nn, which params.yaml does not have" in proc.stderr


def test_the_reference_names_every_key_of_every_schema(repo_root: Path) -> None:
    from pipeline.ops.params_check import reference, stage_schemas

    text = reference(repo_root)
    for section, schema in stage_schemas(repo_root).items():
        assert f"## `{section}`" in text
        for name in schema.model_fields:
            assert f"| `{name}" in text, f"{section}.{name}"
