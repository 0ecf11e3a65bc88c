"""DVC stage ``download``: manifest rows → exact clip sections in raw tar shards under ``data/raw``.

    python -m stages.download --manifest data/manifest --out data/raw --metrics metrics/download.json
"""
from __future__ import annotations

import signal
import sys

from pipeline.common.params import load_section
from pipeline.common.stage import StageExit, stage_main
from pipeline.data.download import DownloadSettings, run_download
from pipeline.data.download.errors import DownloadBlocked
from pipeline.data.download.runner import summary_line
from pipeline.data.engine import load_engine, shutdown
from pipeline.data.media import require_ffmpeg

#: the exit code of a run stopped by YouTube's bot check or rate limit: retry later, the input is fine
BLOCKED_EXIT = 3


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
        settings = DownloadSettings.from_params(load_section("download", args.params))
        totals = run_download(args.manifest, args.out, settings, work_dir=args.work or None,
                              metrics_path=args.metrics or None, progress=not args.no_progress,
                              engine=load_engine(args.params))
    except DownloadBlocked as exc:
        raise StageExit(str(exc), BLOCKED_EXIT) from None
    finally:
        shutdown()
    return summary_line(totals)


main = stage_main("download", __doc__, add_arguments, body)

if __name__ == "__main__":
    sys.exit(main())
