"""DVC stage ``gender``: the voice gender classifier, its held-out accuracy, and a gender for every sample.

    python -m stages.gender --shards data/shards --out data/gender --metrics metrics/gender.json
"""
from __future__ import annotations

import argparse
import sys
import time

from pipeline.checkpoints import CheckpointError
from pipeline.datasets import DatasetError
from pipeline.device import resolve_device
from pipeline.gender import GenderError, run_gender
from pipeline.io import write_json
from pipeline.params import ParamsError, load_section, require


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", required=True, help="shards directory (stage preprocess)")
    parser.add_argument("--out", required=True, help="output directory (model.pt, predictions.parquet)")
    parser.add_argument("--metrics", required=True, help="metrics JSON path")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        params = load_section("gender", args.params)
        require(params, "width", "epochs", "batch_size", "lr", "seed", "device", section="gender")
        try:
            device = resolve_device(str(params["device"]))
        except RuntimeError as exc:  # cuda asked for on a machine without it
            raise GenderError(str(exc)) from exc
        metrics = run_gender(args.shards, args.out, params, device)
        write_json(args.metrics, metrics)
    except (ParamsError, GenderError, DatasetError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    if not metrics["available"]:
        print("gender: no labelled train samples: predictions written without a gender; the male/female priors "
              f"and the gender variants are unavailable ({seconds:.1f}s)", file=sys.stderr)
        return 0
    test = metrics["test"]
    acc = "n/a (no labelled test samples)" if test["accuracy"] is None else f"{test['accuracy']:.3f}"
    print(f"gender: held-out accuracy {acc} on {test['n']} labelled test samples "
          f"(train acc {metrics['train']['accuracy']:.3f} on {metrics['train']['n']}), {seconds:.1f}s on {device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
