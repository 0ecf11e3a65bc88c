"""The tiny trained workspace that the page's and the predict CLI's tests share (built once per test process)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.testing.app import make_app_workspace


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Path:
    """``data/`` with shards, features, priors, a voice gender classifier, a decoder and a neutral_fc encoder; tests
    copy it before they change anything in it."""
    return make_app_workspace(tmp_path_factory.mktemp("app"))
