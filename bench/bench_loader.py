"""Data loading vs training consumption (docs/design.md, Budgets: read + decode must be >= 10x what one training step eats).

    python bench/bench_loader.py                                            # data/shards + data/features, or dummy
    python bench/bench_loader.py --shards /tmp/demo1/data/shards --features /tmp/demo1/data/features
    python bench/bench_loader.py --paper --paper-batch 2                    # also the paper-width step (slow on CPU)

Loading: one epoch of the train split through ``pipeline.data.datasets.SplitDataset`` + ``make_loader`` exactly as the
training stages build them (encoder: spec+meta+feature; decoder: face+feature; shuffled, batch_size from params,
``num_workers`` from ``--workers``, as ``pipeline.training.loop.fit`` builds it). Consumption: the stages' training step on random inputs of
the same shapes (encoder: SE forward with the tri-item loss through the frozen decoder fc1 and VGG classify,
backward, Adam step; decoder: FD forward, DecoderLoss through the frozen VGG features, backward, Adam step),
with the model sizes from params.yaml (and, with ``--paper``, the paper's widths on 224 px faces / 4096-d
features). Ratio = loader samples/s / step samples/s. Because ``fit`` loads in the training process, the share
of an epoch spent loading is 1 / (1 + ratio). Without ``--shards`` data, small dummy shards are built in a temp
dir (random spectrograms, so compression and decode costs are close to but not exactly real ones).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# each model module registers its architecture when imported (models.build_model builds them by name)
import models.decoder  # noqa: E402,F401
import models.encoder  # noqa: E402,F401
import models.gender  # noqa: E402,F401
import models.probe  # noqa: E402,F401
import models.vggface  # noqa: E402,F401
from models import build_model  # noqa: E402
from models.losses import DecoderLoss, tri_item_loss  # noqa: E402
from pipeline.common.device import setup_torch  # noqa: E402
from pipeline.common.params import load_params  # noqa: E402
from pipeline.data.datasets import SplitDataset, make_loader  # noqa: E402
from pipeline.data.feature_files import feature_dim, read_features_meta  # noqa: E402
from pipeline.training.loop import make_optimizer  # noqa: E402

BUDGET = 10.0  # docs/design.md, Budgets: read + decode >= 10x the training step's consumption
SPEC_SHAPE = (2, 257, 598)
# The paper's sizes (configs/paper.yaml): full-width VGG-16/SE/FD, 4096-d fc7 features, 224 px faces.
PAPER = {"width": 1.0, "fc_dim": 4096, "fc1_dim": 1000, "image_size": 224, "msssim_win_size": 11,
         "num_classes": 2622}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def loader_rate(shards: Path, features: Path, fields: tuple[str, ...], batch_size: int,
                epochs: int, workers: int) -> tuple[float, int]:
    """Samples/s of iterating the train split ``epochs`` times as the training stages do; (rate, samples)."""
    dataset = SplitDataset(shards, "train", fields=fields, features_dir=features, shuffle=True, seed=0)
    loader = make_loader(dataset, batch_size, num_workers=workers)
    seen = 0
    start = time.perf_counter()
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        for batch in loader:
            seen += len(batch["key"])
    return seen / (time.perf_counter() - start), seen


def step_rate(step: Callable[[], torch.Tensor], model: torch.nn.Module, params: dict[str, Any], batch: int,
              iters: int, device: torch.device) -> float:
    """Samples/s of ``fit``'s inner loop body (loss, zero_grad, backward, Adam step); median of ``iters``."""
    optimizer, _ = make_optimizer(model, params)
    model.train()
    times = []
    for i in range(iters + 1):  # the first step warms up allocators and kernels
        sync(device)
        start = time.perf_counter()
        loss = step()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync(device)
        if i:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def frozen(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    module.to(device).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def encoder_step_rate(cfg: dict[str, Any], params: dict[str, Any], batch: int, iters: int,
                      device: torch.device) -> float:
    """train_encoder's step (non_prior variant: the fc-fusion variants add one DxD layer)."""
    torch.manual_seed(0)
    dim = cfg["fc_dim"]
    face_encoder = frozen(build_model("vggface", {"width": cfg["vgg_width"], "image_size": cfg["image_size"],
                                                  "fc_dim": dim, "num_classes": cfg["num_classes"]}), device)
    decoder = frozen(build_model("face_decoder", {"feature_dim": dim, "fc1_dim": cfg["fc1_dim"],
                                                  "image_size": cfg["image_size"], "width": cfg["dec_width"]}),
                     device)
    model = build_model("speech_encoder", {"feature_dim": dim, "width": cfg["enc_width"]}).to(device)
    spec = torch.randn(batch, *SPEC_SHAPE, device=device)
    true = torch.randn(batch, dim, device=device).relu()
    lambdas = tuple(float(x) for x in params["lambdas"])

    def step() -> torch.Tensor:
        return tri_item_loss(true, model(spec), decoder.fc1, face_encoder.classify, lambdas)[0]

    return step_rate(step, model, params, batch, iters, device)


def decoder_step_rate(cfg: dict[str, Any], params: dict[str, Any], batch: int, iters: int,
                      device: torch.device) -> float:
    """train_decoder's step: FD forward, DecoderLoss with the frozen face encoder's features of the output."""
    torch.manual_seed(0)
    dim, size = cfg["fc_dim"], cfg["image_size"]
    face_encoder = frozen(build_model("vggface", {"width": cfg["vgg_width"], "image_size": size, "fc_dim": dim,
                                                  "num_classes": cfg["num_classes"]}), device)
    model = build_model("face_decoder", {"feature_dim": dim, "fc1_dim": cfg["fc1_dim"], "image_size": size,
                                         "width": cfg["dec_width"]}).to(device)
    criterion = DecoderLoss(alpha=float(params["alpha"]), msssim_win_size=int(cfg["msssim_win_size"]),
                            cos_weight=float(params["cos_weight"])).to(device)
    feature = torch.randn(batch, dim, device=device).relu()
    target = torch.rand(batch, 3, size, size, device=device)

    def step() -> torch.Tensor:
        recon = model(feature)
        return criterion(recon, target, face_encoder.features(recon), feature)[0]

    return step_rate(step, model, params, batch, iters, device)


def identities(features: Path) -> int:
    """fc8 width of the face encoder that made ``features`` (64 when unknown, e.g. dummy features)."""
    config = (read_features_meta(features).get("face_encoder") or {}).get("config") or {}
    return int(config.get("num_classes", 64))


def build_dummy(root: Path, n: int, image_size: int, dim: int) -> tuple[Path, Path]:
    from pipeline.testing.features import write_dummy_features
    from pipeline.testing.shards import write_dummy_shards

    write_dummy_shards(root / "shards", "train", n_samples=n, per_shard=max(1, n // 2), image_size=image_size)
    write_dummy_features(root / "shards", root / "features", dim=dim, splits=("train",))
    return root / "shards", root / "features"


def report(label: str, load: float, consume: float) -> None:
    ratio = load / consume
    verdict = "meets" if ratio >= BUDGET else "MISSES"
    print(f"  {label}: loader {load:8.1f} samples/s | step {consume:8.2f} samples/s | ratio {ratio:7.1f}x "
          f"({verdict} >= {BUDGET:.0f}x; loading = {1 / (1 + ratio):.1%} of an epoch)")


def with_peak_memory(label: str, device: torch.device, rate: Callable[..., float], *args: Any) -> float:
    """``rate(*args)``, printing the peak GPU memory it took on CUDA."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    value = rate(*args)
    if device.type == "cuda":
        print(f"  {label}: peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", default="data/shards", help="preprocessed shards (dummy ones if absent)")
    parser.add_argument("--features", default="data/features", help="features of those shards")
    parser.add_argument("--params", default=str(REPO / "params.yaml"))
    parser.add_argument("--epochs", type=int, default=1, help="loader epochs timed")
    parser.add_argument("--workers", type=int, nargs="+", default=[0],
                        help="DataLoader worker counts to time, e.g. 0 4 8 (num_workers of the stages; default 0)")
    parser.add_argument("--iters", type=int, default=3, help="timed training steps (median)")
    parser.add_argument("--n-dummy", type=int, default=32, help="train samples of the dummy shards")
    parser.add_argument("--paper", action="store_true", help="also the paper-width steps (224 px, 4096-d)")
    parser.add_argument("--paper-batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device, name = setup_torch(args.device, args.threads)
    params = load_params(args.params)
    enc, dec, fenc = params["train_encoder"], params["train_decoder"], params["face_encoder"]
    print(f"# loader vs training step ({name}, torch {torch.__version__}, budget >= {BUDGET:.0f}x)")

    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        shards, features = Path(args.shards), Path(args.features)
        if not (shards.is_dir() and features.is_dir() and any(shards.glob("train-*.tar"))):
            print(f"{shards} or {features} not found: building {args.n_dummy} dummy train samples "
                  f"({params['preprocess']['image_size']} px, {fenc['fc_dim']}-d features)")
            shards, features = build_dummy(Path(tmp) / "demo", args.n_dummy, int(params["preprocess"]["image_size"]),
                                           int(fenc["fc_dim"]))
        dim = feature_dim(features)
        probe = SplitDataset(shards, "train", fields=("face",))
        image_size = int(next(iter(probe))["face"].shape[-1])
        loads = {w: (loader_rate(shards, features, ("spec", "meta"), int(enc["batch_size"]), args.epochs, w),
                     loader_rate(shards, features, ("face",), int(dec["batch_size"]), args.epochs, w)[0])
                 for w in args.workers}
        n = loads[args.workers[0]][0][1]
        print(f"params.yaml sizes: data {shards} ({n // args.epochs} train samples, {image_size} px, {dim}-d "
              f"features), encoder width {enc['width']} batch {enc['batch_size']}, decoder width {dec['width']} "
              f"batch {dec['batch_size']}")
        demo = {"fc_dim": dim, "image_size": image_size, "vgg_width": float(fenc["width"]),
                "num_classes": identities(features), "fc1_dim": int(dec["fc1_dim"]), "dec_width": float(dec["width"]),
                "enc_width": float(enc["width"]), "msssim_win_size": int(dec["msssim_win_size"])}
        enc_step = with_peak_memory("train_encoder step", device, encoder_step_rate, demo, enc,
                                    int(enc["batch_size"]), args.iters, device)
        dec_step = with_peak_memory("train_decoder step", device, decoder_step_rate, demo, dec,
                                    int(dec["batch_size"]), args.iters, device)
        for w, ((enc_load, _), dec_load) in loads.items():
            report(f"train_encoder, {w} workers", enc_load, enc_step)
            report(f"train_decoder, {w} workers", dec_load, dec_step)

        if args.paper:
            batch = args.paper_batch
            print(f"paper sizes: building {args.n_dummy} dummy train samples ({PAPER['image_size']} px, "
                  f"{PAPER['fc_dim']}-d features); widths 1.0, step batch {batch}")
            shards, features = build_dummy(Path(tmp) / "paper", args.n_dummy, PAPER["image_size"], PAPER["fc_dim"])
            paper = {**PAPER, "vgg_width": 1.0, "dec_width": 1.0, "enc_width": 1.0}
            enc_step = with_peak_memory("paper train_encoder step", device, encoder_step_rate, paper, enc, batch,
                                        args.iters, device)
            dec_step = with_peak_memory("paper train_decoder step", device, decoder_step_rate, paper, dec, batch,
                                        args.iters, device)
            for w in args.workers:
                enc_load, _ = loader_rate(shards, features, ("spec", "meta"), int(enc["batch_size"]), args.epochs, w)
                dec_load, _ = loader_rate(shards, features, ("face",), int(dec["batch_size"]), args.epochs, w)
                report(f"train_encoder, {w} workers", enc_load, enc_step)
                report(f"train_decoder, {w} workers", dec_load, dec_step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
