"""Fast unit tests of the download stage's pure parts: plan, error classes, yt-dlp options, settings."""
from __future__ import annotations

import pytest

from pipeline.common.errors import PipelineError
from pipeline.data.download.errors import AttemptError, DownloadConfigError, DownloadCountsError, classify_message
from pipeline.data.download.plan import plan_shards, read_manifest
from pipeline.data.download.runner import DownloadSettings, total_stats
from pipeline.data.download.sources import find_in_mirror, format_selector, source_url, ytdlp_options
from pipeline.testing.download import manifest_row, write_manifest


@pytest.mark.parametrize("message, expected", [
    ("ERROR: [youtube] abcdefghijk: Video unavailable. This video has been removed by the uploader", "unavailable"),
    ("ERROR: [youtube] abcdefghijk: Private video. Sign in if you've been granted access", "unavailable"),
    ("ERROR: Unable to download webpage: HTTP Error 404: Not Found", "unavailable"),
    ("ERROR: Unable to download webpage: HTTP Error 403: Forbidden", "unavailable"),
    ("ERROR: Unable to download webpage: HTTP Error 503: Service Unavailable", "network"),
    ("ERROR: [youtube] x: Sign in to confirm you're not a bot. Use --cookies-from-browser", "blocked"),
    ("ERROR: [youtube] x: Sign in to confirm your age. This video may be inappropriate", "unavailable"),
    ("ERROR: Unable to download webpage: HTTP Error 429: Too Many Requests", "blocked"),
    ("ERROR: Unable to download webpage: <urlopen error [Errno 111] Connection refused>", "network"),
    ("ERROR: ffmpeg exited with code 1", "network"),
    ("ERROR: Read timed out.", "timeout"),
    ("something odd happened", "error"),
])
def test_classify_message(message, expected):
    assert classify_message(message) == expected


def test_only_network_timeout_and_blocked_are_retryable():
    assert AttemptError("network", "x").retryable and AttemptError("timeout", "x").retryable
    assert AttemptError("blocked", "x").retryable
    for cls in ("unavailable", "truncated", "corrupt", "missing_in_mirror", "error"):
        assert not AttemptError(cls, "x").retryable
    assert AttemptError("bogus", "x").error_class == "error"


def test_ytdlp_options_for_a_youtube_row(tmp_path):
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n")
    row = manifest_row("k", "abcdefghijk", source_kind="youtube", start=12.5, end=17.0)
    assert source_url(row) == "https://www.youtube.com/watch?v=abcdefghijk"
    opts = ytdlp_options(12.5, 17.0, tmp_path, {"min_height": 224, "timeout": 30, "sleep_interval_requests": 1.5,
                                                 "cookies": str(cookies)})
    assert opts["force_keyframes_at_cuts"] is True
    assert (opts["section_start"], opts["section_end"]) == (12.5, 17.0)
    assert opts["format"] == format_selector(224) and "height>=?224" in opts["format"]
    assert opts["format"].startswith("wv[") and opts["format"].endswith("/b")
    assert opts["cookiefile"] == str(cookies) and opts["sleep_interval_requests"] == 1.5
    assert opts["socket_timeout"] == 30 and opts["retries"] == 0
    assert opts["external_downloader_args"]["ffmpeg_i"] == ["-rw_timeout", "30000000"]
    assert "+bitexact" in opts["external_downloader_args"]["ffmpeg_o"]
    no_cookies = ytdlp_options(0, 1, tmp_path, {"min_height": 224, "timeout": 30, "cookies": ""})
    assert "cookiefile" not in no_cookies


def test_plan_sorts_by_key_and_cuts_shards(tmp_path):
    rows = [manifest_row(f"k{i}", f"/x/{i}.mp4", split="train" if i % 3 else "test") for i in (5, 1, 4, 2, 3, 6, 0)]
    by_split = read_manifest(write_manifest(tmp_path, rows))
    plans = plan_shards(by_split, 2, {"min_height": 0})
    assert [p.name for p in plans] == ["test-000000", "test-000001", "train-000000", "train-000001"]
    assert [r["key"] for p in plans for r in p.rows] == ["k0", "k3", "k6", "k1", "k2", "k4", "k5"]
    again = plan_shards(by_split, 2, {"min_height": 0})
    assert [p.fingerprint for p in plans] == [p.fingerprint for p in again]
    other = plan_shards(by_split, 2, {"min_height": 360})
    assert all(a.fingerprint != b.fingerprint for a, b in zip(plans, other))


def test_manifest_problems_are_config_errors(tmp_path):
    with pytest.raises(DownloadConfigError, match="no manifest"):
        read_manifest(tmp_path)
    write_manifest(tmp_path, [manifest_row("bad.key", "/x.mp4")])
    with pytest.raises(DownloadConfigError, match="invalid key"):
        read_manifest(tmp_path)


def test_settings_validation(tmp_path):
    with pytest.raises(DownloadConfigError, match="unknown download param"):
        DownloadSettings.from_params({"shard_sise": 3})
    with pytest.raises(DownloadConfigError, match="cookies"):
        DownloadSettings.from_params({"cookies": str(tmp_path / "none.txt")})
    with pytest.raises(DownloadConfigError, match="mirror_dir"):
        DownloadSettings.from_params({"mirror_dir": str(tmp_path / "none")})
    assert DownloadSettings.from_params({"shard_size": 3}).shard_size == 3


def test_find_in_mirror(tmp_path):
    (tmp_path / "abcdefghijk.mp4").write_bytes(b"x")
    (tmp_path / "abcdefghijk.info.json").write_bytes(b"{}")
    assert find_in_mirror(tmp_path, "abcdefghijk") == tmp_path / "abcdefghijk.mp4"
    assert find_in_mirror(tmp_path, "zzzzzzzzzzz") is None


def test_retries_with_backoff_then_rejects_and_unexpected_errors_are_recorded(tmp_path, monkeypatch):
    from pipeline.data.download import runner

    calls = []

    def flaky(row, settings, work):
        calls.append(row["key"])
        if row["key"] == "net":
            raise AttemptError("network", "Connection reset by peer")
        raise RuntimeError("a bug in a source")

    monkeypatch.setattr(runner, "_fetch_once", flaky)
    sleeps = []
    monkeypatch.setattr(runner.CANCELLED, "wait", lambda seconds: sleeps.append(seconds) or False)
    settings = DownloadSettings(retries=2, backoff=0.5)
    net = runner.fetch_row(manifest_row("net", "/x.mp4"), settings, tmp_path)
    assert [a["status"] for a in net.attempts] == ["retry", "retry", "rejected"]
    assert [a["attempt"] for a in net.attempts] == [1, 2, 3] and sleeps == [0.5, 1.0]
    bug = runner.fetch_row(manifest_row("bug", "/x.mp4"), settings, tmp_path)
    assert [(a["status"], a["error_class"]) for a in bug.attempts] == [("rejected", "error")]
    assert "RuntimeError: a bug in a source" in bug.attempts[0]["error_message"]


def test_totals_that_do_not_add_up_stop_the_run_in_one_sentence():
    shard = {"split": "train", "rows": 3, "ok": 2, "rejected": 1, "rejected_by_class": {"unavailable": 1},
             "attempts": 3, "retries": 0, "clip_bytes": 10}
    assert total_stats([shard])["rows_in"] == 3
    with pytest.raises(DownloadCountsError) as caught:
        total_stats([shard, {**shard, "ok": 1}])
    assert isinstance(caught.value, PipelineError) and isinstance(caught.value, RuntimeError)
    assert str(caught.value) == ("download counts do not add up: 6 rows in but 3 ok + 2 rejected = 5 over 2 shard "
                                 "stats, so no metrics were written")
