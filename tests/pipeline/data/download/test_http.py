"""Through yt-dlp for real, against a loopback HTTP server with Range support started by the test."""
from __future__ import annotations

import json
import tarfile
import urllib.error
import urllib.request

import pytest

from pipeline.data.download.runner import DownloadSettings, run_download
from pipeline.data.download.writer import read_attempts
from pipeline.data.media import probe
from pipeline.testing.download import manifest_row, write_manifest
from pipeline.testing.http import RangeHTTPServer
from pipeline.testing.media import make_clip


@pytest.fixture(scope="module")
def http_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    make_clip(root / "five.mp4", duration=5.0, size=(160, 120))
    with RangeHTTPServer(root) as server:
        yield server


def test_server_honours_ranges(http_server):
    request = urllib.request.Request(http_server.url("five.mp4"), headers={"Range": "bytes=10-19"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 206
        assert resp.headers["Accept-Ranges"] == "bytes"
        assert resp.headers["Content-Range"].startswith("bytes 10-19/")
        assert len(resp.read()) == 10
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(http_server.url("five.mp4", "missing"), timeout=10)
    assert err.value.code == 404


def test_sections_404_and_truncation_through_ytdlp(http_server, tmp_path):
    rows = [
        manifest_row("a_section", http_server.url("five.mp4"), "url", start=1.0, end=3.0),
        manifest_row("b_missing", http_server.url("five.mp4", "missing"), "url", start=1.0, end=3.0),
        manifest_row("c_truncated", http_server.url("five.mp4", "truncated"), "url", start=1.0, end=3.0),
        # the source ends at 5 s: yt-dlp exits 0 with a 2-s file, our duration check must reject it
        manifest_row("d_past_end", http_server.url("five.mp4"), "url", start=3.0, end=8.0),
    ]
    settings = DownloadSettings(shard_size=8, concurrency=2, retries=1, backoff=0.01, timeout=60, min_height=0)
    totals = run_download(write_manifest(tmp_path / "manifest", rows), tmp_path / "raw", settings, progress=False)

    assert totals["rows_in"] == 4 and totals["ok"] == 1 and totals["rejected"] == 3
    attempts = read_attempts(tmp_path / "raw" / "train-000000.parquet")
    final = {}
    for a in attempts:
        final[a["key"]] = a
    assert final["a_section"]["status"] == "ok" and final["a_section"]["bytes"] > 0
    assert final["b_missing"]["error_class"] == "unavailable" and "404" in final["b_missing"]["error_message"]
    assert final["d_past_end"]["error_class"] == "truncated"
    # the truncated response is recorded: a retryable failure, retried once, then rejected
    truncated = [a for a in attempts if a["key"] == "c_truncated"]
    assert final["c_truncated"]["status"] == "rejected"
    assert final["c_truncated"]["error_class"] in ("truncated", "network", "corrupt")
    if final["c_truncated"]["error_class"] == "network":
        assert [a["status"] for a in truncated] == ["retry", "rejected"]
    assert sum(1 for a in attempts if a["key"] == "b_missing") == 1  # 404 is not retried

    with tarfile.open(tmp_path / "raw" / "train-000000.tar") as tar:
        assert tar.getnames() == ["a_section.json", "a_section.mp4"]
        tar.extract("a_section.mp4", tmp_path, filter="data")
    info = probe(tmp_path / "a_section.mp4")
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert info.has_audio and info.has_video


def test_a_403_on_one_format_falls_back_to_another_and_all_403_is_one_recorded_rejection(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    make_clip(root / "five.mp4", duration=5.0, size=(160, 120))
    # an HTML5 page with two formats: yt-dlp picks the smaller one (min_height 0), which answers 403
    page = ('<html><body><video controls><source src="/forbidden/five.mp4" type="video/mp4" res="240">'
            '<source src="{second}" type="video/mp4" res="360"></video></body></html>')
    (root / "one_refused.html").write_text(page.format(second="/five.mp4"), encoding="utf-8")
    (root / "all_refused.html").write_text(page.format(second="/forbidden/five.mp4?second"), encoding="utf-8")
    with RangeHTTPServer(root) as server:
        rows = [manifest_row("a_one_refused", server.url("one_refused.html"), "url", start=1.0, end=3.0),
                manifest_row("b_all_refused", server.url("all_refused.html"), "url", start=1.0, end=3.0)]
        settings = DownloadSettings(shard_size=8, concurrency=1, retries=0, backoff=0.01, timeout=60, min_height=0)
        totals = run_download(write_manifest(tmp_path / "manifest", rows), tmp_path / "raw", settings,
                              progress=False)
    assert totals["ok"] == 1 and totals["rejected_by_class"] == {"unavailable": 1}
    with tarfile.open(tmp_path / "raw" / "train-000000.tar") as tar:
        record = json.loads(tar.extractfile("a_one_refused.json").read())
    # formats without an id are numbered by yt-dlp: the second is "0" again once the refused one is gone
    assert record["download"]["formats_refused"] == ["0"] and record["download"]["height"] == 120
    final = {a["key"]: a for a in read_attempts(tmp_path / "raw" / "train-000000.parquet")}
    assert "403" in final["b_all_refused"]["error_message"]
    assert "formats refused before: 0, 0" in final["b_all_refused"]["error_message"]
