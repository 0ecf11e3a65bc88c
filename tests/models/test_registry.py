"""The lazy model registry: importing ``models`` builds nothing and loads no torch; a stage imports the model
modules it builds, so its generated deps list exactly those files."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _run(code: str, repo_root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True)


def test_importing_models_loads_no_model_and_no_torch(repo_root: Path) -> None:
    proc = _run("import sys, models; print(sorted(models.ARCHITECTURES), 'torch' in sys.modules)", repo_root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[] False"


def test_an_architecture_whose_module_was_not_imported_names_that_module(repo_root: Path) -> None:
    proc = _run("import models\ntry:\n    models.build_model('face_decoder', {})\n"
                "except models.ModelConfigError as e:\n    print(e)", repo_root)
    assert "import models.decoder" in proc.stdout
    proc = _run("import models.decoder, models\nprint(type(models.build_model('face_decoder', "
                "{'width': 0.0625, 'image_size': 64})).__name__)", repo_root)
    assert proc.stdout.strip() == "FaceDecoder", proc.stderr


def test_every_listed_module_registers_its_architecture() -> None:
    import importlib

    import models

    for arch, module in models.MODULES.items():
        importlib.import_module(module)
        assert arch in models.ARCHITECTURES, arch
        assert models.ARCHITECTURES[arch].__module__ == module
    with pytest.raises(models.ModelConfigError, match="unknown model architecture 'resnet'"):
        models.build_model("resnet")
