"""Stage ``scldm_sample``: the sampler's settings (DDIM steps, guidance scale, seed offset), checked and written to
``sampler.json`` for every consumer of the family (``compare``, ``pipeline.serve.predict``, the page), and what they
give on the first test voices: ``samples_per_voice`` faces of each (one batch per voice, row i's noise from the
seed), their figure (a row per voice: its true face, then its samples), the milliseconds per face, and how much the
noise and the voice each change the drawn face (per-pixel spread across one voice's samples, and across voices
for one noise, each over the true faces' spread).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.common.errors import PipelineError


class SampleError(PipelineError, ValueError):
    """The sampler cannot run as asked (no test clip)."""


def _spread(faces: np.ndarray) -> float:
    """Mean over pixels of the per-pixel standard deviation across ``faces`` (uint8 ``(N, H, W, 3)``)."""
    return float(faces.astype(np.float64).std(axis=0).mean()) if len(faces) > 1 else 0.0


def samples_figure(true_faces: np.ndarray, grid: np.ndarray, path: str | Path) -> None:
    """A PNG: one row per voice, its true face, a gap, then its samples (uint8 ``(V, K, S, S, 3)``)."""
    from PIL import Image

    from pipeline.common.io import atomic_path

    voices, k, s = grid.shape[0], grid.shape[1], grid.shape[2]
    canvas = np.full((voices * (s + 2) + 2, (k + 1) * (s + 2) + 8, 3), 255, dtype=np.uint8)
    for v in range(voices):
        y = 2 + v * (s + 2)
        canvas[y:y + s, 2:2 + s] = true_faces[v]
        for j in range(k):
            x = 10 + (j + 1) * (s + 2)
            canvas[y:y + s, x:x + s] = grid[v, j]
    with atomic_path(path) as tmp:
        Image.fromarray(canvas).save(tmp, format="PNG")


def run_sample(checkpoint: str | Path, shards_dir: str | Path, out_dir: str | Path, params: dict[str, Any]
               ) -> dict[str, Any]:
    """Check the sampler's settings, draw the samples, write the figure and ``sampler.json`` (last, so that a
    failed run leaves no settings behind); returns the metrics."""
    from pipeline.common.device import resolve_device
    from pipeline.data.datasets import make_loader
    from pipeline.data.label_free import LabelFreeSplit
    from pipeline.faces.generator import check_specs
    from pipeline.families.scldm.generator import ScldmGenerator
    from pipeline.families.scldm.model import check_sampler, write_sampler

    settings = check_sampler({k: params[k] for k in ("ddim_steps", "guidance_scale", "temperature", "seed")},
                             "scldm_sample")
    device = resolve_device(params["device"])
    generator = ScldmGenerator(checkpoint, settings, device)
    voices, k = int(params["voices"]), int(params["samples_per_voice"])
    keys, specs, faces = [], [], []
    for batch in make_loader(LabelFreeSplit(shards_dir, "test"), voices):
        keys, specs, faces = batch["key"], batch["spec"], batch["face"]
        break
    if not keys:
        raise SampleError(f"the test split of {shards_dir} has no clip to sample")
    true = np.ascontiguousarray((faces.float().clamp(0, 1) * 255).round().to(torch.uint8).numpy().transpose(0, 2, 3, 1))
    specs = check_specs(specs)
    started = time.perf_counter()
    grid = np.stack([generator.generate(specs[i:i + 1].expand(k, -1, -1, -1), batch_size=k, seed=0)
                     for i in range(len(keys))])
    ms = (time.perf_counter() - started) * 1000.0 / grid.shape[0] / grid.shape[1]
    out = Path(out_dir)
    samples_figure(true, grid, out / "samples.png")
    truth = _spread(true)
    over_noise = float(np.mean([_spread(row) for row in grid])) / truth if truth and k > 1 else None
    over_voice = (float(np.mean([_spread(grid[:, j]) for j in range(k)])) / truth if truth and len(keys) > 1
                  else None)
    write_sampler(out / "sampler.json", **settings)
    metrics = {"voices": keys, "samples_per_voice": k, **settings, "image_size": generator.image_size,
               "prior": bool(generator.header.get("prior", True)),
               "noise_spread": over_noise, "voice_spread": over_voice}
    return {"metrics": metrics, "ms_per_face": round(ms, 3), "faces": int(grid.shape[0] * grid.shape[1])}
