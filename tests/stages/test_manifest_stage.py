"""`python -m stages.manifest` through a subprocess, on a tiny generated sample (real MP4s) and on bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.data.sample.generate import SampleConfig, generate_sample

REPO = Path(__file__).resolve().parents[2]
PARAMS = "manifest:\n  csv: unused\n  labels: unused\n  media: unused\n  seed: 0\n  test_fraction: 0.3\n  limit: 0\n"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([sys.executable, "-m", "stages.manifest", "--params", str(params), *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def tiny_sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "sample"
    generate_sample(out, SampleConfig(seed=2, n_speakers=4, clips_per_speaker=2, min_duration=1.0,
                                      max_duration=1.5, frame_size=64, audio_rate=16000), progress=False)
    return out


def test_stage_on_a_generated_sample(tiny_sample: Path, tmp_path: Path) -> None:
    csv_path = tmp_path / "avspeech.csv"  # the sample's rows plus a few bad ones, beside the clips
    lines = (tiny_sample / "avspeech.csv").read_text().splitlines()
    lines = [line.replace("clips/", f"{tiny_sample}/clips/") for line in lines]
    csv_path.write_bytes(("youtube_id,start,end,x,y\n" + "\n".join(lines) + "\n" + lines[0] + "\n").encode()
                         + b"\xff,1,2,0.5,0.5\n")
    out, metrics = tmp_path / "manifest", tmp_path / "metrics.json"
    proc = _run(tmp_path, "--csv", str(csv_path), "--labels", str(tiny_sample / "labels.csv"),
                "--out", str(out), "--metrics", str(metrics))
    assert proc.returncode == 0, proc.stderr
    assert "read 11, kept 8" in proc.stdout and "duplicate 1" in proc.stdout and "header 1" in proc.stdout
    counts = json.loads(metrics.read_text())
    assert counts["rejected_by_reason"]["encoding"] == 1
    assert counts["train_rows"] + counts["test_rows"] == 8
    assert counts["train_groups"] >= 1 and counts["test_groups"] >= 1
    rows = pq.read_table(out / "train.parquet").to_pylist() + pq.read_table(out / "test.parquet").to_pylist()
    assert {r["video_id"] for r in rows} == {Path(line.split(",")[0]).stem for line in lines}
    assert all(r["gender"] in ("M", "F") and r["speaker_id"] == r["video_id"][:6] for r in rows)
    assert all(r["source_kind"] == "file" and len(r["source_sha256"]) == 64 for r in rows)
    train_speakers = {r["speaker_id"] for r in pq.read_table(out / "train.parquet").to_pylist()}
    test_speakers = {r["speaker_id"] for r in pq.read_table(out / "test.parquet").to_pylist()}
    assert not train_speakers & test_speakers
    assert len(pq.read_table(out / "rejects.parquet")) == 3


@pytest.mark.parametrize("content", [b"", b"clip,start,end,x,y\n\xff\n"])
def test_stage_without_usable_rows_exits_with_one_sentence(tmp_path: Path, content: bytes) -> None:
    csv_path = tmp_path / "in.csv"
    csv_path.write_bytes(content)
    proc = _run(tmp_path, "--csv", str(csv_path), "--labels", "", "--out", str(tmp_path / "m"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("manifest: error:") and len(proc.stderr.strip().splitlines()) == 1


def test_stage_missing_csv_and_bad_labels(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--csv", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "m"))
    assert proc.returncode == 2 and "not found" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "in.csv").write_text("abcdefghijk,0,6,0.5,0.5\n")
    (tmp_path / "labels.csv").write_text("id,gender\nx,M\n")
    proc = _run(tmp_path, "--csv", str(tmp_path / "in.csv"), "--labels", str(tmp_path / "labels.csv"),
                "--out", str(tmp_path / "m"))
    assert proc.returncode == 2 and "video_id" in proc.stderr and "Traceback" not in proc.stderr
