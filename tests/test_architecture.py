"""The package's layers (docs/design.md, Layers): import-linter keeps the order, and report stays light."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.ops import deps

LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT_IMPORTS, "--config", str(root / ".importlinter"), "--no-cache"], cwd=root,
                          capture_output=True, text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_every_import_follows_the_layer_order(repo_root: Path) -> None:
    proc = _lint(repo_root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_an_import_against_the_order_is_caught(repo_root: Path, tmp_path: Path) -> None:
    """The check is live: a data module that imports the report (a function-level import) breaks it."""
    for name in ("pipeline", "models", "stages"):
        shutil.copytree(repo_root / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo_root / ".importlinter", tmp_path / ".importlinter")
    media = tmp_path / "pipeline" / "data" / "media.py"
    media.write_text(media.read_text() + "\n\ndef _upwards():\n    from pipeline.evaluation import report  # noqa\n")
    family = tmp_path / "pipeline" / "families" / "sf2f"
    family.mkdir(exist_ok=True)
    (family / "__init__.py").write_text("from pipeline.arspm import variants  # noqa: F401\n")
    proc = _lint(tmp_path)
    assert proc.returncode != 0
    assert "pipeline.data.media -> pipeline.evaluation.report" in proc.stdout
    assert "pipeline.families.sf2f -> pipeline.arspm.variants" in proc.stdout


def test_the_report_runs_no_torch_model_or_training_code(repo_root: Path) -> None:
    closure = deps.import_closure(["stages.report"], repo_root)
    assert not [f for f in closure if f.startswith(("models/", "pipeline/training/", "pipeline/faces/"))], closure
    proc = subprocess.run([sys.executable, "-c", "import sys, stages.report; "
                           "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'models')))"],
                          cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_package_tree_shows_the_layers(repo_root: Path) -> None:
    """pipeline/ holds the layer subpackages and its __init__ only: no module left beside them."""
    top = sorted(p.name for p in (repo_root / "pipeline").iterdir() if p.name != "__pycache__")
    assert top == ["__init__.py", "arspm", "common", "data", "evaluation", "faces", "families", "ops", "serve",
                   "testing", "training"]


def test_a_family_that_imports_the_judge_is_caught(repo_root: Path, tmp_path: Path) -> None:
    """No family trains against the judge: a family or AR-SPM module importing the judge's network or code (even
    inside a function) breaks the contract."""
    for name in ("pipeline", "models", "stages"):
        shutil.copytree(repo_root / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo_root / ".importlinter", tmp_path / ".importlinter")
    family = tmp_path / "pipeline" / "families" / "cheat"
    family.mkdir(exist_ok=True)
    (family / "__init__.py").write_text("def loss():\n    from models.judge import JudgeResNet  # noqa: F401\n")
    decoder = tmp_path / "pipeline" / "arspm" / "train_decoder.py"
    decoder.write_text(decoder.read_text() + "\n\ndef _judged():\n    from pipeline.evaluation import judge  # noqa\n")
    proc = _lint(tmp_path)
    assert proc.returncode != 0
    assert "no family trains against the judge" in proc.stdout and "BROKEN" in proc.stdout
    assert "pipeline.families.cheat -> models.judge" in proc.stdout
    assert "pipeline.arspm.train_decoder -> pipeline.evaluation.judge" in proc.stdout
