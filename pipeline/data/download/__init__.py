"""Stage ``download``: fetch exactly the ``[start, end]`` section of every manifest row into raw tar shards.

Modules, one job each: ``plan`` (manifest → shard plan, resume fingerprints), ``errors`` (error classes and
yt-dlp message classification), ``sources`` (yt-dlp sections in a killable child process, local/mirror cuts with
ffmpeg), ``ytdlp_worker`` (the child process), ``writer`` (deterministic tar, attempts parquet, stats) and
``runner`` (retries with backoff, concurrency, resume, totals).

The names below are imported lazily so that the yt-dlp child process (which imports ``errors`` only) starts
without pyarrow and friends.
"""
from __future__ import annotations

from typing import Any

__all__ = ["DownloadConfigError", "DownloadSettings", "run_download"]


def __getattr__(name: str) -> Any:
    if name == "DownloadConfigError":
        from pipeline.data.download.errors import DownloadConfigError

        return DownloadConfigError
    if name in ("DownloadSettings", "run_download"):
        from pipeline.data.download import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'pipeline.data.download' has no attribute {name!r}")
