"""How fast this machine is right now: one fixed workload like the demo's, to put a `make demo` wall time next to.

On the shared 2-core box the same stage has taken 70 s one day and 118 s another with the same code (the
face_encoder stage of commit 3a2c5da), so a demo time means little without the machine's speed at that hour. This
prints the seconds of two pieces of work the demo is made of, neither of which depends on the project's code or
data (a later edit does not move them):

- ``train``: 200 Adam steps of the demo's face encoder (VGG-16-BN at width 0.125, 64-px faces, batch 32, fp32) on
  fixed random data, on torch's default threads (as ``dvc repro`` runs the stages);
- ``encode``: eight 6-s 160x160 clips through ffmpeg (libx264 + AAC, the sample stage's settings), one process.

    python bench/bench_machine.py            # about 30 s

Run it right before or after `make demo` and give both numbers. docs/results.md has the values measured beside
the demo times it reports.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

#: VGG-16's five blocks (channels, convolutions) at width 0.125, as the demo's face encoder
BLOCKS = ((8, 2), (16, 2), (32, 3), (64, 3), (64, 3))


def vgg16_bn(classes: int = 200, fc_dim: int = 256, side: int = 64) -> torch.nn.Module:
    """The demo face encoder's shape, built here so that no edit of the project moves this benchmark."""
    layers: list[torch.nn.Module] = []
    in_ch = 3
    for channels, repeats in BLOCKS:
        for _ in range(repeats):
            layers += [torch.nn.Conv2d(in_ch, channels, 3, padding=1), torch.nn.BatchNorm2d(channels),
                       torch.nn.ReLU()]
            in_ch = channels
        layers.append(torch.nn.MaxPool2d(2))
    flat = in_ch * (side // 32) ** 2
    return torch.nn.Sequential(*layers, torch.nn.Flatten(), torch.nn.Linear(flat, fc_dim), torch.nn.ReLU(),
                               torch.nn.Linear(fc_dim, fc_dim), torch.nn.ReLU(), torch.nn.Linear(fc_dim, classes))


def train_seconds(steps: int) -> float:
    """Seconds for ``steps`` Adam steps of the demo's face encoder on fixed random faces (after one warm-up step)."""
    torch.manual_seed(0)
    model = vgg16_bn()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(32, 3, 64, 64, generator=gen), torch.randint(0, 200, (32,), generator=gen)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def encode_seconds(clips: int) -> float:
    """Seconds for ffmpeg to write ``clips`` 6-s clips of fixed frames and audio as the sample stage does."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (150, 160, 160, 3), dtype=np.uint8)
    frames[:, 40:120, 40:120] = 200  # a flat block, so the encoder has something easy as well
    audio = (0.1 * np.sin(np.arange(6 * 44100) * 2 * np.pi * 150 / 44100)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        raw, wav = Path(tmp) / "frames.rgb", Path(tmp) / "audio.f32"
        raw.write_bytes(frames.tobytes())
        wav.write_bytes(audio.tobytes())
        start = time.perf_counter()
        for i in range(clips):
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "160x160",
                            "-r", "25", "-i", str(raw), "-f", "f32le", "-ar", "44100", "-ac", "1", "-i", str(wav),
                            "-c:v", "libx264", "-preset", "fast", "-crf", "20", "-pix_fmt", "yuv420p", "-g", "25",
                            "-threads", "1", "-c:a", "aac", "-shortest", str(Path(tmp) / f"clip{i}.mp4")],
                           check=True)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="face-encoder training steps timed")
    parser.add_argument("--clips", type=int, default=8, help="clips ffmpeg encodes")
    args = parser.parse_args(argv)
    train = train_seconds(args.steps)
    encode = encode_seconds(args.clips)
    print(f"machine: train {train:.1f} s ({args.steps} face-encoder steps, {torch.get_num_threads()} threads), "
          f"encode {encode:.1f} s ({args.clips} clips)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
