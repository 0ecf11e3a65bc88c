"""The stage CLI through a subprocess on tiny raw shards: summary line, metrics, one-line errors."""
from __future__ import annotations

import os
import subprocess
import sys

from pipeline.common.io import read_json
from pipeline.data.shards import list_shards
from pipeline.testing.media import make_clip, make_corrupt_file
from pipeline.testing.shards import write_raw_shard

PARAMS = """preprocess:
  detector: center
  device: cpu
  image_size: 32
  margin: 0.35
  frame_time: 0.0
  max_center_distance: 0.2
  jpeg_quality: 95
  shard_max_count: 1000
  shard_max_bytes: 256000000
  center_box: 0.45
  dlib_upsample: 1
  face_alignment_dir: ""
  align: none
"""


def _run(repo_root, tmp_path, *extra):
    env = {**os.environ, "PYTHONPATH": str(repo_root), "DVC_NO_ANALYTICS": "1"}
    return subprocess.run([sys.executable, "-m", "stages.preprocess", "--raw", str(tmp_path / "raw"),
                           "--out", str(tmp_path / "shards"), "--metrics", str(tmp_path / "m.json"), *extra],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_stage_cli_writes_shards_and_metrics(tmp_path, repo_root):
    (tmp_path / "params.yaml").write_text(PARAMS)
    media = tmp_path / "media"
    write_raw_shard(tmp_path / "raw", "train", 0, [
        ("a", make_clip(media / "a.mp4", duration=1.0, size=(96, 72)), {}),
        ("b", make_corrupt_file(media / "b.mp4"), {}),
    ], download_rejects=[("c", "unavailable")])
    proc = _run(repo_root, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "preprocess: 3 rows in, 1 samples out in 1 shard(s), 2 rejected (corrupt=1, unavailable=1)" \
        in proc.stdout
    assert "clip/s" in proc.stderr  # tqdm bar with rate
    metrics = read_json(tmp_path / "m.json")
    assert metrics["counts_add_up"] and metrics["image_size"] == 32
    assert len(list_shards(tmp_path / "shards", "train")) == 1


def test_stage_cli_counts_that_do_not_add_up_are_one_sentence_and_no_metrics(tmp_path, repo_root):
    """A status table listing a row that no raw shard holds (a lost raw tar): exit 2 with one sentence naming the
    counts, and no metrics file that would mark the run complete."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.data.download.writer import ATTEMPT_SCHEMA

    (tmp_path / "params.yaml").write_text(PARAMS)
    write_raw_shard(tmp_path / "raw", "train", 0, [("a", make_clip(tmp_path / "media" / "a.mp4", duration=1.0,
                                                                     size=(96, 72)), {})])
    lost = {"key": "b", "source": "b.mp4", "status": "ok", "attempt": 1, "error_class": "", "error_message": "",
            "bytes": 1}
    pq.write_table(pa.Table.from_pylist([lost], schema=ATTEMPT_SCHEMA), tmp_path / "raw" / "train-000001.parquet")
    proc = _run(repo_root, tmp_path)
    assert proc.returncode == 2, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("preprocess: error:")]
    assert "counts do not add up" in line and "list 2 rows, but its raw shards hold 1 clip(s)" in line
    assert "Traceback" not in proc.stderr and not (tmp_path / "m.json").exists()


def test_stage_cli_bad_input_is_one_sentence(tmp_path, repo_root):
    (tmp_path / "params.yaml").write_text(PARAMS.replace("detector: center", "detector: haar"))
    (tmp_path / "raw").mkdir()
    proc = _run(repo_root, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("preprocess: error: params key 'preprocess.detector' = 'haar' is not allowed: it "
                                   "must be 'center', 'dlib', 'dlib_cnn' or 'face_alignment'")
    proc = _run(repo_root, tmp_path, "--params", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
