"""The manifest: every rejection reason, counts that add up, group-disjoint seeded split, stability, limit,
deterministic bytes and clear errors."""
from __future__ import annotations

import re
import string
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.data.manifest import (
    REASONS,
    Label,
    ManifestConfig,
    ManifestError,
    build_manifest,
    read_labels,
    summary_line,
    write_manifest,
)

KEY = re.compile(r"[A-Za-z0-9_-]+")


def _yt(i: int) -> str:
    """A valid 11-character YouTube-style id for video ``i``."""
    alphabet = string.ascii_letters + string.digits + "_-"
    out = ""
    for _ in range(11):
        out += alphabet[i % 64]
        i //= 64
    return out


def _write(path: Path, lines: list[bytes] | list[str]) -> Path:
    path.write_bytes(b"".join((l if isinstance(l, bytes) else l.encode()) + b"\n" for l in lines))
    return path


def _check_counts(result) -> None:
    c = result.counts
    assert c["read"] == c["kept"] + c["rejected"] + c["limited"]
    assert c["rejected"] == sum(c["rejected_by_reason"].values())
    assert c["kept"] == c["train_rows"] + c["test_rows"] == len(result.rows)
    rows_seen = sorted([r.row for r in result.rows] + [r.row for r in result.rejects])
    assert len(rows_seen) == len(set(rows_seen))


def test_every_rejection_reason(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(b"fake clip a")
    (tmp_path / "clips" / "b.mp4").write_bytes(b"fake clip b")
    lines = [
        "youtube_id,start,end,x,y",                        # 1 header
        f"{_yt(1)},10.0,16.0,0.5,0.4",                     # 2 ok youtube
        "clips/a.mp4,0.000,5.000,0.5,0.5",                 # 3 ok file
        "https://example.org/media/talk.mp4,1,7,0.2,0.3",  # 4 ok url
        "",                                                # 5 empty_line
        b"clips/b.mp4,0,5,0.5,0.5\xff\xfe",                # 6 encoding
        f"{_yt(2)},1.0,2.0,0.5",                           # 7 malformed (4 fields)
        f"{_yt(3)},one,2.0,0.5,0.5",                       # 8 malformed (number)
        "ftp://example.org/x.mp4,0,5,0.5,0.5",             # 9 bad_url
        "abc123,0,5,0.5,0.5",                              # 10 bad_id (10 chars, not a file)
        f"{_yt(4)},5.0,5.0,0.5,0.5",                       # 11 bad_times (start == end)
        f"{_yt(5)},-1.0,5.0,0.5,0.5",                      # 12 bad_times (negative)
        f"{_yt(6)},0,5,1.5,0.5",                           # 13 bad_centre
        "clips/missing.mp4,0,5,0.5,0.5",                   # 14 missing_file
        f"{_yt(1)},10.0,16.0,0.5,0.4",                     # 15 duplicate of 2
        f"{_yt(7)},0,nan,0.5,0.5",                         # 16 malformed (not finite)
        "https://,0,5,0.5,0.5",                            # 17 bad_url (no host)
    ]
    csv_path = _write(tmp_path / "in.csv", lines)
    result = build_manifest(csv_path, None, ManifestConfig(), root=tmp_path)
    reasons = {r.row: r.reason for r in result.rejects}
    assert reasons == {1: "header", 5: "empty_line", 6: "encoding", 7: "malformed", 8: "malformed",
                       9: "bad_url", 10: "bad_id", 11: "bad_times", 12: "bad_times", 13: "bad_centre",
                       14: "missing_file", 15: "duplicate", 16: "malformed", 17: "bad_url"}
    assert set(reasons.values()) == set(REASONS)
    assert all(r.detail for r in result.rejects)
    kinds = {r.row: (r.source_kind, r.source, r.video_id) for r in result.rows}
    assert kinds == {2: ("youtube", _yt(1), _yt(1)), 3: ("file", "clips/a.mp4", "a"),
                     4: ("url", "https://example.org/media/talk.mp4", "talk")}
    file_row = next(r for r in result.rows if r.source_kind == "file")
    assert file_row.source_sha256 and len(file_row.source_sha256) == 64
    assert all(r.source_sha256 is None for r in result.rows if r.source_kind != "file")
    _check_counts(result)
    assert result.counts["rejected_by_reason"]["malformed"] == 3


def _many_rows(n_videos: int, rows_per_video: int = 3, first: int = 0) -> list[str]:
    return [f"{_yt(v)},{10 * k}.0,{10 * k + 6}.0,0.5,0.5"
            for v in range(first, first + n_videos) for k in range(rows_per_video)]


def test_split_is_video_and_speaker_disjoint(tmp_path: Path) -> None:
    csv_path = _write(tmp_path / "in.csv", _many_rows(90))
    # 30 speakers with 3 videos each; every speaker's videos must land in one split
    labels = {_yt(v): Label(f"s{v % 30}", "MF"[v % 2], None) for v in range(90)}
    result = build_manifest(csv_path, labels, ManifestConfig(seed=1, test_fraction=0.3))
    split_of_video: dict[str, set[str]] = {}
    split_of_speaker: dict[str, set[str]] = {}
    for r in result.rows:
        split_of_video.setdefault(r.video_id, set()).add(r.split)
        split_of_speaker.setdefault(r.speaker_id, set()).add(r.split)
    assert all(len(s) == 1 for s in split_of_video.values())
    assert all(len(s) == 1 for s in split_of_speaker.values())
    assert result.counts["test_groups"] + result.counts["train_groups"] == 30
    assert 3 <= result.counts["test_groups"] <= 17  # about 30 % of 30 speakers
    unlabelled = build_manifest(csv_path, None, ManifestConfig(seed=1, test_fraction=0.3))
    assert unlabelled.counts["train_groups"] + unlabelled.counts["test_groups"] == 90


def test_split_is_stable_when_rows_are_added(tmp_path: Path) -> None:
    cfg = ManifestConfig(seed=7, test_fraction=0.25)
    small = build_manifest(_write(tmp_path / "a.csv", _many_rows(40, 2)), None, cfg)
    bigger_lines = _many_rows(40, 3) + _many_rows(60, 2, first=40)
    bigger = build_manifest(_write(tmp_path / "b.csv", bigger_lines[::-1]), None, cfg)  # reordered too
    split = {r.key: r.split for r in bigger.rows}
    assert all(split[r.key] == r.split for r in small.rows)
    other_seed = build_manifest(tmp_path / "a.csv", None, ManifestConfig(seed=8, test_fraction=0.25))
    assert [r.split for r in other_seed.rows] != [r.split for r in small.rows]


def test_both_splits_non_empty_with_two_groups(tmp_path: Path) -> None:
    for seed in range(10):
        result = build_manifest(_write(tmp_path / "in.csv", _many_rows(2, 1)), None,
                                ManifestConfig(seed=seed, test_fraction=0.2))
        assert sorted(r.split for r in result.rows) == ["test", "train"]


def test_limit_is_a_deterministic_whole_group_subset(tmp_path: Path) -> None:
    csv_path = _write(tmp_path / "in.csv", _many_rows(50, 3))
    full = build_manifest(csv_path, None, ManifestConfig(seed=0))
    limited = build_manifest(csv_path, None, ManifestConfig(seed=0, limit=20))
    again = build_manifest(csv_path, None, ManifestConfig(seed=0, limit=20))
    assert len(limited.rows) == 20 and limited.counts["limited"] == 130
    assert [r.key for r in limited.rows] == [r.key for r in again.rows]
    full_split = {r.key: r.split for r in full.rows}
    # a subset with the full input's splits, except that one group may move so that neither split is empty
    assert {r.split for r in limited.rows} == {"train", "test"}
    assert len({r.video_id for r in limited.rows if full_split[r.key] != r.split}) <= 1
    half = build_manifest(csv_path, None, ManifestConfig(seed=0, test_fraction=0.5, limit=20))
    half_full = {r.key: r.split for r in build_manifest(csv_path, None, ManifestConfig(0, 0.5)).rows}
    assert all(half_full[r.key] == r.split for r in half.rows)
    by_video: dict[str, int] = {}
    for r in limited.rows:
        by_video[r.video_id] = by_video.get(r.video_id, 0) + 1
    assert sum(1 for n in by_video.values() if n < 3) <= 1  # whole groups except the last one
    _check_counts(limited)


def test_keys_are_unique_and_safe(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    (tmp_path / "x" / "my clip.v2.mp4").write_bytes(b"1")
    (tmp_path / "y" / "my clip.v2.mp4").write_bytes(b"2")
    lines = ["x/my clip.v2.mp4,0,5,0.5,0.5", "y/my clip.v2.mp4,0,5,0.5,0.5", "x/my clip.v2.mp4,0,6,0.5,0.5",
             f"{_yt(9)},1.5,7,0.5,0.5"]
    result = build_manifest(_write(tmp_path / "in.csv", lines), None, ManifestConfig(), root=tmp_path)
    keys = [r.key for r in result.rows]
    assert len(keys) == len(set(keys)) == 4
    assert all(KEY.fullmatch(k) for k in keys)
    assert f"{_yt(9)}_1500" in keys
    assert keys == sorted(keys)


def test_output_bytes_are_deterministic(tmp_path: Path) -> None:
    csv_path = _write(tmp_path / "in.csv", _many_rows(20) + ["junk line"])
    labels = {_yt(v): Label(f"s{v // 2}", "F", "adult") for v in range(20)}
    for out in ("o1", "o2"):
        result = build_manifest(csv_path, labels, ManifestConfig(seed=3))
        write_manifest(result, tmp_path / out, tmp_path / out / "metrics.json")
    for name in ("train.parquet", "test.parquet", "rejects.parquet", "metrics.json"):
        assert (tmp_path / "o1" / name).read_bytes() == (tmp_path / "o2" / name).read_bytes(), name
    table = pq.read_table(tmp_path / "o1" / "train.parquet")
    assert table.column_names == ["key", "source_kind", "source", "video_id", "start", "end", "x", "y", "split",
                                  "speaker_id", "gender", "age_group", "row", "source_sha256"]
    assert table.schema.metadata is None or b"pandas" not in table.schema.metadata
    rejects = pq.read_table(tmp_path / "o1" / "rejects.parquet").to_pylist()
    assert rejects == [{"row": 61, "line": "junk line", "reason": "malformed",
                        "detail": "expected 5 fields (source,start,end,x,y), got 1"}]


def test_nothing_usable_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="empty"):
        build_manifest(_write(tmp_path / "empty.csv", []), None, ManifestConfig())
    with pytest.raises(ManifestError, match="not found"):
        build_manifest(tmp_path / "nope.csv", None, ManifestConfig())
    with pytest.raises(ManifestError, match=r"no usable rows .*header 1, malformed 1"):
        build_manifest(_write(tmp_path / "bad.csv", ["clip,start,end,x,y", "a,1"]), None, ManifestConfig())


def test_labels_are_validated(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("video_id,speaker_id,gender,age_group\nv1,s1,M,adult\nv2,s1,f,\n")
    assert read_labels(good) == {"v1": Label("s1", "M", "adult"), "v2": Label("s1", "F", None)}
    for text, message in [("speaker,gender\ns1,M\n", "video_id"), ("video_id,gender\nv1,X\n", "M or F"),
                          ("video_id,gender\nv1,M,extra\n", "number of fields"),
                          ("video_id,speaker_id\nv1,a\nv1,b\n", "two different")]:
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        with pytest.raises(ManifestError, match=message):
            read_labels(bad)
    (tmp_path / "latin.csv").write_bytes(b"video_id\n\xe9\n")
    with pytest.raises(ManifestError, match="UTF-8"):
        read_labels(tmp_path / "latin.csv")
    with pytest.raises(ManifestError, match="not found"):
        read_labels(tmp_path / "missing.csv")


def test_config_is_validated() -> None:
    section = {"csv": "a.csv", "labels": "", "media": "data", "seed": 0, "test_fraction": 0.25, "limit": 0}
    assert ManifestConfig.from_params(section) == ManifestConfig()  # the defaults are params.yaml's
    with pytest.raises(ManifestError, match="test_fraction"):
        ManifestConfig.from_params({**section, "test_fraction": 1.5})
    with pytest.raises(ManifestError, match="limit"):
        ManifestConfig.from_params({**section, "limit": -1})
    with pytest.raises(ManifestError, match=r"unknown manifest params: test_fracton \(known: csv,"):
        ManifestConfig.from_params({**section, "test_fracton": 0.3})
    with pytest.raises(ManifestError, match="lack limit"):
        ManifestConfig.from_params({k: v for k, v in section.items() if k != "limit"})


def test_config_defaults_are_params_yaml(repo_root) -> None:
    """Library defaults never contradict params.yaml (a test or a library user gets the demo's values)."""
    import dataclasses

    import yaml

    from pipeline.data.download import DownloadSettings
    from pipeline.data.sample.corpus import CorpusConfig
    from pipeline.data.sample.generate import SampleConfig
    params = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    for cls, section in ((ManifestConfig, "manifest"), (SampleConfig, "sample"), (CorpusConfig, "face_corpus"),
                         (DownloadSettings, "download")):
        for field in dataclasses.fields(cls):
            default = getattr(cls(), field.name)
            default = list(default) if isinstance(default, tuple) else default  # frozen dataclasses hold tuples
            assert default == params[section][field.name], f"{section}.{field.name}"


def test_bad_label_rows_are_counted_and_left_out_not_fatal(tmp_path: Path) -> None:
    from collections import Counter
    csv_path = _write(tmp_path / "a.csv", [f"{_yt(i)},0,3,0.5,0.5" for i in range(6)])
    labels_csv = tmp_path / "labels.csv"
    labels_csv.write_text(
        "video_id,speaker_id,gender\n"
        f"{_yt(0)},s0,M\n"            # usable, matched
        f"{_yt(1)},s1,X\n"            # unknown gender: kept without one
        f"{_yt(2)},s2,F\n{_yt(2)},s2,M\n"  # one video, two labels: both dropped
        f"{_yt(3)},s3,F\n{_yt(4)},s3,M\n"  # one speaker, two genders: kept without a gender
        f"{_yt(5)},s5\n"              # wrong field count
        "notinthecsv,s9,F\n")         # matches no row
    problems: Counter = Counter()
    labels = read_labels(labels_csv, problems)
    assert problems == Counter(unknown_gender=1, conflicting_video=1, speaker_gender_conflict=2, malformed=1)
    result = build_manifest(csv_path, labels, ManifestConfig(), label_problems=problems, labels_path=labels_csv)
    assert result.counts["labels"] == {"usable": 5, "matched": 4, "unmatched": 1, "with_gender": 1, "malformed": 1,
                                       "unknown_gender": 1, "conflicting_video": 1, "speaker_gender_conflict": 2}
    genders = {r.video_id: r.gender for r in result.rows}
    assert genders[_yt(0)] == "M" and genders[_yt(1)] is None and genders[_yt(3)] is None
    assert "labels: 4 of 5 matched a video (1 with a gender), 1 unmatched" in summary_line(result.counts)
    unmatched = tmp_path / "other.csv"
    unmatched.write_text("video_id,gender\nzzz,M\nyyy,X\n")
    problems = Counter()
    with pytest.raises(ManifestError, match=r"no usable label in .*other.csv: 2 rows read, none matches a video_id "
                                            r"of the CSV \(rows left out: unknown_gender 1\)"):
        build_manifest(csv_path, read_labels(unmatched, problems), ManifestConfig(), label_problems=problems,
                       labels_path=unmatched)


def test_a_byte_order_mark_does_not_cost_the_first_row(tmp_path: Path) -> None:
    """Spreadsheet tools save CSVs with a UTF-8 BOM; it used to turn the first id into bad_id."""
    path = tmp_path / "avspeech.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{_yt(1)},10.0,16.0,0.5,0.4\n{_yt(2)},1.0,7.0,0.5,0.5\n".encode())
    result = build_manifest(path, None, ManifestConfig())
    assert result.counts["kept"] == 2 and result.counts["rejected"] == 0
    assert sorted(r.source for r in result.rows) == sorted([_yt(1), _yt(2)])


def test_fast_path_parses_exactly_like_the_general_path(tmp_path: Path, monkeypatch) -> None:
    """AVSpeech's common line skips the csv module; every line must come out as the general path has it."""
    import pipeline.data.manifest as manifest

    lines = [f"{_yt(1)},10.0,16.0,0.5,0.4".encode(), f"{_yt(2)},1,7,0,1\r".encode(), f"{_yt(3)},-0,2,0.5,0.5".encode(),
             f"{_yt(4)},5.0,5.0,0.5,0.5".encode(), f"{_yt(5)},-1,5,0.5,0.5".encode(), f"{_yt(6)},0,5,1.5,0.5".encode(),
             f"{_yt(7)},1.2.3,5,0.5,0.5".encode(), f"{_yt(8)}, 1.0,5,0.5,0.5".encode(), b"abc,1,2,0.5,0.5",
             f"{_yt(9)},1e1,2e1,0.5,0.5".encode()]
    fast = [manifest.parse_line(line, i, tmp_path, tmp_path) for i, line in enumerate(lines, 1)]
    monkeypatch.setattr(manifest, "FAST_YOUTUBE_LINE", re.compile(rb"(?!)"))  # never matches
    general = [manifest.parse_line(line, i, tmp_path, tmp_path) for i, line in enumerate(lines, 1)]
    assert fast == general
    assert [type(r).__name__ for r in fast] == ["Row", "Row", "Row", "Reject", "Reject", "Reject", "Reject", "Row",
                                                "Reject", "Row"]
