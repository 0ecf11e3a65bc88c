"""What the download stage needs from this machine, checked and printed: ``python -m pipeline.data.download.doctor``.

Since late 2025 yt-dlp needs a JavaScript runtime to solve YouTube's player challenges; without one YouTube
extraction is deprecated and formats go missing. The environment ships Deno (PyPI ``deno``) and yt-dlp's solver
scripts (``yt-dlp-ejs``). The doctor reports the yt-dlp version, the JS runtimes yt-dlp finds, EJS, ffmpeg/ffprobe,
the cookies file (readable, Netscape format) and the mirror directory; it exits 1 when something a YouTube run
needs is missing. The download stage runs the same checks at its start (``preflight_download``).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

NETSCAPE_HEADERS = ("# netscape http cookie file", "# http cookie file")


def cookies_problem(path: str | Path) -> str | None:
    """One sentence when ``path`` is not a readable Netscape cookies file (what yt-dlp's ``--cookies`` takes)."""
    path = Path(path)
    if not path.is_file():
        return f"cookies file {path} not found"
    try:
        lines = path.read_text(encoding="utf-8", errors="strict").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return f"cookies file {path} cannot be read as text ({type(exc).__name__})"
    rows = [line for line in lines if line.strip() and not line.startswith("#") or line.startswith("#HttpOnly_")]
    header = next((line.strip().lower() for line in lines if line.strip()), "")
    if not header.startswith(NETSCAPE_HEADERS) or any(len(r.split("\t")) != 7 for r in rows):
        return (f"cookies file {path} is not in Netscape format (a '# Netscape HTTP Cookie File' header, then one "
                f"cookie per line as 7 tab-separated fields); export it with a browser extension or "
                f"yt-dlp --cookies-from-browser BROWSER --cookies FILE")
    return None


def js_runtimes() -> list[str]:
    """``name-version`` of every supported JavaScript runtime yt-dlp finds (what ``yt-dlp -v`` prints)."""
    try:
        from yt_dlp.utils import _jsruntime
    except ImportError:  # an older yt-dlp without JS runtime support
        return []
    found = []
    for name in ("DenoJsRuntime", "NodeJsRuntime", "BunJsRuntime", "QuickJsRuntime"):
        runtime = getattr(_jsruntime, name, None)
        info = runtime().info if runtime is not None else None
        if info is not None and info.supported:
            found.append(f"{info.name}-{info.version}")
    return found


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _tool_version(tool: str) -> str | None:
    exe = shutil.which(tool)
    if exe is None:
        return None
    out = subprocess.run([exe, "-version"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    return out.split(" ")[2] if out.count(" ") >= 2 else out or "unknown"


def diagnose(settings: dict[str, Any]) -> dict[str, Any]:
    """Everything the doctor checks, as a dict (``problems``: sentences; empty = ready for YouTube)."""
    report: dict[str, Any] = {
        "yt_dlp": _version("yt-dlp"), "js_runtimes": js_runtimes(), "yt_dlp_ejs": _version("yt-dlp-ejs"),
        "ffmpeg": _tool_version("ffmpeg"), "ffprobe": _tool_version("ffprobe"),
        "cookies": settings.get("cookies") or "", "mirror_dir": settings.get("mirror_dir") or "",
    }
    problems = []
    if not report["js_runtimes"]:
        problems.append("yt-dlp finds no JavaScript runtime, so YouTube's player challenges cannot be solved and "
                        "formats go missing: install the project's requirements (deno) into this environment")
    if not report["yt_dlp_ejs"]:
        problems.append("yt-dlp-ejs (yt-dlp's challenge solver scripts) is not installed")
    for tool in ("ffmpeg", "ffprobe"):
        if not report[tool]:
            problems.append(f"{tool} is not on PATH (Debian: apt-get install ffmpeg)")
    if report["cookies"]:
        problem = cookies_problem(report["cookies"])
        if problem:
            problems.append(problem)
    if report["mirror_dir"] and not Path(report["mirror_dir"]).is_dir():
        problems.append(f"mirror_dir {report['mirror_dir']} is not a readable directory")
    report["problems"] = problems
    return report


def youtube_ready_or_raise(youtube_rows: int) -> None:
    """The download stage's start check: YouTube rows need a JS runtime (one sentence, DownloadConfigError)."""
    from pipeline.data.download.errors import DownloadConfigError

    if youtube_rows and not js_runtimes():
        raise DownloadConfigError(
            f"the manifest has {youtube_rows} YouTube rows but yt-dlp finds no JavaScript runtime to solve "
            f"YouTube's player challenges: install the requirements (deno, yt-dlp-ejs) into this environment and "
            f"check with python -m pipeline.data.download.doctor")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check what the download stage needs for YouTube")
    parser.add_argument("--params", default="params.yaml", help="params file (section 'download')")
    args = parser.parse_args(argv)
    from pipeline.common.params import ParamsError, load_section

    try:
        settings = load_section("download", args.params)
    except ParamsError:
        settings = {}
    report = diagnose(settings)
    none = "none"
    print(f"yt-dlp      {report['yt_dlp'] or 'MISSING'}")
    print(f"JS runtimes {', '.join(report['js_runtimes']) or none}")
    print(f"yt-dlp-ejs  {report['yt_dlp_ejs'] or 'MISSING'}")
    print(f"ffmpeg      {report['ffmpeg'] or 'MISSING'}; ffprobe {report['ffprobe'] or 'MISSING'}")
    print(f"cookies     {report['cookies'] or '(none set)'}; mirror_dir {report['mirror_dir'] or '(none set)'}")
    for problem in report["problems"]:
        print(f"problem: {problem}")
    print("ready for YouTube" if not report["problems"] else f"{len(report['problems'])} problem(s)")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
