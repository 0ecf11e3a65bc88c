"""Tiny generated media clips for tests (ffmpeg's lavfi test sources; no files from the internet).

Other areas import ``make_clip`` to get small, deterministic MP4s with a moving test pattern and a tone.
"""
from __future__ import annotations

from pathlib import Path

import ffmpeg


def make_clip(
    path: str | Path,
    duration: float = 2.0,
    size: tuple[int, int] = (160, 120),
    fps: int = 25,
    with_audio: bool = True,
    with_video: bool = True,
    audio_rate: int = 16000,
    tone_hz: float = 440.0,
) -> Path:
    """Write a ``duration``-second clip to ``path`` (container from its extension, e.g. ``.mp4``) and return it.

    Video is ffmpeg's ``testsrc2`` pattern (a frame counter, so cuts are visible) in H.264 with a keyframe
    every second; audio is a sine tone in AAC. Bit-exact flags keep the bytes identical between runs.
    """
    if not (with_audio or with_video):
        raise ValueError("a clip needs audio, video, or both")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    streams = []
    out_kwargs: dict = {"t": f"{duration:.3f}", "map_metadata": -1, "fflags": "+bitexact",
                        "threads": 1}
    if with_video:
        streams.append(ffmpeg.input(f"testsrc2=size={width}x{height}:rate={fps}", f="lavfi"))
        out_kwargs.update({"vcodec": "libx264", "preset": "ultrafast", "pix_fmt": "yuv420p",
                           "g": fps, "flags:v": "+bitexact"})
    if with_audio:
        streams.append(ffmpeg.input(f"sine=frequency={tone_hz}:sample_rate={audio_rate}", f="lavfi"))
        out_kwargs.update({"acodec": "aac", "ac": 1, "ar": audio_rate, "flags:a": "+bitexact"})
    (
        ffmpeg.output(*streams, str(path), **out_kwargs)
        .overwrite_output()
        .run(quiet=True)
    )
    return path


def make_corrupt_file(path: str | Path, size: int = 4096) -> Path:
    """Write ``size`` bytes of deterministic non-media garbage to ``path`` (ffprobe rejects it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes((i * 37 + 11) % 256 for i in range(size)))
    return path
