"""pipeline.serve.app: the face service on a tiny trained workspace, and the page in a real headless Chromium."""
from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.serve.app import AppError, FaceService
from pipeline.serve.predict import PredictError
from pipeline.testing.app import IMAGE_SIZE, make_app_workspace

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "test-artifacts"


def write_wav(path: Path, seconds: float, rate: int = 16000, freq: float = 180.0) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_app_workspace(tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="module")
def service(data) -> FaceService:
    return FaceService(data, k=3)


def test_a_short_voice_gives_a_face_the_evidence_and_the_nearest_test_faces(service, tmp_path):
    answer = service.answer(str(write_wav(tmp_path / "v.wav", 2.0)), None, "neutral_fc")
    assert answer.face.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and answer.face.dtype == np.uint8
    assert "Variant **neutral_fc**" in answer.message and "Prior: neutral." in answer.message
    assert "p(female) = " in answer.message
    assert "repeated end to end to 6 s" in answer.message  # a short clip is padded as in training, and says so
    assert len(answer.nearest) == 3 and answer.nearest[0][1].startswith("1. cos ")
    assert answer.nearest[0][0].shape == (IMAGE_SIZE, IMAGE_SIZE, 3)


def test_a_test_clip_says_where_its_own_face_ranks(service):
    key = service.test_clips()[0]
    answer = service.answer(None, key, "neutral_fc")
    assert f"Test clip {key}" in answer.message and "Its own face ranks " in answer.message
    assert f"of {len(service.test_clips())} test faces" in answer.message


def test_a_two_hour_file_is_cut_to_its_first_six_seconds_without_reading_it_all(service, tmp_path):
    ten = tmp_path / "ten-seconds.mka"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=200:duration=10:sample_rate=8000",
                    "-ac", "1", "-c:a", "libopus", "-b:a", "6k", str(ten)], check=True, timeout=60)
    long = tmp_path / "two-hours.mka"  # the same packets 720 times: 2 hours without encoding 2 hours
    subprocess.run(["ffmpeg", "-v", "error", "-stream_loop", "719", "-i", str(ten), "-c", "copy", str(long)],
                   check=True, timeout=120)
    started = time.perf_counter()
    answer = service.answer(str(long), None, "neutral_fc")
    assert "only its first 6 s are used" in answer.message
    seconds = float(answer.message.split("The audio is ")[1].split(" s:")[0])
    assert 7150 < seconds < 7250
    assert time.perf_counter() - started < 30  # decoding 2 hours would take far longer


def test_bad_input_is_one_sentence(service, data, tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n")
    with pytest.raises(PredictError, match="is not an audio or video file"):
        service.answer(str(text), None, "neutral_fc")
    empty = write_wav(tmp_path / "empty.wav", 0.0)
    with pytest.raises(PredictError, match="(decodes to no samples|has no audio stream)"):
        service.answer(str(empty), None, "neutral_fc")
    with pytest.raises(AppError, match="record or upload a voice, or pick a test clip"):
        service.answer(None, None, "neutral_fc")
    bare = tmp_path / "bare"
    shutil.copytree(data, bare)
    (bare / "models" / "decoder.pt").unlink()
    with pytest.raises(AppError, match=r"decoder.pt \(`dvc repro train_decoder`\)"):
        FaceService(bare).answer(str(write_wav(tmp_path / "v.wav", 1.0)), None, "neutral_fc")
    mismatched = tmp_path / "mismatched"
    shutil.copytree(data, mismatched)
    shutil.copy(data / "models" / "face_encoder.pt", mismatched / "models" / "decoder.pt")
    with pytest.raises(Exception, match="expected 'face_decoder'"):
        FaceService(mismatched).answer(str(write_wav(tmp_path / "v.wav", 1.0)), None, "neutral_fc")


def test_two_requests_at_once_are_both_answered(service, tmp_path):
    voices = [write_wav(tmp_path / f"v{i}.wav", 1.5 + i, freq=150 + 60 * i) for i in range(2)]
    faces: dict[int, np.ndarray] = {}

    def ask(i):
        faces[i] = service.answer(str(voices[i]), None, "neutral_fc").face

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(faces) == [0, 1] and all(f.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) for f in faces.values())


# ------------------------------------------------------------------------------------------- the real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(data, tmp_path):
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(REPO), "NO_PROXY": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.serve.app", "--data", str(data), "--port", str(port),
                             "--k", "3"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the app did not serve {url}: {proc.stdout.read() if proc.poll() is not None else ''}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _image_bytes(src: str) -> bytes:
    if src.startswith("data:"):
        return base64.b64decode(src.split(",", 1)[1])
    with urllib.request.urlopen(src, timeout=30) as reply:
        return reply.read()


def test_the_page_in_a_headless_browser(server, tmp_path):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("needs Debian's chromium and chromium-driver on PATH (`make test` installs them as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400",
                 "--disable-gpu", "--no-proxy-server"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    wait = WebDriverWait(driver, 90)
    try:
        def ask(path: Path) -> None:
            driver.get(server)
            upload = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#upload input[type=file]")))
            upload.send_keys(str(path))
            wait.until(lambda d: path.stem in d.find_element(By.ID, "upload").text)  # uploaded to the server
            driver.find_element(By.ID, "go").click()

        ask(write_wav(tmp_path / "voice.wav", 2.5))
        image = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#face img").get_attribute("src") or False)
        face = Image.open(io.BytesIO(_image_bytes(image)))
        assert face.size == (IMAGE_SIZE, IMAGE_SIZE)
        wait.until(lambda d: "p(female)" in d.find_element(By.ID, "message").text)
        message = driver.find_element(By.ID, "message").text
        assert "Prior: neutral." in message and "repeated end to end to 6 s" in message
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#nearest img")) == 3)
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "app.png"))

        text = tmp_path / "notes.wav"
        text.write_text("this is a text file with a .wav name\n")
        ask(text)
        wait.until(lambda d: "Error:" in d.find_element(By.ID, "message").text)
        error = driver.find_element(By.ID, "message").text.strip()
        assert error.startswith("Error:") and "is not an audio or video file" in error
        assert "\n" not in error and "Traceback" not in driver.page_source
        driver.save_screenshot(str(ARTIFACTS / "app-error.png"))
    finally:
        driver.quit()
