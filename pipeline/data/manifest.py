"""The manifest: validate an AVSpeech-format CSV, attach labels, split it seeded and group-disjoint.

Input rows are ``source,start,end,x,y`` without a header, where ``source`` is a YouTube id (as in the real
``avspeech_train.csv``), an http(s) URL, or a local file path (relative paths are relative to the CSV's
directory). The CSV is read line by line as bytes, so one bad byte rejects one row, not the file. Every line
ends in exactly one of: kept (train or test), rejected with a reason, or left out by ``limit``.

Split: each group (``speaker_id`` when the labels give it, else ``video_id``) gets ``u = sha256(seed:group)``
mapped to [0, 1); the group is in ``test`` when ``u < test_fraction``. A group's split depends only on the
group and the seed, so adding rows never moves an existing group. Exception, for tiny inputs: when there are at
least two groups and all of them fall in one split, the group with the lowest ``u`` goes to test (or, when all
are test, the one with the highest ``u`` goes to train), so that neither split is empty.

Output schema: docs/contracts.md (manifest).
"""
from __future__ import annotations

import csv
import hashlib
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_path, file_sha256, write_json
from pipeline.common.schema import Field, NonNegativeInt, PathText, Section, Seed

YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
HEADER_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_ ]*")
UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
# The common AVSpeech line, a YouTube id and four plain numbers, parsed without the csv module; anything else (or
# a number float() refuses) takes the general path, which gives the same result for these lines.
FAST_YOUTUBE_LINE = re.compile(rb"([A-Za-z0-9_-]{11}),(-?[0-9.]+),(-?[0-9.]+),(-?[0-9.]+),(-?[0-9.]+)\r?")

# Every rejection reason, in the order the checks run.
REASONS = ("empty_line", "encoding", "header", "malformed", "bad_url", "bad_id", "bad_times", "bad_centre",
           "missing_file", "duplicate")

ROW_SCHEMA = pa.schema([
    ("key", pa.string()), ("source_kind", pa.string()), ("source", pa.string()), ("video_id", pa.string()),
    ("start", pa.float64()), ("end", pa.float64()), ("x", pa.float64()), ("y", pa.float64()),
    ("split", pa.string()), ("speaker_id", pa.string()), ("gender", pa.string()), ("age_group", pa.string()),
    ("row", pa.int64()), ("source_sha256", pa.string()),
])
REJECT_SCHEMA = pa.schema([("row", pa.int64()), ("line", pa.string()), ("reason", pa.string()),
                           ("detail", pa.string())])


class ManifestError(PipelineError, ValueError):
    """The input cannot give a manifest at all (missing/empty CSV, nothing usable, malformed labels)."""



class ManifestKeys(Section):
    """The keys of a manifest-building section (``manifest``, and ``gender_corpus`` for its own corpus)."""

    csv: PathText = Field(description='AVSpeech-format CSV (youtube_id|url|path,start,end,x,y; "" = none)')
    labels: PathText = Field(description='labels CSV (video_id,speaker_id,gender,...; "" = none)')
    media: PathText = Field(description="directory holding the CSV, labels and local clips (a DVC dependency)")
    seed: Seed
    test_fraction: float = Field(ge=0, lt=1, description="fraction of speakers (or videos) in the test split")
    limit: NonNegativeInt = Field(description="0 = all rows; N = a deterministic subset of N rows")


@dataclass(frozen=True)
class ManifestConfig:
    """The ``manifest`` section of params.yaml (without the csv/labels paths, which come from the CLI); the
    defaults are params.yaml's, for library and test use."""

    seed: int = 0
    test_fraction: float = 0.25
    limit: int = 0

    #: every key of the section: the three above plus the paths the CLI and dvc.yaml pass on
    KEYS = ("csv", "labels", "media", "seed", "test_fraction", "limit")

    @classmethod
    def from_params(cls, params: dict[str, Any], section: str = "manifest") -> "ManifestConfig":
        """The config from a full ``manifest`` section (or ``gender_corpus``, which has the same keys); an unknown
        or missing key stops with one sentence."""
        unknown = sorted(set(params) - set(cls.KEYS))
        if unknown:
            raise ManifestError(f"unknown {section} params: {', '.join(unknown)} (known: {', '.join(cls.KEYS)})")
        missing = [k for k in ("seed", "test_fraction", "limit") if k not in params]
        if missing:
            raise ManifestError(f"{section} params lack {', '.join(missing)}")
        cfg = cls(seed=int(params["seed"]), test_fraction=float(params["test_fraction"]), limit=int(params["limit"]))
        if not 0.0 <= cfg.test_fraction < 1.0:
            raise ManifestError(f"{section}.test_fraction must be in [0, 1), got {cfg.test_fraction}")
        if cfg.limit < 0:
            raise ManifestError(f"{section}.limit must be 0 (all rows) or positive, got {cfg.limit}")
        return cfg


@dataclass(frozen=True)
class Label:
    speaker_id: str | None
    gender: str | None
    age_group: str | None


@dataclass
class Reject:
    row: int
    line: str
    reason: str
    detail: str


@dataclass(slots=True)  # millions of rows (AVSpeech: 2.6 M): no per-instance __dict__
class Row:
    row: int
    source_kind: str
    source: str
    video_id: str
    start: float
    end: float
    x: float
    y: float
    source_sha256: str | None = None
    key: str = ""
    speaker_id: str | None = None
    gender: str | None = None
    age_group: str | None = None
    split: str = ""


@dataclass
class ManifestResult:
    """Everything the stage writes, plus counts."""

    rows: list[Row]
    rejects: list[Reject]
    read: int
    limited: int
    counts: dict[str, Any] = field(default_factory=dict)


LABEL_PROBLEMS = ("malformed", "unknown_gender", "conflicting_video", "speaker_gender_conflict")


def read_labels(path: str | Path, problems: Counter | None = None) -> dict[str, Label]:
    """Read a labels CSV with a header: ``video_id`` (required), ``speaker_id``, ``gender`` (M/F), ``age_group``
    (optional).

    Strict (``problems`` None): the first bad row raises ManifestError with one sentence. Lenient (a Counter): bad
    rows are counted in ``problems`` and left out instead (``malformed``: wrong field count or no video_id;
    ``unknown_gender``: a gender other than M/F, kept without it; ``conflicting_video``: one video_id with two
    different labels, both dropped; ``speaker_gender_conflict``: rows of a speaker_id given two genders, kept
    without a gender). A missing, non-UTF-8 or header-less file always raises.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"labels CSV {path} not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"labels CSV {path} is not UTF-8 (byte {exc.start})") from None
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "video_id" not in reader.fieldnames:
        raise ManifestError(f"labels CSV {path} needs a header line with a 'video_id' column")

    def bad(kind: str, message: str) -> None:
        if problems is None:
            raise ManifestError(message)
        problems[kind] += 1

    labels: dict[str, Label] = {}
    conflicting: set[str] = set()
    for lineno, rec in enumerate(reader, start=2):
        if None in rec or any(v is None for v in rec.values()):
            bad("malformed", f"labels CSV {path} line {lineno} has the wrong number of fields")
            continue
        video_id = rec["video_id"].strip()
        gender = (rec.get("gender") or "").strip().upper() or None
        if not video_id:
            bad("malformed", f"labels CSV {path} line {lineno} has an empty video_id")
            continue
        if gender not in (None, "M", "F"):
            bad("unknown_gender", f"labels CSV {path} line {lineno}: gender must be M or F, got {gender!r}")
            gender = None
        label = Label((rec.get("speaker_id") or "").strip() or None, gender,
                      (rec.get("age_group") or "").strip() or None)
        if labels.get(video_id, label) != label or video_id in conflicting:
            bad("conflicting_video", f"labels CSV {path} gives video {video_id} two different labels")
            conflicting.add(video_id)
            labels.pop(video_id, None)
            continue
        labels[video_id] = label
    if problems is not None:
        genders: dict[str, set[str]] = {}
        for label in labels.values():
            if label.speaker_id and label.gender:
                genders.setdefault(label.speaker_id, set()).add(label.gender)
        mixed = {spk for spk, g in genders.items() if len(g) > 1}
        for video_id, label in list(labels.items()):
            if label.speaker_id in mixed:
                problems["speaker_gender_conflict"] += 1
                labels[video_id] = Label(label.speaker_id, None, label.age_group)
    return labels


def label_counts(labels: dict[str, Label], video_ids: set[str], problems: Counter, path: str | Path) -> dict:
    """How many labels matched a manifest video_id, how many did not, and the rows left out; raises when labels
    were given but none is usable."""
    matched = sum(v in video_ids for v in labels)
    counts = {"usable": len(labels), "matched": matched, "unmatched": len(labels) - matched,
              "with_gender": sum(label.gender is not None and v in video_ids for v, label in labels.items()),
              **{k: int(problems.get(k, 0)) for k in LABEL_PROBLEMS}}
    if matched == 0:
        left_out = ", ".join(f"{k} {counts[k]}" for k in LABEL_PROBLEMS if counts[k]) or "none"
        raise ManifestError(f"no usable label in {path}: {len(labels)} rows read, none matches a video_id of the "
                            f"CSV (rows left out: {left_out})")
    return counts


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _safe_id(text: str) -> str:
    """A ``[A-Za-z0-9_-]+`` identifier from a file or URL stem (hash when nothing is left)."""
    safe = UNSAFE_KEY_CHARS.sub("_", text).strip("_")
    return safe or "v" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]


def _display_path(path: Path, root: Path) -> str:
    """The path relative to the repository root when under it (same bytes in every clone), else absolute."""
    path = Path(os.path.abspath(path))
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def parse_line(raw: bytes, lineno: int, csv_dir: Path, root: Path) -> Row | Reject:
    """Validate one CSV line; return a Row (without key/labels/split yet) or a Reject with its reason."""
    fast = FAST_YOUTUBE_LINE.fullmatch(raw)
    if fast:
        try:
            start, end, x, y = float(fast[2]), float(fast[3]), float(fast[4]), float(fast[5])
        except ValueError:
            pass  # e.g. "1.2.3": the general path says why
        else:
            if 0 <= start < end and 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0:
                source = fast.group(1).decode("ascii")
                return Row(row=lineno, source_kind="youtube", source=source, video_id=source, start=start,
                           end=end, x=x, y=y)
    raw = raw.rstrip(b"\r")
    shown = raw.decode("utf-8", "replace")
    if not raw.strip():
        return Reject(lineno, shown, "empty_line", "blank line")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Reject(lineno, shown, "encoding", f"not UTF-8 at byte {exc.start}")
    try:
        fields = [f.strip() for f in next(csv.reader([text], strict=True))]
    except (csv.Error, StopIteration) as exc:
        return Reject(lineno, shown, "malformed", f"CSV syntax: {exc}")
    if len(fields) >= 2 and all(HEADER_WORD.fullmatch(f) for f in fields):
        return Reject(lineno, shown, "header", "looks like a header line (AVSpeech CSVs have none)")
    if len(fields) != 5:
        return Reject(lineno, shown, "malformed", f"expected 5 fields (source,start,end,x,y), got {len(fields)}")
    source = fields[0]
    try:
        start, end, x, y = (_float(f) for f in fields[1:])
    except ValueError:
        return Reject(lineno, shown, "malformed", "start, end, x, y must be finite numbers")
    scheme = SCHEME.match(source)
    sha = None
    if scheme:
        if scheme.group(1).lower() not in ("http", "https"):
            return Reject(lineno, shown, "bad_url", f"only http(s) URLs are allowed, got {scheme.group(1)}://")
        rest = source[scheme.end():]
        host = rest.split("/", 1)[0]
        if not host or any(c.isspace() for c in source):
            return Reject(lineno, shown, "bad_url", "URL without a host or with spaces")
        kind, video_id = "url", _safe_id(Path(rest.split("?", 1)[0].split("#", 1)[0]).stem or host)
    elif YOUTUBE_ID.fullmatch(source):
        kind, video_id = "youtube", source
    else:
        local = Path(source) if os.path.isabs(source) else csv_dir / source
        looks_like_path = "/" in source or "." in source or "\\" in source
        if not looks_like_path and not local.is_file():
            return Reject(lineno, shown, "bad_id", "neither an 11-character YouTube id nor a URL or an existing file")
        kind, video_id = "file", _safe_id(local.stem)
    if start < 0 or start >= end:
        return Reject(lineno, shown, "bad_times", f"need 0 <= start < end, got start={start} end={end}")
    if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
        return Reject(lineno, shown, "bad_centre", f"face centre must be in [0, 1], got x={x} y={y}")
    if kind == "file":
        if not local.is_file() or not os.access(local, os.R_OK):
            return Reject(lineno, shown, "missing_file", f"no readable file at {_display_path(local, root)}")
        sha = file_sha256(local)
        source = _display_path(local, root)
    return Row(row=lineno, source_kind=kind, source=source, video_id=video_id, start=start, end=end, x=x, y=y,
               source_sha256=sha)


def _unit_hash(*parts: object) -> float:
    """A seeded, platform-independent number in [0, 1) for ``parts``."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _assign_keys(rows: list[Row]) -> None:
    """``<video_id>_<start ms>``; rows sharing that get a short hash of source and times appended.

    Clashes are found by sorting (no dictionary of millions of keys); ``rows`` ends up sorted by base key."""
    for r in rows:
        r.key = f"{r.video_id}_{int(round(r.start * 1000))}"
    rows.sort(key=lambda r: r.key)
    i = 0
    while i < len(rows):
        j = i + 1
        while j < len(rows) and rows[j].key == rows[i].key:
            j += 1
        if j - i > 1:
            for r in rows[i:j]:
                r.key += "_" + hashlib.sha256(f"{r.source}|{r.start!r}|{r.end!r}".encode()).hexdigest()[:8]
        i = j


def _reject_duplicates(rows: list[Row]) -> tuple[list[Row], list[Reject]]:
    """Rows with the same source and times as an earlier line become ``duplicate`` rejects (found by sorting)."""
    order = sorted(rows, key=lambda r: (r.source, r.start, r.end, r.row))
    kept, rejects = [], []
    first: Row | None = None
    for r in order:
        if first is not None and (r.source, r.start, r.end) == (first.source, first.start, first.end):
            rejects.append(Reject(r.row, "", "duplicate", f"same source and times as line {first.row}"))
        else:
            first = r
            kept.append(r)
    kept.sort(key=lambda r: r.row)
    return kept, rejects


def group_of(row: Row) -> str:
    """The split group: the speaker when known (speaker-disjoint), else the video (video-disjoint)."""
    return f"speaker:{row.speaker_id}" if row.speaker_id else f"video:{row.video_id}"


def split_groups(groups: Iterable[str], seed: int, test_fraction: float) -> dict[str, str]:
    """Map each group to ``train``/``test`` by its seeded hash (see the module docstring)."""
    u = {g: _unit_hash(seed, "split", g) for g in sorted(set(groups))}
    split = {g: ("test" if v < test_fraction else "train") for g, v in u.items()}
    if len(u) >= 2 and test_fraction > 0 and len(set(split.values())) == 1:
        if "train" in split.values():
            split[min(u, key=u.__getitem__)] = "test"
        else:
            split[max(u, key=u.__getitem__)] = "train"
    return split


def apply_limit(rows: list[Row], seed: int, limit: int) -> tuple[list[Row], int]:
    """Keep exactly ``limit`` rows (0 = all): whole groups in seeded hash order, the last one cut in key order.

    The order hash differs from the split hash, so a limited manifest still has both splits."""
    if not limit or limit >= len(rows):
        return rows, 0
    by_group: dict[str, list[Row]] = {}
    for r in rows:
        by_group.setdefault(group_of(r), []).append(r)
    kept: list[Row] = []
    for g in sorted(by_group, key=lambda g: (_unit_hash(seed, "limit", g), g)):
        kept.extend(sorted(by_group[g], key=lambda r: r.key)[: limit - len(kept)])
        if len(kept) >= limit:
            break
    return kept, len(rows) - len(kept)


def build_manifest(csv_path: str | Path, labels: dict[str, Label] | None, cfg: ManifestConfig,
                   root: str | Path | None = None, label_problems: Counter | None = None,
                   labels_path: str | Path = "labels CSV") -> ManifestResult:
    """Read and validate ``csv_path``; return kept rows (keyed, labelled, split, sorted by key) and rejects.

    With ``labels``, ``counts["labels"]`` says how many matched a row's video_id and how many rows of the labels
    file were left out (``label_problems``, from a lenient ``read_labels``). Raises ManifestError when the CSV is
    missing or empty, no row is usable, or labels were given and none matches."""
    csv_path = Path(csv_path)
    root = Path(os.path.abspath(root or Path.cwd()))
    if not csv_path.is_file():
        raise ManifestError(f"CSV file {csv_path} not found")
    rows: list[Row] = []
    rejects: list[Reject] = []
    n_lines = 0
    csv_dir = csv_path.parent
    with csv_path.open("rb") as fh:  # streamed line by line: the file is never held in memory whole
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark (spreadsheet tools)
                raw = raw[3:]
            n_lines = lineno
            parsed = parse_line(raw[:-1] if raw.endswith(b"\n") else raw, lineno, csv_dir, root)
            (rows if isinstance(parsed, Row) else rejects).append(parsed)  # type: ignore[arg-type]
    if not n_lines:
        raise ManifestError(f"CSV file {csv_path} is empty")
    rows, duplicates = _reject_duplicates(rows)
    if duplicates:  # the line itself, for the rejects table (read again: only the duplicates' lines)
        wanted = {d.row: d for d in duplicates}
        with csv_path.open("rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if lineno in wanted:
                    raw = raw[3:] if lineno == 1 and raw.startswith(b"\xef\xbb\xbf") else raw
                    wanted[lineno].line = raw.rstrip(b"\n").decode("utf-8", "replace").rstrip("\r")
        rejects += duplicates
    if not rows:
        reasons = Counter(r.reason for r in rejects)
        summary = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
        raise ManifestError(f"no usable rows in {csv_path} ({n_lines} lines rejected: {summary})")
    label_summary = (label_counts(labels, {r.video_id for r in rows}, label_problems or Counter(), labels_path)
                     if labels is not None else None)
    labels = labels or {}
    for r in rows:
        label = labels.get(r.video_id)
        if label:
            r.speaker_id, r.gender, r.age_group = label.speaker_id, label.gender, label.age_group
    _assign_keys(rows)
    split = split_groups({group_of(r) for r in rows}, cfg.seed, cfg.test_fraction)
    rows, limited = apply_limit(rows, cfg.seed, cfg.limit)
    if limited:  # the subset keeps the full input's splits unless that would leave one split empty
        kept_groups = {group_of(r) for r in rows}
        split = {g: s for g, s in split.items() if g in kept_groups}
        if len(set(split.values())) == 1:
            split = split_groups(sorted(kept_groups), cfg.seed, cfg.test_fraction)
    for r in rows:
        r.split = split[group_of(r)]
    rows.sort(key=lambda r: r.key)
    result = ManifestResult(rows=rows, rejects=rejects, read=n_lines, limited=limited)
    result.counts = _counts(result)
    if label_summary is not None:
        result.counts["labels"] = label_summary
    return result


def _counts(result: ManifestResult) -> dict[str, Any]:
    reasons = Counter(r.reason for r in result.rejects)
    counts: dict[str, Any] = {
        "read": result.read,
        "kept": len(result.rows),
        "limited": result.limited,
        "rejected": len(result.rejects),
        "rejected_by_reason": {k: reasons.get(k, 0) for k in REASONS},
    }
    for name in ("train", "test"):
        part = [r for r in result.rows if r.split == name]
        counts[f"{name}_rows"] = len(part)
        counts[f"{name}_groups"] = len({group_of(r) for r in part})
    counts["labelled_rows"] = sum(r.speaker_id is not None or r.gender is not None for r in result.rows)
    return counts


def empty_result() -> ManifestResult:
    """A manifest of no rows: what an unconfigured optional corpus writes, so the stages after it have inputs."""
    result = ManifestResult(rows=[], rejects=[], read=0, limited=0)
    result.counts = _counts(result)
    return result


def _write_parquet(table: pa.Table, path: Path) -> None:
    # Fixed writer options (no pandas metadata; statistics and compression pinned) → same rows, same bytes.
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", compression_level=3, write_statistics=True,
                       use_dictionary=True)


ROWS_PER_WRITE = 262_144  # rows turned into Arrow at a time: at AVSpeech scale the whole table would add ~300 MB


def _write_rows(rows: list[Row], path: Path) -> None:
    """Write rows as parquet in chunks (same options and, up to ``ROWS_PER_WRITE`` rows, same bytes as
    ``_write_parquet(rows_table(rows))``), so only one chunk exists as Arrow at a time."""
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, ROW_SCHEMA, compression="zstd", compression_level=3,
                                                    write_statistics=True, use_dictionary=True) as writer:
        for begin in range(0, max(len(rows), 1), ROWS_PER_WRITE):
            writer.write_table(rows_table(rows[begin:begin + ROWS_PER_WRITE]))


def rows_table(rows: list[Row]) -> pa.Table:
    """Manifest rows as a pyarrow table in the contract's column order (built column by column: no dict per row)."""
    return pa.table([pa.array(list(map(attrgetter(f.name), rows)), type=f.type) for f in ROW_SCHEMA],
                    schema=ROW_SCHEMA)


def write_manifest(result: ManifestResult, out_dir: str | Path, metrics_path: str | Path | None = None) -> None:
    """Write ``train.parquet``, ``test.parquet``, ``rejects.parquet`` (and the metrics JSON) atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("train", "test"):
        _write_rows([r for r in result.rows if r.split == name], out_dir / f"{name}.parquet")
    rejects = pa.Table.from_pylist([vars(r) for r in sorted(result.rejects, key=lambda r: r.row)],
                                   schema=REJECT_SCHEMA)
    _write_parquet(rejects, out_dir / "rejects.parquet")
    if metrics_path:
        write_json(metrics_path, result.counts)


def summary_line(counts: dict[str, Any]) -> str:
    """One human line: read, kept (train/test), rejected by reason, limited."""
    by_reason = ", ".join(f"{k} {v}" for k, v in counts["rejected_by_reason"].items() if v) or "none"
    line = (f"read {counts['read']}, kept {counts['kept']} (train {counts['train_rows']} rows/"
            f"{counts['train_groups']} groups, test {counts['test_rows']}/{counts['test_groups']}), "
            f"rejected {counts['rejected']} ({by_reason}), left out by limit {counts['limited']}")
    labels = counts.get("labels")
    if labels:
        left_out = ", ".join(f"{k} {labels[k]}" for k in LABEL_PROBLEMS if labels[k])
        line += (f"; labels: {labels['matched']} of {labels['usable']} matched a video ({labels['with_gender']} "
                 f"with a gender), {labels['unmatched']} unmatched" + (f", left out: {left_out}" if left_out else ""))
    return line
