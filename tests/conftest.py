"""Shared fixtures: repository paths, the GRID clips, and an offline environment for every test."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GRID_DIR = REPO / "tests" / "fixtures" / "grid"  # vendored, with their CC BY 4.0 attribution

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def grid_dir() -> Path:
    """The 11 real GRID clips vendored in ``tests/fixtures/grid``."""
    return GRID_DIR


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests save things a person may want to look at (contact sheets, grids)."""
    out = REPO / "test-artifacts"
    out.mkdir(exist_ok=True)
    return out
