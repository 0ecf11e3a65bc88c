"""Inference CLI: a face PNG from any audio or video file and a trained speech encoder.

    python -m pipeline.predict --audio speech.wav --encoder data/models/encoder-neutral_fc.pt \\
        --decoder data/models/decoder.pt --priors data/priors --out face.png

The audio goes through the same path as training (``pipeline.audio``): decoded by ffmpeg to 16 kHz mono (any
container, rate or channel count), fitted to 6 s (a shorter clip is repeated end to end, a longer one cut to its
first 6 s), then the compressed complex spectrogram. The encoder's variant (in its checkpoint) says which prior
it needs: none, neutral, male/female, or — for ``gender``/``gender_fc`` — the prior of the gender that the voice
gender classifier (``--gender-model data/gender/model.pt``) predicts. Bad input gives one ``error:`` line and
exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from pipeline.media import require_ffmpeg
from pipeline.loop import TrainingError
from pipeline.frozen import ARCH_DECODER, ARCH_ENCODER, load_frozen
from pipeline.variants import get_variant, load_variant_priors, priors_needed

ARCH_GENDER = "voice_gender"


class PredictError(TrainingError):
    """The CLI's input cannot be used (not audio, empty audio, a variant needing an input that was not given)."""


def speech_spectrogram(path: str | Path) -> tuple[np.ndarray, str, float]:
    """``(spec float32 (2, 257, 598), fit, seconds)`` of any audio/video file; short audio is padded."""
    from pipeline.audio import SAMPLE_RATE, fit_to_length, spectrogram
    from pipeline.media import MediaError, decode_audio, probe

    path = Path(path)
    if not path.is_file():
        raise PredictError(f"audio file {path} not found")
    try:
        info = probe(path)
    except MediaError as exc:
        raise PredictError(f"{path.name} is not an audio or video file ffmpeg can read ({exc})") from None
    if not info.has_audio:
        raise PredictError(f"{path.name} has no audio stream")
    raw = decode_audio(path, SAMPLE_RATE)
    if raw.size == 0:
        raise PredictError(f"{path.name}: the audio stream decodes to no samples")
    waveform, fit = fit_to_length(raw, min_samples=1)  # the CLI pads any non-empty clip, however short
    return spectrogram(waveform).astype(np.float32), fit, raw.size / SAMPLE_RATE


def predict_face(audio: str | Path, encoder_path: str | Path, decoder_path: str | Path,
                 priors_path: str | Path | None = None, gender_model: str | Path | None = None,
                 device_name: str = "cpu") -> tuple[np.ndarray, dict]:
    """A uint8 ``HxWx3`` face for ``audio`` and a dict describing what was used."""
    from pipeline.device import resolve_device
    from pipeline.evaluate import to_uint8_images

    device = resolve_device(device_name)
    encoder, header = load_frozen(encoder_path, ARCH_ENCODER, device)
    decoder, decoder_header = load_frozen(decoder_path, ARCH_DECODER, device)
    dim = int(header["config"]["feature_dim"])
    if int(decoder_header["config"]["feature_dim"]) != dim:
        raise PredictError(f"decoder takes {decoder_header['config']['feature_dim']}-d features, the encoder "
                           f"makes {dim}-d ones (checkpoints from different runs?)")
    variant = get_variant(str(header.get("variant", "non_prior")))
    spec, fit, seconds = speech_spectrogram(audio)
    spec_t = torch.from_numpy(spec).unsqueeze(0).to(device)
    prior = None
    chosen = variant.prior
    if variant.prior is not None:
        if priors_path is None:
            raise PredictError(f"the {variant.name} encoder needs --priors (data/priors)")
        priors = load_variant_priors(priors_path, dim, priors_needed(variant))
        if variant.prior == "gender":
            if gender_model is None:
                raise PredictError(f"the {variant.name} encoder needs --gender-model (data/gender/model.pt)")
            classifier, _ = load_frozen(gender_model, ARCH_GENDER, device)
            with torch.no_grad():
                chosen = "female" if int(classifier(spec_t).argmax(1)[0]) == 1 else "male"
        prior = torch.from_numpy(priors[chosen]).unsqueeze(0).to(device)
    with torch.no_grad():
        image = decoder(encoder(spec_t, prior))
    face = to_uint8_images(image)[0]
    return face, {"variant": variant.name, "prior": chosen, "audio_fit": fit, "audio_seconds": round(seconds, 3)}


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audio", required=True, help="audio or video file (any format ffmpeg reads)")
    parser.add_argument("--encoder", required=True, help="speech encoder checkpoint (data/models/encoder-V.pt)")
    parser.add_argument("--decoder", required=True, help="face decoder checkpoint (data/models/decoder.pt)")
    parser.add_argument("--priors", default=None, help="priors directory or priors.npz (prior variants)")
    parser.add_argument("--gender-model", default=None, help="voice gender classifier (gender/gender_fc)")
    parser.add_argument("--out", required=True, help="output PNG")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")


def _body(args: argparse.Namespace) -> str:
    from PIL import Image

    from pipeline.io import atomic_path

    require_ffmpeg()
    face, info = predict_face(args.audio, args.encoder, args.decoder, args.priors, args.gender_model, args.device)
    with atomic_path(args.out) as tmp:
        Image.fromarray(face).save(tmp, format="PNG")
    return (f"predict: {args.audio} ({info['audio_seconds']} s, {info['audio_fit']}) -> {args.out} "
            f"[{face.shape[1]}x{face.shape[0]}, variant {info['variant']}, prior {info['prior']}]")


def main(argv: list[str] | None = None) -> int:
    """CLI: one face PNG from one recording."""
    from pipeline.stage import run_stage

    return run_stage("predict", __doc__, _add_arguments, _body, argv, prog="python -m pipeline.predict")


if __name__ == "__main__":
    sys.exit(main())
