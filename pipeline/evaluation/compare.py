"""One comparison of every model family on the same test clips, scored by the judge (stage ``compare``).

Each family's generator (``pipeline.evaluation.families``) draws a face from every test clip's stored 6-s
spectrogram; the judge (``pipeline.evaluation.judge``, a network no family trains against) embeds the generated
and the true faces; the attribute probe reads the generated faces. For each family, with chance beside each number
(``pipeline.evaluation.compare_metrics``):

- identity: sample-level recall@k among all test faces, speaker-level recall among one mean embedding per speaker
  (blocks of 100 speakers as SF2F above 100), cosine to one's own speaker vs the others;
- K-way matching (K = 2, 5, 10): the generated face against K true faces of K speakers, its own among them;
- attributes: the probe's reading of the generated face against the speaker's known attributes;
- realism and spread: KID in the judge's space (``kid_judge``, not Inception's) with the real-vs-real level beside
  it, the pixel diversity ratio and the embedding diversity;
- a family with its own voice–face matching space (the self-supervised family's contrastive encoders,
  ``FaceGenerator.matching_embeddings``): its encoders' K-way matching and recall on the *true* faces, beside the
  judge's K-way on its generated faces (Choi et al.'s "correlation" measure), and, where the speakers' attributes
  are known, the vote of each test voice's ``NEIGHBOURS`` nearest training voices in its speech space on the
  speaker's attributes (``voice_neighbours``): what a generator that draws its nearest training voices' faces
  would score, so a family's attribute agreement can be read against what its condition holds;
- a family that samples (``FaceGenerator.noise_dim`` > 0): its disentanglement grid, ``noise_voices`` test voices
  (Figure 6's first speakers) x ``noise_draws`` seeds, each face drawn alone so that a seed is one z for every
  voice: along a row one voice with several z, down a column one z with several voices.

Faces a family draws at another size than the test crops are resized to the crops' size (Lanczos) before the
judge and the probe see them. Outputs: ``data/compare/faces.npz`` (keys, speakers, the true crops and each
family's faces, the figure's key order, and ``noise_<family>`` grids ``(voices, draws, H, W, 3)`` with their
``noise_keys_<family>``), ``data/compare/per_sample.parquet`` and the metrics JSON; the cost
(parameters, training seconds, milliseconds per face) goes to a file of its own, so that the rest stays
byte-identical from the same seed.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.common.errors import PipelineError
from pipeline.common.io import atomic_path, read_json, write_json

#: training voices that vote on a test voice's attributes (``voice_neighbours``)
NEIGHBOURS = 5


class CompareStageError(PipelineError, ValueError):
    """The comparison cannot run: no test clips, a family's inputs missing, a bad ``--input``."""


def parse_inputs(pairs: list[str]) -> dict[str, dict[str, str]]:
    """``["arspm.encoder=path", ...]`` → ``{"arspm": {"encoder": "path"}}``; a malformed pair is one sentence."""
    out: dict[str, dict[str, str]] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        family, dot, key = name.partition(".")
        if not sep or not dot or not family or not key or not path:
            raise CompareStageError(f"--input {pair!r} is not FAMILY.KEY=PATH (e.g. sf2f.checkpoint=data/models/"
                                    f"sf2f_fuser.pt)")
        out.setdefault(family, {})[key] = path
    return out


def speaker_of(sample: dict[str, Any]) -> str:
    """A clip's speaker: its ``speaker_id``, or its video (then its key) where speakers are unknown."""
    meta = sample["meta"]
    return str(meta.get("speaker_id") or meta.get("video_id") or sample["key"])


def read_test_split(shards_dir: str | Path, max_samples: int = 0) -> dict[str, Any]:
    """The test clips in shard order: keys, speakers, genders, true faces (uint8) and spectrograms (float16)."""
    from pipeline.data.shards import iter_samples, list_shards

    keys, speakers, genders, faces, specs = [], [], [], [], []
    for sample in iter_samples(list_shards(shards_dir, "test"), fields=["face", "spec", "meta"]):
        meta = sample["meta"]
        keys.append(str(sample["key"]))
        speakers.append(speaker_of(sample))
        genders.append(meta.get("gender"))
        faces.append(np.asarray(sample["face"], dtype=np.uint8))
        specs.append(np.asarray(sample["spec"], dtype=np.float16))
        if max_samples and len(keys) >= max_samples:
            break
    if len(set(speakers)) < 2:
        raise CompareStageError(f"the test split of {shards_dir} has {len(keys)} clip(s) of {len(set(speakers))} "
                                f"speaker(s): the comparison needs at least 2 speakers")
    return {"keys": keys, "speakers": speakers, "genders": genders, "faces": np.stack(faces),
            "specs": np.stack(specs)}


def resize_faces(faces: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``(N, H, W, 3)`` → ``(N, size, size, 3)`` (Lanczos); unchanged when already that size."""
    if faces.shape[1] == size and faces.shape[2] == size:
        return faces
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.LANCZOS)) for f in faces])


def draw(generator, specs: np.ndarray, batch_size: int, seed: int) -> tuple[np.ndarray, float]:
    """A family's faces for every spectrogram and the milliseconds per face it took."""
    torch.manual_seed(seed)
    started = time.perf_counter()
    faces = generator.generate(specs, batch_size=batch_size, seed=seed)
    return faces, (time.perf_counter() - started) * 1000.0 / max(1, len(specs))


def family_metrics(gen: np.ndarray, real: np.ndarray, test: dict[str, Any], faces: np.ndarray,
                   probe_reads: dict[str, np.ndarray] | None, labels: dict[str, np.ndarray] | None,
                   params: dict[str, Any]) -> dict[str, Any]:
    """Every common metric of one family's generated faces (module docstring)."""
    from pipeline.evaluation import compare_metrics as cm

    ks = [int(k) for k in params["recall_k"]]
    out = {
        "sample_recall": cm.sample_recall(gen, real, ks),
        "speaker_recall": cm.speaker_recall(gen, real, test["speakers"], ks),
        "cosine": cm.own_vs_other_cosine(gen, real, test["speakers"]),
        "kway": cm.kway_accuracy(gen, real, test["speakers"], [int(k) for k in params["kway_k"]],
                                 trials=int(params["kway_trials"]), seed=int(params["seed"])),
        "kid": cm.kernel_distance(gen, real, seed=int(params["seed"])),
        "diversity": cm.diversity_ratio(faces, test["faces"]),
        "embedding_diversity": cm.embedding_diversity(gen, real),
    }
    out["attributes"] = _accuracy(probe_reads, labels)
    return out


def encoder_matching(generator, test: dict[str, Any], params: dict[str, Any]) -> dict[str, Any] | None:
    """A family's own encoders on the true test faces (None for a family without a matching space): K-way
    matching of each voice against K true faces of K speakers, and voice→face recall@k among all test faces."""
    from pipeline.evaluation import compare_metrics as cm

    embeddings = generator.matching_embeddings(test["specs"], test["faces"])
    if embeddings is None:
        return None
    speech, faces = embeddings
    return {"kway": cm.kway_accuracy(speech, faces, test["speakers"], [int(k) for k in params["kway_k"]],
                                     trials=int(params["kway_trials"]), seed=int(params["seed"])),
            "sample_recall": cm.sample_recall(speech, faces, [int(k) for k in params["recall_k"]])}


def voice_neighbours(generator, test: dict[str, Any], shards_dir: str | Path, labels: dict[str, np.ndarray],
                     attributes: dict[str, dict[str, int]]) -> dict[str, Any] | None:
    """The vote of each test voice's ``NEIGHBOURS`` nearest training voices (the train split of ``shards_dir``), in
    the family's own speech space, on its speaker's attributes (``attributes``: speaker → attribute → class):
    agreement and chance per attribute (None when no test speaker has labels or the train split is empty)."""
    from pipeline.evaluation import compare_metrics as cm
    from pipeline.faces.probe import labels_for

    reference, speakers = train_speech(generator, shards_dir)
    if not speakers:
        return None
    query = generator.matching_embeddings(test["specs"], test["faces"])[0]
    votes = cm.neighbour_vote(query, reference, labels_for(speakers, attributes), NEIGHBOURS)
    agreement = _accuracy(votes, labels)
    if agreement is None:
        return None
    return {"k": min(NEIGHBOURS, len(reference)), "training_voices": len(reference), "attributes": agreement}


def train_speech(generator, shards_dir: str | Path, batch_size: int = 64) -> tuple[np.ndarray, list[str]]:
    """A family's speech embeddings ``[N, D]`` of the train split's clips and their speakers, streamed in batches
    (only the embeddings are kept, so a large train split costs its reading time, not its size in memory)."""
    from pipeline.data.shards import iter_samples, list_shards

    embedded, speakers, specs, faces = [], [], [], []

    def flush() -> None:
        if specs:
            embedded.append(generator.matching_embeddings(np.stack(specs), np.stack(faces))[0])
            specs.clear()
            faces.clear()

    for sample in iter_samples(list_shards(shards_dir, "train"), fields=["face", "spec", "meta"]):
        speakers.append(speaker_of(sample))
        faces.append(np.asarray(sample["face"], dtype=np.uint8))
        specs.append(np.asarray(sample["spec"], dtype=np.float16))
        if len(specs) == batch_size:
            flush()
    flush()
    return (np.concatenate(embedded) if embedded else np.zeros((0, 0), dtype=np.float32)), speakers


def noise_grid(generator, test: dict[str, Any], keys: list[str], draws: int, size: int) -> np.ndarray:
    """``(len(keys), draws, size, size, 3)`` uint8: voice ``keys[i]`` drawn alone with seed ``j`` (so one seed is
    one z whatever the voice), resized to the crops' size."""
    where = {k: i for i, k in enumerate(test["keys"])}
    rows = []
    for key in keys:
        spec = test["specs"][where[key]][None]
        rows.append(np.concatenate([resize_faces(generator.generate(spec, batch_size=1, seed=seed), size)
                                    for seed in range(draws)]))
    return np.stack(rows)


def noise_spread(grid: np.ndarray, true_faces: np.ndarray) -> dict[str, Any]:
    """How much z and the voice each change the drawn face: the mean over voices of the per-pixel spread across
    seeds, and the mean over seeds of the spread across voices, each over the true faces' spread (as the diversity
    ratio; 0 = that factor changes nothing)."""
    from pipeline.evaluation.compare_metrics import diversity_ratio

    over_z = [diversity_ratio(row, true_faces)["diversity_ratio"] for row in grid] if grid.shape[1] > 1 else []
    over_voice = ([diversity_ratio(grid[:, j], true_faces)["diversity_ratio"] for j in range(grid.shape[1])]
                  if grid.shape[0] > 1 else [])
    return {"z_spread": float(np.mean(over_z)) if over_z else None,
            "voice_spread": float(np.mean(over_voice)) if over_voice else None}


def _accuracy(reads: dict[str, np.ndarray] | None, labels: dict[str, np.ndarray] | None) -> dict[str, Any] | None:
    """The probe's agreement with the speakers' attributes, with chance (None without a probe or labels)."""
    from pipeline.faces.probe import accuracy

    if reads is None or not labels or all((v < 0).all() for v in labels.values()):
        return None
    return accuracy(reads, labels)


def run_compare(shards_dir: str | Path, judge_path: str | Path, probe_path: str | Path | None,
                attributes_path: str | Path | None, inputs: dict[str, dict[str, str]], cost_files: list[str],
                out_dir: str | Path, metrics_path: str | Path, cost_path: str | Path,
                params: dict[str, Any]) -> dict[str, Any]:
    """Draw, judge and score every family of ``params['families']`` (module docstring); returns the metrics."""
    from pipeline.common.device import resolve_device
    from pipeline.data.datasets import face_to_tensor
    from pipeline.evaluation.families import get_family, load_generator
    from pipeline.evaluation.judge import load_judge

    device = resolve_device(params["device"])
    families = list(params["families"])
    for name in families:
        get_family(name)
    # inputs of a family that compare.families leaves out are not read (dvc.yaml names every family's files)
    test = read_test_split(shards_dir, int(params["max_samples"]))
    size = int(test["faces"].shape[1])
    judge = load_judge(judge_path, device)
    real = judge.embed(resize_faces(test["faces"], judge.image_size or size))
    probe, labels, true_reads, attributes = None, None, None, {}
    if probe_path is not None:
        from pipeline.faces.probe import ARCH as PROBE_ARCH
        from pipeline.faces.probe import labels_for, predict, speaker_attributes
        from pipeline.training.frozen import load_frozen

        probe, _ = load_frozen(probe_path, PROBE_ARCH, device)
        attributes = speaker_attributes(attributes_path) if attributes_path else {}
        labels = labels_for(test["speakers"], attributes) if attributes_path else None

        def read(faces: np.ndarray) -> dict[str, np.ndarray]:
            return predict(probe, torch.stack([face_to_tensor(f) for f in faces]), device)

        true_reads = read(test["faces"])
    from pipeline.evaluation.evaluate import grid_keys

    order = grid_keys(list(zip(test["keys"], test["speakers"], test["genders"])), len(test["keys"]))
    results: dict[str, Any] = {}
    drawn: dict[str, np.ndarray] = {}
    grids: dict[str, np.ndarray] = {}
    costs: dict[str, Any] = {}
    for name in families:
        generator = load_generator(name, device=device, **inputs.get(name, {}))
        faces, ms = draw(generator, test["specs"], int(params["batch_size"]), int(params["seed"]))
        faces = resize_faces(faces, size)
        drawn[name] = faces
        gen = judge.embed(resize_faces(faces, judge.image_size or size))
        reads = read(faces) if probe is not None else None
        results[name] = {"title": get_family(name).title, "generator": generator.description,
                         "image_size": int(generator.image_size), **family_metrics(gen, real, test, faces, reads,
                                                                                    labels, params)}
        encoders = encoder_matching(generator, test, params)
        if encoders is not None and labels:
            neighbours = voice_neighbours(generator, test, shards_dir, labels, attributes)
            if neighbours is not None:
                encoders["voice_neighbours"] = neighbours
        if encoders is not None:
            results[name]["encoders"] = encoders
        if generator.noise_dim > 0 and int(params["noise_voices"]) > 0:
            grids[name] = noise_grid(generator, test, order[:int(params["noise_voices"])],
                                     int(params["noise_draws"]), size)
            results[name]["noise"] = {"voices": len(grids[name]), "draws": int(params["noise_draws"]),
                                      **noise_spread(grids[name], test["faces"])}
        costs[name] = {"parameters": generator.parameter_count(), "ms_per_face": round(ms, 3),
                       "device": str(device)}
    metrics = {"judge": {"name": judge.name, "kind": judge.kind}, "test_clips": len(test["keys"]),
               "test_speakers": len(set(test["speakers"])), "families": results,
               "true_faces": {"attributes": _accuracy(true_reads, labels)}}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "faces.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, keys=np.array(test["keys"]), speakers=np.array(test["speakers"]), figure_keys=np.array(order),
                 true=test["faces"], families=np.array(families), **{f"family_{n}": f for n, f in drawn.items()},
                 **{f"noise_{n}": g for n, g in grids.items()},
                 **{f"noise_keys_{n}": np.array(order[:len(g)]) for n, g in grids.items()})
    write_json(out_dir / "metrics.json", metrics)
    write_json(metrics_path, metrics)
    write_json(cost_path, {"families": {n: {**costs[n], **_training_cost(n, cost_files)} for n in families},
                           "note": "wall-clock numbers of this machine; not compared byte for byte"})
    return metrics


def _training_cost(family: str, cost_files: list[str]) -> dict[str, Any]:
    """A family's training seconds: the sum over its stages' cost files (``FAMILY:path`` entries)."""
    seconds, stages = 0.0, []
    for entry in cost_files:
        owner, sep, path = entry.partition(":")
        if not sep:
            raise CompareStageError(f"--cost {entry!r} is not FAMILY:PATH")
        if owner != family:
            continue
        if not Path(path).is_file():
            raise CompareStageError(f"cost file {path} of {family} not found (rerun its training stage)")
        seconds += float(read_json(path).get("train_seconds", 0.0))
        stages.append(Path(path).stem)
    return {"train_seconds": round(seconds, 3) if stages else None, "train_stages": stages}
