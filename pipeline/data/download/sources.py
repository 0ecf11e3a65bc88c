"""Fetching one section of one row: yt-dlp (YouTube ids, http(s) URLs) or a local ffmpeg cut (files, mirror).

- yt-dlp runs in a child process (``python -m pipeline.data.download.ytdlp_worker``) in its own process group, so
  the per-clip timeout is a hard wall-clock limit: on expiry the whole group (yt-dlp and its ffmpeg) is killed.
- Local files: yt-dlp refuses sections of ``file://`` URLs ("This format cannot be partially downloaded"), so
  local files and the local mirror are cut with ffmpeg directly (re-encoded, hence exact at any start time).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pipeline
from pipeline.data.download.errors import AttemptError, classify_message, one_line

YOUTUBE_URL = "https://www.youtube.com/watch?v={}"
#: arguments that make ffmpeg's output bytes depend only on its input and arguments
BITEXACT_ARGS = ["-threads", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
                 "-map_metadata", "-1"]
#: set when the run is being interrupted: no new child starts, running ones are killed by cancel_children()
CANCELLED = threading.Event()
_CHILDREN: set[subprocess.Popen] = set()
_CHILDREN_LOCK = threading.Lock()
MEDIA_EXTS = (".mp4", ".mkv", ".webm", ".mov", ".m4v", ".avi", ".mpg", ".mpeg", ".flv", ".ts")


@dataclass(frozen=True)
class FetchResult:
    """A fetched section on disk and how it was obtained (``method`` is ``yt-dlp`` or ``ffmpeg-cut``)."""

    path: Path
    method: str
    format_id: str = ""
    formats_refused: tuple[str, ...] = ()  # formats that answered 403 before ``format_id`` worked


def format_selector(min_height: int) -> str:
    """yt-dlp format string: the smallest stream still at least ``min_height`` tall, else the best there is.

    ``wv[height>=?H]+ba``: worst (smallest) video-only stream of height >= H plus best audio; ``w[height>=?H]``:
    worst combined stream of height >= H; then ``bv*+ba/b``: best available when nothing is tall enough (a
    low-resolution face is still better than no row; preprocess decides). ``>=?`` lets formats of unknown height
    (direct media URLs) through.
    """
    h = int(min_height)
    return f"wv[height>=?{h}]+ba/w[height>=?{h}]/bv*+ba/b"


def ytdlp_options(start: float, end: float, out_dir: str | Path, settings: dict[str, Any],
                  youtube: bool = False) -> dict[str, Any]:
    """yt-dlp ``YoutubeDL`` params for one section download into ``out_dir`` (JSON-able; see ytdlp_worker).

    ``settings`` keys: min_height, timeout, sleep_interval_requests, cookies, extractor_args, sleep_interval and
    max_sleep_interval (used for YouTube only). The section itself
    (``download_ranges``) is added by the worker, since it is a function.
    """
    timeout = float(settings["timeout"])
    options: dict[str, Any] = {
        "format": format_selector(int(settings["min_height"])),
        "merge_output_format": "mp4",
        "outtmpl": {"default": str(Path(out_dir) / "clip.%(ext)s")},
        "force_keyframes_at_cuts": True,
        "section_start": float(start),
        "section_end": float(end),
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "noplaylist": True,
        "overwrites": True,
        "socket_timeout": timeout,
        # retries are ours (each attempt recorded); yt-dlp must not retry behind our back
        "retries": 0,
        "fragment_retries": 0,
        "extractor_retries": 0,
        "sleep_interval_requests": float(settings.get("sleep_interval_requests") or 0.0),
        "external_downloader_args": {
            # a stalled read fails instead of hanging (microseconds); bit-exact output for equal inputs
            "ffmpeg_i": ["-rw_timeout", str(int(timeout * 1_000_000))],
            "ffmpeg_o": list(BITEXACT_ARGS),
        },
    }
    if settings.get("cookies"):
        options["cookiefile"] = str(settings["cookies"])
    if settings.get("extractor_args"):
        options["extractor_args"] = parse_extractor_args(settings["extractor_args"])
    if youtube and float(settings.get("max_sleep_interval") or 0) > 0:
        # pacing between videos, per worker: yt-dlp's own sleep before each download (YouTube only: a local
        # mirror or a test server needs none)
        options["sleep_interval"] = float(settings.get("sleep_interval") or 0)
        options["max_sleep_interval"] = float(settings["max_sleep_interval"])
    return options


def parse_extractor_args(values: Any) -> dict[str, dict[str, list[str]]]:
    """yt-dlp's ``--extractor-args`` strings (``"youtube:player_client=web,mweb;po_token=web.gvs+TOKEN"``) as the
    ``extractor_args`` option; a malformed one raises DownloadConfigError in one sentence."""
    from pipeline.data.download.errors import DownloadConfigError

    parsed: dict[str, dict[str, list[str]]] = {}
    for value in ([values] if isinstance(values, str) else list(values or [])):
        extractor, sep, rest = str(value).partition(":")
        pairs = [p for p in rest.split(";") if p.strip()]
        if not sep or not extractor.strip() or not pairs or any("=" not in p for p in pairs):
            raise DownloadConfigError(f"download.extractor_args entry {value!r} is not 'extractor:key=value[;key="
                                      f"value]', e.g. 'youtube:player_client=web;po_token=web.gvs+TOKEN'")
        args = parsed.setdefault(extractor.strip().lower(), {})
        for pair in pairs:
            key, _, val = pair.partition("=")
            args[key.strip()] = [v.strip() for v in val.split(",")]
    return parsed


def source_url(row: dict[str, Any]) -> str:
    """The URL yt-dlp is given for a ``youtube`` or ``url`` row."""
    if row["source_kind"] == "youtube":
        return YOUTUBE_URL.format(row["source"])
    return str(row["source"])


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _child_env() -> dict[str, str]:
    """The environment with this checkout first on PYTHONPATH, so the worker imports from any cwd."""
    root = str(Path(pipeline.__file__).resolve().parents[1])
    rest = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, rest]) if rest else root}


def cancel_children() -> None:
    """Stop starting yt-dlp children and kill the running ones with their ffmpeg (interrupted run).

    The children run in their own sessions (so that a timeout can kill a whole group), which also means a
    Ctrl-C or SIGTERM to the stage does not reach them: this is how they are stopped instead.
    """
    CANCELLED.set()
    with _CHILDREN_LOCK:
        children = list(_CHILDREN)
    for proc in children:
        _kill_group(proc)


def fetch_ytdlp(url: str, start: float, end: float, work_dir: Path, settings: dict[str, Any],
                youtube: bool = False) -> FetchResult:
    """Download ``[start, end]`` of ``url`` with yt-dlp in a killable child process; raise AttemptError."""
    timeout = float(settings["timeout"])
    options = ytdlp_options(start, end, work_dir, settings, youtube)
    # the pacing sleep happens inside the child: it must not count against the clip's timeout
    timeout += float(options.get("max_sleep_interval") or 0)
    request = {"url": url, "options": options,
               "result": str(work_dir / "result.json")}
    with _CHILDREN_LOCK:
        if CANCELLED.is_set():
            raise AttemptError("error", "run interrupted")
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.data.download.ytdlp_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True, cwd=os.getcwd(), env=_child_env(),
        )
        _CHILDREN.add(proc)
    try:
        _, stderr = proc.communicate(json.dumps(request).encode("utf-8"), timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise AttemptError("timeout", f"no result after {timeout:g} s (killed)") from None
    finally:
        with _CHILDREN_LOCK:
            _CHILDREN.discard(proc)
    result_path = work_dir / "result.json"
    if not result_path.is_file():
        tail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] if stderr else []
        message = f"yt-dlp worker exited with code {proc.returncode}" + (f": {tail[0]}" if tail else "")
        raise AttemptError(classify_message(message) if tail else "error", one_line(message))
    result = json.loads(result_path.read_text(encoding="utf-8"))
    if not result.get("ok"):
        message = result.get("message", "")
        raise AttemptError(result.get("error_class") or classify_message(message), one_line(message))
    return FetchResult(Path(result["path"]), "yt-dlp", result.get("format_id", ""),
                       tuple(result.get("formats_refused") or ()))


def cut_args(src: str | Path, start: float, end: float, dst: str | Path) -> list[str]:
    """ffmpeg argv (no shell) cutting ``[start, end]`` of ``src`` into MP4 ``dst``: H.264 + AAC, re-encoded
    so the cut is exact at any time, one thread and bit-exact flags so the bytes are reproducible."""
    return [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-ss", f"{float(start):.6f}", "-i", str(src), "-t", f"{float(end) - float(start):.6f}",
        "-map", "0:v:0?", "-map", "0:a:0?",
        # H.264 in yuv420p needs even sides
        "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
        *BITEXACT_ARGS, "-f", "mp4", str(dst),
    ]


def cut_local(src: str | Path, start: float, end: float, work_dir: Path, timeout: float) -> FetchResult:
    """Cut ``[start, end]`` of a local file with ffmpeg; raise AttemptError (unavailable, corrupt, timeout)."""
    src = Path(src)
    if not src.is_file():
        raise AttemptError("unavailable", f"local file not found: {src}")
    dst = work_dir / "clip.mp4"
    try:
        proc = subprocess.run(cut_args(src, start, end, dst), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=float(timeout), check=False)
    except subprocess.TimeoutExpired:
        raise AttemptError("timeout", f"ffmpeg cut took longer than {float(timeout):g} s (killed)") from None
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AttemptError("corrupt", one_line(f"ffmpeg cannot cut {src.name}: {lines[-1] if lines else proc.returncode}"))
    return FetchResult(dst, "ffmpeg-cut")


def find_in_mirror(mirror_dir: str | Path, video_id: str) -> Path | None:
    """The mirror's full video named ``<video_id>.<ext>`` (first by sorted name), or None."""
    mirror_dir = Path(mirror_dir)
    candidates = sorted(p for p in mirror_dir.glob(f"{video_id}.*")
                        if p.is_file() and p.suffix.lower() in MEDIA_EXTS and p.stem == video_id)
    return candidates[0] if candidates else None
