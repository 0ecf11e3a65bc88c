"""The paper configuration, end to end through ``dvc repro``, on the 11 real GRID clips.

``make_paper_smoke_project(dst)`` copies the project, applies ``configs/paper.yaml`` exactly as
``dvc exp run $(python -m pipeline.ops.overlay configs/paper.yaml)`` would, then only what a smoke run must change
(``SMOKE_OVERRIDES``): the GRID clips instead of AVSpeech, one epoch per training stage, a small embedded sample and
face corpus (unused by the paper's models but still stages of the DAG), a gender corpus (the same clips laid out
as VoxCeleb and listed by ``pipeline.data.recipes.voxceleb``, as a user with a local VoxCeleb copy would), the dlib
detector (face-alignment's S3FD
weights download at run time), and a generated full-size ``vgg_face_dag.pth`` pinned by its SHA-256 in place of
the Oxford weights. Model sizes, 224 px, MS-SSIM window 11, alpha 0.84, the cosine weight, lambdas, n and every
variant stay the paper's; only SCLDM's autoencoder runs at a quarter of its widths (its four blocks and 28x28
latents kept; ``SMOKE_OVERRIDES`` says why).

    python -m pipeline.testing.paper_smoke /tmp/paper-smoke   # build, run, print wall time and peak memory
"""
from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from pipeline.testing.project import REPO_ROOT, copy_project, deep_merge, read_params, run_dvc, run_git, write_params

GRID_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "grid"
WEIGHTS = "data/weights/vgg_face_dag.pth"

SMOKE_OVERRIDES: dict[str, Any] = {
    "sample": {"n_speakers": 4, "clips_per_speaker": 1},
    "face_corpus": {"n_identities": 8, "images_per_identity": 2, "frame_size": 256},
    "manifest": {"csv": "data/grid/avspeech.csv", "labels": "data/grid/labels.csv", "media": "data/grid",
                 "test_fraction": 0.3, "seed": 4},  # 2 F + 4 M train, 2 F + 3 M test: every variant has data
    # The paper trains its gender CNN on a separate labelled corpus: here the same clips as five VoxCeleb speakers.
    "gender_corpus": {"csv": "data/voxceleb/avspeech.csv", "labels": "data/voxceleb/labels.csv",
                      "media": "data/voxceleb", "test_fraction": 0.4},
    "download": {"sleep_interval_requests": 0.0, "retries": 1, "backoff": 0.1},
    # face-alignment's S3FD downloads its weights at run time; dlib's MMOD CNN is the offline CNN detector
    "preprocess": {"detector": "dlib_cnn", "align": "eyes", "dlib_upsample": 0},
    "face_encoder": {"weights": WEIGHTS},
    "gender": {"epochs": 1},
    "train_decoder": {"epochs": 1},
    "attribute_probe": {"epochs": 1, "val_fraction": 0.25},
    "judge_corpus": {"n_identities": 8, "images_per_identity": 2, "frame_size": 256},  # framed as face_corpus
    "judge": {"val_fraction": 0.3},  # dlib's judge (paper.yaml), measured on 3 held-out identities
    "train_encoder": {"epochs": 1},
    "evaluate_decoder": {"figure_columns": 4},
    "sf2f_train": {"steps": 1},  # SF2F at its paper size (128 px, full widths, batch 256): one step each
    "sf2f_fuser": {"steps": 1},
    # the self-supervised family at its full size, one step each; its batches are whole (the last partial one is
    # dropped), so they must fit the smoke run's 6 training clips
    "contrastive": {"steps": 1, "batch_size": 4},
    "train_selfsup_gan": {"steps": 1, "batch_size": 4},
    # SCLDM at its paper configuration (224 px crops -> 28x28 latents, four blocks), one step each, whole batches,
    # but the autoencoder at a quarter of LDM's widths: at full width (83.7M parameters, checked by
    # tests/pipeline/families/scldm/test_modules.py) one 224-px encode or decode takes 5-10 s on one core, and the
    # stage alone took 115 s of this run
    "scldm_autoencoder": {"steps": 1, "batch_size": 2, "widths": [32, 64, 128, 128]},
    "scldm_train": {"steps": 1, "batch_size": 4},
    "scldm_sample": {"ddim_steps": 2, "samples_per_voice": 2, "voices": 2},
    # no voices x z grid: each of its faces goes through SCLDM's 224-px decoder (compare took 66 s with a 2 x 2
    # grid, 41-45 s without); the tiny end-to-end run draws the grid (tests/stages/test_pipeline_e2e.py)
    "compare": {"noise_voices": 0},
}


def paper_overrides(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """``configs/paper.yaml`` as a nested mapping (what ``pipeline.ops.overlay`` turns into ``-S`` arguments)."""
    with (repo / "configs" / "paper.yaml").open(encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def write_full_size_vggface(path: Path, seed: int = 0) -> str:
    """A seeded, randomly initialised VGG-Face at the paper's size in the ``vgg_face_dag.pth`` layout; its SHA-256."""
    import torch

    from models.vggface import VGGFace
    from pipeline.testing.models import write_converted_vggface

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    return write_converted_vggface(path, VGGFace(width=1.0, image_size=224, fc_dim=4096, num_classes=2622))


def make_paper_smoke_project(dst: str | Path) -> Path:
    """A committed project copy in ``dst`` set up for the paper smoke run (see the module docstring)."""
    from pipeline.data.recipes.grid import prepare_grid
    from pipeline.data.recipes.voxceleb import prepare_voxceleb
    from pipeline.testing.voxceleb import make_voxceleb_layout

    dst = copy_project(dst, commit=False)
    # The clips travel with the project so that the manifest's media dependency is inside it.
    shutil.copytree(GRID_FIXTURES, dst / "data" / "grid" / "clips")
    prepare_grid(dst / "data" / "grid" / "clips", dst / "data" / "grid")
    meta = make_voxceleb_layout(dst / "data" / "voxceleb_copy", dst / "data" / "grid" / "clips")
    prepare_voxceleb(meta, dst / "data" / "voxceleb_copy" / "mp4", dst / "data" / "voxceleb", clips_per_speaker=0)
    sha = write_full_size_vggface(dst / WEIGHTS)
    params = deep_merge(paper_overrides(dst), SMOKE_OVERRIDES)
    params["face_encoder"]["sha256"] = sha
    write_params(dst, params)
    run_git(dst, "add", "-A")  # data/ is git-ignored: the clips and weights stay out of git
    run_git(dst, "commit", "-q", "-m", "paper smoke project")
    return dst


def peak_memory_mib() -> float:
    """Peak resident memory of the largest finished child process (a stage), in MiB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the paper configuration on the 11 GRID clips")
    parser.add_argument("dst", help="an empty directory for the project copy")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    project = make_paper_smoke_project(args.dst)
    setup = time.perf_counter() - start
    proc = run_dvc(project, "repro")
    total = time.perf_counter() - start
    print(proc.stdout[-4000:])
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        return 1
    params = read_params(project)
    print(f"paper smoke run: {total:.0f} s ({setup:.0f} s setup), peak stage memory {peak_memory_mib():.0f} MiB; "
          f"image_size {params['preprocess']['image_size']}, variants {len(params['train_encoder']['variants'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
