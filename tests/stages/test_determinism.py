"""Same params and inputs → byte-identical data outputs in two separate project copies (so DVC hashes match).

One tiny project runs the whole DAG (shared with the other DVC tests of the session); a fresh ``git clone`` of it
(same code and params, no DVC cache, no outputs) reruns the data stages up to ``priors`` with ``--force``; every
data output must get the same md5 in ``dvc.lock`` as in the first run.
This covers generated media (sample), the manifest, raw clip shards, WebDataset shards, the face encoder trained
on CPU (a training checkpoint: seeded, deterministic on CPU), features, gender model and predictions, and priors.
Metrics files are left out: they may hold timings.
"""
from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from pipeline.testing.project import (
    lock_outs,
    ran_stages,
    run_dvc,
    run_git,
    session_base,
    shared_tiny_run,
)

DATA_OUTS = (
    "data/sample",
    "data/manifest",
    "data/raw",
    "data/shards",
    "data/models/face_encoder.pt",
    "data/features",
    "data/gender",
    "data/priors",
)


@pytest.mark.slow
@pytest.mark.longest(61)
def test_data_outputs_identical_across_two_clones(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    first = shared_tiny_run(session_base(tmp_path_factory))
    second = tmp_path / "second"
    run_git(tmp_path, "clone", "-q", str(first), str(second))
    assert not (second / "data").exists()
    proc = run_dvc(second, "repro", "--force", "priors")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert ran_stages(proc.stdout) >= {"sample", "manifest", "download", "preprocess", "face_encoder", "priors"}

    a, b = lock_outs(first), lock_outs(second)
    assert all(a.get(path) and b.get(path) for path in DATA_OUTS)
    differing = sorted(path for path in DATA_OUTS if a[path] != b[path])
    # Strict: any difference fails, naming the files (shard bookkeeping no longer records timings).
    files = _differing_files(first, second, differing) if differing else []
    assert not differing, f"data outputs differ between two runs with the same params: {differing} ({files})"


def _differing_files(first: Path, second: Path, outs: list[str]) -> list[str]:
    """Relative paths under ``outs`` whose bytes differ (or exist on one side only) between two workspaces."""
    files = []
    for out in outs:
        names = set()
        for root in (first, second):
            base = root / out
            names |= {str(p.relative_to(root)) for p in ([base] if base.is_file() else base.rglob("*")) if p.is_file()}
        for name in sorted(names):
            left, right = first / name, second / name
            if not (left.is_file() and right.is_file() and filecmp.cmp(left, right, shallow=False)):
                files.append(name)
    return files
