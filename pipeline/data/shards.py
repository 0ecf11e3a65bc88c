"""WebDataset shards of preprocessed samples: encoding, a deterministic tar writer, and the reader API.

Layout (docs/contracts.md): ``{split}-{NNNNNN}.tar`` holds, per sample key,
``{key}.audio.flac``, ``{key}.face.jpg``, ``{key}.meta.json`` and ``{key}.spec.npy``; beside each tar a
``.parquet`` of per-sample status and a ``.stats.json`` written last (its presence marks the shard complete).
Neither holds wall-clock timings, timestamps or absolute paths.

Bytes are deterministic: tar members carry mtime 0, uid/gid 0 and empty user/group names, fields are written
in sorted order, JPEG/FLAC/NPY encoders have no timestamps, and JSON has sorted keys. The reader uses the
standard library ``tarfile`` (no webdataset pipeline needed to iterate), and the files are also readable with
``webdataset.WebDataset`` (tested).
"""
from __future__ import annotations

import io
import json
import re
import tarfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
from PIL import Image

from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_path, deterministic_tarinfo, dumps_json, write_json

SAMPLE_RATE = 16000
AUDIO_SAMPLES = 96000
SPEC_SHAPE = (2, 257, 598)
#: field name -> tar member suffix (the part after ``{key}.``)
FIELD_SUFFIX = {"audio": "audio.flac", "face": "face.jpg", "meta": "meta.json", "spec": "spec.npy"}
FIELDS = tuple(sorted(FIELD_SUFFIX))
SUFFIX_FIELD = {v: k for k, v in FIELD_SUFFIX.items()}
KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
SHARD_RE = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{6})\.tar$")

#: per-sample status table columns (one row per input clip, kept or rejected)
STATUS_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("status", pa.string()),          # ok | rejected
    ("reason", pa.string()),          # "" when ok
    ("detail", pa.string()),
])  # no timing columns: the table must be byte-identical between runs (timings go to the stage metrics)


class ShardError(PipelineError, ValueError):
    """A shard or sample does not honour the data contract."""


def shard_name(split: str, index: int) -> str:
    """``train``, 3 → ``train-000003`` (the stem shared by the tar, parquet and stats files)."""
    return f"{split}-{index:06d}"


# ---------------------------------------------------------------------------------------------- encoding

def encode_face(face: np.ndarray, quality: int = 95) -> bytes:
    """uint8 HxWx3 RGB → JPEG bytes (no EXIF, fixed quality, 4:4:4 so small crops keep colour detail)."""
    if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
        raise ShardError(f"face must be uint8 HxWx3, got {face.dtype} {face.shape}")
    buf = io.BytesIO()
    Image.fromarray(face, "RGB").save(buf, format="JPEG", quality=int(quality), subsampling=0, optimize=False)
    return buf.getvalue()


def encode_spec(spec: np.ndarray) -> bytes:
    """float16 ``(2, 257, 598)`` → ``.npy`` bytes."""
    spec = np.ascontiguousarray(spec, dtype=np.float16)
    if spec.shape != SPEC_SHAPE:
        raise ShardError(f"spec must have shape {SPEC_SHAPE}, got {spec.shape}")
    buf = io.BytesIO()
    np.save(buf, spec, allow_pickle=False)
    return buf.getvalue()


def encode_audio(audio: np.ndarray) -> bytes:
    """float32 mono waveform of exactly 96000 samples at 16 kHz → 16-bit FLAC bytes."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.shape != (AUDIO_SAMPLES,):
        raise ShardError(f"audio must have shape ({AUDIO_SAMPLES},), got {audio.shape}")
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def encode_meta(meta: dict[str, Any]) -> bytes:
    """Metadata dict → deterministic JSON bytes."""
    return dumps_json(meta).encode("utf-8")


def encode_sample(face: np.ndarray, spec: np.ndarray, audio: np.ndarray, meta: dict[str, Any],
                  jpeg_quality: int = 95) -> dict[str, bytes]:
    """Encode the four fields of one sample; returns ``{field: bytes}``."""
    return {
        "audio": encode_audio(audio),
        "face": encode_face(face, jpeg_quality),
        "meta": encode_meta(meta),
        "spec": encode_spec(spec),
    }


def decode_field(field: str, data: bytes) -> Any:
    """Inverse of the encoders: bytes of ``field`` → ndarray / dict."""
    if field == "face":
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    if field == "spec":
        return np.load(io.BytesIO(data), allow_pickle=False)
    if field == "audio":
        audio, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
        return audio
    if field == "meta":
        return json.loads(data.decode("utf-8"))
    raise ShardError(f"unknown field {field!r} (known: {', '.join(FIELDS)})")


# ---------------------------------------------------------------------------------------------- writing

class ShardWriter:
    """Write one tar shard atomically: members go to a temp file renamed onto ``path`` by ``close()``.

    Use as a context manager; an exception inside the block discards the temp file (no partial shard).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._stack = ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.path))
        self._tar = tarfile.open(self._tmp, "w", format=tarfile.GNU_FORMAT)
        self.count = 0
        self.bytes = 0
        self.keys: list[str] = []

    def add(self, key: str, fields: dict[str, bytes]) -> int:
        """Append one sample (fields in sorted order); returns the bytes added."""
        if not KEY_RE.match(key):
            raise ShardError(f"sample key {key!r} must match [A-Za-z0-9_-]+")
        unknown = set(fields) - set(FIELD_SUFFIX)
        if unknown:
            raise ShardError(f"unknown field(s) {sorted(unknown)}")
        added = 0
        for field in sorted(fields):
            data = fields[field]
            self._tar.addfile(deterministic_tarinfo(f"{key}.{FIELD_SUFFIX[field]}", len(data)), io.BytesIO(data))
            added += 512 + -(-len(data) // 512) * 512  # header + padded payload, as tar stores it
        self.count += 1
        self.bytes += added
        self.keys.append(key)
        return added

    def close(self) -> None:
        """Finish the tar and move it onto its final name."""
        self._tar.close()
        self._stack.close()

    def abort(self) -> None:
        """Drop the partial shard."""
        self._tar.close()
        self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._tar.close()
            self._stack.__exit__(exc_type, exc, tb)


def write_status_table(path: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write the per-sample status parquet (schema STATUS_SCHEMA) atomically and deterministically."""
    columns = {name: [row.get(name, "") for row in rows] for name in STATUS_SCHEMA.names}
    table = pa.table(columns, schema=STATUS_SCHEMA)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", use_dictionary=False, write_statistics=False,
                       store_schema=True)


def write_shard_stats(path: str | Path, stats: dict[str, Any]) -> None:
    """Write the stats JSON; call it LAST, it marks the shard complete."""
    write_json(path, stats)


# ---------------------------------------------------------------------------------------------- reading

def list_shards(shards_dir: str | Path, split: str) -> list[Path]:
    """Complete shards (stats file present) of ``split`` under ``shards_dir``, sorted by index."""
    shards_dir = Path(shards_dir)
    out = []
    for path in sorted(shards_dir.glob(f"{split}-*.tar")):
        match = SHARD_RE.match(path.name)
        if match and match["split"] == split and path.with_suffix(".stats.json").is_file():
            out.append(path)
    return out


def iter_samples(paths: Iterable[str | Path], fields: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield ``{"key", "face", "spec", "audio", "meta"}`` per sample, decoding only ``fields`` (default all).

    ``face``: uint8 HxWx3; ``spec``: float16 (2, 257, 598); ``audio``: float32 (96000,); ``meta``: dict.
    Memory is one sample at a time.
    """
    wanted = set(FIELDS if fields is None else fields)
    unknown = wanted - set(FIELDS)
    if unknown:
        raise ShardError(f"unknown field(s) {sorted(unknown)} (known: {', '.join(FIELDS)})")
    for path in paths:
        with tarfile.open(path, "r:") as tar:
            current: dict[str, Any] | None = None
            for member in tar:
                if not member.isfile():
                    continue
                key, _, suffix = member.name.partition(".")
                if current is not None and current["key"] != key:
                    yield current
                    current = None
                if current is None:
                    current = {"key": key}
                field = SUFFIX_FIELD.get(suffix)
                if field in wanted:
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    current[field] = decode_field(field, data)
            if current is not None:
                yield current
