"""The suite's scheduling: an ``xdist_group`` stays on one worker under ``make test``'s ``--dist loadgroup``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

GROUPED = '''
import os, pytest

@pytest.mark.xdist_group("one")
@pytest.mark.parametrize("i", range(8))
def test_grouped(i):
    with open(os.path.join(os.environ["OUT_DIR"], f"grouped-{i}"), "w") as fh:
        fh.write(os.environ["PYTEST_XDIST_WORKER"])

@pytest.mark.parametrize("i", range(8))
def test_free(i):
    pass
'''


def test_an_xdist_group_runs_on_one_worker(repo_root: Path, tmp_path: Path) -> None:
    """Two workers, eight grouped tests among eight free ones: every grouped test on the same worker (under pytest 9
    with pytest-xdist 3.8 they were split, without tests/conftest.py's node-id suffix)."""
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n")
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT_DIR": str(out), "PYTHONPATH": str(repo_root)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup",
                           "--no-loadscope-reorder", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    workers = {p.read_text() for p in out.iterdir()}
    assert len(list(out.iterdir())) == 8 and len(workers) == 1, workers
