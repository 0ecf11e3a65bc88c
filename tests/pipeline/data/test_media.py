"""pipeline.data.media: probing real files, and a clear stop when ffmpeg itself is missing."""
from __future__ import annotations

import pytest

from pipeline.data.media import MediaError, ToolMissingError, probe, require_ffmpeg


def test_probe_reads_a_real_clip(grid_dir):
    info = probe(grid_dir / "bbaf2n.mpg")
    assert info.has_video and info.has_audio
    assert (info.width, info.height) == (360, 288)
    assert info.duration == pytest.approx(3.0, abs=0.05)


def test_probe_rejects_text_and_missing_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not media")
    with pytest.raises(MediaError) as err:
        probe(text)
    assert err.value.reason == "corrupt"
    with pytest.raises(MediaError):  # ffprobe itself reports the absent file
        probe(tmp_path / "absent.mp4")


def test_missing_ffmpeg_stops_with_one_sentence(tmp_path, monkeypatch):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00" * 16)
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg/ffprobe reachable
    with pytest.raises(ToolMissingError) as stop:
        require_ffmpeg()
    assert "ffmpeg and ffprobe not found on PATH" in str(stop.value)
    assert not isinstance(stop.value, MediaError)  # so no caller can record it as one clip's rejection
    # an existing file that cannot be probed because ffprobe is absent is not a per-clip rejection
    with pytest.raises(ToolMissingError):
        probe(clip)
