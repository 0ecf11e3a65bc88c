"""A block (bot check, 429, sign-in wall) is not a bad row: through yt-dlp against a loopback server that blocks."""
from __future__ import annotations

import json
import shutil
import tarfile

import pytest

from pipeline.data.download.doctor import cookies_problem, youtube_ready_or_raise
from pipeline.data.download.errors import DownloadBlocked, DownloadConfigError
from pipeline.data.download.runner import DownloadSettings, run_download
from pipeline.data.download.sources import parse_extractor_args, ytdlp_options
from pipeline.data.download.writer import read_attempts
from pipeline.testing.download import manifest_row, write_manifest
from pipeline.testing.http import RangeHTTPServer
from pipeline.testing.media import make_clip


@pytest.fixture(scope="module")
def media_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    make_clip(root / "five.mp4", duration=5.0, size=(160, 120))
    return root


def _settings(**overrides):
    base = dict(shard_size=2, concurrency=1, retries=0, backoff=0.01, timeout=60, min_height=0,
                max_consecutive_blocked=3)
    return DownloadSettings(**{**base, **overrides})


def _rows(server, n, mode=""):
    return [manifest_row(f"clip_{i}", server.url("five.mp4", mode), "url", start=float(i % 3), end=float(i % 3) + 2)
            for i in range(n)]


def test_a_persistent_block_trips_the_breaker_and_rejects_nothing(media_root, tmp_path):
    with RangeHTTPServer(media_root) as server:
        manifest = write_manifest(tmp_path / "manifest", _rows(server, 6, "blocked"))
        with pytest.raises(DownloadBlocked, match=r"3 blocked answers in a row .*0 of 3 shards are complete .*no "
                                                  r"row was rejected"):
            run_download(manifest, tmp_path / "raw", _settings(), progress=False)
        assert len(server.requests) == 3  # it stopped asking
    assert not list((tmp_path / "raw").glob("*.stats.json"))
    assert not list((tmp_path / "raw.partial").glob("*.stats.json"))


@pytest.mark.slow
def test_a_block_that_lifts_resumes_to_the_same_bytes_as_a_run_never_blocked(media_root, tmp_path):
    with RangeHTTPServer(media_root) as server:
        manifest = write_manifest(tmp_path / "manifest", _rows(server, 4))
        clean = run_download(manifest, tmp_path / "clean", _settings(), progress=False)
        assert clean["ok"] == 4
        server.block_first = 2  # now the first shard's two rows are blocked
        with pytest.raises(DownloadBlocked, match=r"1 shard\(s\) \(train-000000\) have rows that stayed blocked"):
            run_download(manifest, tmp_path / "raw", _settings(), progress=False)
        assert not (tmp_path / "raw" / "train-000000.stats.json").exists()
        totals = run_download(manifest, tmp_path / "raw", _settings(), progress=False)
    # the complete shard was kept, only the held-back one was fetched again, and nothing was rejected
    assert totals["ok"] == 4 and totals["rejected"] == 0 and totals["shards_reused"] == 1
    names = sorted(p.name for p in (tmp_path / "clean").iterdir())
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == names
    for name in names:
        assert (tmp_path / "raw" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name


def test_cookies_must_be_netscape_format(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("# Netscape HTTP Cookie File\n.youtube.com\tTRUE\t/\tTRUE\t0\tPREF\tf6=8\n", encoding="utf-8")
    assert cookies_problem(good) is None
    bad = tmp_path / "bad.json"
    bad.write_text('[{"name": "PREF", "value": "f6=8"}]', encoding="utf-8")
    assert "not in Netscape format" in cookies_problem(bad)
    with pytest.raises(DownloadConfigError, match="download.cookies: cookies file .* is not in Netscape format"):
        DownloadSettings(cookies=str(bad)).validate()
    assert "not found" in cookies_problem(tmp_path / "missing.txt")


def test_extractor_args_and_pacing_reach_ytdlp_for_youtube_only(tmp_path):
    assert parse_extractor_args(["youtube:player_client=web,mweb;po_token=web.gvs+TOKEN"]) == \
        {"youtube": {"player_client": ["web", "mweb"], "po_token": ["web.gvs+TOKEN"]}}
    with pytest.raises(DownloadConfigError, match="is not 'extractor:key=value"):
        DownloadSettings.from_params({"extractor_args": ["player_client=web"]})
    settings = {"min_height": 224, "timeout": 30, "sleep_interval": 5.0, "max_sleep_interval": 10.0,
                "extractor_args": ("youtube:player_client=web",)}
    youtube = ytdlp_options(0, 2, tmp_path, settings, youtube=True)
    assert youtube["sleep_interval"] == 5.0 and youtube["max_sleep_interval"] == 10.0
    assert youtube["extractor_args"] == {"youtube": {"player_client": ["web"]}}
    assert "sleep_interval" not in ytdlp_options(0, 2, tmp_path, settings, youtube=False)


def test_youtube_rows_need_a_js_runtime(monkeypatch):
    import pipeline.data.download.doctor as doctor

    youtube_ready_or_raise(0)
    monkeypatch.setattr(doctor, "js_runtimes", lambda: [])
    with pytest.raises(DownloadConfigError, match="3 YouTube rows but yt-dlp finds no JavaScript runtime"):
        youtube_ready_or_raise(3)
    monkeypatch.undo()
    assert doctor.js_runtimes()  # the project's environment has deno (requirements.txt)


@pytest.fixture()
def per_row_media(tmp_path):
    """Six copies of one clip, one file per row, so the server's log says which rows were asked for."""
    root = tmp_path / "www"
    root.mkdir()
    make_clip(root / "clip_0.mp4", duration=5.0, size=(160, 120))
    for i in range(1, 6):
        shutil.copyfile(root / "clip_0.mp4", root / f"clip_{i}.mp4")
    return root


def _per_row(server, n):
    return [manifest_row(f"clip_{i}", server.url(f"clip_{i}.mp4"), "url", start=1.0, end=3.0) for i in range(n)]


def _asked(server, since):
    return sorted({path.rsplit("/", 1)[-1] for _, path, _ in server.requests[since:]})


@pytest.mark.slow
def test_a_rerun_after_blocks_fetches_only_the_blocked_rows_and_writes_what_a_clean_run_writes(per_row_media,
                                                                                              tmp_path):
    settings = _settings(shard_size=3, max_consecutive_blocked=0)
    with RangeHTTPServer(per_row_media) as server:
        manifest = write_manifest(tmp_path / "manifest", _per_row(server, 6))
        assert run_download(manifest, tmp_path / "clean", settings, progress=False)["ok"] == 6
        server.blocked_names = {"clip_0.mp4", "clip_2.mp4"}  # a block in the middle of the first shard
        with pytest.raises(DownloadBlocked, match=r"1 shard\(s\) \(train-000000\) .* fetches only the rows still"):
            run_download(manifest, tmp_path / "raw", settings, progress=False)
        ledger = next((tmp_path / "raw.partial" / "rows").iterdir())
        assert sorted(p.name for p in ledger.glob("*.clip")) == ["clip_1.clip"]  # the row fetched is kept
        server.blocked_names = set()
        since = len(server.requests)
        totals = run_download(manifest, tmp_path / "raw", settings, progress=False)
        assert _asked(server, since) == ["clip_0.mp4", "clip_2.mp4"]  # no clip is downloaded twice
    assert totals["ok"] == 6 and totals["rejected"] == 0
    # the blocks are counted across runs in the metrics, and kept out of data/raw
    assert totals["attempts_across_runs"]["shards"]["train-000000"] == {"blocked": 2, "ok": 3}
    assert not (tmp_path / "raw.partial").exists()
    names = sorted(p.name for p in (tmp_path / "clean").iterdir())
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == names
    for name in names:
        assert (tmp_path / "raw" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name


@pytest.mark.slow
def test_a_rerun_retries_only_rows_rejected_for_a_retryable_reason(per_row_media, tmp_path):
    settings = _settings(shard_size=3)
    with RangeHTTPServer(per_row_media) as server:
        manifest = write_manifest(tmp_path / "manifest", _per_row(server, 3))
        server.failing_names = {"clip_1.mp4", "clip_2.mp4"}  # 503: a server error that may go away
        first = run_download(manifest, tmp_path / "raw", settings, progress=False)
        assert first["ok"] == 1 and first["rejected_by_class"] == {"network": 2}
        server.failing_names = set()
        (per_row_media / "clip_2.mp4").unlink()  # the video went private between the two runs
        since = len(server.requests)
        second = run_download(manifest, tmp_path / "raw", settings, progress=False)
        assert _asked(server, since) == ["clip_1.mp4", "clip_2.mp4"]
        assert second["shards_reopened"] == 1
        assert second["ok"] == 2 and second["rejected_by_class"] == {"unavailable": 1}
        attempts = read_attempts(tmp_path / "raw" / "train-000000.parquet")
        history = {key: [(a["attempt"], a["status"], a["error_class"]) for a in attempts if a["key"] == key]
                   for key in ("clip_0", "clip_1", "clip_2")}
        assert history == {"clip_0": [(1, "ok", "")],
                           "clip_1": [(1, "retry", "network"), (2, "ok", "")],
                           "clip_2": [(1, "retry", "network"), (2, "rejected", "unavailable")]}
        with tarfile.open(tmp_path / "raw" / "train-000000.tar") as tar:
            assert sorted(tar.getnames()) == ["clip_0.json", "clip_0.mp4", "clip_1.json", "clip_1.mp4"]
            record = json.loads(tar.extractfile("clip_1.json").read())
        assert record["download"]["attempts"] == 2
        since = len(server.requests)
        third = run_download(manifest, tmp_path / "raw", settings, progress=False)
        assert _asked(server, since) == [] and third["shards_reopened"] == 0  # unavailable is for good
