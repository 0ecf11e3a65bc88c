"""DVC stage ``gender``: the voice gender classifier, its held-out accuracy, and a gender for every sample.

    python -m stages.gender --shards data/shards --corpus data/gender_corpus/shards --out data/gender \
        --metrics metrics/gender.json
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
    parser.add_argument("--corpus", default="", help="shards of the labelled gender corpus (stage "
                        "gender_corpus_preprocess; empty when none is configured)")
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
        metrics = run_gender(args.shards, args.out, params, device, corpus_dir=args.corpus or None)
        write_json(args.metrics, metrics)
    except (ParamsError, GenderError, DatasetError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    if not metrics["available"]:
        print("gender: no labelled train samples: predictions written without a gender; the male/female priors "
              f"and the gender variants are unavailable ({seconds:.1f}s)", file=sys.stderr)
        return 0
    held_out = metrics["corpus_test"] if metrics["trained_on"] == "gender_corpus" else metrics["test"]
    trained = metrics["corpus_train"] if metrics["trained_on"] == "gender_corpus" else metrics["train"]
    where = "the gender corpus" if metrics["trained_on"] == "gender_corpus" else "the manifest"
    acc = "n/a (no labelled test samples)" if held_out["accuracy"] is None else f"{held_out['accuracy']:.3f}"
    print(f"gender: trained on {where}; held-out accuracy {acc} on {held_out['n']} labelled test samples "
          f"(train acc {trained['accuracy']:.3f} on {trained['n']}), {seconds:.1f}s on {device}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
