"""SF2F as a face generator (``pipeline.faces.generator``): the 40-band log-mel of the spectrogram, the voice
encoder over each 125-frame segment, the attention fuser, the face decoder. A checkpoint of ``sf2f_train`` alone
(no fuser) encodes the whole 598-frame clip at once.
"""
from __future__ import annotations

from pathlib import Path

import torch

from pipeline.faces.generator import FaceGenerator
from pipeline.families.sf2f.model import FAMILY, load


class Sf2fGenerator(FaceGenerator):
    """SF2F's trained generator, loaded from an ``sf2f_fuser`` (or ``sf2f_train``) checkpoint."""

    family = FAMILY

    def __init__(self, checkpoint: str | Path, device: torch.device | str = "cpu", image_size: int | None = None):
        self.device = torch.device(device)
        self.net, _, header = load(checkpoint, image_size=image_size, device=self.device)
        self.net.eval()
        self.net.requires_grad_(False)
        self.image_size = int(header["image_size"])
        fuser = "encoder + fuser + decoder" if self.net.fuser is not None else "encoder + decoder, no fuser"
        self.description = f"SF2F ({fuser}, {self.image_size} px)"
        self.modules = (self.net,)

    def faces(self, specs: torch.Tensor, seed: int = 0) -> torch.Tensor:
        return self.net(specs)
