"""Preprocess on generated media: every rejection reason, counts that add up, and resume → identical files."""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

import pipeline.data.preprocess as pp
from pipeline.common.errors import PipelineError
from pipeline.common.io import read_json
from pipeline.data.preprocess import PreprocessConfig, run_preprocess
from pipeline.data.shards import iter_samples, list_shards
from pipeline.testing.media import make_clip, make_corrupt_file
from pipeline.testing.shards import write_raw_shard


def _status(out: Path) -> dict[str, tuple[str, str]]:
    rows = {}
    for path in sorted(out.glob("*.parquet")):
        for r in pq.read_table(path).to_pylist():
            rows[r["key"]] = (r["status"], r["reason"])
    return rows


def test_every_rejection_reason_is_recorded_and_counts_add_up(tmp_path, grid_dir):
    media = tmp_path / "media"
    good = grid_dir / "swiz3n.mpg"
    clips = [
        ("good", good, {"x": 0.5, "y": 0.55}),
        ("off_centre", good, {"x": 0.05, "y": 0.05}),
        ("blank", make_clip(media / "blank.mp4", duration=1.0, size=(160, 120)), {}),
        ("silent", make_clip(media / "silent.mp4", duration=1.0, with_audio=False), {}),
        ("audio_only", make_clip(media / "audio_only.mp4", duration=1.0, with_video=False), {}),
        ("short", make_clip(media / "short.mp4", duration=0.3), {}),
        ("corrupt", make_corrupt_file(media / "corrupt.mp4"), {}),
    ]
    raw = tmp_path / "raw"
    write_raw_shard(raw, "train", 0, clips, download_rejects=[("gone", "unavailable"), ("slow", "network")])
    cfg = PreprocessConfig(detector="dlib", image_size=48, dlib_upsample=0)
    metrics = run_preprocess(raw, tmp_path / "shards", cfg, progress=False)
    assert _status(tmp_path / "shards") == {
        "good": ("ok", ""), "off_centre": ("rejected", "face_off_centre"), "blank": ("rejected", "no_face"),
        "silent": ("rejected", "no_audio"), "audio_only": ("rejected", "no_video"),
        "short": ("rejected", "audio_too_short"), "corrupt": ("rejected", "corrupt"),
    }
    assert metrics["rows_in"] == 9 and metrics["samples_out"] == 1 and metrics["counts_add_up"]
    assert metrics["download_rejections"] == {"network": 1, "unavailable": 1}
    assert sum(metrics["preprocess_rejections"].values()) == 6
    (sample,) = iter_samples(list_shards(tmp_path / "shards", "train"))
    assert sample["face"].shape == (48, 48, 3) and sample["meta"]["audio_fit"] == "pad"
    assert sample["meta"]["detector"] == "dlib" and len(sample["meta"]["face_box"]) == 4


def _raw_center_clips(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    raw = tmp_path / "raw"
    for shard in range(2):
        clips = [(f"c{shard}{i}", make_clip(media / f"c{shard}{i}.mp4", duration=0.6 + 0.1 * i,
                                             size=(96, 72), tone_hz=300 + 50 * i), {"x": 0.5, "y": 0.5})
                 for i in range(3)]
        write_raw_shard(raw, "train", shard, clips)
    write_raw_shard(raw, "test", 0, [("t0", media / "c00.mp4", {"x": 0.5, "y": 0.5})])
    return raw


def _files(out: Path) -> dict[str, bytes]:
    """Every file of an output directory (tars, status parquets, stats JSON) → its bytes."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_two_runs_give_byte_identical_output_dirs_and_timings_only_in_metrics(tmp_path):
    media = tmp_path / "media"
    raw = tmp_path / "raw"
    write_raw_shard(raw, "train", 0, [
        ("a", make_clip(media / "a.mp4", duration=0.7, size=(96, 72)), {"x": 0.5, "y": 0.5}),
        ("b", make_clip(media / "b.mp4", duration=0.8, size=(96, 72), tone_hz=500), {"x": 0.5, "y": 0.5}),
        ("broken", make_corrupt_file(media / "broken.mp4"), {}),
        ("mute", make_clip(media / "mute.mp4", duration=0.7, size=(96, 72), with_audio=False), {}),
    ], download_rejects=[("gone", "unavailable")])
    cfg = PreprocessConfig(detector="center", image_size=32, shard_max_count=1)
    m1 = run_preprocess(raw, tmp_path / "one", cfg, progress=False)
    run_preprocess(raw, tmp_path / "two", cfg, progress=False)   # another temp work dir, another run
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(one) == sorted(f"train-00000{i}{s}" for i in range(3) for s in (".tar", ".parquet", ".stats.json"))
    assert one == two
    status = {r["key"]: r for p in sorted((tmp_path / "one").glob("*.parquet")) for r in pq.read_table(p).to_pylist()}
    assert set(status["a"]) == {"key", "status", "reason", "detail"}                  # no timing columns
    assert status["broken"]["reason"] == "corrupt" and "preprocess-" not in status["broken"]["detail"]
    assert " @ 0x" not in status["broken"]["detail"]
    assert "seconds" not in read_json(tmp_path / "one" / "train-000000.stats.json")

    timings = m1["timings"]   # parts of 1 sample: a | b | the two rejections
    assert sorted(timings["shards"]) == ["train-000000", "train-000001", "train-000002"]
    assert sum(t["clips"] for t in timings["shards"].values()) == 4 == m1["clips_processed_this_run"]
    assert set(timings["seconds_per_step"]) == set(pp.STEPS) and timings["seconds_per_step"]["decode"] > 0
    assert timings["clips_per_s"] > 0 and timings["wall_seconds"] > 0
    again = run_preprocess(raw, tmp_path / "one", cfg, progress=False)   # all complete: reused, nothing timed
    assert again["timings"]["shards"] == {} and again["clips_processed_this_run"] == 0
    assert _files(tmp_path / "one") == two


def test_clean_detail_drops_work_dir_and_ffmpeg_addresses(tmp_path):
    message = f"ffmpeg cannot decode audio of {tmp_path}/clip.mp4: [aac @ 0x55d1c0a2b440] invalid data"
    assert pp.clean_detail(message, tmp_path) == "ffmpeg cannot decode audio of clip.mp4: [aac] invalid data"


def test_resume_after_interruption_gives_identical_shards(tmp_path, monkeypatch):
    raw = _raw_center_clips(tmp_path)
    cfg = PreprocessConfig(detector="center", image_size=32, shard_max_count=2)
    clean = tmp_path / "clean"
    m_clean = run_preprocess(raw, clean, cfg, progress=False)
    assert m_clean["samples_out"] == 7 and m_clean["shards"] == 5   # raw shards of 3 → parts of 2 + 1
    names = sorted(p.name for p in clean.glob("*.tar"))
    assert names == ["test-000000.tar"] + [f"train-00000{i}.tar" for i in range(4)]

    resumed = tmp_path / "resumed"
    real = pp.process_clip
    calls = {"n": 0}

    def dies_on_fifth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pp, "process_clip", dies_on_fifth)
    with pytest.raises(KeyboardInterrupt):
        run_preprocess(raw, resumed, cfg, progress=False)
    monkeypatch.setattr(pp, "process_clip", real)
    assert (resumed / "test-000000.stats.json").exists()          # completed before the kill: kept
    assert not (resumed / "train-000003.stats.json").exists()
    m_resumed = run_preprocess(raw, resumed, cfg, progress=False)
    assert m_resumed["clips_processed_this_run"] == 3              # only the unfinished raw shard redone
    assert _files(resumed) == _files(clean)   # every file, status parquets and stats included
    keys = [s["key"] for s in iter_samples(list_shards(resumed, "train"), fields=["meta"])]
    assert keys == sorted(set(keys)) and len(keys) == 6
    assert not list(resumed.glob(".*.tmp"))


def _drop_clip(raw_tar: Path, key: str) -> None:
    """Rewrite a raw shard without ``key``'s files: a damaged shard whose status table still lists it as ok."""
    import io
    import tarfile

    with tarfile.open(raw_tar) as tar:
        kept = [(m, tar.extractfile(m).read()) for m in tar if m.isfile() and m.name.split(".")[0] != key]
    with tarfile.open(raw_tar, "w", format=tarfile.GNU_FORMAT) as tar:
        for member, data in kept:
            tar.addfile(member, io.BytesIO(data))


def test_counts_that_do_not_add_up_stop_the_run_before_any_shard_is_written(tmp_path):
    """A raw shard that lost a clip its status table lists as ok: one sentence naming the counts, and no shard,
    stats file or metrics marks anything complete."""
    media, raw = tmp_path / "media", tmp_path / "raw"
    tar = write_raw_shard(raw, "train", 0, [(k, make_clip(media / f"{k}.mp4", duration=0.7, size=(96, 72)), {})
                                             for k in ("a", "b")], download_rejects=[("c", "unavailable")])
    _drop_clip(tar, "b")
    with pytest.raises(pp.CountsDoNotAddUp) as caught:
        run_preprocess(raw, tmp_path / "shards", PreprocessConfig(detector="center", image_size=32), progress=False)
    message = str(caught.value)
    assert isinstance(caught.value, PipelineError) and "\n" not in message
    assert message.startswith("preprocess counts do not add up: the status tables of ")
    assert "list 3 rows, but its raw shards hold 1 clip(s) and the download rejected 1 row(s) (2 in all)" in message
    assert not (tmp_path / "shards").exists() and not (tmp_path / "shards.partial").exists()


def test_count_outcomes_refuses_shard_stats_that_do_not_add_up(tmp_path):
    """The last check before the metrics: rows in = samples out + download and preprocess rejections, or one
    sentence naming the four counts."""
    raw = tmp_path / "raw"
    write_raw_shard(raw, "train", 0, [("a", b"x", {}), ("b", b"y", {})], download_rejects=[("c", "unavailable")])
    cfg = PreprocessConfig(detector="center", image_size=32)
    lost = [{"split": "train", "samples": 1, "rejected": 0, "rejections": {}, "keys_in": 1}]
    with pytest.raises(pp.CountsDoNotAddUp, match=r"^preprocess counts do not add up: 3 rows in, but 1 samples out "
                                                  r"\+ 1 download rejections \+ 0 preprocess rejections = 2, so no "
                                                  r"metrics were written$"):
        pp.count_outcomes(raw, lost, cfg, processed=1)
    whole = [{"split": "train", "samples": 1, "rejected": 1, "rejections": {"corrupt": 1}, "keys_in": 2}]
    metrics = pp.count_outcomes(raw, whole, cfg, processed=2)
    assert metrics["rows_in"] == 3 and metrics["counts_add_up"] is True


def test_local_processes_give_the_same_shards_as_one_process(tmp_path):
    """cluster.local_processes: raw shards preprocessed by two spawned processes finish in any order, and the
    driver still numbers and writes the shards exactly as one process does."""
    from pipeline.data.engine import EngineSettings

    media, raw = tmp_path / "media", tmp_path / "raw"
    for split, index, names in (("train", 0, "ab"), ("train", 1, "c"), ("test", 0, "d")):
        write_raw_shard(raw, split, index, [
            (n, make_clip(media / f"{n}.mp4", duration=0.7, size=(96, 72), tone_hz=300 + 100 * i), {"x": 0.5, "y": 0.5})
            for i, n in enumerate(names)])
    cfg = PreprocessConfig(detector="center", image_size=32, shard_max_count=1)
    one = run_preprocess(raw, tmp_path / "one", cfg, progress=False, engine=EngineSettings(local_processes=1))
    two = run_preprocess(raw, tmp_path / "two", cfg, progress=False, engine=EngineSettings(local_processes=2))
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    assert len(list_shards(tmp_path / "two", "train")) == 3 and one["samples_out"] == two["samples_out"] == 4
