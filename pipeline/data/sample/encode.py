"""Write frames + audio as an H.264/AAC MP4 through ffmpeg, bit-exactly (same input → same bytes)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import ffmpeg
import numpy as np
import soundfile as sf

from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_path


class EncodeError(PipelineError, RuntimeError):
    """ffmpeg failed to write a clip."""


def write_mp4(path: str | Path, frames: np.ndarray, fps: int, audio: np.ndarray, audio_rate: int) -> Path:
    """Encode ``frames`` (``[T, H, W, 3]`` uint8 RGB) at ``fps`` and mono float ``audio`` at ``audio_rate``
    into ``path`` (H.264 yuv420p + AAC). Single-threaded x264 and bitexact flags make the bytes reproducible;
    no metadata (no creation time, no encoder version tag in the container)."""
    path = Path(path)
    _, height, width, _ = frames.shape
    with tempfile.TemporaryDirectory(prefix="s2f-sample-") as tmp, atomic_path(path) as out_tmp:
        wav = Path(tmp) / "audio.wav"
        sf.write(wav, audio, audio_rate, subtype="PCM_16")
        video_in = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{width}x{height}", r=fps)
        audio_in = ffmpeg.input(str(wav))
        stream = ffmpeg.output(
            video_in, audio_in, str(out_tmp), format="mp4",
            vcodec="libx264", preset="fast", crf=20, pix_fmt="yuv420p", g=fps, threads=1,
            acodec="aac", ac=1, ar=audio_rate, **{"b:a": "96k"},
            map_metadata=-1, fflags="+bitexact", **{"flags:v": "+bitexact", "flags:a": "+bitexact"},
        ).overwrite_output()
        try:
            stream.run(input=np.ascontiguousarray(frames).tobytes(), capture_stdout=True, capture_stderr=True)
        except ffmpeg.Error as exc:
            tail = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
            raise EncodeError(f"ffmpeg could not write {path}: {tail[-1] if tail else exc}") from None
    return path
