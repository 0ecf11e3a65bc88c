"""The self-supervised family's stages depend on no labels file, as DVC resolves their deps: their data deps are the
shards (and, for the GAN, the contrastive encoders) whatever labels file the params name, and their code reads none
(the shards' own labels are dropped where they are read: tests/pipeline/data/test_label_free.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.testing.project import deep_merge

LABEL_FREE = {"contrastive": {"data/shards"}, "train_selfsup_gan": {"data/shards", "data/models/contrastive.pt"}}
#: code that reads labels: the attribute vocabulary and probe, the manifest's labels CSV, the speakers' attributes
LABEL_CODE = {"pipeline/data/attributes.py", "pipeline/data/manifest.py", "pipeline/faces/probe.py",
              "pipeline/data/gender_corpus.py"}


@pytest.mark.parametrize("labels_named", [False, True], ids=["demo", "a labels file named in both sections"])
def test_the_resolved_deps_hold_no_labels_file(repo_root: Path, tmp_path: Path, labels_named: bool) -> None:
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    params = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    if labels_named:
        named = {"labels": params["manifest"]["labels"]}
        params = deep_merge(params, {"contrastive": named, "train_selfsup_gan": named})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    shutil.copy(repo_root / "dvc.yaml", tmp_path / "dvc.yaml")
    Repo.init(tmp_path, no_scm=True)
    labels = {params["manifest"]["labels"], params["evaluate"]["attributes"], params["gender_corpus"]["labels"]} - {""}
    with Repo(str(tmp_path)) as repo:
        for name, data in LABEL_FREE.items():
            (stage,) = repo.stage.collect(name)
            params_deps = [dep for dep in stage.deps if isinstance(dep, ParamsDependency)]
            assert all(key.startswith(f"{name}.") for dep in params_deps for key in dep.params), name  # its own
            deps = {Path(str(dep.def_path)).as_posix() for dep in stage.deps if not isinstance(dep, ParamsDependency)}
            assert {d for d in deps if not d.startswith(("pipeline/", "models/", "stages/"))} == data, name
            assert not deps & labels and not deps & LABEL_CODE, name
            assert not any(path in stage.cmd for path in labels), name
