"""Device choice and seeding shared by every stage that runs a model."""
from __future__ import annotations

import random

import numpy as np
import torch

from pipeline.common.errors import PipelineError


class DeviceError(PipelineError, RuntimeError):
    """A device the machine does not have."""


#: what a ``device`` param (and ``--device``) may say
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str = "auto") -> torch.device:
    """Map a params value to a torch device: ``auto`` is CUDA when present, else CPU; else ``cpu``, ``cuda``,
    ``cuda:N`` or ``mps``.

    Anything else, and a device the machine does not have (``cuda`` without CUDA, ``cuda:3`` on a 2-GPU machine,
    ``mps`` off Apple silicon), is a :class:`DeviceError` (a silent CPU fallback would hide a misconfiguration).
    """
    text = "auto" if name is None or str(name).strip() == "" else str(name).strip()
    name = text.lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, sep, index = name.partition(":")
    if not ((name in ("cpu", "cuda", "mps")) or (kind == "cuda" and sep and index.isdigit())):
        raise DeviceError(f"device {text!r} is not one of {DEVICE_CHOICES}")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device '{name}' requested but CUDA is not available on this machine")
        if index and int(index) >= torch.cuda.device_count():
            raise DeviceError(f"device '{name}' requested but this machine has {torch.cuda.device_count()} CUDA "
                              f"device(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
        return torch.device("cuda", int(index)) if index else torch.device("cuda")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("device 'mps' requested but MPS (Apple silicon) is not available on this machine")
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
