"""configs/paper.yaml → `dvc exp run -S` arguments: only existing keys, parseable by DVC, the paper's values."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dvc.utils.hydra import apply_overrides

from pipeline.common.params import ParamsError, load_params
from pipeline.ops.overlay import format_value, main, override_args

# Every value the paper fixes, with where it says so (AR-SPM, Wang et al.). The paper overlay must give each one.
PAPER_VALUES = [
    ("preprocess.image_size", 224, "§4.1: faces cropped to 224x224"),
    ("preprocess.detector", "face_alignment", "a CNN face detector, as AVSpeech's crops need (not a paper number)"),
    ("face_encoder.source", "pretrained", "§3.1: VGGFace [2], the Oxford model"),
    ("face_encoder.width", 1.0, "§3.1 / Table 3: full VGG-16 widths"),
    ("face_encoder.fc_dim", 4096, "§3.4.2: fc features in R^4096"),
    ("train_decoder.faces", "shards", "§4.1: FD trained on AVSpeech's 224x224 face crops"),
    ("train_decoder.fc1_dim", 1000, "§3.3 / Table 2: fc 4096 -> 1000"),
    ("train_decoder.width", 1.0, "Table 2: FD mirrors VGGFace at full width"),
    ("train_decoder.msssim_win_size", 11, "§3.4.1: MS-SSIM with its Gaussian window G (Zhao et al.'s 11)"),
    ("train_decoder.alpha", 0.84, "§3.4.1, eq. 5: alpha = 0.84"),
    ("train_decoder.cos_weight", 1.0, "§3.4.1, eq. 6: L_total = L_image + L_CS"),
    ("train_encoder.lambdas", [1.0, 0.04, 1.2], "§3.4.2, eq. 7: lambda1 = 1, lambda2 = 0.04, lambda3 = 1.2"),
    ("train_encoder.width", 1.0, "Table 3: SE at full width"),
    ("priors.n", 10000, "§3.1: 'we finally take n equals 10000'"),
    ("priors.neutral", "balanced", "§3.1, eq. 3: a gender-balanced face image set"),
    ("priors.convergence_n", [10, 50, 100, 500, 1000, 5000, 10000], "§3.1 / Table 1"),
] + [
    (f"{stage}.{key}", value, "§4.1: Adam(beta1 0.5, eps 1e-4), lr 0.001 x 0.9 every 2 epochs, 50 epochs, batch 16")
    for stage in ("train_decoder", "train_encoder")
    for key, value in (("epochs", 50), ("batch_size", 16), ("lr", 0.001), ("beta1", 0.5), ("eps", 0.0001),
                       ("lr_decay", 0.9), ("lr_decay_every", 2))
]


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
        [sys.executable, "-m", "pipeline.ops.overlay", "configs/paper.yaml"],
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
    for key, value, source in PAPER_VALUES:
        section, name = key.split(".")
        assert applied[section][name] == value, f"{key} should be {value!r} ({source}), got {applied[section][name]!r}"


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
