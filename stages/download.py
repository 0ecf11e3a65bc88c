"""DVC stage ``download``: manifest rows → exact clip sections in raw tar shards under ``data/raw``.

    python -m stages.download --manifest data/manifest --out data/raw --metrics metrics/download.json
"""
from __future__ import annotations

import signal
import sys
from typing import ClassVar

from pipeline.common.schema import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PathText,
    PositiveFloat,
    PositiveInt,
    Section,
)
from pipeline.common.stage import StageExit, stage_main
from pipeline.data.download import DownloadSettings, run_download
from pipeline.data.download.errors import DownloadBlocked
from pipeline.data.download.runner import summary_line
from pipeline.data.engine import load_engine, shutdown
from pipeline.data.media import require_ffmpeg

#: the exit code of a run stopped by YouTube's bot check or rate limit: retry later, the input is fine
BLOCKED_EXIT = 3


class Params(Section):
    """The ``download`` section: exact clip sections through yt-dlp or local files."""

    SECTION: ClassVar[str] = "download"
    shard_size: PositiveInt = Field(description="clips per raw tar shard")
    concurrency: PositiveInt = Field(description="clips fetched at once")
    retries: NonNegativeInt = Field(description="attempts after the first")
    backoff: NonNegativeFloat = Field(description="seconds before a retry, doubled each time")
    sleep_interval_requests: NonNegativeFloat = Field(description="seconds between yt-dlp requests")
    cookies: PathText = Field(description='Netscape cookies file ("" = none)')
    min_height: NonNegativeInt = Field(description="smallest video height accepted, pixels (0 = any)")
    timeout: PositiveFloat = Field(description="seconds per clip")
    mirror_dir: PathText = Field(description='directory of full videos named by YouTube id ("" = download)')
    duration_tolerance: NonNegativeFloat = Field(description="seconds a clip may fall short before it is rejected")
    sleep_interval: NonNegativeFloat = Field(description="seconds a worker waits before a YouTube video, at least")
    max_sleep_interval: NonNegativeFloat = Field(description="... and at most (>= sleep_interval)")
    max_consecutive_blocked: NonNegativeInt = Field(description="blocked answers in a row that stop the run "
                                                                "(0 = never)")
    extractor_args: list[str] = Field(description="yt-dlp --extractor-args strings")


def add_arguments(parser) -> None:
    parser.add_argument("--manifest", required=True, help="directory with train.parquet / test.parquet")
    parser.add_argument("--out", required=True, help="output directory of raw shards")
    parser.add_argument("--metrics", default="", help="totals JSON (rows in, ok, rejected by class)")
    parser.add_argument("--work", default="", help="work directory for resumable shards (default: <out>.partial)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def body(args) -> str:
    require_ffmpeg()
    # SIGTERM (e.g. a killed dvc repro) unwinds like Ctrl-C, so yt-dlp children are stopped; completed shards stay
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        settings = DownloadSettings.from_params(args.section)
        totals = run_download(args.manifest, args.out, settings, work_dir=args.work or None,
                              metrics_path=args.metrics or None, progress=not args.no_progress,
                              engine=load_engine(args.params))
    except DownloadBlocked as exc:
        raise StageExit(str(exc), BLOCKED_EXIT) from None
    finally:
        shutdown()
    return summary_line(totals)


main = stage_main("download", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
