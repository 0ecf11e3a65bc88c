"""DVC stage ``priors``: neutral and male/female face priors and the convergence table (paper Table 1).

    python -m stages.priors --features data/features --gender data/gender --manifest data/manifest \
        --out data/priors --metrics metrics/priors.json
"""
from __future__ import annotations

import argparse
import sys

from pipeline.feature_files import FeaturesError, feature_dim
from pipeline.gender import GenderError, known_genders
from pipeline.io import write_json
from pipeline.params import ParamsError, load_section, require
from pipeline.priors import (PriorsError, compute_priors, read_speaker_balance, save_convergence_priors,
                             save_priors, save_variant_priors)
from pipeline.training import VARIANTS, priors_needed

NEUTRAL_MODES = ("balanced", "random")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", required=True, help="features directory (stage features)")
    parser.add_argument("--gender", required=True, help="gender directory with predictions.parquet")
    parser.add_argument("--manifest", required=True, help="manifest directory (the train split's speakers)")
    parser.add_argument("--out", required=True, help="output directory for priors.npz")
    parser.add_argument("--metrics", required=True, help="metrics JSON path")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        params = load_section("priors", args.params)
        require(params, "n", "seed", "convergence_n", "neutral", section="priors")
        if params["neutral"] not in NEUTRAL_MODES:
            raise ParamsError(f"priors.neutral must be one of {', '.join(NEUTRAL_MODES)}, got {params['neutral']!r}")
        genders = known_genders(args.gender, split="train")
        balance = read_speaker_balance(args.manifest, genders) if params["neutral"] == "balanced" else None
        neutral_at: dict = {}
        priors, metrics = compute_priors(args.features, genders, int(params["n"]),
                                         [int(x) for x in params["convergence_n"]], int(params["seed"]),
                                         neutral_at=neutral_at, balance=balance)
        if metrics["dim"] != feature_dim(args.features):
            raise PriorsError(f"priors have dimension {metrics['dim']} but features meta says "
                              f"{feature_dim(args.features)}")
        counts = {name: group["n_used"] for name, group in metrics["groups"].items()}
        save_priors(f"{args.out}/priors.npz", priors, counts)
        save_convergence_priors(f"{args.out}/convergence.npz", neutral_at)
        save_variant_priors(args.out, priors, counts, {name: priors_needed(v) for name, v in VARIANTS.items()})
        write_json(args.metrics, metrics)
    except (ParamsError, FeaturesError, GenderError, PriorsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    groups = metrics["groups"]
    for name, group in groups.items():
        if group["capped"]:
            what = ("gender-balanced speakers" if name == "neutral" and metrics["neutral_balance"]["unit"] == "speaker"
                    else "train samples")
            print(f"priors: {name}: asked for n={group['n_requested']} but only {group['n_available']} {what}; "
                  f"using {group['n_used']}", file=sys.stderr)
    table = ", ".join(f"{row['n']}->{row['next_n']}: {row['neutral']:.3f}" for row in metrics["convergence"]
                      if row["neutral"] is not None)
    balance = metrics["neutral_balance"]
    print(f"priors: dim {metrics['dim']}, neutral n={groups['neutral']['n_used']} {balance['unit']}s "
          f"({balance['mode']}: {balance['used']['M']} M / {balance['used']['F']} F), "
          f"male n={groups['male']['n_used']}, female n={groups['female']['n_used']}; neutral L1 {table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
