"""`python -m stages.sample` through a subprocess on a tiny params file."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TINY_PARAMS = """sample:
  seed: 1
  n_speakers: 2
  clips_per_speaker: 1
  min_duration: 1.0
  max_duration: 1.5
  frame_size: 64
  fps: 25
  audio_rate: 16000
"""


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([sys.executable, "-m", "stages.sample", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_stage_writes_sample_and_prints_summary(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(TINY_PARAMS)
    out = tmp_path / "sample"
    proc = _run("--out", str(out), "--params", str(params))
    assert proc.returncode == 0, proc.stderr
    assert "sample: 2 speakers, 2 clips" in proc.stdout
    assert sorted(p.name for p in (out / "clips").iterdir()) == ["spk000_c0.mp4", "spk001_c0.mp4"]
    assert len((out / "avspeech.csv").read_text().splitlines()) == 2
    assert (out / "labels.csv").read_text().splitlines()[0] == "video_id,speaker_id,gender,age_group"


def test_stage_bad_params_is_one_sentence(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(TINY_PARAMS.replace("min_duration: 1.0", "min_duration: 9.0"))
    proc = _run("--out", str(tmp_path / "sample"), "--params", str(params))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("sample: error:") and len(proc.stderr.strip().splitlines()) == 1
