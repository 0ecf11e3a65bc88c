"""Small file helpers: atomic writes (temp name + rename), deterministic JSON and a file's SHA-256.

Interrupted stages must never leave a half-written file under its final name, and equal inputs must give
byte-identical outputs (so DVC hashes match between teammates): JSON is written with sorted keys.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            # mkstemp creates 0600 files; give the result the permissions a plain open() would (umask).
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def dumps_json(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, fixed indentation, trailing newline)."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as deterministic JSON to ``path`` atomically."""
    atomic_write_bytes(path, dumps_json(obj).encode("utf-8"))


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read ``chunk`` bytes at a time (memory stays small for large weights)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def deterministic_tarinfo(name: str, size: int) -> tarfile.TarInfo:
    """A tar member header with no run-specific fields (mtime 0, uid/gid 0, empty owner names, mode 0644).

    Equal member bytes then give equal tar bytes, so DVC hashes of shards match between runs and machines.
    """
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


EMPTY_NOTE = "EMPTY.txt"


def note_if_empty(out_dir: str | Path, reason: str) -> None:
    """Write ``EMPTY.txt`` (one sentence) into an output directory with no other file, and remove a stale one.

    DVC warns about every empty output directory on every command; an optional corpus that is not configured
    (the gender corpus) leaves its directories empty, and the note says why instead."""
    out_dir = Path(out_dir)
    note = out_dir / EMPTY_NOTE
    others = [p for p in out_dir.iterdir() if p.name != EMPTY_NOTE] if out_dir.is_dir() else []
    if others:
        if note.exists():
            note.unlink()
    else:
        atomic_write_bytes(note, (reason.rstrip() + "\n").encode("utf-8"))
