"""Media inspection and decoding through ffmpeg/ffprobe (via ffmpeg-python; no shell strings are built)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import numpy as np

from pipeline.common.errors import PipelineError


class ToolMissingError(PipelineError, RuntimeError):
    """ffmpeg or ffprobe is not installed: the run stops (not a MediaError, which rejects one clip)."""


def require_ffmpeg() -> None:
    """Stop with one sentence (ToolMissingError) when ffmpeg or ffprobe is not on PATH.

    A missing tool is a broken installation, not a property of the media: without this check every clip would
    be rejected as unreadable instead of the run stopping.
    """
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if missing:
        raise ToolMissingError(f"{' and '.join(missing)} not found on PATH; install ffmpeg "
                         "(Debian/Ubuntu: apt-get install ffmpeg; `make setup` does it when run as root)")


class MediaError(PipelineError, RuntimeError):
    """A file could not be read as media; ``reason`` is a short code for rejection tables."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe says about a file: container duration and its first video/audio streams."""

    duration: float
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    audio_rate: int = 0
    audio_channels: int = 0
    video_codec: str = ""
    audio_codec: str = ""


def _rate(text: str) -> float:
    num, _, den = (text or "0/1").partition("/")
    try:
        return float(num) / float(den or 1) if float(den or 1) else 0.0
    except ValueError:
        return 0.0


def probe(path: str | Path) -> MediaInfo:
    """Probe ``path`` with ffprobe. Raises MediaError('corrupt', ...) when ffprobe cannot read it."""
    try:
        info = ffmpeg.probe(str(path))
    except ffmpeg.Error as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise MediaError("corrupt", f"ffprobe cannot read {path}: {detail[-1] if detail else exc}") from None
    except FileNotFoundError as exc:
        if Path(path).exists():
            require_ffmpeg()  # the file is there: it is ffprobe that is missing
        raise MediaError("missing", f"{path}: {exc}") from None
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    duration = float(info.get("format", {}).get("duration") or 0.0)
    if not duration:
        duration = max(float((s or {}).get("duration") or 0.0) for s in (video, audio, {}))
    return MediaInfo(
        duration=duration,
        has_video=video is not None,
        has_audio=audio is not None,
        width=int(video.get("width", 0)) if video else 0,
        height=int(video.get("height", 0)) if video else 0,
        fps=_rate(video.get("avg_frame_rate", "0/1")) if video else 0.0,
        audio_rate=int(audio.get("sample_rate", 0)) if audio else 0,
        audio_channels=int(audio.get("channels", 0)) if audio else 0,
        video_codec=video.get("codec_name", "") if video else "",
        audio_codec=audio.get("codec_name", "") if audio else "",
    )


def _ffmpeg_error_line(exc: "ffmpeg.Error") -> str:
    lines = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else str(exc)


def decode_audio(path: str | Path, sample_rate: int = 16000, max_seconds: float | None = None) -> "np.ndarray":
    """Decode the first audio stream of ``path`` to float32 mono at ``sample_rate`` (``-f f32le -ac 1``).

    Raises MediaError('corrupt', ...) when ffmpeg fails. Callers check ``probe(...).has_audio`` first so a
    missing stream becomes 'no_audio' rather than a decode failure. ``max_seconds``: decode only the start (a
    2-hour upload is not read to its end when 6 s of it are used).
    """
    try:
        out, _ = (
            ffmpeg.input(str(path), **({"t": f"{max_seconds:.3f}"} if max_seconds else {}))
            .output("pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=sample_rate, map="0:a:0")
            .global_args("-nostdin", "-threads", "1")
            .run(capture_stdout=True, capture_stderr=True)
        )
    except ffmpeg.Error as exc:
        raise MediaError("corrupt", f"ffmpeg cannot decode audio of {path}: {_ffmpeg_error_line(exc)}") from None
    return np.frombuffer(out, dtype="<f4").astype(np.float32)


def decode_frame(path: str | Path, time: float, width: int, height: int) -> "np.ndarray":
    """One RGB frame (uint8 ``height x width x 3``) at ``time`` seconds into ``path`` (input seek, accurate).

    ``width``/``height`` come from ``probe``; the frame is scaled to them so odd sample aspect ratios cannot
    change the buffer size. Seeking past the end falls back to the last decodable frame.
    """

    def grab(seek: float | None) -> bytes:
        kwargs = {"ss": f"{seek:.3f}"} if seek else {}
        out, _ = (
            ffmpeg.input(str(path), **kwargs)
            .output("pipe:", format="rawvideo", pix_fmt="rgb24", vframes=1, s=f"{width}x{height}",
                    map="0:v:0")
            .global_args("-nostdin", "-threads", "1")
            .run(capture_stdout=True, capture_stderr=True)
        )
        return out

    size = width * height * 3
    try:
        data = grab(time if time > 0 else None)
        if len(data) < size and time > 0:
            data = grab(None)  # seek past the last frame: use the first one rather than fail
    except ffmpeg.Error as exc:
        raise MediaError("corrupt", f"ffmpeg cannot decode video of {path}: {_ffmpeg_error_line(exc)}") from None
    if len(data) < size:
        raise MediaError("corrupt", f"{path}: no decodable video frame")
    return np.frombuffer(data[:size], dtype=np.uint8).reshape(height, width, 3).copy()
