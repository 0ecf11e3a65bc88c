"""Media inspection and decoding through ffmpeg/ffprobe (via ffmpeg-python; no shell strings are built)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ffmpeg


class MediaError(RuntimeError):
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
