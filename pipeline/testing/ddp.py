"""A tiny data-parallel training run through ``pipeline.training.loop.fit``, for tests under torchrun.

    python -m pipeline.testing.ddp --root DIR --out w.pt --batch-size 4                 # one process
    python -m torch.distributed.run --standalone --nproc_per_node 2 -m pipeline.testing.ddp ... --batch-size 2

It trains a BatchNorm-free linear map on the dummy training inputs' face features (``make_training_inputs``
under ``--root``, written by the test beforehand) to predict each feature reversed, so that one process with batch
2B and two with batch B see the same global batches and must end with the same weights. ``--drop N`` leaves N
training samples out (an uneven count for the ranks); ``--rank-split shards --workers N`` deals whole shards to the
ranks and their loader workers instead. Rank 0 writes the weights and the history.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from pipeline.data.datasets import SplitDataset
from pipeline.training.distributed import current
from pipeline.training.loop import fit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--drop", type=int, default=0)
    parser.add_argument("--rank-split", default="samples", choices=("samples", "shards"))
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    dropped: set[str] = set()
    if args.drop:
        dropped = {s["key"] for s in SplitDataset(args.root / "shards", "train", fields=("meta",))}
        dropped = set(sorted(dropped)[: args.drop])
    dataset = SplitDataset(args.root / "shards", "train", fields=("meta",), features_dir=args.root / "features",
                           shuffle=True, seed=0, buffer_size=4,
                           keep=(lambda meta: meta.get("key") not in dropped) if dropped else None)
    dim = next(iter(dataset))["feature"].shape[0]
    model = torch.nn.Linear(dim, dim)

    def step(batch: dict, net: torch.nn.Module) -> tuple[torch.Tensor, dict[str, float]]:
        feature = batch["feature"]
        loss = (net(feature) - feature.flip(1)).pow(2).mean()
        return loss, {}

    params = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": 0.01, "beta1": 0.5, "eps": 1e-4,
              "lr_decay": 1.0, "lr_decay_every": 1, "num_workers": args.workers, "precision": "fp32",
              "rank_split": args.rank_split}
    history = fit(model, dataset, step, params, args.out, args.out.parent / "plots",
                  "ddp-test", "ddp-test")
    if current().main:
        torch.save(model.state_dict(), args.out)
        args.out.with_suffix(".json").write_text(json.dumps({"history": history,
                                                             "world_size": current().world_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
