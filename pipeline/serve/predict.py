"""Inference CLI: a face PNG from any audio or video file and a trained speech encoder.

    python -m pipeline.serve.predict --audio speech.wav --encoder data/models/encoder-neutral_fc.pt \\
        --decoder data/models/decoder.pt --priors data/priors --out face.png

The audio goes through the same path as training (``pipeline.data.audio``): decoded by ffmpeg to 16 kHz mono (any
container, rate or channel count), fitted to 6 s (a shorter clip is repeated end to end, a longer one cut to its
first 6 s), then the compressed complex spectrogram. The encoder's variant (in its checkpoint) says which prior
it needs: none, neutral, male/female, or — for ``gender``/``gender_fc`` — the prior of the gender that the voice
gender classifier (``--gender-model data/gender/model.pt``) predicts. Bad input gives one ``error:`` line and
exit status 2, and writes nothing: a missing or unreadable file, a checkpoint of the wrong architecture, training's
hidden resume state (``.<checkpoint>.resume``) given as a checkpoint, a priors file that is not an ``.npz`` of
arrays, a non-finite prior or speech feature, ``--out`` naming a directory, an unknown ``--device``. A missing
directory of ``--out`` is created.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch

from models.decoder import ARCH as ARCH_DECODER
from models.encoder import ARCH as ARCH_ENCODER
from models.gender import ARCH as ARCH_GENDER
from pipeline.arspm.variant_inputs import load_variant_priors
from pipeline.arspm.variants import get_variant, priors_needed
from pipeline.common.errors import TrainingError
from pipeline.data.media import require_ffmpeg
from pipeline.training.frozen import load_frozen


class PredictError(TrainingError):
    """The CLI's input cannot be used (not audio, empty audio, a variant needing an input that was not given)."""


def is_resume_state(path: str | Path) -> bool:
    """Whether ``path`` is the hidden resume state (model + optimizer of an unfinished run) that training keeps
    beside a checkpoint (``pipeline.training.loop.resume_path_for``), not a checkpoint."""
    from pipeline.training.loop import resume_path_for

    path = Path(path)
    name = path.name
    return (name.startswith(".") and name.endswith(".resume") and len(name) > len("..resume")
            and resume_path_for(path.with_name(name[1:-len(".resume")])).name == name)


def input_file(path: str | Path, what: str, directory_ok: bool = False) -> Path:
    """``path`` as a Path, refused in one sentence when it is missing, a directory (unless ``directory_ok``) or
    training's resume state; ``what`` names it for the user (``encoder checkpoint``)."""
    path = Path(path)
    if is_resume_state(path):
        checkpoint = path.with_name(path.name[1:-len(".resume")])
        raise PredictError(f"{what} {path} is the resume state that training keeps beside {checkpoint.name} while "
                           f"it runs (weights and optimizer of an unfinished run), not a checkpoint: give "
                           f"{checkpoint} once training has finished")
    if not path.exists():
        raise PredictError(f"{what} {path} not found")
    if path.is_dir() and not directory_ok:
        raise PredictError(f"{what} {path} is a directory, not a file")
    return path


def _feature_dim(header: dict, path: Path) -> int:
    try:
        return int(header["config"]["feature_dim"])
    except (KeyError, TypeError, ValueError):
        raise PredictError(f"checkpoint {path} has no feature_dim in its config") from None


def speech_spectrogram(path: str | Path) -> tuple[np.ndarray, str, float]:
    """``(spec float32 (2, 257, 598), fit, seconds)`` of any audio/video file, as in training: the first 6 s (only
    they are decoded, however long the file), a shorter clip repeated end to end (``fit``: ``pad``/``cut``/
    ``none``); ``seconds`` is the file's audio duration."""
    from pipeline.data.audio import DURATION_S, SAMPLE_RATE, fit_to_length, spectrogram
    from pipeline.data.media import MediaError, decode_audio, probe

    path = Path(path)
    if not path.is_file():
        raise PredictError(f"audio file {path} not found")
    try:
        info = probe(path)
    except MediaError as exc:
        detail = str(exc).replace(str(path), path.name)  # the upload's temporary path says nothing to the user
        raise PredictError(f"{path.name} is not an audio or video file ffmpeg can read ({detail})") from None
    if not info.has_audio:
        raise PredictError(f"{path.name} has no audio stream")
    try:
        raw = decode_audio(path, SAMPLE_RATE, max_seconds=DURATION_S + 1.0)
    except MediaError as exc:
        raise PredictError(f"{path.name}: its audio cannot be decoded ({str(exc).replace(str(path), path.name)})") from None
    if raw.size == 0:
        raise PredictError(f"{path.name}: the audio stream decodes to no samples")
    waveform, fit = fit_to_length(raw, min_samples=1)  # the CLI pads any non-empty clip, however short
    seconds = float(info.duration) if info.duration and info.duration > 0 else raw.size / SAMPLE_RATE
    return spectrogram(waveform).astype(np.float32), fit, seconds


class Predictor:
    """The checkpoints one prediction needs, loaded once: the speech encoder (its variant says which prior it
    takes), the face decoder, the priors, and the voice gender classifier (needed by ``gender``/``gender_fc``;
    when given it also reports ``p_female`` for every variant). ``pipeline.serve.app`` keeps one per variant."""

    def __init__(self, encoder_path: str | Path, decoder_path: str | Path, priors_path: str | Path | None = None,
                 gender_model: str | Path | None = None, device_name: str = "cpu"):
        from pipeline.common.device import resolve_device

        self.device = resolve_device(device_name)
        self.encoder_path = input_file(encoder_path, "encoder checkpoint")
        self.encoder, header = load_frozen(self.encoder_path, ARCH_ENCODER, self.device)
        decoder_path = input_file(decoder_path, "decoder checkpoint")
        self.decoder, decoder_header = load_frozen(decoder_path, ARCH_DECODER, self.device)
        self.dim = _feature_dim(header, self.encoder_path)
        if _feature_dim(decoder_header, decoder_path) != self.dim:
            raise PredictError(f"decoder takes {decoder_header['config']['feature_dim']}-d features, the encoder "
                               f"makes {self.dim}-d ones (checkpoints from different runs?)")
        self.variant = get_variant(str(header.get("variant", "non_prior")))
        self.priors = None
        if priors_path is not None:
            priors_path = input_file(priors_path, "priors", directory_ok=True)
        if self.variant.prior is not None:
            if priors_path is None:
                raise PredictError(f"the {self.variant.name} encoder needs --priors (data/priors)")
            self.priors = load_variant_priors(priors_path, self.dim, priors_needed(self.variant))
            for name, prior in self.priors.items():
                if not np.isfinite(prior).all():
                    raise PredictError(f"the {name} prior in {priors_path} is not finite ({int(np.isnan(prior).sum())} "
                                       f"NaN, {int(np.isinf(prior).sum())} infinite of {prior.size} values): rerun "
                                       f"the priors stage")
        if self.variant.prior == "gender" and gender_model is None:
            raise PredictError(f"the {self.variant.name} encoder needs --gender-model (data/gender/model.pt)")
        self.gender = (load_frozen(input_file(gender_model, "voice gender model"), ARCH_GENDER, self.device)[0]
                       if gender_model is not None else None)

    @torch.no_grad()
    def feature_and_face(self, spec: np.ndarray) -> tuple[torch.Tensor, np.ndarray, dict]:
        """``(final speech feature [D], uint8 HxWx3 face, {variant, prior, p_female})`` of one spectrogram."""
        from pipeline.evaluation.evaluate import to_uint8_images

        spec_t = torch.from_numpy(spec).unsqueeze(0).to(self.device)
        p_female = (float(torch.softmax(self.gender(spec_t).float(), dim=1)[0, 1])
                    if self.gender is not None else None)
        if p_female is not None and not math.isfinite(p_female):
            raise PredictError("the voice gender model gives no finite probability for this audio (NaN or "
                               "infinite weights?)")
        chosen = self.variant.prior
        if chosen == "gender":
            chosen = "female" if p_female >= 0.5 else "male"
        prior = torch.from_numpy(self.priors[chosen]).unsqueeze(0).to(self.device) if chosen else None
        feature = self.encoder(spec_t, prior)
        if not bool(torch.isfinite(feature).all()):
            raise PredictError(f"the speech encoder {self.encoder_path.name} gives a non-finite feature for this "
                               f"audio (NaN or infinite weights?)")
        image = self.decoder(feature)
        if not bool(torch.isfinite(image).all()):
            raise PredictError("the face decoder gives a non-finite image for this feature (NaN or infinite "
                               "weights?)")
        face = to_uint8_images(image)[0]
        return feature[0].cpu(), face, {"variant": self.variant.name, "prior": chosen, "p_female": p_female}

    def __call__(self, audio: str | Path) -> tuple[np.ndarray, dict]:
        """A uint8 ``HxWx3`` face for the audio of any file and a dict describing what was used."""
        spec, fit, seconds = speech_spectrogram(audio)
        _, face, info = self.feature_and_face(spec)
        return face, {**info, "audio_fit": fit, "audio_seconds": round(seconds, 3)}


def predict_face(audio: str | Path, encoder_path: str | Path, decoder_path: str | Path,
                 priors_path: str | Path | None = None, gender_model: str | Path | None = None,
                 device_name: str = "cpu") -> tuple[np.ndarray, dict]:
    """A uint8 ``HxWx3`` face for ``audio`` and a dict describing what was used."""
    return Predictor(encoder_path, decoder_path, priors_path, gender_model, device_name)(audio)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audio", required=True, help="audio or video file (any format ffmpeg reads)")
    parser.add_argument("--encoder", required=True, help="speech encoder checkpoint (data/models/encoder-V.pt)")
    parser.add_argument("--decoder", required=True, help="face decoder checkpoint (data/models/decoder.pt)")
    parser.add_argument("--priors", default=None, help="priors directory or priors.npz (prior variants)")
    parser.add_argument("--gender-model", default=None, help="voice gender classifier (gender/gender_fc)")
    parser.add_argument("--out", required=True,
                        help="output PNG (a missing directory is created; an existing file is replaced)")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N | mps (default: cpu)")


def check_out(out: str | Path, inputs: list[str | Path | None]) -> Path:
    """``--out`` as a Path, refused in one sentence when it names a directory, lies under a file, or is one of
    the ``inputs``; a missing directory is left to be created when the PNG is written."""
    out = Path(out)
    if not out.name or out.is_dir():
        raise PredictError(f"--out {out} is a directory: name the PNG to write, e.g. {out / 'face.png'}")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise PredictError(f"--out {out} cannot be written: {parent} is a file, not a directory")
            break
    for given in inputs:
        if given is not None and out.exists() and Path(given).exists() and os.path.samefile(out, given):
            raise PredictError(f"--out {out} is one of the inputs; name a new PNG")
    return out


def _body(args: argparse.Namespace) -> str:
    from PIL import Image

    from pipeline.common.io import atomic_path
    from pipeline.common.stage import user_errors

    try:
        require_ffmpeg()
        out = check_out(args.out, [args.audio, args.encoder, args.decoder, args.priors, args.gender_model])
        input_file(args.audio, "audio file")
        face, info = predict_face(args.audio, args.encoder, args.decoder, args.priors, args.gender_model,
                                  args.device)
        try:
            with atomic_path(out) as tmp:
                Image.fromarray(face).save(tmp, format="PNG")
        except OSError as exc:
            raise PredictError(f"cannot write --out {out} ({exc.strerror or exc})") from None
    except user_errors() as exc:  # one line on stderr, whatever the message held
        raise PredictError(" ".join(str(exc).split()) or type(exc).__name__) from None
    return (f"predict: {args.audio} ({info['audio_seconds']} s, {info['audio_fit']}) -> {args.out} "
            f"[{face.shape[1]}x{face.shape[0]}, variant {info['variant']}, prior {info['prior']}]")


def main(argv: list[str] | None = None) -> int:
    """CLI: one face PNG from one recording."""
    from pipeline.common.stage import run_stage

    return run_stage("predict", __doc__, _add_arguments, _body, argv, prog="python -m pipeline.serve.predict")


if __name__ == "__main__":
    sys.exit(main())
