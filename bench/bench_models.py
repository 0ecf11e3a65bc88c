"""Throughput of every AR-SPM model at paper size: forward and forward+backward, fp32 vs bf16 autocast,
contiguous vs channels_last. Prints a Markdown table with samples/s and ratios to the fp32/contiguous baseline,
plus the relative error of each variant's output against fp32 (to judge whether a faster setting is safe).

    python bench/bench_models.py --threads 1           # all models, CPU, batch 1, 2 timed iterations (~5 min)
    python bench/bench_models.py --models face_decoder --batch 1 --iters 1 --device cuda

Keep batch/iters small on CPU: VGGFace and the decoder are ~15 and ~30 GFLOP per sample forward. On a shared, loaded
box ``--threads 1`` was 3-6x faster than 2 threads (thread-pool oversubscription).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# each model module registers its architecture when imported (models.build_model builds them by name)
import models.decoder  # noqa: E402,F401
import models.encoder  # noqa: E402,F401
import models.gender  # noqa: E402,F401
import models.probe  # noqa: E402,F401
import models.vggface  # noqa: E402,F401
from models import build_model  # noqa: E402
from pipeline.common.device import setup_torch  # noqa: E402

MODELS = ("vggface", "face_decoder", "speech_encoder", "voice_gender")


def make_input(arch: str, batch: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Paper-size inputs: faces 224x224 in [0,1], 4096-d features, (2, 257, 598) spectrograms."""
    gen = torch.Generator().manual_seed(0)
    if arch == "vggface":
        x = torch.rand(batch, 3, 224, 224, generator=gen)
    elif arch == "face_decoder":
        x = torch.randn(batch, 4096, generator=gen).relu()
    else:
        x = torch.randn(batch, 2, 257, 598, generator=gen)
    return (x.to(device),)


def first_output(out: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


def run(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], backward: bool, bf16: bool,
        device: torch.device) -> torch.Tensor:
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        if backward:
            out = first_output(model(*inputs))
        else:
            with torch.no_grad():
                out = first_output(model(*inputs))
    if backward:
        out.float().square().mean().backward()
        model.zero_grad(set_to_none=True)
    return out.detach().float()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(arch: str, batch: int, iters: int, device: torch.device) -> list[dict]:
    torch.manual_seed(0)
    model = build_model(arch, {}).to(device).train()  # train mode: BN/dropout as in training
    for m in model.modules():  # keep dropout off so outputs are comparable across variants
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    rows = []
    reference: torch.Tensor | None = None
    for channels_last in (False, True):
        model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        inputs = make_input(arch, batch, device)
        if channels_last:
            inputs = tuple(x.to(memory_format=torch.channels_last) if x.dim() == 4 else x for x in inputs)
        for bf16 in (False, True):
            for backward in (False, True):
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                out = run(model, inputs, backward, bf16, device)  # warm-up (and the output to compare)
                sync(device)
                start = time.perf_counter()
                for _ in range(iters):
                    run(model, inputs, backward, bf16, device)
                sync(device)
                seconds = (time.perf_counter() - start) / iters
                if reference is None:
                    reference = out
                rel_err = float((out - reference).norm() / reference.norm().clamp_min(1e-12))
                rows.append({"model": arch, "pass": "fwd+bwd" if backward else "fwd",
                             "dtype": "bf16" if bf16 else "fp32",
                             "layout": "channels_last" if channels_last else "contiguous",
                             "samples_s": batch / seconds, "rel_err": rel_err if not backward else None,
                             "peak_gib": (torch.cuda.max_memory_allocated(device) / 2**30
                                          if device.type == "cuda" else None)})
                print(f"  {arch} {rows[-1]['pass']} {rows[-1]['dtype']} {rows[-1]['layout']}: "
                      f"{rows[-1]['samples_s']:.2f} samples/s", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device, name = setup_torch(args.device, args.threads)
    print(f"# AR-SPM model throughput ({name}, batch {args.batch}, {args.iters} timed iters, torch {torch.__version__})")
    print()
    print("| model | pass | dtype | layout | samples/s | x fp32/contiguous | out rel. err | peak GPU GiB |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: |")
    for arch in args.models:
        rows = bench(arch, args.batch, args.iters, device)
        base = {r["pass"]: r["samples_s"] for r in rows if r["dtype"] == "fp32" and r["layout"] == "contiguous"}
        for r in rows:
            err = "-" if r["rel_err"] is None else f"{r['rel_err']:.1e}"
            peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
            print(f"| {r['model']} | {r['pass']} | {r['dtype']} | {r['layout']} | {r['samples_s']:.2f} | "
                  f"{r['samples_s'] / base[r['pass']]:.2f} | {err} | {peak} |", flush=True)


if __name__ == "__main__":
    main()
