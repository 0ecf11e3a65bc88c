"""Builders for tests of a DVC S3 remote on the real store of ``pipeline.ops.s3store``.

``use_s3_remote(project, store, identity)`` points a project's default remote at the store's bucket: the URL and the
endpoint in ``.dvc/config`` (what a team commits), the identity's keys in the git-ignored ``.dvc/config.local``.
``remote_objects`` lists what a prefix of the bucket holds and checks every object's bytes against the MD5 its
key names (DVC's content addressing), so "nothing lost" means every byte, not only every name. ``secret_hits`` says
where the given secret values occur in a git repository's tracked files, its index and every object it holds.
"""
from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.ops.s3store import Identity, SeaweedStore


def use_s3_remote(project: str | Path, store: SeaweedStore, identity: Identity, prefix: str = "speech2face",
                  name: str = "shared", bucket: str | None = None, endpoint: str | None = None,
                  **options: Any) -> str:
    """Make remote ``name`` (``s3://<bucket>/<prefix>`` at the store's endpoint, or at ``bucket`` / ``endpoint``,
    plus ``options`` such as ``connect_timeout``) the project's default, with ``identity``'s keys in
    ``.dvc/config.local``; return its URL."""
    from dvc.config import Config

    url = f"s3://{bucket or store.bucket}/{prefix}"
    config = Config(dvc_dir=str(Path(project) / ".dvc"), validate=False)
    with config.edit("repo") as conf:
        conf["core"]["remote"] = name
        conf["remote"][name] = {"url": url, "endpointurl": endpoint or store.endpoint,
                                **{k: str(v) for k, v in options.items()}}
    set_keys(project, identity.access_key, identity.secret_key, name)
    return url


def set_keys(project: str | Path, access_key: str, secret_key: str, name: str = "shared") -> None:
    """Put these keys for remote ``name`` in the project's ``.dvc/config.local`` (what ``dvc remote modify --local``
    writes)."""
    from dvc.config import Config

    with Config(dvc_dir=str(Path(project) / ".dvc"), validate=False).edit("local") as conf:
        conf["remote"][name] = {"access_key_id": access_key, "secret_access_key": secret_key}


def remote_objects(store: SeaweedStore, prefix: str = "speech2face") -> dict[str, int]:
    """``{key: size}`` of every object under ``prefix``; raises AssertionError for an object whose bytes do not hash
    to the MD5 its key names (``files/md5/ab/cdef...``; a ``.dir`` listing hashes to its name without the suffix)."""
    client = store.client()
    keys: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=f"{prefix}/"):
        for item in page.get("Contents", []):
            keys[item["Key"]] = item["Size"]
    for key in keys:
        parts = key.split("/")
        if "md5" not in parts:
            continue  # the run-cache's entries (runs/...) are named by their stage's hash, not their bytes'
        name = "".join(parts[parts.index("md5") + 1:]).removesuffix(".dir")
        digest = hashlib.md5(client.get_object(Bucket=store.bucket, Key=key)["Body"].read()).hexdigest()
        if digest != name:
            raise AssertionError(f"{key}: its bytes hash to {digest}")
    return keys


def secret_hits(repo: str | Path, secrets: Iterable[str]) -> list[str]:
    """Where each of ``secrets`` occurs in ``repo``'s tracked files (the working tree's copies), its index (the
    staged blobs) and every object of its object database (commits, trees, blobs: what a push would send)."""
    repo = Path(repo)
    secrets = [s for s in secrets if s]
    hits: list[str] = []

    def scan(label: str, data: bytes) -> None:
        hits.extend(f"{label}: {s[:4]}..." for s in secrets if s.encode() in data)

    def git(*args: str, data: bytes | None = None) -> bytes:
        return subprocess.run(["git", *args], cwd=repo, input=data, capture_output=True, check=True).stdout

    for rel in git("ls-files", "-z").decode().split("\0"):
        if rel and (repo / rel).is_file():
            scan(f"tracked file {rel}", (repo / rel).read_bytes())
    staged = [line.split()[1] for line in git("ls-files", "-s").decode().splitlines()]
    if staged:
        scan("the index", git("cat-file", "--batch", data="\n".join(staged).encode() + b"\n"))
    scan("the git objects", git("cat-file", "--batch-all-objects", "--batch"))
    return hits
