"""pipeline.common.stage: every DVC stage's entry point is written one way (``--params``, one error prefix, exit 2)."""
from __future__ import annotations

import ast
import subprocess
import sys

import pytest
import yaml

from pipeline.common.errors import PipelineError
from pipeline.common.stage import ERROR_EXIT, StageExit, run_stage

#: stage files that only re-export another stage's main (one set of code, another stage's outputs)
ALIASES = {"gender_corpus_download": "download", "gender_corpus_preprocess": "preprocess"}


def _stage_files(repo_root):
    return sorted(p for p in (repo_root / "stages").glob("*.py") if p.name != "__init__.py")


def test_every_stage_file_is_arguments_body_and_stage_main(repo_root):
    """No stage builds its own parser or catches its own errors: both live in run_stage."""
    for path in _stage_files(repo_root):
        if path.stem in ALIASES:
            assert f"from stages.{ALIASES[path.stem]} import main" in path.read_text()
            continue
        tree = ast.parse(path.read_text())
        names = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert {"add_arguments", "body"} <= names, f"{path.name}: {sorted(names)}"
        source = path.read_text()
        assert f'main = stage_main("{path.stem}", __doc__, add_arguments, body' in source, path.name
        assert "ArgumentParser(" not in source and "return 2" not in source, path.name
        assert not any(isinstance(node, ast.ExceptHandler) and node.type is not None
                       and "Error" in ast.unparse(node.type) for node in ast.walk(tree)), \
            f"{path.name} catches an error itself: raise it, run_stage prints it"


def test_every_dvc_stage_command_accepts_params(repo_root, capsys):
    import importlib

    for path in _stage_files(repo_root):
        with pytest.raises(SystemExit) as done:
            importlib.import_module(f"stages.{path.stem}").main(["--help"])
        assert done.value.code == 0 and "--params" in capsys.readouterr().out, path.name


def test_run_stage_prints_one_prefixed_line_and_exits_2(capsys, tmp_path):
    def add(parser):
        parser.add_argument("--x", default="1")

    def body(args):
        if args.x == "bad":
            raise PipelineError("x must not be bad")
        if args.x == "missing":
            raise FileNotFoundError(2, "No such file or directory", "nowhere.txt")
        if args.x == "blocked":
            raise StageExit("blocked by the site; retry later", 3)
        return f"demo: x={args.x} params={args.params}"

    assert run_stage("demo", "Demo.", add, body, ["--x", "2", "--params", str(tmp_path / "p.yaml")]) == 0
    assert capsys.readouterr().out.strip() == f"demo: x=2 params={tmp_path / 'p.yaml'}"
    assert run_stage("demo", "Demo.", add, body, ["--x", "bad"]) == ERROR_EXIT == 2
    assert capsys.readouterr().err == "demo: error: x must not be bad\n"
    assert run_stage("demo", "Demo.", add, body, ["--x", "missing"]) == 2
    assert capsys.readouterr().err.startswith("demo: error: [Errno 2] No such file or directory")
    assert run_stage("demo", "Demo.", add, body, ["--x", "blocked"]) == 3
    assert capsys.readouterr().err == "demo: error: blocked by the site; retry later\n"
    with pytest.raises(KeyError):  # a bug stays a traceback
        run_stage("demo", "Demo.", add, lambda args: {}["nothing"], [])


def test_a_bad_params_value_is_one_line_from_the_real_command(repo_root, tmp_path):
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    params["priors"]["neutral"] = "sideways"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, "-m", "stages.priors", "--features", str(tmp_path), "--gender",
                           str(tmp_path), "--manifest", str(tmp_path), "--out", str(tmp_path / "o"), "--metrics",
                           str(tmp_path / "m.json"), "--params", str(tmp_path / "params.yaml")],
                          cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("priors: error: ")


def test_every_error_class_of_the_library_derives_from_pipeline_error(repo_root):
    """So run_stage's one ``except`` covers them all (the download's per-attempt errors are internal)."""
    import importlib
    import inspect

    internal = {"AttemptError", "DownloadBlocked"}
    checked = 0
    for path in sorted((repo_root / "pipeline").rglob("*.py")):
        module = importlib.import_module(".".join(path.relative_to(repo_root).with_suffix("").parts)
                                         .removesuffix(".__init__"))
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and name.endswith("Error") and name not in internal:
                assert issubclass(cls, PipelineError), f"{module.__name__}.{name} does not derive from PipelineError"
                checked += 1
    assert checked >= 25
