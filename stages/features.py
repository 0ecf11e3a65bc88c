"""DVC stage ``features``: the face encoder's fc7 feature of every face crop, per shard, keyed by sample.

    python -m stages.features --shards data/shards --face-encoder data/models/face_encoder.pt --out data/features
"""
from __future__ import annotations

import argparse
import sys

from pipeline.checkpoints import CheckpointError
from pipeline.device import resolve_device
from pipeline.engine import EngineError, load_engine, shutdown
from pipeline.feature_files import FeaturesError
from pipeline.features import extract_features
from pipeline.params import ParamsError, load_section, require


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", required=True, help="shards directory (stage preprocess)")
    parser.add_argument("--face-encoder", required=True, help="face encoder checkpoint (stage face_encoder)")
    parser.add_argument("--out", required=True, help="output features directory")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        params = load_section("features", args.params)
        require(params, "fc7_relu", "batch_size", "device", section="features")
        try:
            device = resolve_device(str(params["device"]))
        except RuntimeError as exc:  # cuda asked for on a machine without it
            raise FeaturesError(str(exc)) from exc
        engine = load_engine(args.params)
        summary = extract_features(args.shards, args.face_encoder, args.out, bool(params["fc7_relu"]),
                                   int(params["batch_size"]), str(params["device"]) if engine.engine == "ray"
                                   else str(device), engine=engine)
    except (ParamsError, FeaturesError, CheckpointError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutdown()
    counts = ", ".join(f"{n} {split}" for split, n in summary["counts"].items())
    print(f"features: {counts} faces -> fc7 dim {summary['dim']} (relu={bool(params['fc7_relu'])}) in "
          f"{summary['shards']} shard file(s), {summary['seconds']:.1f}s on {device if engine.engine == 'local' else 'the Ray cluster'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
