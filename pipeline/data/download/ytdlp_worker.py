"""Child process for one yt-dlp section download (see ``sources.fetch_ytdlp``).

Reads ``{"url", "options", "result"}`` as JSON on stdin, downloads, and writes ``{"ok", "path", "format_id"}``
or ``{"ok": false, "error_class", "message"}`` to the ``result`` path. Running in its own process group lets the
parent enforce a hard wall-clock timeout by killing yt-dlp together with the ffmpeg it starts.
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import yt_dlp
import yt_dlp.utils
from yt_dlp.networking import Request
from yt_dlp.networking.exceptions import HTTPError

from pipeline.data.download.errors import classify_message, one_line


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


#: formats tried per attempt when the chosen one answers 403 (another format of the same video may not)
MAX_FORMAT_TRIES = 3


def _forbidden(exc: Exception, ydl: yt_dlp.YoutubeDL, selected: dict) -> bool:
    """Whether the download failed because the chosen format answers 403.

    yt-dlp's own requests say "HTTP Error 403"; a section is fetched by ffmpeg, whose message yt-dlp does not
    keep ("ffmpeg exited with code 1"), so then each chosen stream is asked for its first byte to find out.
    """
    if "http error 403" in str(exc).lower():
        return True
    for fmt in selected.get("requested_formats") or [selected]:
        if not fmt.get("url"):
            continue
        request = Request(fmt["url"], headers={**(fmt.get("http_headers") or {}), "Range": "bytes=0-0"})
        try:
            ydl.urlopen(request).close()
        except HTTPError as err:
            if err.status == 403:
                return True
        except Exception:  # noqa: BLE001 - any other answer: not a refusal of this format
            pass
    return False


def download(url: str, options: dict) -> dict:
    """Run yt-dlp on ``url`` with ``options`` (plus the section as ``download_ranges``); return a result dict.

    The page is extracted once; when the chosen format answers 403 (a format-specific refusal, e.g. a stream URL
    that needs a PO token while another does not), up to MAX_FORMAT_TRIES formats are tried, each time without the
    streams refused (removed from the extracted formats by URL, so that format selection itself is unchanged).
    The result's ``formats_refused`` lists their format ids.
    """
    options = dict(options)
    start, end = options.pop("section_start"), options.pop("section_end")
    options["download_ranges"] = yt_dlp.utils.download_range_func(None, [(start, end)])
    logger = _Logger()
    options["logger"] = logger
    refused: list[str] = []
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            extracted = ydl.extract_info(url, download=False, process=False)
        refused_urls: set[str] = set()
        for tried in range(1, MAX_FORMAT_TRIES + 1):
            with yt_dlp.YoutubeDL(options) as ydl:
                candidates = copy.deepcopy(extracted)
                if refused_urls and candidates.get("formats"):
                    candidates["formats"] = [f for f in candidates["formats"] if f.get("url") not in refused_urls]
                selected = ydl.process_ie_result(copy.deepcopy(candidates), download=False)
                chosen = str(selected.get("format_id") or "")
                try:
                    info = ydl.process_ie_result(candidates, download=True)
                    break
                except yt_dlp.utils.DownloadError as exc:
                    if not (chosen and len(extracted.get("formats") or []) > 1 and _forbidden(exc, ydl, selected)):
                        raise
                    refused.extend(chosen.split("+"))
                    refused_urls.update(f.get("url") for f in selected.get("requested_formats") or [selected])
                    if tried == MAX_FORMAT_TRIES or all(f.get("url") in refused_urls for f in extracted["formats"]):
                        raise yt_dlp.utils.DownloadError(f"HTTP Error 403: Forbidden on format {chosen}") from None
                    logger.errors.clear()
    except yt_dlp.utils.DownloadError as exc:
        message = one_line(str(exc) or "; ".join(logger.errors))
        if refused:
            message = one_line(f"{message} (formats refused before: {', '.join(refused)})")
        return {"ok": False, "error_class": classify_message(message), "message": message}
    except Exception as exc:  # noqa: BLE001 - any failure must become a recorded attempt, not a crash
        message = one_line(f"{type(exc).__name__}: {exc}")
        return {"ok": False, "error_class": classify_message(message), "message": message}
    downloads = (info or {}).get("requested_downloads") or []
    path = downloads[0].get("filepath") if downloads else None
    if not path or not Path(path).is_file():
        return {"ok": False, "error_class": "truncated", "message": "yt-dlp reported success but wrote no file"}
    return {"ok": True, "path": str(path), "format_id": str(info.get("format_id") or ""), "formats_refused": refused}


def main() -> int:
    request = json.loads(sys.stdin.read())
    result = download(request["url"], request["options"])
    Path(request["result"]).write_text(json.dumps(result, sort_keys=True), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
