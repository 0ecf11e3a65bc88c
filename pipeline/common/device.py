"""Device choice and seeding shared by every stage that runs a model."""
from __future__ import annotations

import random

import numpy as np
import torch

from pipeline.common.errors import PipelineError


class DeviceError(PipelineError, RuntimeError):
    """A device the machine does not have."""


def resolve_device(name: str = "auto") -> torch.device:
    """Map a params value to a torch device: ``auto`` is CUDA when present, else CPU.

    ``cuda`` on a machine without CUDA is an error (a silent CPU fallback would hide a misconfiguration).
    """
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"device '{name}' requested but CUDA is not available on this machine")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch Generator seeded the same way (for DataLoader shuffles)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


def setup_torch(device_name: str = "auto", threads: int = 0) -> tuple[torch.device, str]:
    """For benchmarks: set torch's thread count (0 = its default), resolve the device, and describe it
    (the GPU's name, or the CPU and its threads)."""
    if threads:
        torch.set_num_threads(int(threads))
    device = resolve_device(device_name)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    return device, name
