"""pipeline.serve.app: the face service on a tiny trained workspace (AR-SPM's variants and the other model families,
whose nearest faces are found in the judge's space), the page over HTTP (its files: one per answer, uploads deleted,
a size limit), and the page in a real headless Chromium."""
from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.faces.generator import GeneratorError
from pipeline.serve.app import (
    Answer,
    AnswerFiles,
    AppError,
    FaceService,
    Uploads,
    build_page,
    check_upload_size,
    one_line,
)
from pipeline.serve.predict import PredictError
from pipeline.testing.app import IMAGE_SIZE, SF2F_IMAGE_SIZE, file_data, running_app, write_wav

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "test-artifacts"
SERVER_ENV = {**os.environ, "PYTHONPATH": str(REPO), "GRADIO_ANALYTICS_ENABLED": "False"}


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


def test_non_finite_priors_or_features_and_unknown_variants_are_refused(data, tmp_path):
    voice = str(write_wav(tmp_path / "v.wav", 1.0))
    nan_priors = tmp_path / "nan-priors"
    shutil.copytree(data, nan_priors)
    members = dict(np.load(data / "priors" / "priors.npz"))
    members["neutral"] = np.full_like(members["neutral"], np.nan)
    np.savez(nan_priors / "priors" / "priors.npz", **members)
    with pytest.raises(GeneratorError, match=r"the neutral prior in .* is not finite"):  # AR-SPM's generator says so
        FaceService(nan_priors).answer(voice, None, "neutral_fc")
    nan_features = tmp_path / "nan-features"
    shutil.copytree(data, nan_features)
    first = sorted((nan_features / "features").glob("test-*.npy"))[0]
    np.save(first, np.full_like(np.load(first), np.inf))
    with pytest.raises(AppError, match="test face features .* are not all finite"):
        FaceService(nan_features).answer(voice, None, "neutral_fc")
    with pytest.raises(AppError, match="unknown variant '../neutral_fc'"):
        FaceService(data).answer(voice, None, "../neutral_fc")


def test_an_interrupted_training_is_named_not_read(data, tmp_path):
    """The resume state that training keeps beside a checkpoint is never taken for the checkpoint."""
    from pipeline.training.loop import resume_path_for

    bare = tmp_path / "bare"
    shutil.copytree(data, bare)
    encoder = bare / "models" / "encoder-neutral_fc.pt"
    state = torch.load(encoder, weights_only=True)["state_dict"]
    torch.save({"fingerprint": "x", "model": state, "optimizer": {}, "epoch": 1, "history": []},
               resume_path_for(encoder))
    encoder.unlink()
    service = FaceService(bare)
    assert service.variants() == []
    with pytest.raises(AppError, match=r"encoder-neutral_fc.pt \(`dvc repro train_encoder@neutral_fc`; "
                                       r".encoder-neutral_fc.pt.resume beside it is an unfinished run's resume state"):
        service.answer(str(write_wav(tmp_path / "v.wav", 1.0)), None, "neutral_fc")


def test_an_sf2f_face_for_a_test_clip_with_its_nearest_true_faces_in_the_judges_space(service):
    key = service.test_clips()[0]
    answer = service.answer(None, key, None, "sf2f")
    assert answer.face.shape == (SF2F_IMAGE_SIZE, SF2F_IMAGE_SIZE, 3) and answer.face.dtype == np.uint8
    assert answer.message.startswith("Family **sf2f**: SF2F (encoder + fuser + decoder, 32 px).")
    assert "Nearest test faces in the judge's space" in answer.message and "face-feature space" in answer.message
    assert "Variant **" not in answer.message and "Prior:" not in answer.message  # AR-SPM's evidence only
    assert f"Test clip {key}" in answer.message and "Its own face ranks " in answer.message
    assert f"of {len(service.test_clips())} test faces" in answer.message
    assert len(answer.nearest) == 3 and answer.nearest[0][1].startswith("1. cos ")
    assert all(image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) for image, _ in answer.nearest)  # the true test crops
    cosines = [float(caption.split()[2]) for _, caption in answer.nearest]
    assert cosines == sorted(cosines, reverse=True) and all(-1.0 <= c <= 1.0 for c in cosines)
    judged = service._judged  # the test crops are embedded once, then reused
    again = service.answer(None, key, "neutral_fc", "sf2f")  # AR-SPM's variant is ignored for another family
    assert service._judged is judged and np.array_equal(again.face, answer.face)
    assert [c for _, c in again.nearest] == [c for _, c in answer.nearest]
    arspm = service.answer(None, key, "neutral_fc", "arspm")  # AR-SPM keeps its feature-space neighbours
    assert "Variant **neutral_fc**" in arspm.message and "judge" not in arspm.message


def test_an_unknown_family_is_one_sentence(service, tmp_path):
    for family in ("nosuch", "../sf2f"):
        with pytest.raises(GeneratorError) as refused:
            service.answer(str(write_wav(tmp_path / "v.wav", 1.0)), None, "neutral_fc", family)
        assert one_line(refused.value) == f"unknown model family {family!r}: the families are arspm, sf2f, selfsup, scldm"
    with pytest.raises(AppError, match="^choose a model family$"):
        service.answer(None, service.test_clips()[0], "neutral_fc", "")


def test_a_missing_family_file_names_the_stage_to_run_and_a_missing_judge_leaves_the_face_alone(data, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(data, bare)
    (bare / "models" / "sf2f_fuser.pt").unlink()
    service = FaceService(bare, k=3)
    assert service.family_missing("sf2f") == [f"{bare / 'models' / 'sf2f_fuser.pt'} (`dvc repro sf2f_fuser`)"]
    assert service.family_label("sf2f").endswith("(unavailable: dvc repro sf2f_fuser)")
    with pytest.raises(AppError) as refused:
        service.answer(None, service.test_clips()[0], None, "sf2f")
    assert one_line(refused.value) == (f"the sf2f family needs {bare / 'models' / 'sf2f_fuser.pt'} "
                                       f"(`dvc repro sf2f_fuser`)")
    page = build_page(service, answers=AnswerFiles())
    status = next(block.value for block in page.blocks.values() if getattr(block, "elem_id", None) == "status")
    assert f"The sf2f family is unavailable: it needs {bare / 'models' / 'sf2f_fuser.pt'} (`dvc repro sf2f_fuser`)." \
        in status
    assert service.answer(None, service.test_clips()[0], "neutral_fc").face is not None  # AR-SPM still answers

    no_judge = tmp_path / "no-judge"
    shutil.copytree(data, no_judge)
    (no_judge / "models" / "judge.pt").unlink()
    answer = FaceService(no_judge, k=3).answer(str(write_wav(tmp_path / "v.wav", 1.0)), None, None, "sf2f")
    assert answer.face.shape == (SF2F_IMAGE_SIZE, SF2F_IMAGE_SIZE, 3) and answer.nearest == []
    why = [line for line in answer.message.split("\n\n") if line.startswith("No nearest test faces")]
    assert why == [f"No nearest test faces: the judge {no_judge / 'models' / 'judge.pt'} is missing "
                   f"(`dvc repro judge`)."]


def test_each_answer_has_files_of_its_own_and_only_the_last_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    files = AnswerFiles(keep=3)
    face = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    answer = Answer(face, "m", [(face, "1. cos 1.000 k")])
    written = [files.write(answer) for _ in range(5)]
    paths = [w[0] for w in written]
    assert len(set(paths)) == 5  # the same face, five files: no request reads a file another one is writing
    assert all(Path(p).parent.parent == files.root for p in paths)
    assert [Path(p).exists() for p in paths] == [False, False, True, True, True]
    assert len(files.files()) == 3 * 2 and Image.open(paths[-1]).size == (IMAGE_SIZE, IMAGE_SIZE)
    files.close()
    assert not files.root.exists()


def test_an_upload_is_deleted_after_its_answer_unless_another_request_still_needs_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    upload = tmp_path / "gradio" / "0123abcd" / "voice.wav"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"x")
    uploads = Uploads(grace_s=0)
    with uploads.answering(str(upload), None):
        with uploads.answering(str(upload)):  # the same bytes uploaded by a second request, answered first
            pass
        assert upload.exists()  # the first request still reads it
    assert not upload.exists() and not upload.parent.exists()
    upload.parent.mkdir()
    upload.write_bytes(b"x")
    with uploads.answering(str(upload)):
        again = upload.with_name("tmp-upload")
        again.write_bytes(b"x")
        os.replace(again, upload)  # uploaded again while this one was answered: gradio renames a new file onto it
    assert upload.exists()  # left for the request that uploaded it again
    outside = write_wav(tmp_path / "mine.wav", 0.1)
    with uploads.answering(str(outside)):
        pass
    assert outside.exists()  # only gradio's uploads are ever deleted
    waiting = Uploads(grace_s=0.2)
    with waiting.answering(str(upload)):
        pass
    assert upload.exists()
    deadline = time.monotonic() + 10
    while upload.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not upload.exists()


def test_the_empty_temp_files_gradio_leaves_per_request_are_swept_once_old(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    stray, uploading, young = tmp_path / "tmpa1b2c3d4", tmp_path / "tmpe5f6g7h8", tmp_path / "tmpi9j0k1l2"
    stray.touch()
    uploading.write_bytes(b"the first bytes of an upload")
    young.touch()
    upload = tmp_path / "0123abcd" / "tmp.wav"
    upload.parent.mkdir()
    upload.touch()
    hour_ago = time.time() - 3600
    for path in (stray, uploading, upload):
        os.utime(path, (hour_ago, hour_ago))
    uploads = Uploads(stray_age_s=600)
    assert uploads.sweep_strays() == [stray]
    assert uploading.exists() and young.exists() and upload.exists()
    os.utime(young, (hour_ago, hour_ago))
    assert uploads.sweep_strays() == []  # at most once a minute
    assert uploads.sweep_strays(every_s=0) == [young]


def test_an_upload_over_the_limit_is_one_sentence(tmp_path):
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (3 * 2**20))
    check_upload_size(str(big), 4 * 2**20)
    with pytest.raises(AppError, match=r"^big.wav is 3.0 MB; the page takes files up to 2 MB \(--max-upload-mb\)$"):
        check_upload_size(str(big), 2 * 2**20)


@pytest.mark.slow
def test_the_page_over_http_answers_with_its_own_files_deletes_uploads_and_limits_their_size(data, tmp_path):
    voice = write_wav(tmp_path / "voice.wav", 2.0)
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (2 * 2**20))
    with running_app(data, tmp_path / "server", "--k", "3", "--upload-grace-s", "0", "--max-upload-mb", "1") as app:
        uploaded = app.upload(voice)
        face, message, nearest, recorded, upload = app.call("face", [None, file_data(uploaded), None, "neutral_fc",
                                                                     "arspm"])
        image = Image.open(io.BytesIO(app.download(face)))
        assert image.format == "PNG" and image.size == (IMAGE_SIZE, IMAGE_SIZE)
        assert "Prior: neutral." in message and "deleted from the server after this answer" in message
        assert len(nearest) == 3 and recorded is None and upload is None  # the page's inputs are cleared
        assert not Path(uploaded).exists() and app.uploads() == []
        key = FaceService(data).test_clips()[0]
        face, message, nearest, _, _ = app.call("face", [None, None, key, None, "sf2f"])
        assert Image.open(io.BytesIO(app.download(face))).size == (SF2F_IMAGE_SIZE, SF2F_IMAGE_SIZE)
        assert message.startswith("Family **sf2f**") and "judge's space" in message and len(nearest) == 3
        text = tmp_path / "notes.wav"
        text.write_text("not audio\n")
        uploaded = app.upload(text)
        face, message, nearest, _, _ = app.call("face", [None, file_data(uploaded), None, "neutral_fc", "arspm"])
        assert face is None and nearest == [] and "\n" not in message
        assert message.startswith("**Error:** notes.wav is not an audio or video file")
        assert not Path(uploaded).exists()  # deleted after an error answer too
        with pytest.raises(urllib.error.HTTPError) as refused:
            app.upload(big)
        assert refused.value.code == 413
        assert refused.value.read().decode() == "File size exceeded maximum allowed size of 1048576 bytes."
        assert app.uploads() == []
    assert "Traceback" not in (tmp_path / "server" / "app.log").read_text()
    assert not (REPO / "pipeline" / "serve" / "app.pyi").exists()  # gradio writes one beside a gr.File subclass


def test_the_page_refuses_a_bogus_device_at_start(data, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipeline.serve.app", "--data", str(data), "--device", "bogus"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=SERVER_ENV)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "app: error: device 'bogus' is not one of auto, cpu, cuda, cuda:N or mps"]


# ------------------------------------------------------------------------------------------- the real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture()
def server(data, tmp_path):
    with running_app(data, tmp_path, "--k", "3") as app:
        yield app.url


def _image_bytes(src: str) -> bytes:
    if src.startswith("data:"):
        return base64.b64decode(src.split(",", 1)[1])
    with urllib.request.urlopen(src, timeout=30) as reply:
        return reply.read()


@pytest.mark.slow
def test_the_page_in_a_headless_browser(server, tmp_path):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("needs Debian's chromium and chromium-driver on PATH (`make test` installs them as root)")
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
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
    # gradio re-renders components as answers arrive: an element found a moment ago may be gone, so look again
    wait = WebDriverWait(driver, 90, ignored_exceptions=(StaleElementReferenceException,))
    try:
        def ask(path: Path, family: str | None = None) -> None:
            driver.get(server)
            upload = wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#upload input[type=file]")))
            if family:  # pick it from the family list, as a user does
                wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, "#family input"))).click()
                wait.until(ready.element_to_be_clickable(
                    (By.XPATH, f"//li[@role='option'][starts-with(@aria-label, '{family}:')]"))).click()
                wait.until(lambda d: not any(e.is_displayed() for e in d.find_elements(By.ID, "variant")))
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

        ask(write_wav(tmp_path / "voice.wav", 2.5), family="sf2f")  # another family: the judge's nearest faces
        message = wait.until(lambda d: (lambda text: "Family sf2f" in text and text)(
            d.find_element(By.ID, "message").text))
        assert "judge's space" in message and "Prior:" not in message
        image = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#face img").get_attribute("src") or False)
        assert Image.open(io.BytesIO(_image_bytes(image))).size == (SF2F_IMAGE_SIZE, SF2F_IMAGE_SIZE)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#nearest img")) == 3)
        driver.save_screenshot(str(ARTIFACTS / "app-sf2f.png"))
    finally:
        driver.quit()
