"""Inference CLI: a face PNG from any audio or video file, by any model family.

    python -m pipeline.serve.predict --audio speech.wav --encoder data/models/encoder-neutral_fc.pt \\
        --decoder data/models/decoder.pt --priors data/priors --out face.png
    python -m pipeline.serve.predict --family sf2f --checkpoint data/models/sf2f_fuser.pt --audio speech.wav \\
        --out face.png

``--family`` picks the family (``pipeline.evaluation.families``; default ``arspm``, with ``--encoder``,
``--decoder``, ``--priors`` and ``--gender-model``); the other families take their trained generator's
``--checkpoint`` (an unknown family gets one sentence listing the families).

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
import os
import sys
from pathlib import Path

import numpy as np
import torch

from pipeline.common.errors import TrainingError
from pipeline.data.media import require_ffmpeg


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
    """AR-SPM's checkpoints for one prediction, loaded once (``pipeline.arspm.generator.ArspmGenerator``): the speech
    encoder (its variant says which prior it takes), the face decoder, the priors, and the voice gender classifier
    (needed by ``gender``/``gender_fc``; when given it also reports ``p_female`` for every variant). Training's
    resume state given as a checkpoint is refused in one sentence. ``pipeline.serve.app`` keeps one per variant."""

    def __init__(self, encoder_path: str | Path, decoder_path: str | Path, priors_path: str | Path | None = None,
                 gender_model: str | Path | None = None, device_name: str = "cpu"):
        from pipeline.arspm.generator import ArspmGenerator
        from pipeline.common.device import resolve_device

        self.device = resolve_device(device_name)
        self.encoder_path = input_file(encoder_path, "encoder checkpoint")
        self.generator = ArspmGenerator(
            self.encoder_path, input_file(decoder_path, "decoder checkpoint"),
            input_file(priors_path, "priors", directory_ok=True) if priors_path is not None else None,
            input_file(gender_model, "voice gender model") if gender_model is not None else None, self.device)
        self.variant, self.dim = self.generator.variant, self.generator.dim

    @torch.no_grad()
    def feature_and_face(self, spec: np.ndarray) -> tuple[torch.Tensor, np.ndarray, dict]:
        """``(final speech feature [D], uint8 HxWx3 face, {variant, prior, p_female})`` of one spectrogram."""
        from pipeline.faces.generator import check_specs, to_uint8

        generator = self.generator
        feature, chosen, p_female = generator.features(check_specs(spec).to(self.device))
        image = generator.decoder(feature)
        if not bool(torch.isfinite(image).all()):
            raise PredictError("the face decoder gives a non-finite image for this feature (NaN or infinite "
                               "weights?)")
        return feature[0].cpu(), to_uint8(image)[0], {"variant": self.variant.name, "prior": chosen[0],
                                                      "p_female": p_female[0]}

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
    parser.add_argument("--family", default="arspm", help="model family (default arspm; sf2f, ...)")
    parser.add_argument("--checkpoint", default=None, help="the family's generator checkpoint (families other "
                                                           "than arspm, e.g. data/models/sf2f_fuser.pt)")
    parser.add_argument("--sampler", default=None, help="scldm: the sampler's settings (default "
                                                        "data/scldm_sample/sampler.json)")
    parser.add_argument("--encoder", default=None, help="arspm: speech encoder checkpoint (data/models/encoder-V.pt)")
    parser.add_argument("--decoder", default=None, help="arspm: face decoder checkpoint (data/models/decoder.pt)")
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
        from pipeline.evaluation.families import get_family

        family = get_family(args.family)
        out = check_out(args.out, [args.audio, args.encoder, args.decoder, args.priors, args.gender_model,
                                   args.checkpoint])
        input_file(args.audio, "audio file")
        if family.name == "arspm":
            if args.checkpoint is not None or args.encoder is None or args.decoder is None:
                raise PredictError("the arspm family takes --encoder and --decoder (and --priors, --gender-model), "
                                   "not --checkpoint")
            face, info = predict_face(args.audio, args.encoder, args.decoder, args.priors, args.gender_model,
                                      args.device)
        else:
            face, info = predict_family_face(family.name, args)
        try:
            with atomic_path(out) as tmp:
                Image.fromarray(face).save(tmp, format="PNG")
        except OSError as exc:
            raise PredictError(f"cannot write --out {out} ({exc.strerror or exc})") from None
    except user_errors() as exc:  # one line on stderr, whatever the message held
        raise PredictError(" ".join(str(exc).split()) or type(exc).__name__) from None
    model = (f"variant {info['variant']}, prior {info['prior']}" if "variant" in info else info["generator"])
    return (f"predict: {args.audio} ({info['audio_seconds']} s, {info['audio_fit']}) -> {args.out} "
            f"[{face.shape[1]}x{face.shape[0]}, {model}]")


def predict_family_face(name: str, args: argparse.Namespace) -> tuple[np.ndarray, dict]:
    """A face by a family other than AR-SPM, from its ``--checkpoint``."""
    from pipeline.common.device import resolve_device
    from pipeline.evaluation.families import load_generator

    if args.checkpoint is None or any(v is not None for v in (args.encoder, args.decoder, args.priors,
                                                              args.gender_model)):
        raise PredictError(f"the {name} family takes --checkpoint (its trained generator), not --encoder, "
                           f"--decoder, --priors or --gender-model")
    extra = {"sampler": input_file(args.sampler, "sampler settings")} if getattr(args, "sampler", None) else {}
    generator = load_generator(name, device=resolve_device(args.device),
                               checkpoint=input_file(args.checkpoint, f"{name} checkpoint"), **extra)
    spec, fit, seconds = speech_spectrogram(args.audio)
    face = generator.generate(spec)[0]
    return face, {"generator": generator.description, "audio_fit": fit, "audio_seconds": round(seconds, 3)}


def main(argv: list[str] | None = None) -> int:
    """CLI: one face PNG from one recording."""
    from pipeline.common.stage import run_stage

    return run_stage("predict", __doc__, _add_arguments, _body, argv, prog="python -m pipeline.serve.predict")


if __name__ == "__main__":
    sys.exit(main())
