"""The keys every training stage's params section shares, as one small sub-schema the stages' schemas extend.

``face_encoder``, ``gender``, ``train_decoder`` and ``train_encoder`` read these 16 keys the same way
(``pipeline.training.loop``, ``pipeline.training.distributed``). Kept small and stable: an edit here reruns every
training stage, while an edit to one stage's own schema (in its ``stages/<name>.py``) reruns that stage only.
"""
from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from pipeline.common.schema import Device, Field, PositiveFloat, PositiveInt, Section, Seed


class AdamKeys(Section):
    """Adam, its step schedule, the seed and the device: what every trained network's section has, the GAN families'
    and the judge's included (``pipeline.training.loop.make_optimizer`` reads them)."""

    lr: PositiveFloat = Field(description="Adam's learning rate")
    beta1: float = Field(ge=0, lt=1, description="Adam's beta1 (beta2 0.999)")
    eps: PositiveFloat = Field(description="Adam's epsilon")
    lr_decay: float = Field(gt=0, le=1, description="lr x lr_decay every lr_decay_every epochs (1.0 = constant)")
    lr_decay_every: PositiveInt = Field(description="epochs between two lr decays")
    seed: Seed
    device: Device = Field(description="auto (CUDA when present), cpu, cuda, cuda:N or mps")


class TrainingKeys(AdamKeys):
    """Optimiser, schedule, seed, device, precision and data-parallel keys of a training stage."""

    epochs: PositiveInt = Field(description="passes over the training data")
    batch_size: PositiveInt = Field(description="samples per step (per process under torchrun)")
    precision: Literal["fp32", "bf16", "fp16"] = Field(description="autocast precision (fp16 with a GradScaler)")
    num_workers: int = Field(ge=0, description="loader processes, each reading its own shards (0 = in process)")
    nproc: PositiveInt = Field(description="processes per node; > 1 reruns the stage under torchrun (DDP)")
    rank_split: Literal["samples", "shards"] = Field(description="DDP: each rank a stride of every shard's "
                                                                 "samples, or whole shards per rank")
    nnodes: PositiveInt = Field(description="nodes; > 1 needs rdzv_endpoint")
    rdzv_endpoint: str = Field(pattern=r"^$|^[\w.\-\[\]:]+:\d+$",
                               description='host:port of the c10d rendezvous for nnodes > 1 ("" = one node)')
    dist_timeout_s: PositiveInt = Field(description="DDP: seconds a process waits for the others (a collective, "
                                                    "the rendezvous store) before the run fails")

    @model_validator(mode="after")
    def _nodes_need_an_endpoint(self) -> "TrainingKeys":
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError(f"nnodes = {self.nnodes} needs rdzv_endpoint (host:port of the rendezvous)")
        return self
