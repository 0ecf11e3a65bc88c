"""DVC stage ``face_encoder``: VGGFace from verified pretrained weights, or trained on the face-image corpus.

    python -m stages.face_encoder --corpus data/face_corpus --shards data/shards \
        --out data/models/face_encoder.pt --metrics metrics/face_encoder.json
"""
from __future__ import annotations

import argparse
import sys
import time

from pipeline.checkpoints import CheckpointError, save_checkpoint
from pipeline.datasets import DatasetError
from pipeline.device import resolve_device
from pipeline.face_encoder import (FaceEncoderError, build_pretrained, count_parameters, shard_image_size,
                                   train_face_encoder)
from pipeline.io import write_json
from pipeline.params import ParamsError, load_section, require
from pipeline.sample.corpus import CorpusError, check_corpus_meta

KEYS = ("source", "weights", "sha256", "width", "fc_dim", "epochs", "batch_size", "lr", "dropout", "batch_norm",
        "attribute_weight", "seed", "device")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="face-image corpus to train on (stage face_corpus)")
    parser.add_argument("--shards", required=True, help="shards directory (stage preprocess): the crop size to match")
    parser.add_argument("--out", required=True, help="output checkpoint path")
    parser.add_argument("--metrics", required=True, help="metrics JSON path")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        params = load_section("face_encoder", args.params)
        require(params, *KEYS, section="face_encoder")
        source = str(params["source"])
        image_size = shard_image_size(args.shards)
        if source == "pretrained":
            model, config = build_pretrained(str(params["weights"]), str(params["sha256"]), image_size)
            metrics = {"source": "pretrained", "sha256": str(params["sha256"]).lower()}
            extra = {"source": "pretrained", "sha256": metrics["sha256"], "image_size": config["image_size"],
                     "n_identities": config["num_classes"]}
        elif source == "train":
            try:
                device = resolve_device(str(params["device"]))
            except RuntimeError as exc:  # cuda asked for on a machine without it
                raise FaceEncoderError(str(exc)) from exc
            corpus_size = shard_image_size(args.corpus)
            if corpus_size != image_size:
                raise FaceEncoderError(f"the face corpus {args.corpus} has {corpus_size}px images but the shards have "
                                       f"{image_size}px crops: set face_corpus.image_size: {image_size}")
            model, config, metrics = train_face_encoder(args.corpus, params, image_size, device,
                                                        check=check_corpus_meta)
            extra = {"source": "train", "image_size": image_size, "n_identities": metrics["n_identities"],
                     "seed": int(params["seed"]), "epochs": int(params["epochs"])}
        else:
            raise FaceEncoderError(f"face_encoder.source must be 'train' or 'pretrained', got {source!r}")
        metrics.update({"image_size": config["image_size"], "feature_dim": config["fc_dim"],
                        "n_params": count_parameters(model)})
        save_checkpoint(args.out, model.cpu(), "vggface", config, extra)
        write_json(args.metrics, metrics)
    except (ParamsError, FaceEncoderError, DatasetError, CheckpointError, CorpusError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    detail = (f"held-out identity accuracy {metrics['heldout_acc']:.3f} over {metrics['n_heldout']} clips "
              f"(chance {metrics['chance_acc']:.3f}), {metrics['n_identities']} identities"
              if source == "train" and metrics.get("heldout_acc") is not None else f"source {source}")
    print(f"face_encoder: {detail}; {metrics['n_params']} parameters, {config['image_size']}px, "
          f"feature dim {config['fc_dim']}, {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
