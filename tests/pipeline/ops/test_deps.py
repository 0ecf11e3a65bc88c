"""pipeline.ops.deps: dvc.yaml's code deps are exactly the files each stage runs, regenerated without touching the
rest of dvc.yaml, and the import graph has no cycle."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.ops import deps


def _code_tree(repo_root: Path, dst: Path) -> Path:
    """A copy of the code and dvc.yaml (what the generator reads) to edit freely."""
    for name in ("pipeline", "models", "stages"):
        shutil.copytree(repo_root / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo_root / "dvc.yaml", dst / "dvc.yaml")
    return dst


def test_the_code_deps_in_dvc_yaml_are_exact(repo_root: Path) -> None:
    """What `make deps` writes is what is committed: the real command, as CI and a developer run it."""
    proc = subprocess.run([sys.executable, "-m", "pipeline.ops.deps", "--check"], cwd=repo_root,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "exact" in proc.stdout


def test_check_names_a_missing_file_an_extra_file_and_a_folder(repo_root: Path, tmp_path: Path) -> None:
    root = _code_tree(repo_root, tmp_path)
    text = (root / "dvc.yaml").read_text()
    text = text.replace("      - pipeline/data/sample/face.py\n", "", 1)  # sample's first block lists it
    text = text.replace("      - stages/manifest.py\n", "      - stages/manifest.py\n      - pipeline/serve/app.py\n"
                        "      - pipeline/data/download\n", 1)
    (root / "dvc.yaml").write_text(text)
    problems = deps.check(root)
    assert any(p.startswith("sample runs pipeline/data/sample/face.py but does not list") for p in problems)
    assert any(p.startswith("manifest lists pipeline/serve/app.py but does not run") for p in problems)
    assert any("pipeline/data/download, which is not a file" in p for p in problems)
    proc = subprocess.run([sys.executable, "-m", "pipeline.ops.deps", "--check", "--root", str(root)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "make deps" in proc.stderr


def test_write_regenerates_only_the_code_entries(repo_root: Path, tmp_path: Path) -> None:
    """Comments, data deps (with their comments), params and outs stay byte for byte."""
    root = _code_tree(repo_root, tmp_path)
    original = (root / "dvc.yaml").read_text()
    mangled = "\n".join(line for line in original.splitlines() if not line.strip().startswith("- pipeline/common/"))
    (root / "dvc.yaml").write_text(mangled + "\n")
    assert deps.write(root) is True
    assert (root / "dvc.yaml").read_text() == original
    assert deps.write(root) is False


def test_an_added_import_is_picked_up(repo_root: Path, tmp_path: Path) -> None:
    root = _code_tree(repo_root, tmp_path)
    report = root / "pipeline" / "evaluation" / "report.py"
    report.write_text(report.read_text() + "\n\ndef _late():\n    from pipeline.data import shards  # noqa: F401\n")
    assert "pipeline/data/shards.py" in deps.expected_deps(root)["report"]
    assert any(p.startswith("report runs") and "pipeline/data/shards.py" in p for p in deps.check(root))


def test_the_closure_follows_function_level_package_and_child_process_imports(repo_root: Path) -> None:
    closure = deps.import_closure(["stages.gender"], repo_root)
    assert "pipeline/training/loop.py" in closure  # imported inside train_classifier
    assert {"stages/__init__.py", "pipeline/__init__.py", "pipeline/training/__init__.py"} <= closure
    assert "models/gender.py" in closure and "models/__init__.py" in closure
    # the yt-dlp worker runs as `python -m pipeline.data.download.ytdlp_worker` in a child process
    assert "pipeline/data/download/ytdlp_worker.py" in deps.import_closure(["stages.download"], repo_root)


def test_a_stage_depends_only_on_the_models_it_builds(repo_root: Path) -> None:
    expected = deps.expected_deps(repo_root)
    assert {f for f in expected["train_decoder"] if f.startswith("models/")} == {
        "models/__init__.py", "models/_scale.py", "models/cbam.py", "models/decoder.py", "models/losses.py",
        "models/vggface.py"}
    for stage in ("sample", "face_corpus", "preflight", "manifest", "download", "preprocess", "report"):
        assert not [f for f in expected[stage] if f.startswith("models/")], stage


def test_the_renderer_is_code_of_the_drawing_stages_only(repo_root: Path) -> None:
    expected = deps.expected_deps(repo_root)
    assert {s for s, files in expected.items() if "pipeline/data/sample/face.py" in files} == {
        "sample", "face_corpus", "judge_corpus"}


def test_family_code_reruns_only_its_family_compare_and_report(repo_root: Path) -> None:
    """An edit under pipeline/families/sf2f/ reruns SF2F's stages and the comparison, never an AR-SPM stage (the
    layer contract keeps it so); an edit to AR-SPM's code never reruns a family's training stage."""
    runs_sf2f = {stage for stage, files in deps.expected_deps(repo_root).items()
                 if any(f.startswith("pipeline/families/sf2f/") for f in files)}
    assert runs_sf2f == {"sf2f_train", "sf2f_fuser", "compare"}
    runs_arspm = {stage for stage, files in deps.expected_deps(repo_root).items()
                  if any(f.startswith("pipeline/arspm/train") for f in files)}
    assert not [s for s in runs_arspm if s.startswith("sf2f_")]
    # the self-supervised family: its GAN's code reruns the GAN and the comparison; the contrastive pretraining it
    # shares (with SCLDM) reruns its own stage too, and neither reruns SF2F or AR-SPM
    runs = {prefix: {stage for stage, files in deps.expected_deps(repo_root).items()
                     if any(f.startswith(prefix) for f in files)}
            for prefix in ("pipeline/families/selfsup/", "pipeline/families/contrastive/", "pipeline/data/label_free")}
    assert runs["pipeline/families/selfsup/"] == {"train_selfsup_gan", "compare"}
    assert runs["pipeline/families/contrastive/"] == {"contrastive", "train_selfsup_gan", "scldm_train", "scldm_sample",
                                                      "compare"}
    assert runs["pipeline/data/label_free"] == {"contrastive", "train_selfsup_gan", "scldm_autoencoder", "scldm_train",
                                                "scldm_sample", "compare"}
    # SCLDM: its code reruns its stages and the comparison; the autoencoder's stage does not run the contrastive
    # encoders' code, so an edit there does not retrain it
    scldm = {stage for stage, files in deps.expected_deps(repo_root).items()
             if any(f.startswith("pipeline/families/scldm/") for f in files)}
    assert scldm == {"scldm_autoencoder", "scldm_train", "scldm_sample", "compare"}


def test_the_import_graph_has_no_cycle(repo_root: Path) -> None:
    assert deps.find_cycles(deps.import_graph(repo_root)) == []


def test_find_cycles_finds_each_cycle_once() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}
    assert sorted(deps.find_cycles(graph)) == [["a", "b", "c"], ["d", "e"]]
    assert deps.find_cycles({"x": {"y"}, "y": set()}) == []


def test_a_cmd_that_is_not_python_m_is_refused_in_one_sentence() -> None:
    with pytest.raises(deps.DepsError, match="does not run 'python -m <module>'"):
        deps.entry_module({"cmd": "bash run.sh"})
    assert deps.entry_module({"cmd": "python -m stages.report --out reports"}) == "stages.report"


def test_check_reports_an_import_cycle(repo_root: Path, tmp_path: Path) -> None:
    root = _code_tree(repo_root, tmp_path)
    errors = root / "pipeline" / "common" / "errors.py"  # params imports errors; now errors imports params too
    errors.write_text(errors.read_text() + "\n\ndef _loop():\n    from pipeline.common import params  # noqa: F401\n")
    cycles = [p for p in deps.check(root) if p.startswith("import cycle:")]
    assert cycles == ["import cycle: pipeline/common/errors.py -> pipeline/common/params.py (break it: see "
                      "docs/design.md, Layers)"]
