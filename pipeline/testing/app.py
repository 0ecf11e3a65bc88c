"""A tiny trained workspace in the pipeline's ``data/`` layout, and the page served from it, for the app's tests.

``make_app_workspace(root)`` writes ``root/data`` with test and train shards, features, priors, a trained voice
gender classifier, a trained face decoder and a trained ``neutral_fc`` speech encoder (tiny widths, 2 epochs; seconds
on a CPU), and, untrained at tiny widths (``pipeline.testing.families``), SF2F's ``data/models/sf2f_fuser.pt`` and the
self-supervised GAN's ``data/models/selfsup_gan.pt``, SCLDM's ``data/models/scldm.pt`` and its sampler's
``data/scldm_sample/sampler.json`` (32-px faces) and the judge's ``data/models/judge.pt``; ``write_wav`` writes a voice for it (a sine tone).

``running_app(data, cwd, *args)`` serves ``python -m pipeline.serve.app`` from it on a free loopback port in a
subprocess (its own gradio folder under ``cwd``) and yields an :class:`AppServer`; :class:`AppServer` has a small
client for gradio's HTTP API (upload, call, download), and reads the server's RSS and upload folder.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from pipeline.testing.families import (
    write_tiny_judge,
    write_tiny_scldm,
    write_tiny_selfsup,
    write_tiny_sf2f,
)
from pipeline.testing.training import IMAGE_SIZE, TINY_DECODER, TINY_ENCODER, make_training_inputs

#: the side of the faces the workspace's SF2F checkpoint draws (not the crops' IMAGE_SIZE: the page resizes them)
SF2F_IMAGE_SIZE = 32
GENDER = {"width": 0.0625, "epochs": 2, "batch_size": 4, "lr": 0.003, "beta1": 0.9, "eps": 1e-8, "lr_decay": 1.0,
          "lr_decay_every": 1, "seed": 0, "device": "cpu", "precision": "fp32", "num_workers": 0}


def make_app_workspace(root: str | Path) -> Path:
    """Build ``root/data`` (see the module docstring) and return it; the face images are ``IMAGE_SIZE`` px."""
    from pipeline.arspm.gender import run_gender
    from pipeline.arspm.train_decoder import train_decoder
    from pipeline.arspm.train_encoder import train_encoder

    data = Path(root) / "data"
    p = make_training_inputs(data)
    work = Path(root) / "work"
    run_gender(p["shards"], p["gender"], GENDER, work / "plots-gender")
    decoder = p["models"] / "decoder.pt"
    train_decoder(p["shards"], p["shards"], p["features"], p["face_encoder"], decoder, work / "decoder.json",
                  work / "plots-decoder", TINY_DECODER)
    train_encoder("neutral_fc", p["shards"], p["features"], p["priors"], p["gender"], decoder, p["face_encoder"],
                  p["models"] / "encoder-neutral_fc.pt", work / "encoder.json", work / "plots-encoder", TINY_ENCODER)
    write_tiny_sf2f(p["models"] / "sf2f_fuser.pt", image_size=SF2F_IMAGE_SIZE)
    write_tiny_selfsup(p["models"] / "selfsup_gan.pt", image_size=SF2F_IMAGE_SIZE)
    write_tiny_scldm(p["models"] / "scldm.pt", image_size=SF2F_IMAGE_SIZE, sampler=data / "scldm_sample" / "sampler.json")
    write_tiny_judge(p["models"] / "judge.pt", image_size=IMAGE_SIZE)
    return data


def write_wav(path: str | Path, seconds: float, rate: int = 16000, freq: float = 180.0) -> Path:
    """A mono 16-bit sine tone of ``seconds`` at ``freq`` Hz as a WAV file."""
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return Path(path)


REPO = Path(__file__).resolve().parents[2]
API = "gradio_api"
#: loopback requests never go through a proxy from the environment
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AppServer:
    """The page's server process, its URL and its gradio folder (uploads and gradio's cache)."""

    proc: subprocess.Popen
    url: str
    gradio_dir: Path
    tmp_dir: Path

    def rss_mb(self) -> float:
        """The server process's resident set size (``VmRSS`` of ``/proc/<pid>/status``), in MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for process {self.proc.pid}")

    def uploads(self) -> list[Path]:
        """Files now in the server's gradio folder that came in through ``/upload``: gradio keeps each under a
        directory named by its hash (as it keeps its copies of the answers, which are PNGs). Not counted: the empty
        ``tmp*`` file that gradio 6's ``gr.File`` preprocessing leaves at the top of that folder per request."""
        return sorted(p for p in self.gradio_dir.glob("*/*") if p.is_file() and p.suffix != ".png")

    def answer_files(self) -> list[Path]:
        """The answers' image files the server keeps in its temp dir now."""
        return sorted(p for p in self.tmp_dir.rglob("*.png") if p.is_file())

    def upload(self, path: str | Path, timeout: float = 30) -> str:
        """POST ``path`` to gradio's upload route; the server-side path."""
        path = Path(path)
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{path.name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + \
            f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(f"{self.url}{API}/upload", data=body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with _OPENER.open(request, timeout=timeout) as reply:
            return json.loads(reply.read())[0]

    def call(self, api_name: str, data: list, timeout: float = 60) -> list:
        """Run the page's ``api_name`` event with ``data`` through gradio's queue; its outputs. An ``error``
        event raises RuntimeError with the server's message."""
        request = urllib.request.Request(f"{self.url}{API}/call/{api_name}", data=json.dumps({"data": data}).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
        with _OPENER.open(request, timeout=timeout) as reply:
            event_id = json.loads(reply.read())["event_id"]
        event = None
        with _OPENER.open(f"{self.url}{API}/call/{api_name}/{event_id}", timeout=timeout) as stream:
            for raw in stream:
                line = raw.decode("utf-8").rstrip("\n")
                if line.startswith("event: "):
                    event = line[len("event: "):]
                elif line.startswith("data: ") and event in ("complete", "error"):
                    payload = json.loads(line[len("data: "):])
                    if event == "error":
                        raise RuntimeError(f"the page answered an error: {payload}")
                    return payload
        raise RuntimeError(f"the event stream of {api_name} ended without an answer")

    def download(self, file_data: dict[str, Any], timeout: float = 30) -> bytes:
        """The bytes of an output file (a FileData dict); a reply shorter than its ``Content-Length`` raises."""
        url = file_data.get("url") or f"{self.url}{API}/file={file_data['path']}"
        with _OPENER.open(url, timeout=timeout) as reply:
            declared = reply.headers.get("Content-Length")
            body = reply.read()
        if declared is not None and len(body) != int(declared):
            raise RuntimeError(f"{url}: {len(body)} bytes of a declared Content-Length {declared}")
        return body


def file_data(server_path: str) -> dict:
    """An uploaded file as a gradio ``FileData`` input."""
    return {"path": server_path, "orig_name": Path(server_path).name, "meta": {"_type": "gradio.FileData"}}


@contextlib.contextmanager
def running_app(data: str | Path, cwd: str | Path, *args: str, timeout: float = 120) -> Iterator[AppServer]:
    """Serve the page on ``data`` (``python -m pipeline.serve.app --data data *args``) until the block ends; its
    gradio folder is ``cwd/gradio`` and its temp dir (the answers' files) ``cwd/tmp``."""
    port = free_port()
    gradio_dir, tmp_dir = Path(cwd) / "gradio", Path(cwd) / "tmp"
    gradio_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(REPO), "NO_PROXY": "127.0.0.1",
           "no_proxy": "127.0.0.1", "GRADIO_TEMP_DIR": str(gradio_dir), "TMPDIR": str(tmp_dir)}
    log = open(Path(cwd) / "app.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.serve.app", "--data", str(data), "--port", str(port),
                             *args], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with _OPENER.open(url, timeout=5) as reply:
                    if reply.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"the app did not serve {url}: {log.read()[-4000:]}")
            time.sleep(0.5)
        yield AppServer(proc, url, gradio_dir, tmp_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


__all__ = ["IMAGE_SIZE", "SF2F_IMAGE_SIZE", "AppServer", "file_data", "free_port", "make_app_workspace", "running_app",
           "write_wav"]
