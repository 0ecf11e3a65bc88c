"""A tiny trained workspace in the pipeline's ``data/`` layout, for the app's tests (seconds on a CPU).

``make_app_workspace(root)`` writes ``root/data`` with test and train shards, features, priors, a trained voice
gender classifier, a trained face decoder and a trained ``neutral_fc`` speech encoder (tiny widths, 2 epochs).
"""
from __future__ import annotations

from pathlib import Path

from pipeline.testing.training import IMAGE_SIZE, TINY_DECODER, TINY_ENCODER, make_training_inputs

GENDER = {"width": 0.0625, "epochs": 2, "batch_size": 4, "lr": 0.003, "beta1": 0.9, "eps": 1e-8, "lr_decay": 1.0,
          "lr_decay_every": 1, "seed": 0, "device": "cpu", "precision": "fp32", "num_workers": 0}


def make_app_workspace(root: str | Path) -> Path:
    """Build ``root/data`` (see the module docstring) and return it; the face images are ``IMAGE_SIZE`` px."""
    from pipeline.arspm.gender import run_gender
    from pipeline.arspm.train_decoder import train_decoder
    from pipeline.arspm.train_encoder import train_encoder

    data = Path(root) / "data"
    p = make_training_inputs(data)
    work = Path(root) / "work"
    run_gender(p["shards"], p["gender"], GENDER, work / "plots-gender")
    decoder = p["models"] / "decoder.pt"
    train_decoder(p["shards"], p["shards"], p["features"], p["face_encoder"], decoder, work / "decoder.json",
                  work / "plots-decoder", TINY_DECODER)
    train_encoder("neutral_fc", p["shards"], p["features"], p["priors"], p["gender"], decoder, p["face_encoder"],
                  p["models"] / "encoder-neutral_fc.pt", work / "encoder.json", work / "plots-encoder", TINY_ENCODER)
    return data


__all__ = ["IMAGE_SIZE", "make_app_workspace"]
