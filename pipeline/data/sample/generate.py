"""Generate the embedded sample: speakers × clips as MP4s, an AVSpeech-format CSV and a labels CSV.

Layout of ``out_dir``::

    avspeech.csv    clips/spk000_c0.mp4,0.200,5.360,0.512345,0.487654   (no header; paths relative to the CSV)
    labels.csv      video_id,speaker_id,gender,age_group                (header)
    speakers.json   every speaker's face and voice attributes (for inspection)
    clips/*.mp4     H.264 + AAC

Each clip has its own RNG stream ``(seed, speaker, clip)``, so outputs are byte-identical for a seed and adding
speakers or clips leaves the existing ones unchanged.
"""
from __future__ import annotations

import dataclasses
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_write_bytes, write_json
from pipeline.data.sample.encode import write_mp4
from pipeline.data.sample.face import draw_face, make_background, render_frames
from pipeline.data.sample.identity import SHIRT_COLOURS, Speaker, make_speaker
from pipeline.data.sample.voice import synthesize


class SampleConfigError(PipelineError, ValueError):
    """The ``sample`` params are inconsistent."""


@dataclass(frozen=True)
class SampleConfig:
    """The ``sample`` section of params.yaml (the defaults are params.yaml's, for library and test use)."""

    seed: int = 0
    n_speakers: int = 64
    clips_per_speaker: int = 3
    min_duration: float = 3.0
    max_duration: float = 9.0
    frame_size: int = 160
    fps: int = 25
    audio_rate: int = 44100

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "SampleConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise SampleConfigError(f"unknown sample params: {', '.join(unknown)}")
        cfg = cls(**params)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.n_speakers < 1 or self.clips_per_speaker < 1:
            raise SampleConfigError("sample.n_speakers and sample.clips_per_speaker must be at least 1")
        if not 0.5 <= self.min_duration <= self.max_duration:
            raise SampleConfigError("sample durations need 0.5 <= min_duration <= max_duration")
        if self.frame_size < 64 or self.fps < 1 or self.audio_rate < 8000:
            raise SampleConfigError("sample needs frame_size >= 64, fps >= 1 and audio_rate >= 8000")


@dataclass(frozen=True)
class ClipPlan:
    """Where and how long one clip is: file duration, the CSV segment and the face centre (fractions)."""

    stem: str
    speaker: Speaker
    clip: int
    n_frames: int
    start: float
    end: float
    x: float
    y: float


@dataclass(frozen=True)
class SampleSummary:
    speakers: int
    clips: int
    seconds: float
    out_dir: Path


def plan_clip(cfg: SampleConfig, speaker: Speaker, clip: int) -> tuple[ClipPlan, np.random.Generator]:
    """Draw a clip's timing and position; returns the plan and the clip's RNG (for drawing and voice).

    Segment lengths are stratified per speaker (clip j of k lies in the j-th k-th of [min, max]) so that every
    speaker has both short (padded downstream) and long (cut downstream) clips."""
    rng = np.random.default_rng([cfg.seed, speaker.index, clip, 0xC11B])
    frac = (clip + float(rng.uniform())) / cfg.clips_per_speaker
    segment = cfg.min_duration + (cfg.max_duration - cfg.min_duration) * frac
    lead_in = float(rng.choice([0.0, 0.0, 0.2, 0.4]))
    n_frames = max(1, int(round((lead_in + segment) * cfg.fps)))
    duration = n_frames / cfg.fps
    start = min(lead_in, duration / 2)
    x = float(rng.uniform(0.42, 0.58))
    y = float(rng.uniform(0.42, 0.55))
    plan = ClipPlan(stem=f"{speaker.speaker_id}_c{clip}", speaker=speaker, clip=clip, n_frames=n_frames,
                    start=round(start, 3), end=round(duration, 3), x=round(x, 6), y=round(y, 6))
    return plan, rng


def render_clip(cfg: SampleConfig, plan: ClipPlan, rng: np.random.Generator, path: Path) -> None:
    """Synthesise the voice, draw the frames and write one MP4."""
    duration = plan.n_frames / cfg.fps
    utterance = synthesize(plan.speaker, rng, duration, cfg.audio_rate)
    # Lighting, shirt and background are per clip, so they are no identity cue (the voice cannot carry them);
    # lighting stays mild so that it does not blur the skin tones apart.
    lighting = float(rng.uniform(0.95, 1.05))
    shirt = SHIRT_COLOURS[int(rng.integers(len(SHIRT_COLOURS)))]
    layer = draw_face(plan.speaker, cfg.frame_size, lighting, shirt)
    background = make_background(rng, cfg.frame_size)
    # Mouth opening: the envelope averaged over each frame's audio.
    per_frame = cfg.audio_rate // cfg.fps
    env = utterance.envelope[: plan.n_frames * per_frame].reshape(plan.n_frames, -1).mean(axis=1)
    t = np.arange(plan.n_frames) / cfg.fps
    bob_freq, bob_phase = float(rng.uniform(0.3, 0.7)), float(rng.uniform(0, 2 * np.pi))
    bob = np.stack([1.5 * np.sin(2 * np.pi * bob_freq * t + bob_phase),
                    1.0 * np.sin(2 * np.pi * 1.3 * bob_freq * t)], axis=1)
    centre = (plan.x * cfg.frame_size, plan.y * cfg.frame_size)
    frames = render_frames(layer, background, centre, env, bob)
    write_mp4(path, frames, cfg.fps, utterance.audio, cfg.audio_rate)


def csv_line(plan: ClipPlan) -> str:
    """The AVSpeech-format row (fixed decimals, path relative to the CSV's directory)."""
    return f"clips/{plan.stem}.mp4,{plan.start:.3f},{plan.end:.3f},{plan.x:.6f},{plan.y:.6f}\n"


def _render_job(job: tuple[SampleConfig, int, int, str]) -> float:
    cfg, speaker_index, clip, path = job
    plan, rng = plan_clip(cfg, make_speaker(cfg.seed, speaker_index), clip)
    render_clip(cfg, plan, rng, Path(path))
    return plan.n_frames / cfg.fps


def generate_sample(out_dir: str | Path, cfg: SampleConfig, progress: bool = True,
                    workers: int = 1) -> SampleSummary:
    """Write the whole sample into ``out_dir`` (see the module docstring) and return a summary.

    ``workers`` > 1 renders clips in that many processes; every clip has its own RNG stream, so the bytes
    are the same for any number of workers."""
    if cfg.audio_rate % cfg.fps:
        raise SampleConfigError("sample.audio_rate must be a multiple of sample.fps (whole samples per frame)")
    out_dir = Path(out_dir)
    clips_dir = out_dir / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    speakers = [make_speaker(cfg.seed, i) for i in range(cfg.n_speakers)]
    plans = [plan_clip(cfg, spk, j) for spk in speakers for j in range(cfg.clips_per_speaker)]
    wanted = {f"{p.stem}.mp4" for p, _ in plans}
    for stale in clips_dir.glob("*.mp4"):  # a smaller config must not leave old clips behind
        if stale.name not in wanted:
            stale.unlink()
    jobs = [(cfg, p.speaker.index, p.clip, str(clips_dir / f"{p.stem}.mp4")) for p, _ in plans]
    bar = tqdm(total=len(jobs), desc="sample clips", unit="clip", disable=not progress)
    seconds = 0.0
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for done in pool.map(_render_job, jobs):
                seconds += done
                bar.update()
    else:
        for job in jobs:
            seconds += _render_job(job)
            bar.update()
    bar.close()
    atomic_write_bytes(out_dir / "avspeech.csv", "".join(csv_line(p) for p, _ in plans).encode("utf-8"))
    labels = ["video_id,speaker_id,gender,age_group\n"]
    labels += [f"{p.stem},{p.speaker.speaker_id},{p.speaker.gender},{p.speaker.age_group}\n" for p, _ in plans]
    atomic_write_bytes(out_dir / "labels.csv", "".join(labels).encode("utf-8"))
    write_json(out_dir / "speakers.json",
               {s.speaker_id: {k: (round(v, 6) if isinstance(v, float) else v)
                               for k, v in dataclasses.asdict(s).items()} for s in speakers})
    return SampleSummary(speakers=len(speakers), clips=len(plans), seconds=round(seconds, 3), out_dir=out_dir)
