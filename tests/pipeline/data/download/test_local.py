"""Local files and the local mirror (ffmpeg cuts), bad media, GRID clips, and byte-identical reruns."""
from __future__ import annotations

import json
import tarfile

import pytest

from pipeline.common.io import read_json
from pipeline.data.download.runner import DownloadSettings, run_download
from pipeline.data.download.writer import read_attempts
from pipeline.data.media import probe
from pipeline.testing.download import manifest_row, write_manifest
from pipeline.testing.media import make_clip, make_corrupt_file


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    make_clip(root / "clip.mp4", duration=4.0)
    make_clip(root / "mute.mp4", duration=3.0, with_audio=False)
    make_corrupt_file(root / "broken.mp4")
    mirror = root / "mirror"
    make_clip(mirror / "abcdefghijk.mp4", duration=4.0, size=(160, 120))
    return root


def _finals(raw, name):
    finals = {}
    for a in read_attempts(raw / f"{name}.parquet"):
        finals[a["key"]] = a
    return finals


def test_local_files_mirror_and_bad_media(media, tmp_path, grid_dir):
    rows = [
        manifest_row("file_ok", media / "clip.mp4", start=0.5, end=2.5),
        manifest_row("file_mute", media / "mute.mp4", start=0.0, end=2.0),
        manifest_row("file_broken", media / "broken.mp4"),
        manifest_row("file_absent", media / "absent.mp4"),
        manifest_row("file_short", media / "clip.mp4", start=3.0, end=6.0),
        manifest_row("grid", grid_dir / "bbaf2n.mpg", start=0.0, end=2.9, split="test"),
        manifest_row("yt_mirrored", "abcdefghijk", "youtube", start=1.0, end=3.0, video_id="abcdefghijk"),
        manifest_row("yt_not_mirrored", "zzzzzzzzzzz", "youtube", start=1.0, end=3.0, video_id="zzzzzzzzzzz"),
    ]
    settings = DownloadSettings(shard_size=4, concurrency=2, retries=2, backoff=0.01, timeout=60,
                                mirror_dir=str(media / "mirror"))
    raw = tmp_path / "raw"
    totals = run_download(write_manifest(tmp_path / "manifest", rows), raw, settings, progress=False,
                          metrics_path=tmp_path / "metrics.json")

    assert totals["rows_in"] == 8 == totals["ok"] + totals["rejected"]
    assert totals["ok"] == 4  # file_ok, file_mute (no audio is preprocess's call), grid, yt_mirrored
    assert totals["rejected_by_class"] == {"corrupt": 1, "missing_in_mirror": 1, "truncated": 1, "unavailable": 1}
    assert read_json(tmp_path / "metrics.json")["rejected_by_class"] == totals["rejected_by_class"]
    finals = {**_finals(raw, "train-000000"), **_finals(raw, "train-000001"), **_finals(raw, "test-000000")}
    assert finals["file_broken"]["error_class"] == "corrupt"
    assert finals["file_absent"]["error_class"] == "unavailable"
    assert finals["file_short"]["error_class"] == "truncated"
    assert finals["yt_not_mirrored"]["error_class"] == "missing_in_mirror"
    assert all(a["attempt"] == 1 for a in finals.values())  # none of these is retryable
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        f"{s}{suf}" for s in ("test-000000", "train-000000", "train-000001")
        for suf in (".tar", ".parquet", ".stats.json"))
    assert not (tmp_path / "raw.partial").exists()

    with tarfile.open(raw / "test-000000.tar") as tar:
        assert tar.getnames() == ["grid.json", "grid.mp4"]
        record = json.load(tar.extractfile("grid.json"))
        tar.extract("grid.mp4", tmp_path, filter="data")
        assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in tar.getmembers())
    assert record["downloaded_duration"] == pytest.approx(2.9, abs=0.1)
    assert record["download"]["method"] == "ffmpeg-cut" and record["key"] == "grid"
    info = probe(tmp_path / "grid.mp4")
    assert info.has_audio and info.has_video and (info.width, info.height) == (360, 288)


def _dir_bytes(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_rerun_gives_byte_identical_output_dir_and_timings_only_in_metrics(media, tmp_path):
    rows = [manifest_row(f"k{i}", media / "clip.mp4", start=0.2 * i, end=0.2 * i + 1.5) for i in range(3)]
    rows += [manifest_row("k_broken", media / "broken.mp4"), manifest_row("k_absent", media / "absent.mp4")]
    manifest = write_manifest(tmp_path / "manifest", rows)
    settings = DownloadSettings(shard_size=2, concurrency=2, retries=0, timeout=60)
    first = run_download(manifest, tmp_path / "a", settings, progress=False, metrics_path=tmp_path / "m.json")
    run_download(manifest, tmp_path / "b", settings, progress=False)
    a, b = _dir_bytes(tmp_path / "a"), _dir_bytes(tmp_path / "b")
    assert sorted(a) == sorted(f"train-00000{i}{suf}" for i in range(3) for suf in (".tar", ".parquet", ".stats.json"))
    assert a == b  # every file: tars, attempts parquets, stats (no timings, no temp paths)
    assert all("seconds" not in read_json(tmp_path / "a" / n) for n in a if n.endswith(".stats.json"))
    assert "seconds" not in read_attempts(tmp_path / "a" / "train-000000.parquet")[0]

    # timings: per step and per shard in the metrics only
    timings = read_json(tmp_path / "m.json")["timings"]
    assert timings == first["timings"] and timings["seconds"] > 0
    assert sorted(timings["shards"]) == ["train-000000", "train-000001", "train-000002"]
    assert set(timings["shards"]["train-000000"]) == {"seconds", "fetch_seconds", "probe_seconds", "write_seconds"}
    assert timings["fetch_seconds"] == pytest.approx(sum(t["fetch_seconds"] for t in timings["shards"].values()),
                                                     abs=0.01)

    # a second run into the same directory keeps the complete shards untouched and times nothing
    again = run_download(manifest, tmp_path / "a", settings, progress=False)
    assert again["shards_reused"] == 3 and again["ok"] == 3
    assert again["timings"]["shards"] == {} and again["timings"]["fetch_seconds"] == 0
    assert _dir_bytes(tmp_path / "a") == b
