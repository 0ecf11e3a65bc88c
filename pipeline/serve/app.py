"""A local page that turns a voice into a face: ``make app`` or ``python -m pipeline.serve.app [--port 7860]``.

Record from the microphone, upload any audio or video file, or pick a test clip; choose the model family (any of
``pipeline.evaluation.families.FAMILIES``) and, for AR-SPM, the variant; see the face it draws and the k real test
faces nearest to it. AR-SPM (the default): the trained speech encoder and face decoder, what the voice gender
classifier says (with its probability), the prior that was used, and the nearest test faces in face-feature space
(cosine similarity of the speech encoder's output to the test faces' features, as ``evaluate``'s recall@k). Another
family (SF2F, ...) has no such feature: its face's nearest test faces are found in the judge's space (cosine
similarity of the judge's embeddings of the generated face and of the true test crops, as ``compare`` scores; the
test crops are embedded once); without the judge's file the page shows the face alone and says why in one line.
For a test clip the page also says where its own face ranks.

Everything runs through ``pipeline.serve.predict`` (the CLI's code: audio decoding and fitting to 6 s, the spectrogram,
checkpoint loading, prior choice) and, for the other families, ``pipeline.evaluation.families.load_generator`` on
their default DVC outputs under the data directory; a test clip uses its stored spectrogram from the shards,
exactly what ``evaluate`` reads. The page reads ``data/models``, ``data/priors``, ``data/gender``,
``data/features`` and ``data/shards``; where one is missing it says which ``dvc repro`` target makes it (for the
other families and the judge, the stage dvc.yaml names as the file's writer), and a family whose files are missing
is listed as unavailable. Bad input (a file that is not audio, empty audio, a checkpoint that does not match, a
non-finite prior or feature, an unknown family, an upload over ``--max-upload-mb``) gives one line on the page,
the same sentence as ``predict``, and the server keeps serving.

Files: each answer's images are written to a directory of their own (gradio copies them into its cache under
content-hash names, atomically), and only the last :data:`KEEP_ANSWERS` such directories are kept; an upload is
deleted once it is answered (after ``--upload-grace-s``, so that the same file uploaded by another request at the
same time is still there for it), and gradio's cache is swept of files older than an hour.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from pipeline.common.errors import PipelineError

DEFAULT_PORT = 7860
DEFAULT_VARIANT = "neutral_fc"
#: the family the page starts with when its checkpoints exist (``pipeline.evaluation.families``)
DEFAULT_FAMILY = "arspm"
#: show the generated face (the model's size, 64 px in the demo) large, its pixels sharp
PAGE_CSS = "#face img { width: 256px; height: 256px; object-fit: contain; image-rendering: pixelated; }"
#: the largest upload the page takes by default (``--max-upload-mb``)
DEFAULT_MAX_UPLOAD_MB = 20.0
#: seconds an answered upload stays on the server before it is deleted (``--upload-grace-s``)
DEFAULT_UPLOAD_GRACE_S = 30.0
#: answers whose image files are kept (gradio copies them into its cache right after the answer)
KEEP_ANSWERS = 32
#: gradio's own cache (its copies of the answers, stray uploads): every 10 min, files older than 1 h are deleted
GRADIO_CACHE_SWEEP = (600, 3600)
#: an empty ``tmp*`` file this old at the top of gradio's upload folder is a stray (see :meth:`Uploads.sweep_strays`)
STRAY_AGE_S = 600.0


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


#: the stage-definition file the page reads to name the stage that makes a missing file (the code's own)
DVC_YAML = Path(__file__).resolve().parents[2] / "dvc.yaml"
#: the judge's checkpoint under the data directory (stage ``judge``): the space of other families' nearest faces
JUDGE_FILE = Path("models") / "judge.pt"


@functools.lru_cache(maxsize=None)
def _stage_outputs() -> dict[str, str]:
    """``output path -> stage name`` of every plain (not ``foreach``) stage in :data:`DVC_YAML` (empty when it
    cannot be read: the page then says only ``dvc repro``)."""
    import yaml

    try:
        stages = (yaml.safe_load(DVC_YAML.read_text(encoding="utf-8")) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError):
        return {}
    made: dict[str, str] = {}
    for name, body in stages.items():
        if not isinstance(body, dict) or "foreach" in body:
            continue
        for out in body.get("outs") or []:
            for path in (out if isinstance(out, dict) else {out: None}):
                made[str(path)] = str(name)
    return made


def stage_making(default: str) -> str:
    """The ``dvc repro`` target that writes ``default`` (a path under the project root, ``data/models/x.pt``), as
    dvc.yaml says; ``dvc repro`` alone when no stage names it."""
    stage = _stage_outputs().get(default)
    return f"dvc repro {stage}" if stage else "dvc repro"


class FaceService:
    """What the page does, without the page: checkpoints loaded once per variant or family, one answer per request."""

    def __init__(self, data_dir: str | Path = "data", device: str = "cpu", k: int = 5):
        self.data = Path(data_dir)
        self.device = device
        self.k = int(k)
        self._predictors: dict[str, Any] = {}
        self._generators: dict[str, Any] = {}  # the other families' FaceGenerators, loaded once each
        self._lock = threading.Lock()  # loading and the models' forward passes, one request at a time
        self._test: tuple[list[str], np.ndarray] | None = None
        self._judged: tuple[Any, list[str], np.ndarray, int] | None = None  # judge, test keys, embeddings, crop px
        self._shard_of: dict[str, Path] = {}

    # ---------------------------------------------------------------------------------------------- inputs

    def variants(self) -> list[str]:
        """Variants whose trained speech encoder exists (``data/models/encoder-<V>.pt``), in Table 4's order."""
        from pipeline.arspm.variants import VARIANTS

        return [v for v in VARIANTS if (self.data / "models" / f"encoder-{v}.pt").is_file()]

    def missing(self, variant: str) -> list[str]:
        """``path (dvc repro target)`` for each output of the pipeline that ``variant`` needs and lacks."""
        return [_needed(path, f"dvc repro {target}") for path, target in _targets(self.data, variant).items()
                if not path.exists() and target != "gender"]

    def families(self) -> list[str]:
        """The model families the page offers (``pipeline.evaluation.families.FAMILIES``, in its order)."""
        from pipeline.evaluation.families import FAMILIES

        return list(FAMILIES)

    def _under_data(self, default: str) -> Path:
        """A family's default input (``data/models/x.pt``, relative to the project) under this page's data dir."""
        parts = Path(default).parts
        return self.data.joinpath(*parts[1:]) if parts and parts[0] == "data" else self.data.parent / default

    def _family_lacks(self, name: str) -> list[tuple[Path, str]]:
        """``(path, dvc repro target)`` of each file family ``name`` needs and lacks."""
        from pipeline.evaluation.families import get_family

        family = get_family(name)
        return [(self._under_data(default), stage_making(default)) for key, default in family.inputs.items()
                if default is not None and key not in family.optional and not self._under_data(default).exists()]

    def family_missing(self, name: str) -> list[str]:
        """``path (dvc repro stage)`` for each file family ``name`` (not AR-SPM: see :meth:`missing`) needs and
        lacks, the stage read from dvc.yaml; an unknown name is refused in one sentence listing the families."""
        return [_needed(path, target) for path, target in self._family_lacks(name)]

    def family_label(self, name: str) -> str:
        """The family's entry in the page's list: its name and title, and why it is unavailable when it is."""
        from pipeline.evaluation.families import get_family

        if name == DEFAULT_FAMILY:
            return ("arspm: AR-SPM (choose the variant)" if self.variants() else
                    "arspm: AR-SPM (unavailable: no trained speech encoder, dvc repro)")
        targets = sorted({target for _, target in self._family_lacks(name)})
        return f"{name}: {get_family(name).title}" + (f" (unavailable: {', '.join(targets)})" if targets else "")

    def judge_missing(self) -> str | None:
        """Why the judge's space cannot be used (its file is missing), else None."""
        path = self.data / JUDGE_FILE
        return None if path.is_file() else (f"the judge {path} is missing "
                                            f"(`{stage_making('data/' + JUDGE_FILE.as_posix())}`)")

    def test_clips(self) -> list[str]:
        """Keys of the test split's samples (the dropdown), in shard order."""
        self._index_test_shards()
        return list(self._shard_of)

    def _index_test_shards(self) -> None:
        if self._shard_of:
            return
        from pipeline.data.shards import iter_samples, list_shards

        shard_of: dict[str, Path] = {}
        for shard in list_shards(self.data / "shards", "test"):
            for sample in iter_samples([shard], fields=["meta"]):
                shard_of[sample["key"]] = shard
        self._shard_of = shard_of  # whole, never half-built for a concurrent request

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
            if not np.isfinite(matrix).all():
                raise AppError(f"the test face features in {self.data / 'features'} are not all finite (NaN or "
                               f"infinite values): rerun `dvc repro features`")
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

    def _generator(self, name: str):
        """Family ``name``'s generator from its default files under the data dir, loaded once."""
        if name not in self._generators:
            missing = self.family_missing(name)
            if missing:
                raise AppError(f"the {name} family needs {', '.join(missing)}")
            from pipeline.common.device import resolve_device
            from pipeline.evaluation.families import get_family, load_generator

            family = get_family(name)
            paths = {key: self._under_data(default) for key, default in family.inputs.items()
                     if default is not None and self._under_data(default).exists()}
            self._generators[name] = load_generator(name, root=self.data.parent, device=resolve_device(self.device),
                                                    **paths)
        return self._generators[name]

    def _judge_space(self) -> tuple[Any, list[str], np.ndarray, int] | str:
        """``(judge, test keys, the test crops' judge embeddings (N, D), the crops' size)``, embedded once; or one
        line saying why there is none (no judge file, a judge that cannot be loaded)."""
        if self._judged is not None:
            return self._judged
        reason = self.judge_missing()
        if reason:
            return reason
        from pipeline.common.device import resolve_device
        from pipeline.data.shards import iter_samples, list_shards
        from pipeline.evaluation.compare import resize_faces
        from pipeline.evaluation.judge import load_judge

        path, shards = self.data / JUDGE_FILE, self.data / "shards"
        if not shards.is_dir():
            return f"no test shards in {shards} (`dvc repro preprocess`)"
        try:
            judge = load_judge(path, resolve_device(self.device))
        except PipelineError as exc:
            return f"the judge {path} cannot be used ({one_line(exc)})"
        keys: list[str] = []
        parts: list[np.ndarray] = []
        batch: list[np.ndarray] = []
        size = 0

        def flush() -> None:
            if batch:
                parts.append(judge.embed(resize_faces(np.stack(batch), judge.image_size or size)))
                batch.clear()

        for sample in iter_samples(list_shards(shards, "test"), fields=["face"]):
            face = np.asarray(sample["face"], dtype=np.uint8)
            size = size or int(face.shape[0])
            keys.append(str(sample["key"]))
            batch.append(face)
            if len(batch) == 64:
                flush()
        flush()
        if not keys:
            return f"no test clips in {shards} (`dvc repro preprocess`)"
        self._judged = (judge, keys, np.concatenate(parts), size)
        return self._judged

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

    def answer(self, audio: str | None, test_key: str | None, variant: str | None,
               family: str = DEFAULT_FAMILY) -> Answer:
        """The face, the evidence and the nearest test faces for a recording/file, else for a test clip, by
        ``family`` (AR-SPM: its ``variant``)."""
        from pipeline.arspm.variants import VARIANTS
        from pipeline.evaluation.families import get_family

        if not family:
            raise AppError("choose a model family")
        name = get_family(family).name
        if name == DEFAULT_FAMILY:
            if not variant:
                raise AppError("choose a variant")
            if variant not in VARIANTS:
                raise AppError(f"unknown variant {variant!r} (one of {', '.join(VARIANTS)})")
        spec, own, notes = self._spectrogram(audio, test_key)
        if name == DEFAULT_FAMILY:
            return self._arspm_answer(spec, own, notes, variant)
        return self._family_answer(name, spec, own, notes)

    def _spectrogram(self, audio: str | None, test_key: str | None) -> tuple[np.ndarray, str | None, list[str]]:
        """``(spectrogram, the test clip's key or None, notes on the audio)`` of a recording/file or a test clip."""
        from pipeline.serve.predict import speech_spectrogram

        notes = []
        if audio:
            spec, fit, seconds = speech_spectrogram(audio)
            if fit == "pad":
                notes.append(f"The audio is {seconds:.1f} s: repeated end to end to 6 s, as in training.")
            elif fit == "cut":
                notes.append(f"The audio is {seconds:.1f} s: only its first 6 s are used, as in training.")
            return spec, None, notes
        if test_key:
            notes.append(f"Test clip {test_key}: its stored 6-s spectrogram, as `evaluate` reads it.")
            return self._test_spectrogram(test_key), test_key, notes
        raise AppError("record or upload a voice, or pick a test clip")

    def _nearest(self, keys: list[str], similarity: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
        """The test keys' order by ``similarity`` and the first k faces with their captions."""
        order = np.argsort(-similarity, kind="stable")
        top = [keys[i] for i in order[: self.k]]
        faces = self._faces(top)
        return order, [(faces[key], f"{rank + 1}. cos {similarity[order[rank]]:.3f} {key}")
                       for rank, key in enumerate(top) if key in faces]

    def _arspm_answer(self, spec: np.ndarray, own: str | None, notes: list[str], variant: str) -> Answer:
        with self._lock:
            predictor = self._predictor(variant)
            feature, face, info = predictor.feature_and_face(spec)
        keys, matrix = self._test_features()
        if matrix.shape[1] != feature.shape[0]:
            raise AppError(f"the encoder makes {feature.shape[0]}-d features but {self.data / 'features'} holds "
                           f"{matrix.shape[1]}-d ones (rerun `dvc repro` from features on)")
        query = feature.numpy() / max(float(np.linalg.norm(feature.numpy())), 1e-8)
        order, nearest = self._nearest(keys, matrix @ query)
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

    def _family_answer(self, name: str, spec: np.ndarray, own: str | None, notes: list[str]) -> Answer:
        """Another family's face; its nearest test faces in the judge's space (it has no AR-SPM feature)."""
        from pipeline.evaluation.compare import resize_faces

        with self._lock:
            generator = self._generator(name)
            face = generator.generate(spec)[0]
            space = self._judge_space()
            query = None
            if not isinstance(space, str):
                judge, keys, matrix, size = space
                query = judge.embed(resize_faces(resize_faces(face[None], size), judge.image_size or size))[0]
        lines = [f"Family **{name}**: {generator.description}."]
        if query is None:
            return Answer(face, "\n\n".join(lines + [f"No nearest test faces: {space}."] + notes), [])
        order, nearest = self._nearest(keys, matrix @ query)
        lines.append(f"Nearest test faces in the judge's space (cosine similarity of {judge.name}'s embeddings of "
                     f"this face and of the true test crops), not AR-SPM's face-feature space.")
        if own is not None:
            rank = int(np.nonzero(np.asarray(keys)[order] == own)[0][0]) + 1 if own in keys else None
            lines.append(f"Its own face ranks {rank} of {len(keys)} test faces." if rank else
                         "Its own face has no crop in the test shards.")
        return Answer(face, "\n\n".join(lines + notes), nearest)


def _needed(path: Path, target: str) -> str:
    """``path (`target`)``, noting training's resume state beside it when there is one (never a checkpoint)."""
    from pipeline.training.loop import resume_path_for

    resume = resume_path_for(path)
    return (f"{path} (`{target}`" + (f"; {resume.name} beside it is an unfinished run's resume state, not a "
                                     f"checkpoint" if resume.exists() else "") + ")")


def one_line(exc: BaseException) -> str:
    """An exception as one line for the page."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {text}"


class AnswerFiles:
    """Each answer's images as PNG files in a directory of its own (so that no request ever reads a file another
    one is writing), the last ``keep`` directories kept: gradio copies them into its cache as soon as the answer
    is returned, and serves its copies."""

    def __init__(self, keep: int = KEEP_ANSWERS):
        self.root = Path(tempfile.mkdtemp(prefix="speech2face-answers-"))  # the temp dir: gradio may copy from it
        self.keep = max(1, int(keep))
        self._dirs: collections.deque[Path] = collections.deque()
        self._lock = threading.Lock()

    def write(self, answer: Answer) -> tuple[str | None, list[tuple[str, str]]]:
        """``(face PNG path or None, [(nearest face PNG path, caption)])`` of ``answer``."""
        from PIL import Image

        directory = Path(tempfile.mkdtemp(dir=self.root))
        with self._lock:
            self._dirs.append(directory)
            old = [self._dirs.popleft() for _ in range(len(self._dirs) - self.keep)]
        for path in old:
            shutil.rmtree(path, ignore_errors=True)
        face = None
        if answer.face is not None:
            face = directory / "face.png"
            Image.fromarray(answer.face).save(face, format="PNG")
        nearest = []
        for i, (image, caption) in enumerate(answer.nearest):
            path = directory / f"nearest-{i + 1}.png"
            Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path, format="PNG")
            nearest.append((str(path), caption))
        return (str(face) if face is not None else None), nearest

    def files(self) -> list[Path]:
        """The answer files on disk now."""
        return sorted(p for p in self.root.rglob("*") if p.is_file())

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _identity(path: str) -> tuple[int, int, int]:
    """Which file ``path`` is now: a new upload of the same bytes replaces it (a new inode, a new ctime)."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_ctime_ns


class Uploads:
    """Deletes each upload once it is answered (``grace_s`` later, by one janitor thread), unless another request
    is reading it or the same bytes were uploaded again since: gradio stores an upload under a hash of its
    content, so two users sending the same file share one path, and the later one may not have asked yet. Only
    files under gradio's upload folder are ever deleted."""

    def __init__(self, grace_s: float = DEFAULT_UPLOAD_GRACE_S, stray_age_s: float = STRAY_AGE_S):
        self.grace_s = max(0.0, float(grace_s))
        self.stray_age_s = float(stray_age_s)
        self._swept = -math.inf
        self._in_use: collections.Counter[str] = collections.Counter()
        self._due: collections.deque[tuple[float, str, tuple]] = collections.deque()  # FIFO: one grace for all
        self._lock = threading.Condition()
        self._janitor: threading.Thread | None = None

    @staticmethod
    def _ours(path: str) -> bool:
        from gradio.utils import get_upload_folder

        return Path(get_upload_folder()).resolve() in Path(path).resolve().parents

    @contextlib.contextmanager
    def answering(self, *paths: str | None) -> Iterator[None]:
        """Hold ``paths`` (the request's uploads, None for none) while the request is answered; delete them after."""
        held = []
        for path in {p for p in paths if p}:
            try:
                inode = _identity(path)
            except OSError:
                continue
            held.append((path, inode))
        with self._lock:
            self._in_use.update(path for path, _ in held)
        try:
            yield
        finally:
            with self._lock:
                self._in_use.subtract(path for path, _ in held)
                self._in_use += collections.Counter()  # drop the zeros
            if held:
                self.sweep_strays()
            for path, inode in held:
                if not self._ours(path):
                    continue
                if self.grace_s <= 0:
                    self._delete(path, inode)
                    continue
                with self._lock:
                    self._due.append((time.monotonic() + self.grace_s, path, inode))
                    if self._janitor is None:
                        self._janitor = threading.Thread(target=self._sweep, name="upload-janitor", daemon=True)
                        self._janitor.start()
                    self._lock.notify()

    def sweep_strays(self, every_s: float = 60.0) -> list[Path]:
        """Delete the empty ``tmp*`` files at the top of gradio's upload folder that are older than
        ``stray_age_s`` (at most once every ``every_s``); the deleted paths.

        gradio 6's ``gr.File(type="filepath")`` creates one such file on every request (a ``NamedTemporaryFile``
        it renames in memory and never deletes, not even at shutdown). Uploads in flight are ``tmp*`` files there
        too, but they are written to as they arrive: one still empty after ``stray_age_s`` is dead as well."""
        from gradio.utils import get_upload_folder

        now = time.monotonic()
        with self._lock:
            if now - self._swept < every_s:
                return []
            self._swept = now
        deleted = []
        with contextlib.suppress(OSError), os.scandir(get_upload_folder()) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if (entry.name.startswith("tmp") and entry.is_file(follow_symlinks=False)
                            and entry.stat().st_size == 0 and time.time() - entry.stat().st_mtime > self.stray_age_s):
                        os.unlink(entry.path)
                        deleted.append(Path(entry.path))
        return deleted

    def _sweep(self) -> None:
        while True:
            with self._lock:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._lock.wait(timeout=None if not self._due else self._due[0][0] - time.monotonic())
                _, path, inode = self._due.popleft()
            self._delete(path, inode)

    def _delete(self, path: str, inode: tuple) -> None:
        with self._lock:
            if self._in_use.get(path):
                return  # another request reads it now and deletes it after its answer
            try:
                if _identity(path) != inode:
                    return  # uploaded again since: that request's answer deletes it
                os.unlink(path)
            except OSError:
                return
        with contextlib.suppress(OSError):
            os.rmdir(Path(path).parent)  # gradio's per-upload directory, when empty


def check_upload_size(path: str | None, max_bytes: int | None) -> None:
    """Refuse an upload over ``max_bytes`` in one sentence (gradio refuses them too, before they arrive)."""
    if path and max_bytes is not None and os.path.isfile(path) and os.path.getsize(path) > max_bytes:
        raise AppError(f"{Path(path).name} is {os.path.getsize(path) / 2**20:.1f} MB; the page takes files up to "
                       f"{max_bytes / 2**20:g} MB (--max-upload-mb)")


def build_page(service: FaceService, max_upload_mb: float | None = DEFAULT_MAX_UPLOAD_MB,
               upload_grace_s: float = DEFAULT_UPLOAD_GRACE_S, answers: AnswerFiles | None = None):
    """The Gradio page over ``service``: uploads up to ``max_upload_mb`` (None: no limit) are taken, and deleted
    ``upload_grace_s`` after their answer; each answer's images come from ``answers`` (files of its own)."""
    import gradio as gr

    max_bytes = None if max_upload_mb is None else int(float(max_upload_mb) * 2**20)
    answers = answers if answers is not None else AnswerFiles()
    uploads = Uploads(upload_grace_s)
    variants = service.variants()
    default = DEFAULT_VARIANT if DEFAULT_VARIANT in variants else (variants[0] if variants else None)
    status = ("" if default else "No trained speech encoder in data/models: run `dvc repro` (or `make demo`) "
              "first.")
    if default and service.missing(default):
        status = f"Missing for {default}: {', '.join(service.missing(default))}."
    families = service.families()
    unavailable = {name: service.family_missing(name) for name in families if name != DEFAULT_FAMILY}
    notes = [status] if status else []
    notes += [f"The {name} family is unavailable: it needs {', '.join(missing)}."
              for name, missing in unavailable.items() if missing]
    if any(not missing for missing in unavailable.values()) and service.judge_missing():
        notes.append(f"Families other than AR-SPM show no nearest test faces: {service.judge_missing()}.")
    family_default = (DEFAULT_FAMILY if default or not any(not m for m in unavailable.values()) else
                      next(name for name, missing in unavailable.items() if not missing))
    clips = service.test_clips() if (service.data / "shards").is_dir() else []

    def respond(recorded, uploaded, test_key, variant, family):
        audio = recorded or uploaded
        try:
            with uploads.answering(recorded, uploaded):  # deleted after the answer, whatever it is
                check_upload_size(audio, max_bytes)
                answer = service.answer(audio, None if audio else test_key, variant, family)
            face_path, nearest_paths = answers.write(answer)
        except Exception as exc:  # noqa: BLE001 - the page shows one line, the server keeps serving
            if not isinstance(exc, PipelineError):
                traceback.print_exc(file=sys.stderr)
            return None, f"**Error:** {one_line(exc)}", [], None, None
        message = answer.message
        if audio:
            message += "\n\nThe recording or file is deleted from the server after this answer."
        return face_path, message, nearest_paths, None, None

    size_note = f" (up to {max_upload_mb:g} MB)" if max_upload_mb is not None else ""
    with gr.Blocks(title="speech2face", analytics_enabled=False, delete_cache=GRADIO_CACHE_SWEEP) as page:
        gr.Markdown("# speech2face: a face from a voice\nRecord, upload an audio or video file, or pick a test "
                    "clip. Clips shorter than 6 s are repeated end to end, longer ones cut to their first 6 s.")
        gr.Markdown("\n\n".join(notes), elem_id="status")
        with gr.Row():
            with gr.Column():
                recorded = gr.Audio(sources=["microphone"], type="filepath", label="Record")
                uploaded = gr.File(label=f"Upload any audio or video file{size_note}", type="filepath",
                                   elem_id="upload")
                test_key = gr.Dropdown(choices=clips, value=None, label="Or a test clip", elem_id="test-clip")
                family = gr.Dropdown(choices=[(service.family_label(name), name) for name in families],
                                     value=family_default, label="Model family", elem_id="family")
                variant = gr.Dropdown(choices=variants, value=default, label="Variant (AR-SPM)", elem_id="variant",
                                      visible=family_default == DEFAULT_FAMILY)
                go = gr.Button("Make a face", variant="primary", elem_id="go")
            with gr.Column():
                face = gr.Image(label="Generated face", type="numpy", elem_id="face", interactive=False, height=288)
                message = gr.Markdown(elem_id="message")
        nearest = gr.Gallery(label=f"The {service.k} nearest real test faces (cosine similarity: AR-SPM's in "
                                   f"face-feature space, the other families' in the judge's space)",
                             columns=service.k, elem_id="nearest")
        family.change(lambda name: gr.update(visible=name == DEFAULT_FAMILY), family, variant, queue=False,
                      api_visibility="private")
        go.click(respond, [recorded, uploaded, test_key, variant, family],
                 [face, message, nearest, recorded, uploaded], concurrency_limit=2, api_name="face")
    return page


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (``mallopt(M_ARENA_MAX)``, as ``MALLOC_ARENA_MAX`` does); whether it could.

    gradio answers uploads, downloads and events on many worker threads, and glibc gives each thread that
    allocates its own arena: under 20 requests at once the server's RSS then grows round after round (measured
    +40 MB over 11 rounds of 20) although nothing is kept; with 2 arenas it settles (+10 MB over 12 rounds).
    Allocation only, no numerics change."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL(name).mallopt(-8, int(arenas)))  # -8: M_ARENA_MAX in glibc's malloc.h
    except (OSError, AttributeError):
        return False


def main(argv: list[str] | None = None) -> int:
    """Serve the page on 127.0.0.1 until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.serve.app", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port on 127.0.0.1 (default {DEFAULT_PORT})")
    parser.add_argument("--data", default="data", help="the pipeline's data directory (default: data)")
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N | mps (default: cpu)")
    parser.add_argument("--k", type=int, default=5, help="nearest test faces shown")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                        help=f"largest upload or recording taken, in MiB (default {DEFAULT_MAX_UPLOAD_MB:g}); a larger "
                             f"one is refused with one line")
    parser.add_argument("--upload-grace-s", type=float, default=DEFAULT_UPLOAD_GRACE_S, metavar="S",
                        help=f"seconds an answered upload stays on the server before it is deleted, for the same "
                             f"file sent by another request at the same time (default {DEFAULT_UPLOAD_GRACE_S:g})")
    args = parser.parse_args(argv)
    if not args.max_upload_mb > 0:
        parser.error(f"--max-upload-mb must be positive, got {args.max_upload_mb:g}")
    if args.upload_grace_s < 0:
        parser.error(f"--upload-grace-s must be 0 or more, got {args.upload_grace_s:g}")
    answers = AnswerFiles()
    try:
        from pipeline.common.device import resolve_device

        resolve_device(args.device)  # a bogus or absent device stops the page at once, not on its first request
        page = build_page(FaceService(args.data, args.device, args.k), args.max_upload_mb, args.upload_grace_s,
                          answers)
    except PipelineError as exc:
        answers.close()
        print(f"app: error: {exc}", file=sys.stderr)
        return 2
    import gradio as gr

    def interrupt(signum, frame):  # SIGTERM ends the page as Ctrl-C does: the server closes, the files go
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    if "MALLOC_ARENA_MAX" not in os.environ:
        limit_malloc_arenas()
    print(f"app: serving http://127.0.0.1:{args.port} (Ctrl-C stops it)", flush=True)
    theme = gr.themes.Base(font=["system-ui", "sans-serif"], font_mono=["monospace"])  # no web fonts: offline
    try:
        page.queue(default_concurrency_limit=2).launch(
            server_name="127.0.0.1", server_port=args.port, share=False, show_error=False, inbrowser=False,
            ssr_mode=False, theme=theme, css=PAGE_CSS, max_file_size=int(args.max_upload_mb * 2**20))
    except KeyboardInterrupt:
        pass
    finally:
        answers.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
