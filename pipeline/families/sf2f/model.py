"""SF2F's networks put together, and its checkpoints.

``Sf2fGeneratorNet`` is the voice encoder, the optional attention fuser and the face decoder; ``discriminators``
are the patch and identity discriminators. One checkpoint holds both (``generator.*`` and ``discriminators.*``),
with a header that names the family, the stage that wrote it (``train``: encoder + decoder; ``fuser``: + the
fuser), the image size, the train split's log-mel statistics and the identity labels' source. ``sf2f_fuser``
rebuilds the architecture from ``sf2f_train``'s header; ``pipeline.families.sf2f.generator`` from either.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.faces.generator import check_family
from pipeline.families.sf2f.logmel import N_MELS, SEGMENT_FRAMES, SEGMENT_STRIDE, logmel_batch, normalize, segments
from pipeline.families.sf2f.modules import (
    AttentionFuser,
    FaceDecoder,
    IdentityDiscriminator,
    PatchDiscriminator,
    VoiceEncoder,
)

FAMILY = "sf2f"
ARCH = "sf2f"


class Sf2fGeneratorNet(nn.Module):
    """Voice encoder → (fuser over the clip's 125-frame segments) → face decoder; log-mel statistics as buffers."""

    def __init__(self, encoder_channels: list[int], embed_dim: int, decoder_width: int, image_size: int,
                 fuser: bool, mel_bins: int = N_MELS):
        super().__init__()
        self.encoder = VoiceEncoder(mel_bins, tuple(encoder_channels), embed_dim)
        self.decoder = FaceDecoder(embed_dim, image_size, decoder_width)
        self.fuser = AttentionFuser(embed_dim) if fuser else None
        self.image_size = int(image_size)
        self.register_buffer("mel_mean", torch.zeros(mel_bins))
        self.register_buffer("mel_std", torch.ones(mel_bins))

    def mels(self, specs: torch.Tensor) -> torch.Tensor:
        """Normalised log-mels ``(B, 40, 598)`` of spectrogram batches ``(B, 2, 257, 598)``."""
        return normalize(logmel_batch(specs.float()), self.mel_mean, self.mel_std)

    def embed_clip(self, mels: torch.Tensor) -> torch.Tensor:
        """A whole clip's voice embedding: the fuser over its segments, or (no fuser) the encoder over all of it."""
        if self.fuser is None:
            return self.encoder(mels)
        return self.fuser(self.encoder.segment_embeddings(segments(mels, SEGMENT_FRAMES, SEGMENT_STRIDE)))

    def forward(self, specs: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.embed_clip(self.mels(specs)))


def build(config: dict[str, Any]) -> tuple[Sf2fGeneratorNet, nn.ModuleDict]:
    """The generator and the discriminators a config describes (seed torch first for reproducible weights)."""
    generator = Sf2fGeneratorNet(list(config["encoder_channels"]), int(config["embed_dim"]),
                                 int(config["decoder_width"]), int(config["image_size"]), bool(config["fuser"]))
    widths = tuple(config["discriminator_widths"])
    discriminators = nn.ModuleDict({
        "patch": PatchDiscriminator(int(config["image_size"]), widths),
        "identity": IdentityDiscriminator(int(config["image_size"]), int(config["num_ids"]), widths,
                                          int(config["discriminator_hidden"])),
    })
    return generator, discriminators


def bundle(generator: nn.Module, discriminators: nn.Module) -> nn.ModuleDict:
    """The one module a checkpoint stores."""
    return nn.ModuleDict({"generator": generator, "discriminators": discriminators})


def load(path: str | Path, stage: str | None = None, image_size: int | None = None,
         device: torch.device | str = "cpu") -> tuple[Sf2fGeneratorNet, nn.ModuleDict, dict[str, Any]]:
    """An SF2F checkpoint's generator and discriminators (eval mode) and header; another family's checkpoint,
    another image size, or (``stage``) another stage's is refused in one sentence."""
    from pipeline.faces.generator import GeneratorError
    from pipeline.training.checkpoints import load_built

    def build_checked(header: dict[str, Any]) -> nn.Module:
        check_family(header, path, FAMILY, image_size)
        if stage is not None and header.get("stage") != stage:
            raise GeneratorError(f"{path} is written by sf2f_{header.get('stage')}, but an sf2f_{stage} "
                                 f"checkpoint is needed here")
        return bundle(*build(header["config"]))

    model, header = load_built(path, build_checked)
    model.to(device)
    return model["generator"], model["discriminators"], header
