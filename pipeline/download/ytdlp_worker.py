"""Child process for one yt-dlp section download (see ``sources.fetch_ytdlp``).

Reads ``{"url", "options", "result"}`` as JSON on stdin, downloads, and writes ``{"ok", "path", "format_id"}``
or ``{"ok": false, "error_class", "message"}`` to the ``result`` path. Running in its own process group lets the
parent enforce a hard wall-clock timeout by killing yt-dlp together with the ffmpeg it starts.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yt_dlp
import yt_dlp.utils

from pipeline.download.errors import classify_message, one_line


class _Logger:
    """Collect yt-dlp's messages instead of printing them (the parent keeps only the error)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def debug(self, msg: str) -> None:
        pass

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        pass

    def error(self, msg: str) -> None:
        self.errors.append(msg)


def download(url: str, options: dict) -> dict:
    """Run yt-dlp on ``url`` with ``options`` (plus the section as ``download_ranges``); return a result dict."""
    options = dict(options)
    start, end = options.pop("section_start"), options.pop("section_end")
    options["download_ranges"] = yt_dlp.utils.download_range_func(None, [(start, end)])
    logger = _Logger()
    options["logger"] = logger
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=True)
    except yt_dlp.utils.DownloadError as exc:
        message = one_line(str(exc) or "; ".join(logger.errors))
        return {"ok": False, "error_class": classify_message(message), "message": message}
    except Exception as exc:  # noqa: BLE001 - any failure must become a recorded attempt, not a crash
        message = one_line(f"{type(exc).__name__}: {exc}")
        return {"ok": False, "error_class": classify_message(message), "message": message}
    downloads = (info or {}).get("requested_downloads") or []
    path = downloads[0].get("filepath") if downloads else None
    if not path or not Path(path).is_file():
        return {"ok": False, "error_class": "truncated", "message": "yt-dlp reported success but wrote no file"}
    return {"ok": True, "path": str(path), "format_id": str(info.get("format_id") or "")}


def main() -> int:
    request = json.loads(sys.stdin.read())
    result = download(request["url"], request["options"])
    Path(request["result"]).write_text(json.dumps(result, sort_keys=True), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
