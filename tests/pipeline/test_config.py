"""configs/paper.yaml → `dvc exp run -S` arguments: only existing keys, parseable by DVC, the paper's values."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import apply_overrides

from pipeline.config import format_value, main, override_args
from pipeline.params import ParamsError, load_params


def test_format_value_grammar() -> None:
    assert format_value(True) == "true"
    assert format_value(0.0001) == "0.0001"
    assert format_value("") == "''"
    assert format_value(["a", 1, 0.5]) == "['a',1,0.5]"
    with pytest.raises(ParamsError, match="spaces"):
        format_value("two words")


def test_paper_config_applies_through_dvcs_own_parser(repo_root: Path, tmp_path: Path) -> None:
    """The printed args, split as the shell splits $(...), give params.yaml exactly the paper's values."""
    printed = subprocess.run(
        [sys.executable, "-m", "pipeline.config", "configs/paper.yaml"],
        cwd=repo_root, capture_output=True, text=True, check=True,
    ).stdout
    words = printed.split()  # $(...) is split on whitespace, without quote removal
    assert words[0::2] == ["-S"] * (len(words) // 2)
    params = tmp_path / "params.yaml"
    shutil.copy(repo_root / "params.yaml", params)
    apply_overrides(params, words[1::2])  # what `dvc exp run -S` does to params.yaml
    applied = load_params(params)
    paper = yaml.safe_load((repo_root / "configs" / "paper.yaml").read_text(encoding="utf-8"))
    for section, values in paper.items():
        for key, value in values.items():
            assert applied[section][key] == value, f"{section}.{key}"
    assert applied["preprocess"]["image_size"] == 224
    assert applied["face_encoder"]["fc_dim"] == 4096 and applied["face_encoder"]["width"] == 1.0
    assert applied["train_decoder"]["fc1_dim"] == 1000
    assert applied["train_encoder"]["epochs"] == 50 and applied["train_encoder"]["batch_size"] == 16
    assert applied["train_encoder"]["lambdas"] == [1.0, 0.04, 1.2]
    assert applied["train_decoder"]["msssim_win_size"] == 11 and applied["train_decoder"]["alpha"] == 0.84
    assert applied["preprocess"]["detector"] == "face_alignment"
    assert applied["face_encoder"]["source"] == "pretrained"


def test_unknown_key_is_refused(repo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("priors:\n  nn: 5\n", encoding="utf-8")
    with pytest.raises(ParamsError, match="priors.nn do not exist in"):
        override_args(bad, repo_root / "params.yaml", repo_root / "dvc.yaml")
    assert main([str(bad), "--params", str(repo_root / "params.yaml"), "--dvc-yaml", str(repo_root / "dvc.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_all_flag_lists_every_key(repo_root: Path) -> None:
    args = override_args(repo_root / "configs" / "paper.yaml", repo_root / "params.yaml", repo_root / "dvc.yaml",
                         only_changed=False)
    assert "priors.n=10000" in args and "train_decoder.lr=0.001" in args
    assert not any(" " in a for a in args)
