"""A local page that turns a voice into a face: ``make app`` or ``python -m pipeline.serve.app [--port 7860]``.

Record from the microphone, upload any audio or video file, or pick a test clip; choose the variant; see the face
the trained speech encoder and face decoder draw, what the voice gender classifier says (with its probability),
the prior that was used, and the k real test faces nearest to the voice in face-feature space (cosine similarity
of the speech encoder's output to the test faces' features, as ``evaluate``'s recall@k). For a test clip the
page also says where its own face ranks.

Everything runs through ``pipeline.serve.predict`` (the CLI's code: audio decoding and fitting to 6 s, the spectrogram,
checkpoint loading, prior choice); a test clip uses its stored spectrogram from the shards, exactly what
``evaluate`` reads. The page reads ``data/models``, ``data/priors``, ``data/gender``, ``data/features`` and
``data/shards``; where one is missing it says which ``dvc repro`` target makes it. Bad input (a file that is not
audio, empty audio, a checkpoint that does not match) gives one line on the page, and the server keeps serving.
"""
from __future__ import annotations

import argparse
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.errors import PipelineError

DEFAULT_PORT = 7860
DEFAULT_VARIANT = "neutral_fc"
#: show the generated face (the model's size, 64 px in the demo) large, its pixels sharp
PAGE_CSS = "#face img { width: 256px; height: 256px; object-fit: contain; image-rendering: pixelated; }"


class AppError(PipelineError, ValueError):
    """A request the page cannot answer (no input, a missing output of the pipeline)."""


@dataclass
class Answer:
    """What the page shows for one request."""

    face: np.ndarray | None
    message: str
    nearest: list[tuple[np.ndarray, str]]


def _targets(data: Path, variant: str) -> dict[Path, str]:
    """Every file a prediction with ``variant`` reads, and the ``dvc repro`` target that makes it."""
    return {
        data / "models" / f"encoder-{variant}.pt": f"train_encoder@{variant}",
        data / "models" / "decoder.pt": "train_decoder",
        data / "priors" / "priors.npz": "priors",
        data / "gender" / "model.pt": "gender",
        data / "features" / "meta.json": "features",
        data / "shards": "preprocess",
    }


class FaceService:
    """What the page does, without the page: checkpoints loaded once per variant, one answer per request."""

    def __init__(self, data_dir: str | Path = "data", device: str = "cpu", k: int = 5):
        self.data = Path(data_dir)
        self.device = device
        self.k = int(k)
        self._predictors: dict[str, Any] = {}
        self._lock = threading.Lock()  # loading and the models' forward passes, one request at a time
        self._test: tuple[list[str], np.ndarray] | None = None
        self._shard_of: dict[str, Path] = {}

    # ---------------------------------------------------------------------------------------------- inputs

    def variants(self) -> list[str]:
        """Variants whose trained speech encoder exists (``data/models/encoder-<V>.pt``), in Table 4's order."""
        from pipeline.arspm.variants import VARIANTS

        return [v for v in VARIANTS if (self.data / "models" / f"encoder-{v}.pt").is_file()]

    def missing(self, variant: str) -> list[str]:
        """``path (dvc repro target)`` for each output of the pipeline that ``variant`` needs and lacks."""
        return [f"{path} (`dvc repro {target}`)" for path, target in _targets(self.data, variant).items()
                if not path.exists() and target != "gender"]

    def test_clips(self) -> list[str]:
        """Keys of the test split's samples (the dropdown), in shard order."""
        self._index_test_shards()
        return list(self._shard_of)

    def _index_test_shards(self) -> None:
        if self._shard_of:
            return
        from pipeline.data.shards import iter_samples, list_shards

        for shard in list_shards(self.data / "shards", "test"):
            for sample in iter_samples([shard], fields=["meta"]):
                self._shard_of[sample["key"]] = shard

    def _test_features(self) -> tuple[list[str], np.ndarray]:
        if self._test is None:
            from pipeline.data.feature_files import iter_feature_shards

            keys: list[str] = []
            arrays = []
            for _, shard_keys, array in iter_feature_shards(self.data / "features", "test"):
                keys.extend(shard_keys)
                arrays.append(np.asarray(array, dtype=np.float32))
            if not arrays:
                raise AppError(f"no test face features in {self.data / 'features'} (`dvc repro features`)")
            matrix = np.concatenate(arrays)
            self._test = keys, matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-8)
        return self._test

    def _predictor(self, variant: str):
        from pipeline.serve.predict import Predictor

        if variant not in self._predictors:
            missing = self.missing(variant)
            if missing:
                raise AppError(f"the {variant} variant needs {', '.join(missing)}")
            gender = self.data / "gender" / "model.pt"
            self._predictors[variant] = Predictor(
                self.data / "models" / f"encoder-{variant}.pt", self.data / "models" / "decoder.pt",
                self.data / "priors", gender if gender.is_file() else None, self.device)
        return self._predictors[variant]

    def _faces(self, keys: list[str]) -> dict[str, np.ndarray]:
        from pipeline.data.shards import iter_samples

        self._index_test_shards()
        wanted = set(keys)
        out: dict[str, np.ndarray] = {}
        for shard in sorted({self._shard_of[k] for k in keys if k in self._shard_of}):
            for sample in iter_samples([shard], fields=["face"]):
                if sample["key"] in wanted:
                    out[sample["key"]] = sample["face"]
        return out

    def _test_spectrogram(self, key: str) -> np.ndarray:
        from pipeline.data.shards import iter_samples

        self._index_test_shards()
        if key not in self._shard_of:
            raise AppError(f"{key} is not a test clip of {self.data / 'shards'}")
        for sample in iter_samples([self._shard_of[key]], fields=["spec"]):
            if sample["key"] == key:
                return np.asarray(sample["spec"], dtype=np.float32)
        raise AppError(f"{key} is not in its shard {self._shard_of[key].name}")

    # ---------------------------------------------------------------------------------------------- answer

    def answer(self, audio: str | None, test_key: str | None, variant: str) -> Answer:
        """The face, the evidence and the nearest test faces for a recording/file, else for a test clip."""
        from pipeline.serve.predict import speech_spectrogram

        if not variant:
            raise AppError("choose a variant")
        notes = []
        if audio:
            spec, fit, seconds = speech_spectrogram(audio)
            if fit == "pad":
                notes.append(f"The audio is {seconds:.1f} s: repeated end to end to 6 s, as in training.")
            elif fit == "cut":
                notes.append(f"The audio is {seconds:.1f} s: only its first 6 s are used, as in training.")
            own = None
        elif test_key:
            spec, own = self._test_spectrogram(test_key), test_key
            notes.append(f"Test clip {test_key}: its stored 6-s spectrogram, as `evaluate` reads it.")
        else:
            raise AppError("record or upload a voice, or pick a test clip")
        with self._lock:
            predictor = self._predictor(variant)
            feature, face, info = predictor.feature_and_face(spec)
        keys, matrix = self._test_features()
        if matrix.shape[1] != feature.shape[0]:
            raise AppError(f"the encoder makes {feature.shape[0]}-d features but {self.data / 'features'} holds "
                           f"{matrix.shape[1]}-d ones (rerun `dvc repro` from features on)")
        query = feature.numpy() / max(float(np.linalg.norm(feature.numpy())), 1e-8)
        similarity = matrix @ query
        order = np.argsort(-similarity, kind="stable")
        top = [keys[i] for i in order[: self.k]]
        faces = self._faces(top)
        nearest = [(faces[key], f"{rank + 1}. cos {similarity[order[rank]]:.3f} {key}")
                   for rank, key in enumerate(top) if key in faces]
        if info["p_female"] is None:
            gender = "Voice gender: no classifier (`dvc repro gender`)."
        else:
            p = info["p_female"]
            gender = f"Voice gender: {'female' if p >= 0.5 else 'male'} (p(female) = {p:.2f})."
        prior = f"Prior: {info['prior']}." if info["prior"] else "Prior: none (non_prior variant)."
        lines = [f"Variant **{info['variant']}**. {gender} {prior}"]
        if own is not None:
            rank = int(np.nonzero(np.asarray(keys)[order] == own)[0][0]) + 1 if own in keys else None
            lines.append(f"Its own face ranks {rank} of {len(keys)} test faces." if rank else
                         "Its own face has no feature in data/features.")
        return Answer(face, "\n\n".join(lines + notes), nearest)


def one_line(exc: BaseException) -> str:
    """An exception as one line for the page."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {text}"


def build_page(service: FaceService):
    """The Gradio page over ``service``."""
    import gradio as gr

    variants = service.variants()
    default = DEFAULT_VARIANT if DEFAULT_VARIANT in variants else (variants[0] if variants else None)
    status = ("" if default else "No trained speech encoder in data/models: run `dvc repro` (or `make demo`) "
              "first.")
    if default and service.missing(default):
        status = f"Missing for {default}: {', '.join(service.missing(default))}."
    clips = service.test_clips() if (service.data / "shards").is_dir() else []

    def respond(recorded, uploaded, test_key, variant):
        audio = recorded or uploaded
        try:
            answer = service.answer(audio, None if audio else test_key, variant)
        except Exception as exc:  # noqa: BLE001 - the page shows one line, the server keeps serving
            if not isinstance(exc, PipelineError):
                traceback.print_exc(file=sys.stderr)
            return None, f"**Error:** {one_line(exc)}", []
        return answer.face, answer.message, answer.nearest

    with gr.Blocks(title="speech2face", analytics_enabled=False) as page:
        gr.Markdown("# speech2face: a face from a voice\nRecord, upload an audio or video file, or pick a test "
                    "clip. Clips shorter than 6 s are repeated end to end, longer ones cut to their first 6 s.")
        gr.Markdown(status, elem_id="status")
        with gr.Row():
            with gr.Column():
                recorded = gr.Audio(sources=["microphone"], type="filepath", label="Record")
                uploaded = gr.File(label="Upload any audio or video file", type="filepath", elem_id="upload")
                test_key = gr.Dropdown(choices=clips, value=None, label="Or a test clip", elem_id="test-clip")
                variant = gr.Dropdown(choices=variants, value=default, label="Variant", elem_id="variant")
                go = gr.Button("Make a face", variant="primary", elem_id="go")
            with gr.Column():
                face = gr.Image(label="Generated face", type="numpy", elem_id="face", interactive=False, height=288)
                message = gr.Markdown(elem_id="message")
        nearest = gr.Gallery(label=f"The {service.k} nearest real test faces (cosine similarity in face-feature "
                                   f"space)", columns=service.k, elem_id="nearest")
        go.click(respond, [recorded, uploaded, test_key, variant], [face, message, nearest],
                 concurrency_limit=2)
    return page


def main(argv: list[str] | None = None) -> int:
    """Serve the page on 127.0.0.1 until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.serve.app", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT})")
    parser.add_argument("--data", default="data", help="the pipeline's data directory (default: data)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--k", type=int, default=5, help="nearest test faces shown")
    args = parser.parse_args(argv)
    try:
        page = build_page(FaceService(args.data, args.device, args.k))
    except PipelineError as exc:
        print(f"app: error: {exc}", file=sys.stderr)
        return 2
    import gradio as gr

    print(f"app: serving http://127.0.0.1:{args.port} (Ctrl-C stops it)", flush=True)
    theme = gr.themes.Base(font=["system-ui", "sans-serif"], font_mono=["monospace"])  # no web fonts: offline
    page.queue(default_concurrency_limit=2).launch(server_name="127.0.0.1", server_port=args.port, share=False,
                                                   show_error=False, inbrowser=False, ssr_mode=False, theme=theme,
                                                   css=PAGE_CSS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
