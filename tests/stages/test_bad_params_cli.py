"""One real CLI run per stage with a bad value in its params section: exit 2, one line ``<stage>: error: ...``
naming the key, no traceback, nothing written (the check runs before the stage reads or writes anything, and
before a training stage relaunches itself under torchrun)."""
from __future__ import annotations

import math
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.ops.deps import stage_bodies

REPO = Path(__file__).resolve().parents[2]
BODIES = stage_bodies(REPO / "dvc.yaml")
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())

#: stage -> (section, key, bad value, what the sentence says)
BAD = {
    "sample": ("sample", "n_speakers", 2.5, "it must be a valid integer"),
    "face_corpus": ("face_corpus", "margin", math.nan, "it must be a finite number"),
    "preflight": ("train_encoder", "variants", ["no_such_variant"], "no_such_variant"),
    "manifest": ("manifest", "seed", [1, 2], "it must be a valid integer"),
    "download": ("download", "timeout", -1, "it must be greater than 0"),
    "preprocess": ("preprocess", "image_size", 64.5, "it must be a valid integer"),
    "face_encoder": ("face_encoder", "epochs", 0, "it must be greater than or equal to 1"),
    "features": ("features", "device", "bogus", "must be auto, cpu, cuda, cuda:N or mps"),
    "gender_corpus": ("gender_corpus", "test_fraction", 1.5, "it must be less than 1"),
    "gender_corpus_download": ("download", "retries", "three", "it must be a valid integer"),
    "gender_corpus_preprocess": ("preprocess", "detector", "haar", "it must be 'center', 'dlib'"),
    "gender": ("gender", "lr", math.inf, "it must be a finite number"),
    "priors": ("priors", "n", math.nan, "it must be a valid integer"),
    "train_decoder": ("train_decoder", "epochs", -1, "it must be greater than or equal to 1"),
    "attribute_probe": ("attribute_probe", "val_fraction", 0, "it must be greater than 0"),
    "judge_corpus": ("judge_corpus", "n_identities", 1_000_000, "it must be less than 1000000"),
    "judge": ("judge", "kind", "vgg", "it must be 'trained' or 'dlib'"),
    "evaluate_decoder": ("evaluate_decoder", "recall_k", [], "it must have at least 1 item"),
    "train_encoder": ("train_encoder", "batch_size", 0, "it must be greater than or equal to 1"),
    "evaluate": ("evaluate", "recall_k", [0], "it must be greater than or equal to 1"),
    "sf2f_train": ("sf2f_train", "image_size", 96, "the decoder reaches only 4·2^k px"),
    "sf2f_fuser": ("sf2f_fuser", "batch_size", 1, "it must be greater than or equal to 2"),
    "contrastive": ("contrastive", "batch_size", 1, "it must be greater than or equal to 2"),
    "train_selfsup_gan": ("train_selfsup_gan", "augment", "yes", "it must be a valid boolean"),
    "scldm_autoencoder": ("scldm_autoencoder", "latent_size", 0, "it must be greater than or equal to 1"),
    "scldm_train": ("scldm_train", "prediction_type", "sample", "it must be 'epsilon' or 'v_prediction'"),
    "scldm_sample": ("scldm_sample", "guidance_scale", -1.0, "it must be greater than or equal to 0"),
    "compare": ("compare", "families", ["sf2f", "stylegan"], "it must be 'arspm', 'sf2f', 'selfsup' or 'scldm'"),
    "report": ("report", "grid_columns", "8", "it must be a valid integer"),
}


def _command(body: dict, params: dict) -> list[str]:
    """The stage's cmd from dvc.yaml, with ${item} as the first variant and ${section.key} from ``params``."""
    cmd = body["cmd"].replace("${item}", str(params["train_encoder"]["variants"][0]))
    for section, values in params.items():
        if isinstance(values, dict):
            for key, value in values.items():
                cmd = cmd.replace(f"${{{section}.{key}}}", str(value))
    return [sys.executable if word == "python" else word for word in shlex.split(cmd)]


def test_every_stage_is_in_the_table() -> None:
    assert set(BAD) == set(BODIES)


@pytest.mark.slow
@pytest.mark.parametrize("stage", sorted(BAD))
def test_a_bad_value_stops_the_stage_with_one_line_and_writes_nothing(stage: str, tmp_path: Path) -> None:
    section, key, value, allowed = BAD[stage]
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[section][key] = value
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    before = set(tmp_path.rglob("*"))
    proc = subprocess.run(_command(BODIES[stage], params), cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "DVC_NO_ANALYTICS": "1"},
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    name = "download" if stage == "gender_corpus_download" else (
        "preprocess" if stage == "gender_corpus_preprocess" else stage)
    assert len(lines) == 1 and lines[0].startswith(f"{name}: error:"), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert key in lines[0] and allowed in lines[0], lines[0]
    assert set(tmp_path.rglob("*")) == before  # nothing written
