"""Model tests run single-threaded: on the shared 2-core box, torch's thread pool oversubscribes and runs ~10x
slower under load. The previous thread count is restored after each test (the setting is process-global)."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def single_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
