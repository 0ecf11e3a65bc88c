"""DVC stage `sample`: generate the embedded synthetic dataset.

    python -m stages.sample --out data/sample
"""
from __future__ import annotations

import sys
import time
from typing import ClassVar

from pipeline.common.schema import Field, PositiveInt, Section, Seed
from pipeline.common.stage import elapsed, stage_main
from pipeline.data.media import require_ffmpeg
from pipeline.data.sample.face import drawing_workers
from pipeline.data.sample.generate import SampleConfig, generate_sample


class Params(Section):
    """The ``sample`` section: the embedded synthetic speakers."""

    SECTION: ClassVar[str] = "sample"
    seed: Seed
    n_speakers: PositiveInt = Field(description="synthetic speakers (a quarter are test speakers)")
    clips_per_speaker: PositiveInt = Field(description="clips per speaker")
    min_duration: float = Field(ge=0.5, description="shortest clip, seconds")
    max_duration: float = Field(ge=0.5, description="longest clip, seconds (>= min_duration)")
    frame_size: int = Field(ge=64, description="video frame side, pixels")
    fps: PositiveInt = Field(description="video frames per second")
    audio_rate: int = Field(ge=8000, description="audio sample rate of the clips, Hz (a multiple of fps)")


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="output directory (avspeech.csv, labels.csv, clips/)")
    parser.add_argument("--workers", type=int, default=0,
                        help="rendering processes (0 = up to 4 by CPU count; the output is the same for any value)")


def body(args) -> str:
    require_ffmpeg()
    started = time.perf_counter()
    cfg = SampleConfig.from_params(args.section)
    summary = generate_sample(args.out, cfg, workers=args.workers or drawing_workers())
    return (f"sample: {summary.speakers} speakers, {summary.clips} clips, {summary.seconds:.1f} s of video "
            f"in {elapsed(started)} -> {summary.out_dir}/avspeech.csv")


main = stage_main("sample", __doc__, add_arguments, body, schema=Params)

if __name__ == "__main__":
    sys.exit(main())
