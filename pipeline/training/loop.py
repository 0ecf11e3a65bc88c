"""The one training loop every trained model uses: the face encoder, the voice gender classifier, the face
decoder (FD) and the speech encoder (SE) variants.

``fit`` follows the paper's recipe: Adam (β1 and ε from params, β2 0.999), the learning rate decayed ×``lr_decay``
every ``lr_decay_every`` epochs, seeded shuffles. Each epoch it logs the mean loss and its parts with dvclive (TSV
curves under the stage's plots directory, read by ``dvc plots``) and saves a resume state (model + optimizer +
scheduler + epoch + history) next to the output, so an interrupted run continues from its last finished epoch;
``save_final`` deletes it once the checkpoint is written. Under torchrun (``nproc`` > 1) the model is wrapped in
DistributedDataParallel, each rank reads its own part of every epoch (a stride of the samples, or whole shards:
``rank_split``), and rank 0 alone writes. Mixed precision
(``precision``: fp32 | bf16 | fp16) is autocast, with a GradScaler for fp16.

GANs use the same loop: a :class:`Critic` (the discriminators, with their own Adam) is trained in turn with the
model, after each of its steps, on what the model's step left in the batch (sg2im's and SF2F's order: generator
first, then the discriminators on the same detached fakes). A ``steps`` param bounds the run by optimiser steps
instead of whole epochs (the families' demo shares are numbers of steps).
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from tqdm import tqdm

from pipeline.common.errors import TrainingError
from pipeline.common.io import atomic_path, dumps_json
from pipeline.training.distributed import current


@dataclass
class RunningMean:
    """Streaming mean of scalar columns (O(1) memory), for per-epoch loss averages."""

    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0

    def update(self, values: dict[str, float], n: int = 1) -> None:
        """Add ``values`` observed on ``n`` samples (each value is that batch's mean)."""
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value) * n
        self.count += n

    def means(self) -> dict[str, float]:
        """Current means (empty when nothing was added)."""
        return {name: total / self.count for name, total in self.sums.items()} if self.count else {}



def make_optimizer(model: torch.nn.Module, params: dict[str, Any]):
    """Adam(lr, (β1, 0.999), eps) and StepLR(lr_decay_every, lr_decay), as in the paper.

    Adam is PyTorch's fused implementation on CPU and CUDA: one kernel for all parameters instead of several per
    tensor, 7.9 → 1.7 ms per step for the face decoder's 255 tensors on this CPU (a tenth of its training step).
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    fused = bool(trainable) and all(p.device.type in ("cpu", "cuda") for p in trainable)
    optimizer = torch.optim.Adam(
        trainable,
        lr=float(params["lr"]),
        betas=(float(params["beta1"]), 0.999),
        eps=float(params["eps"]),
        fused=fused or None,
    )
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=int(params["lr_decay_every"]), gamma=float(params["lr_decay"])
    )
    return optimizer, scheduler


def resume_path_for(out: str | Path) -> Path:
    """Where the resume state of a run writing ``out`` lives (a hidden file beside it)."""
    out = Path(out)
    return out.with_name(f".{out.name}.resume")


def fingerprint(obj: Any) -> str:
    """A short hash of a JSON-able configuration (so a resume state from other params is ignored)."""
    return hashlib.sha256(dumps_json(obj).encode("utf-8")).hexdigest()[:16]


def _open_live(plots_dir: str | Path):
    from dvclive import Live

    # dvcyaml=None / save_dvc_exp=False: the stage must not rewrite dvc.yaml or create experiments.
    return Live(dir=str(plots_dir), save_dvc_exp=False, dvcyaml=None, report=None)


#: ``precision`` params values → the autocast dtype (None: full fp32)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(params: dict[str, Any]) -> torch.dtype | None:
    """The autocast dtype of ``params['precision']`` (default fp32: none); TrainingError for an unknown one."""
    precision = str(params.get("precision", "fp32"))
    if precision not in PRECISIONS:
        raise TrainingError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


@dataclass
class Critic:
    """A second network trained in turn with the model: a GAN's discriminators.

    ``step(batch, critic)`` returns the critic's loss (with graph) and its parts; it runs after the model's step
    on the same batch, so the model's step can leave what the critic needs in it (the detached fakes). ``params``
    holds the critic's Adam and schedule keys (``lr``, ``beta1``, ``eps``, ``lr_decay``, ``lr_decay_every``).
    While the model's step runs, the critic's parameters take no gradient.
    """

    model: torch.nn.Module
    step: Callable[[dict, torch.nn.Module], tuple[torch.Tensor, dict[str, float]]]
    params: dict[str, Any]


def planned_epochs(params: dict[str, Any], dataset) -> tuple[int, int | None]:
    """``(epochs, steps)`` of a run: ``params['epochs']``, or, with ``steps`` > 0, as many epochs as ``steps``
    optimiser steps need (the last one cut short), batches of fewer than two samples not counted."""
    steps = int(params.get("steps", 0) or 0)
    if steps <= 0:
        return int(params["epochs"]), None
    batch = int(params["batch_size"])
    per_epoch = dataset.count() // batch + (1 if dataset.count() % batch >= 2 else 0)
    if per_epoch == 0:
        raise TrainingError("no training samples (empty split or subset)")
    return -(-steps // per_epoch), steps


def fit(
    model: torch.nn.Module,
    dataset,
    step: Callable[[dict, torch.nn.Module], tuple[torch.Tensor, dict[str, float]]],
    params: dict[str, Any],
    out: str | Path,
    plots_dir: str | Path,
    run_fingerprint: str,
    desc: str,
    device: torch.device | None = None,
    bn_forward: Callable[[dict], Any] | None = None,
    critic: Critic | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` for ``params['epochs']`` epochs over ``dataset``; returns per-epoch mean losses.

    ``step(batch, net)`` runs ``net`` (the model, or its DistributedDataParallel wrapper under torchrun) and
    returns the batch loss (with graph) and its parts as floats; it runs under autocast when
    ``params['precision']`` is bf16 or fp16 (fp16 with a GradScaler; the losses keep their image terms in fp32).
    ``params['num_workers']`` loader processes read the shards (each its own shards); batches are pinned for
    non-blocking copies when ``device`` is CUDA. Resumes from the state beside ``out`` when it matches
    ``run_fingerprint``; writes one dvclive step per epoch. After the last epoch the BatchNorm running statistics
    are recomputed from the final weights (``recalibrate_batchnorm``) with ``bn_forward(batch)`` (default: ``step``
    on the unwrapped model). ``critic``: discriminators trained after every step of the model (:class:`Critic`);
    their parts are logged with a ``d_`` prefix. ``params['steps']`` > 0 stops after that many steps.
    """
    from pipeline.data.datasets import make_loader
    from pipeline.training import distributed

    device = device if device is not None else torch.device("cpu")
    rank = distributed.setup(device, params.get("dist_timeout_s"))
    amp_dtype = autocast_dtype(params)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    optimizer, scheduler = make_optimizer(model, params)
    critic_optimizer, critic_scheduler = make_optimizer(critic.model, critic.params) if critic else (None, None)
    if critic is not None and rank.distributed:
        raise TrainingError(f"{desc}: adversarial training runs in one process (set nproc: 1)")
    epochs, max_steps = planned_epochs(params, dataset)
    done_steps = 0
    resume = resume_path_for(out)
    history: list[dict[str, float]] = []
    start = 0
    if resume.is_file():
        state = torch.load(resume, map_location="cpu", weights_only=True)
        if state.get("fingerprint") == run_fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            if critic is not None:
                critic.model.load_state_dict(state["critic"])
                critic_optimizer.load_state_dict(state["critic_optimizer"])
                critic_scheduler.load_state_dict(state["critic_scheduler"])
            start = int(state["epoch"])
            done_steps = int(state.get("steps", 0))
            history = [dict(h) for h in state["history"]]
            print(f"resuming {desc} from epoch {start} ({resume.name})", file=sys.stderr)
        else:
            print(f"ignoring {resume.name}: written with other params", file=sys.stderr)
    live = _open_live(plots_dir) if rank.main else None  # rank 0 alone writes curves, resume state, checkpoints
    for row in history if live is not None else ():  # replay finished epochs: complete curves after a resume
        _log_epoch(live, row)
    workers = int(params.get("num_workers", 0))
    net = model
    if rank.distributed:
        by = str(params.get("rank_split", "samples"))
        if workers and by == "samples":
            raise TrainingError(f"{desc}: num_workers must be 0 when nproc > 1 with rank_split: samples (a rank's "
                                f"stride of the samples is taken in the training process); use rank_split: shards")
        dataset.split_for_rank(rank.rank, rank.world_size, by=by, num_workers=workers)
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    shards = len(getattr(dataset, "shard_paths", ()) or ())
    if shards and workers > shards:
        raise TrainingError(f"{desc}: num_workers {workers} is more than the split's {shards} shard(s), and each "
                            f"worker reads whole shards, so {workers - shards} would read nothing; use at most "
                            f"{shards}")
    loader = make_loader(dataset, int(params["batch_size"]), workers, pin_memory=device.type == "cuda")
    bar = tqdm(range(start, epochs), desc=desc, unit="epoch", file=sys.stderr, initial=start, total=epochs,
               disable=not rank.main)
    for epoch in bar:
        model.train()
        dataset.set_epoch(epoch)
        running = RunningMean()
        skipped = 0
        for batch in tqdm(loader, desc=f"epoch {epoch + 1}", unit="batch", leave=False, file=sys.stderr,
                          disable=not rank.main):
            n = len(batch["key"])
            if n < 2:  # BatchNorm cannot train on a single sample; the last tiny batch is skipped
                skipped += n
                continue
            if max_steps is not None and done_steps >= max_steps:
                break
            if critic is not None:
                critic.model.requires_grad_(False)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss, parts = step(batch, net)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if critic is not None:
                critic.model.requires_grad_(True)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    critic_loss, critic_parts = critic.step(batch, critic.model)
                critic_optimizer.zero_grad(set_to_none=True)
                scaler.scale(critic_loss).backward()
                scaler.step(critic_optimizer)
                scaler.update()
                parts = {**parts, "d_loss": float(critic_loss.detach()),
                         **{f"d_{k}": v for k, v in critic_parts.items()}}
            done_steps += 1
            running.update({"loss": float(loss.detach()), **parts}, n)
        if running.count == 0:
            if skipped:
                raise TrainingError(f"{desc}: only {skipped} training sample, and BatchNorm needs batches of 2 or "
                                    f"more (add data, or drop this variant)")
            raise TrainingError(f"{desc}: no training samples (empty split or subset)")
        row = {"epoch": epoch + 1, "lr": float(optimizer.param_groups[0]["lr"]), "samples": running.count,
               **({"steps": done_steps} if max_steps is not None else {}), **running.means()}
        if rank.distributed:  # epoch means over every rank's samples (each rank holds only its own sums)
            names = sorted(k for k in row if k not in ("epoch", "lr", "samples", "steps"))
            summed = distributed.all_sum([running.count] + [row[k] * running.count for k in names], device)
            row.update(samples=int(summed[0]), **{k: v / summed[0] for k, v in zip(names, summed[1:])})
        scheduler.step()
        if critic_scheduler is not None:
            critic_scheduler.step()
        history.append(row)
        if rank.main:
            _log_epoch(live, row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            with atomic_path(resume) as tmp:
                torch.save({"fingerprint": run_fingerprint, "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                            "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                            "epoch": epoch + 1, "steps": done_steps, "history": history,
                            **({"critic": critic.model.state_dict(),
                                "critic_optimizer": critic_optimizer.state_dict(),
                                "critic_scheduler": critic_scheduler.state_dict()} if critic else {})}, tmp)
        _kill_point(rank.rank, epoch + 1, resume)
        _pause_point(rank.rank, epoch + 1, resume)
    # Running BatchNorm statistics from the final weights (see recalibrate_batchnorm), in a fixed order, over the
    # whole split, by rank 0 alone: only its checkpoint is written.
    if rank.main:
        dataset.split_for_rank(0, 1)
        dataset.set_epoch(epochs)
        recalibrate_batchnorm(model, make_loader(dataset, int(params["batch_size"]), workers),
                              bn_forward or (lambda batch: step(batch, model)))
    if live is not None:
        live.end()
    return history


#: fault point (pipeline.common.faults), setting ``"<rank>:<epoch>"``: that rank SIGKILLs itself once that epoch's
#: resume state is written, so the tests can lose one rank of a DDP run the way a crashed node loses it
KILL_RANK = "training.kill_rank"


def _kill_point(rank: int, epoch: int, resume: Path) -> None:
    import os
    import signal
    import time

    from pipeline.common.faults import fault_setting

    if fault_setting(KILL_RANK) != f"{rank}:{epoch}":
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # rank 0 writes the state; wait for it, so that the rerun can resume
        if resume.is_file() and torch.load(resume, map_location="cpu", weights_only=True)["epoch"] >= epoch:
            break
        time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGKILL)


#: fault point, setting ``"<epoch>:<folder>"``: every rank but 0 stops once that epoch's resume state is written,
#: leaves ``<folder>/rank<r>.pid`` and waits (at most 5 min) for ``<folder>/release``, then goes on; rank 0 meanwhile
#: waits for it in the next epoch's first collective. Tests make a node die or drop off the network during the pause.
PAUSE_RANKS = "training.pause_ranks"


def _pause_point(rank: int, epoch: int, resume: Path) -> None:
    import os
    import time

    from pipeline.common.faults import fault_setting

    setting = fault_setting(PAUSE_RANKS)
    if not setting or rank == 0 or not setting.startswith(f"{epoch}:"):
        return
    folder = Path(setting.split(":", 1)[1])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # rank 0 writes the state; wait for it, so that the rerun can resume
        if resume.is_file() and torch.load(resume, map_location="cpu", weights_only=True)["epoch"] >= epoch:
            break
        time.sleep(0.2)
    (folder / f"rank{rank}.pid").write_text(str(os.getpid()), encoding="utf-8")
    while not (folder / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.2)


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, batches: Iterable[Any], forward: Callable[[Any], Any]) -> int:
    """Recompute every BatchNorm's running mean/variance of ``model`` as exact averages over ``batches``.

    During training the running statistics are exponential averages (momentum 0.1) of batch statistics taken
    while the weights were still moving fast; with the demo's few hundred steps they lag the final weights
    so much that eval mode (which uses them) differs wildly from train mode (the voice gender classifier fell
    from 0.99 to 0.68 train accuracy). One extra no-grad pass with the final weights in train mode and a
    cumulative average (``momentum=None``) fixes that, as ``torch.optim.swa_utils.update_bn`` does; frozen
    helper modules stay in eval mode. ``forward(batch)`` runs the model on one batch (batches of fewer than
    two samples are skipped, like in training). Returns the number of batches used; the model is left in
    eval mode.
    """
    # a frozen part of the model (its BatchNorm's affine parameters take no gradient, like SF2F's encoder while its
    # fuser trains) keeps the statistics it was trained with
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
             and (not m.affine or any(p.requires_grad for p in m.parameters(recurse=False)))]
    if not norms:
        return 0
    momenta = {m: m.momentum for m in norms}
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    used = 0
    for batch in batches:
        if _batch_len(batch) < 2:
            continue
        forward(batch)
        used += 1
    for m, momentum in momenta.items():
        m.momentum = momentum
    model.eval()
    return used


def _batch_len(batch: Any) -> int:
    if isinstance(batch, dict) and "key" in batch:
        return len(batch["key"])
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    return 2


def _log_epoch(live, row: dict[str, float]) -> None:
    for name, value in sorted(row.items()):
        if name in ("epoch", "samples", "steps"):
            continue
        live.log_metric(name if name == "lr" else f"train/{name}", float(value))
    live.next_step()


def summary_metrics(history: list[dict[str, float]]) -> dict[str, Any]:
    """The metrics of a finished run; a trainer computes them before it saves its checkpoint, so that a run
    that trained nothing leaves no loadable model behind."""
    if not history:
        raise TrainingError("training ran no epoch (epochs must be at least 1): nothing was saved")
    last = history[-1]
    return {
        "epochs": len(history),
        "samples_per_epoch": int(last["samples"]),
        "first_epoch_loss": float(history[0]["loss"]),
        "final": {k: float(v) for k, v in last.items() if k not in ("epoch", "samples", "steps")},
        "loss_curve": [float(h["loss"]) for h in history],
    }


def run_settings(params: dict[str, Any]) -> dict[str, Any]:
    """How the run was executed (metrics): precision, loader processes and data-parallel processes."""
    return {"precision": str(params.get("precision", "fp32")), "num_workers": int(params.get("num_workers", 0)),
            "rank_split": str(params.get("rank_split", "samples")),
            "world_size": current().world_size}


def save_final(out: str | Path, model, arch: str, config: dict, extra: dict, resume_of: str | Path | None = None) -> None:
    """Rank 0 saves the trained model's checkpoint to ``out`` and removes the resume state of the run (that of
    ``resume_of``, the ``out`` given to ``fit``, when it differs); other ranks hold the same weights."""
    from pipeline.training.checkpoints import save_checkpoint

    if not current().main:
        return
    save_checkpoint(out, model.cpu(), arch, config, extra)
    resume = resume_path_for(resume_of if resume_of is not None else out)
    if resume.exists():
        resume.unlink()


def write_cost(path: str | Path, started: float, parameters: dict[str, int] | None = None) -> dict[str, Any]:
    """A training stage's cost file: its wall seconds since ``started`` (``time.perf_counter()``) and its networks'
    parameters. Kept apart from the stage's metrics, so that those stay byte-identical from the same seed. Under
    torchrun rank 0 alone writes it."""
    import time

    from pipeline.common.io import write_json

    cost = {"train_seconds": round(time.perf_counter() - started, 3), "parameters": dict(parameters or {})}
    if current().main:
        write_json(path, cost)
    return cost
