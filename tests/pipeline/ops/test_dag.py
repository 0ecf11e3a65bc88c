"""pipeline.ops.dag: the DAG drawings in README.md and docs/ are generated from dvc.yaml and match what DVC sees."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.ops import dag
from pipeline.testing.project import run_dvc


def test_every_drawing_matches_dvc_yaml(repo_root: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pipeline.ops.dag", "--check"], cwd=repo_root,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_edges_are_the_ones_dvc_computes(repo_root: Path) -> None:
    """Through the real tool: `dvc dag --dot` of this repository gives the same stages and edges."""
    dot = run_dvc(repo_root, "dag", "--dot", check=True).stdout
    assert set(re.findall(r'^"([^"]+)";', dot, flags=re.M)) == set(dag.expanded_stages(repo_root))
    assert set(re.findall(r'^"([^"]+)" -> "([^"]+)";', dot, flags=re.M)) == dag.edges(dag.expanded_stages(repo_root))


def test_the_compact_drawing_fits_a_screen(repo_root: Path) -> None:
    lines = dag.compact(repo_root).splitlines()
    assert len(lines) <= 35  # a line per stage definition (29 with SCLDM's three), a header and the fences
    assert any(line.startswith("train_encoder@variant") for line in lines)
    assert sum("@" in line.split()[0] for line in lines[3:-1]) == 2  # foreach stages are one line each


def test_a_stale_drawing_is_caught_and_redrawn(repo_root: Path, tmp_path: Path) -> None:
    for name in ("dvc.yaml", "params.yaml", "README.md"):
        shutil.copy(repo_root / name, tmp_path / name)
    shutil.copytree(repo_root / "docs", tmp_path / "docs")
    text = (tmp_path / "dvc.yaml").read_text()
    (tmp_path / "dvc.yaml").write_text(text.replace("      - data/eval_decoder\n", "", 1))  # report's input
    assert dag.check(tmp_path) == ["README.md", "docs/stages.md", "docs/design.md"]
    assert dag.write(tmp_path) == ["README.md", "docs/stages.md", "docs/design.md"]
    assert "report                    <- evaluate@variant, compare\n" in (tmp_path / "README.md").read_text()
    assert dag.check(tmp_path) == []
    (tmp_path / "README.md").write_text("no markers\n")
    proc = subprocess.run([sys.executable, "-m", "pipeline.ops.dag", "--check", "--root", str(tmp_path)],
                          capture_output=True, text=True, cwd=repo_root)
    assert proc.returncode == 2 and "README.md has no <!-- dag:compact:start -->" in proc.stderr
