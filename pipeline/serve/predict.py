"""Inference CLI: a face PNG from any audio or video file and a trained speech encoder.

    python -m pipeline.serve.predict --audio speech.wav --encoder data/models/encoder-neutral_fc.pt \\
        --decoder data/models/decoder.pt --priors data/priors --out face.png

The audio goes through the same path as training (``pipeline.data.audio``): decoded by ffmpeg to 16 kHz mono (any
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
        self.encoder, header = load_frozen(encoder_path, ARCH_ENCODER, self.device)
        self.decoder, decoder_header = load_frozen(decoder_path, ARCH_DECODER, self.device)
        self.dim = int(header["config"]["feature_dim"])
        if int(decoder_header["config"]["feature_dim"]) != self.dim:
            raise PredictError(f"decoder takes {decoder_header['config']['feature_dim']}-d features, the encoder "
                               f"makes {self.dim}-d ones (checkpoints from different runs?)")
        self.variant = get_variant(str(header.get("variant", "non_prior")))
        self.priors = None
        if self.variant.prior is not None:
            if priors_path is None:
                raise PredictError(f"the {self.variant.name} encoder needs --priors (data/priors)")
            self.priors = load_variant_priors(priors_path, self.dim, priors_needed(self.variant))
        if self.variant.prior == "gender" and gender_model is None:
            raise PredictError(f"the {self.variant.name} encoder needs --gender-model (data/gender/model.pt)")
        self.gender = load_frozen(gender_model, ARCH_GENDER, self.device)[0] if gender_model is not None else None

    @torch.no_grad()
    def feature_and_face(self, spec: np.ndarray) -> tuple[torch.Tensor, np.ndarray, dict]:
        """``(final speech feature [D], uint8 HxWx3 face, {variant, prior, p_female})`` of one spectrogram."""
        from pipeline.evaluation.evaluate import to_uint8_images

        spec_t = torch.from_numpy(spec).unsqueeze(0).to(self.device)
        p_female = (float(torch.softmax(self.gender(spec_t).float(), dim=1)[0, 1])
                    if self.gender is not None else None)
        chosen = self.variant.prior
        if chosen == "gender":
            chosen = "female" if p_female >= 0.5 else "male"
        prior = torch.from_numpy(self.priors[chosen]).unsqueeze(0).to(self.device) if chosen else None
        feature = self.encoder(spec_t, prior)
        face = to_uint8_images(self.decoder(feature))[0]
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
    parser.add_argument("--out", required=True, help="output PNG")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")


def _body(args: argparse.Namespace) -> str:
    from PIL import Image

    from pipeline.common.io import atomic_path

    require_ffmpeg()
    face, info = predict_face(args.audio, args.encoder, args.decoder, args.priors, args.gender_model, args.device)
    with atomic_path(args.out) as tmp:
        Image.fromarray(face).save(tmp, format="PNG")
    return (f"predict: {args.audio} ({info['audio_seconds']} s, {info['audio_fit']}) -> {args.out} "
            f"[{face.shape[1]}x{face.shape[0]}, variant {info['variant']}, prior {info['prior']}]")


def main(argv: list[str] | None = None) -> int:
    """CLI: one face PNG from one recording."""
    from pipeline.common.stage import run_stage

    return run_stage("predict", __doc__, _add_arguments, _body, argv, prog="python -m pipeline.serve.predict")


if __name__ == "__main__":
    sys.exit(main())
