"""python -m pipeline.serve.predict through the real CLI: a face from a voice (by AR-SPM, and by SF2F from its
``--checkpoint``), and for every kind of bad input one sentence on stderr (``predict: error: ...``), exit status 2,
no traceback and no output file."""
from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.testing.app import IMAGE_SIZE, write_wav
from pipeline.testing.families import write_tiny_sf2f
from pipeline.training.loop import resume_path_for

REPO = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1"}


def predict(cwd: Path, *args: str, threads: int | None = None) -> subprocess.CompletedProcess:
    env = ENV if threads is None else {**ENV, "OMP_NUM_THREADS": str(threads)}
    return subprocess.run([sys.executable, "-m", "pipeline.serve.predict", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def inputs(data, tmp_path_factory) -> dict[str, Path]:
    """The workspace's checkpoints and priors, a voice, and broken files of every kind."""
    root = tmp_path_factory.mktemp("predict-inputs")
    models = data / "models"
    bad = {
        "voice": write_wav(root / "voice.wav", 2.0),
        "encoder": models / "encoder-neutral_fc.pt",
        "decoder": models / "decoder.pt",
        "gender": data / "gender" / "model.pt",
        "priors": data / "priors",
        "text_priors": root / "priors.txt",
        "pickle_priors": root / "priors.pkl",
        "truncated_priors": root / "truncated.npz",
        "nan_priors": root / "nan.npz",
        "inf_priors": root / "inf.npz",
        "resume": root / "models" / resume_path_for(models / "encoder-neutral_fc.pt").name,
    }
    bad["text_priors"].write_text("neutral = 0.1 0.2 0.3\n")
    with open(bad["pickle_priors"], "wb") as fh:
        pickle.dump(dict(np.load(data / "priors" / "priors.npz")), fh)
    whole = (data / "priors" / "priors.npz").read_bytes()
    bad["truncated_priors"].write_bytes(whole[: len(whole) * 2 // 3])
    members = dict(np.load(data / "priors" / "priors.npz"))
    np.savez(bad["nan_priors"], **{**members, "neutral": np.full_like(members["neutral"], np.nan)})
    np.savez(bad["inf_priors"], **{**members, "neutral": np.where(np.arange(members["neutral"].size) == 3, np.inf,
                                                                     members["neutral"]).astype(np.float32)})
    # the resume state that training keeps beside a checkpoint while it runs (pipeline.training.loop.fit)
    bad["resume"].parent.mkdir()
    state = torch.load(models / "encoder-neutral_fc.pt", weights_only=True)["state_dict"]
    torch.save({"fingerprint": "0" * 16, "model": state, "optimizer": {}, "scheduler": {}, "scaler": None,
                "epoch": 1, "history": [{"loss": 1.0}]}, bad["resume"])
    return bad


def test_a_voice_gives_a_face_png_and_a_missing_directory_of_out_is_created(inputs, tmp_path):
    out = tmp_path / "new" / "dir" / "face.png"
    proc = predict(tmp_path, "--audio", str(inputs["voice"]), "--encoder", str(inputs["encoder"]),
                   "--decoder", str(inputs["decoder"]), "--priors", str(inputs["priors"]),
                   "--gender-model", str(inputs["gender"]), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("predict: ") and "variant neutral_fc, prior neutral" in proc.stdout
    image = Image.open(out)
    assert image.format == "PNG" and image.size == (IMAGE_SIZE, IMAGE_SIZE)


#: each bad input: (what replaces the good arguments, the sentence's start or a part of it)
CASES = {
    "text_priors": ({"--priors": "text_priors"}, r"priors file \S*priors.txt is not an .npz archive of arrays"),
    "pickle_priors": ({"--priors": "pickle_priors"}, r"priors file \S*priors.pkl is not an .npz archive of arrays"),
    "truncated_priors": ({"--priors": "truncated_priors"}, r"priors file \S*truncated.npz is truncated or corrupt"),
    "nan_prior": ({"--priors": "nan_priors"}, r"the neutral prior in \S*nan.npz is not finite \(16 NaN"),
    "inf_prior": ({"--priors": "inf_priors"}, r"the neutral prior in \S*inf.npz is not finite \(0 NaN, 1 infinite"),
    "missing_priors": ({"--priors": "nowhere.npz"}, r"priors nowhere.npz not found"),
    "priors_dir_without_npz": ({"--priors": "."}, r"priors file priors.npz not found"),
    "out_is_a_directory": ({"--out": "."}, r"--out \. is a directory: name the PNG to write"),
    "out_under_a_file": ({"--out": "a_file/face.png"}, r"--out \S*a-file/face.png cannot be written: \S*a-file is "
                                                       r"a file, not a directory"),
    "out_is_the_audio": ({"--out": "voice"}, r"--out \S*voice.wav is one of the inputs"),
    "bogus_device": ({"--device": "bogus"}, r"device 'bogus' is not one of auto, cpu, cuda, cuda:N or mps$"),
    "cuda_without_index": ({"--device": "cuda:x"}, r"device 'cuda:x' is not one of auto, cpu, cuda, cuda:N or mps$"),
    "missing_audio": ({"--audio": "nowhere.wav"}, r"audio file nowhere.wav not found"),
    "audio_is_a_directory": ({"--audio": "."}, r"audio file \. is a directory, not a file"),
    "audio_is_text": ({"--audio": "text_priors"}, r"priors.txt is not an audio or video file ffmpeg can read"),
    "missing_encoder": ({"--encoder": "nowhere.pt"}, r"encoder checkpoint nowhere.pt not found"),
    "encoder_of_wrong_architecture": ({"--encoder": "decoder"}, r"checkpoint \S*decoder.pt holds a 'face_decoder' "
                                                                r"model, expected 'speech_encoder'"),
    "decoder_of_wrong_architecture": ({"--decoder": "encoder"}, r"checkpoint \S*encoder-neutral_fc.pt holds a "
                                                                r"'speech_encoder' model, expected 'face_decoder'"),
    "gender_model_of_wrong_architecture": ({"--gender-model": "decoder"}, r"expected 'voice_gender'"),
    "missing_gender_model": ({"--gender-model": "nowhere.pt"}, r"voice gender model nowhere.pt not found"),
    "encoder_is_not_a_checkpoint": ({"--encoder": "text_priors"}, r"\S*priors.txt is not a readable checkpoint"),
    "resume_state_as_encoder": ({"--encoder": "resume"}, r"encoder checkpoint \S*/.encoder-neutral_fc.pt.resume is "
                                                         r"the resume state that training keeps beside "
                                                         r"encoder-neutral_fc.pt"),
    "resume_state_as_decoder": ({"--decoder": "resume"}, r"decoder checkpoint \S*.resume is the resume state"),
}


def _run_case(case: str, inputs: dict[str, Path], cwd: Path) -> tuple[subprocess.CompletedProcess, list, list]:
    changes, _ = CASES[case]
    cwd.mkdir(parents=True)
    (cwd / "a-file").write_text("a file\n")
    args = {"--audio": str(inputs["voice"]), "--encoder": str(inputs["encoder"]),
            "--decoder": str(inputs["decoder"]), "--priors": str(inputs["priors"]),
            "--gender-model": str(inputs["gender"]), "--out": str(cwd / "out" / "face.png")}
    for flag, value in changes.items():
        args[flag] = str(inputs[value]) if value in inputs else str(cwd / "a-file" / "face.png") \
            if value == "a_file/face.png" else value
    before = sorted(cwd.rglob("*"))
    proc = predict(cwd, *[x for kv in args.items() for x in kv], threads=1)  # several at once: one thread each
    return proc, before, sorted(cwd.rglob("*"))


@pytest.fixture(scope="module")
def results(inputs, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, list, list]]:
    """Every case of :data:`CASES` run at once (each CLI run is seconds of imports), each in a directory of its own."""
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path_factory.mktemp("predict-cases")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {case: pool.submit(_run_case, case, inputs, root / case) for case in CASES}
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.slow
@pytest.mark.xdist_group("predict_bad_input")  # one worker runs `results` (all cases at once, 50 s) for all of them
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_sentence_exit_2_and_no_file(case, results):
    proc, before, after = results[case]
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(lines) == 1 and lines[0].startswith("predict: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert re.search(CASES[case][1], lines[0]), lines[0]
    assert after == before  # nothing written, not even the PNG's directory


SF2F_SIZE = 16  # not the AR-SPM workspace's 64 px: the PNG's size is the checkpoint's


@pytest.fixture(scope="module")
def sf2f(tmp_path_factory) -> Path:
    """A tiny (untrained) SF2F fuser checkpoint of 16-px faces."""
    return write_tiny_sf2f(tmp_path_factory.mktemp("sf2f") / "sf2f_fuser.pt", image_size=SF2F_SIZE)


def test_another_family_draws_a_face_png_of_its_checkpoints_size(inputs, sf2f, tmp_path):
    out = tmp_path / "face.png"
    proc = predict(tmp_path, "--family", "sf2f", "--checkpoint", str(sf2f), "--audio", str(inputs["voice"]),
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("predict: ") and "SF2F (encoder + fuser + decoder, 16 px)" in proc.stdout
    image = Image.open(out)
    assert image.format == "PNG" and image.size == (SF2F_SIZE, SF2F_SIZE)


def test_scldm_draws_with_its_sampler_and_refuses_a_sampler_for_another_family(inputs, sf2f, tmp_path):
    from pipeline.testing.families import write_tiny_scldm

    checkpoint = write_tiny_scldm(tmp_path / "scldm.pt", image_size=SF2F_SIZE, sampler=tmp_path / "sampler.json",
                                  ddim_steps=2)
    out = tmp_path / "face.png"
    proc = predict(tmp_path, "--family", "scldm", "--checkpoint", str(checkpoint), "--sampler",
                   str(tmp_path / "sampler.json"), "--audio", str(inputs["voice"]), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "DDIM 2 steps, guidance 2" in proc.stdout and Image.open(out).size == (SF2F_SIZE, SF2F_SIZE)
    proc = predict(tmp_path, "--family", "sf2f", "--checkpoint", str(sf2f), "--sampler", str(tmp_path / "sampler.json"),
                   "--audio", str(inputs["voice"]), "--out", str(tmp_path / "other.png"))
    assert proc.returncode == 2 and proc.stderr.strip() == "predict: error: the sf2f family takes checkpoint, not sampler"
    assert not (tmp_path / "other.png").exists()


#: each bad use of --family / --checkpoint: (the arguments besides --audio and --out, the one sentence)
FAMILY_CASES = {
    "unknown_family": (["--family", "nosuch"], r"unknown model family 'nosuch': the families are arspm, sf2f, selfsup, scldm$"),
    "sf2f_with_encoder": (["--family", "sf2f", "--checkpoint", "sf2f_checkpoint", "--encoder", "encoder"],
                          r"the sf2f family takes --checkpoint \(its trained generator\), not --encoder, --decoder"),
    "sf2f_without_checkpoint": (["--family", "sf2f"], r"the sf2f family takes --checkpoint"),
    "arspm_encoder_as_sf2f_checkpoint": (["--family", "sf2f", "--checkpoint", "encoder"],
                                         r"\S*encoder-neutral_fc.pt is not a model family's checkpoint \(arch "
                                         r"'speech_encoder'\), but the sf2f family was asked for$"),
    "arspm_with_checkpoint": (["--checkpoint", "sf2f_checkpoint", "--encoder", "encoder", "--decoder", "decoder"],
                              r"the arspm family takes --encoder and --decoder .*not --checkpoint$"),
}


@pytest.fixture(scope="module")
def family_results(inputs, sf2f, tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, list, list]]:
    """Every case of :data:`FAMILY_CASES` run at once, each in a directory of its own."""
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path_factory.mktemp("predict-family-cases")
    given = {**inputs, "sf2f_checkpoint": sf2f}  # names in FAMILY_CASES that stand for files

    def run(case: str) -> tuple[subprocess.CompletedProcess, list, list]:
        cwd = root / case
        cwd.mkdir()
        args = [str(given[a]) if a in given else a for a in FAMILY_CASES[case][0]]
        before = sorted(cwd.rglob("*"))
        proc = predict(cwd, *args, "--audio", str(inputs["voice"]), "--out", str(cwd / "out" / "face.png"), threads=1)
        return proc, before, sorted(cwd.rglob("*"))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(FAMILY_CASES, pool.map(run, FAMILY_CASES)))


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(FAMILY_CASES))
def test_a_bad_family_or_checkpoint_is_one_sentence_exit_2_and_no_file(case, family_results):
    proc, before, after = family_results[case]
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(lines) == 1 and lines[0].startswith("predict: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert re.search(FAMILY_CASES[case][1], lines[0]), lines[0]
    assert after == before


def test_every_device_name_goes_through_one_parser():
    """``--device`` here and every stage's ``device`` param: auto, cpu, cuda, cuda:N or mps, else one sentence."""
    from pipeline.common.device import DeviceError, resolve_device
    from pipeline.common.errors import PipelineError

    assert resolve_device("cpu") == torch.device("cpu") and resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto")
    for bogus in ("bogus", "cuda:x", "cuda:", "cpu:0", "gpu", "meta", "cuda:-1"):
        with pytest.raises(DeviceError, match=r"^device '.*' is not one of auto, cpu, cuda, cuda:N or mps$"):
            resolve_device(bogus)
    assert issubclass(DeviceError, PipelineError)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available on this machine"):
            resolve_device("cuda:0")
    else:
        with pytest.raises(DeviceError, match=f"this machine has {torch.cuda.device_count()} CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
