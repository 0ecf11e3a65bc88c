"""The ``download`` stage's command line, run as DVC runs it (a subprocess), including kill-and-resume."""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from pipeline.common.io import read_json
from pipeline.data.download.writer import read_attempts
from pipeline.testing.download import manifest_row, write_manifest, write_params
from pipeline.testing.faults import DOWNLOAD_CRASH_AFTER_SHARDS, fault_env
from pipeline.testing.media import make_clip

REPO = Path(__file__).resolve().parents[2]


def run_stage(cwd: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "stages.download", "--manifest", "manifest", "--out", "data/raw",
         "--metrics", "metrics/download.json", "--no-progress", *extra],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def project(tmp_path):
    make_clip(tmp_path / "media" / "clip.mp4", duration=3.0)
    rows = [manifest_row(f"k{i}", "media/clip.mp4", start=0.1 * i, end=0.1 * i + 1.0,
                         split="test" if i == 4 else "train") for i in range(5)]
    write_manifest(tmp_path / "manifest", rows)
    write_params(tmp_path / "params.yaml", shard_size=2)
    return tmp_path


def test_cli_writes_shards_metrics_and_a_summary(project):
    proc = run_stage(project)
    assert proc.returncode == 0, proc.stderr
    assert "download: 5 rows in, 5 ok, 0 rejected (none)" in proc.stdout
    metrics = read_json(project / "metrics" / "download.json")
    assert metrics["splits"] == {"test": {"ok": 1, "rejected": 0, "rows_in": 1},
                                 "train": {"ok": 4, "rejected": 0, "rows_in": 4}}
    assert sorted(p.name for p in (project / "data" / "raw").glob("*.stats.json")) == [
        "test-000000.stats.json", "train-000000.stats.json", "train-000001.stats.json"]


def test_kill_midway_then_resume_gives_the_same_shards(project, tmp_path_factory):
    crashed = run_stage(project, env=fault_env({DOWNLOAD_CRASH_AFTER_SHARDS: 1}))  # dies before shard 2's stats
    assert crashed.returncode == 70
    partial = project / "data" / "raw.partial"
    assert (partial / "test-000000.stats.json").is_file()
    assert (partial / "train-000000.tar").is_file() and not (partial / "train-000000.stats.json").exists()
    assert not (project / "data" / "raw").exists() or not any((project / "data" / "raw").iterdir())

    resumed = run_stage(project)
    assert resumed.returncode == 0, resumed.stderr
    assert read_json(project / "metrics" / "download.json")["shards_reused"] == 1

    clean = tmp_path_factory.mktemp("clean")
    for name in ("manifest", "media", "params.yaml"):
        os.symlink(project / name, clean / name)
    assert run_stage(clean).returncode == 0
    raw, ref = project / "data" / "raw", clean / "data" / "raw"
    # every file (tars, attempts parquets, stats) is byte-identical: DVC hashes data/raw the same
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == {p.name: p.read_bytes() for p in ref.iterdir()}
    keys = []
    for tar_path in sorted(ref.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            keys += [n.split(".")[0] for n in tar.getnames() if n.endswith(".mp4")]
    assert sorted(keys) == [f"k{i}" for i in range(5)]  # no duplicate, none missing
    assert sum(len(read_attempts(p)) for p in ref.glob("*.parquet")) == 5
    assert not (project / "data" / "raw.partial").exists()
    # the resumed run timed only what it fetched: the shard finished before the kill is not in its timings
    timings = read_json(project / "metrics" / "download.json")["timings"]
    assert sorted(timings["shards"]) == ["train-000000", "train-000001"]
    assert sorted(read_json(clean / "metrics" / "download.json")["timings"]["shards"]) == [
        "test-000000", "train-000000", "train-000001"]


def test_all_failing_manifest_finishes_with_rejections(tmp_path):
    write_manifest(tmp_path / "manifest", [manifest_row(f"gone{i}", f"media/gone{i}.mp4") for i in range(3)])
    write_params(tmp_path / "params.yaml")
    proc = run_stage(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "3 rows in, 0 ok, 3 rejected (unavailable 3)" in proc.stdout
    metrics = read_json(tmp_path / "metrics" / "download.json")
    assert metrics["rejected_by_class"] == {"unavailable": 3}
    with tarfile.open(tmp_path / "data" / "raw" / "train-000000.tar") as tar:
        assert tar.getnames() == []


def test_bad_input_is_one_sentence_not_a_traceback(tmp_path):
    write_params(tmp_path / "params.yaml")
    proc = run_stage(tmp_path)  # no manifest directory
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("download: error: no manifest found") and "Traceback" not in proc.stderr
    write_params(tmp_path / "params.yaml", cookies="missing-cookies.txt")
    proc = run_stage(tmp_path)
    assert proc.returncode == 2 and "cookies file missing-cookies.txt not found" in proc.stderr


def test_sigterm_stops_running_ytdlp_children(tmp_path):
    from pipeline.testing.http import RangeHTTPServer

    make_clip(tmp_path / "www" / "clip.mp4", duration=2.0)
    with RangeHTTPServer(tmp_path / "www", slow_seconds=60) as server:
        write_manifest(tmp_path / "manifest", [manifest_row(f"slow{i}", server.url("clip.mp4", "slow"), "url",
                                                            start=0.0, end=1.0) for i in range(2)])
        write_params(tmp_path / "params.yaml", timeout=120)
        env = {**os.environ, "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "stages.download", "--manifest", "manifest", "--out", "raw",
                                 "--no-progress"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(server.requests) < 2 and time.monotonic() < deadline:  # both children are waiting on us
            time.sleep(0.2)
        began = time.monotonic()
        proc.terminate()
        proc.communicate(timeout=30)
        assert proc.returncode == 128 + 15
        assert time.monotonic() - began < 15  # did not wait out the 60-s responses
    assert not list((tmp_path / "raw").glob("*.stats.json"))
