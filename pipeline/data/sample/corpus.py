"""The face-image corpus: still face crops of many synthetic identities, labelled with their attributes.

The paper trains VGGFace and the face decoder FD on face-image collections (VGGFace's 2,622 identities, AVSpeech
crops), far more identities than the embedded speech sample's few dozen speakers. This corpus is the embedded
counterpart: ``n_identities`` identities drawn by the same generator as the speakers (``make_speaker``), each
photographed ``images_per_identity`` times with a new background, shirt, lighting, mouth opening and head
position, then cropped exactly as ``preprocess`` crops the sample's frames (the ``center`` detector's box of
``center_box`` x frame height, ``margin`` around it, Lanczos to ``image_size``). No voice is synthesised.

Identities never overlap the speech sample's speakers: identity ``i`` is ``make_speaker(seed, OFFSET + i)``,
an RNG stream the sample never uses, so the test speakers stay unseen by every face model. The judge corpus
(``judge_corpus``: the identities only the judge trains on) is the same corpus drawn at ``JUDGE_OFFSET``, a band of
generator indices neither the sample nor the face corpus reaches (``pipeline.data.corpus_index``); its identities
are named ``judge00000``, ...

Layout of ``out_dir`` (WebDataset, readable with ``pipeline.data.shards.iter_samples`` and ``SplitDataset``)::

    train-000000.tar      {key}.face.jpg + {key}.meta.json per image
    train-000000.stats.json   written last: the shard is complete
    identities.json       every identity's attributes (+ ``generator_index`` at an offset other than OFFSET)
    meta.json             the corpus settings and counts (+ ``generator``: seed, offset and index range, at an
                          offset other than OFFSET; at OFFSET nothing is added, so the face corpus's files stay
                          byte-identical to those written before the offset was an argument)

``meta.json`` of an image: ``key``, ``speaker_id`` (the identity), ``split`` and the attributes of
:data:`ATTRIBUTES` (``gender``, ``age_group``, ``skin``, ``hair``, ``glasses``, ``beard``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
from tqdm import tqdm

from pipeline.common.io import write_json
from pipeline.data.attributes import ATTRIBUTES, HAIR_NAMES, CorpusError
from pipeline.data.corpus_index import BAND, JUDGE_OFFSET, OFFSET, generator_record
from pipeline.data.sample.face import draw_face, make_background, render_frames
from pipeline.data.sample.identity import SHIRT_COLOURS, Speaker, make_speaker

SPLIT = "train"
#: identity id prefix of each corpus by its generator offset (another offset gets "id<offset>_")
PREFIXES = {OFFSET: "face", JUDGE_OFFSET: "judge"}

@dataclass(frozen=True)
class CorpusConfig:
    """The ``face_corpus`` section of params.yaml."""

    seed: int = 0
    n_identities: int = 200
    images_per_identity: int = 12
    frame_size: int = 160
    image_size: int = 64
    margin: float = 0.35
    center_box: float = 0.45
    shard_size: int = 1000

    @classmethod
    def from_params(cls, params: Mapping[str, Any], section: str = "face_corpus") -> "CorpusConfig":
        """The config of a params section (``face_corpus``, or ``judge_corpus``: the same keys)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - names)
        if unknown:
            raise CorpusError(f"unknown {section} params: {', '.join(unknown)}")
        cfg = cls(**{k: type(getattr(cls, k))(v) for k, v in params.items()})
        if cfg.n_identities < 2 or cfg.images_per_identity < 1:
            raise CorpusError(f"{section} needs n_identities >= 2 and images_per_identity >= 1")
        if cfg.frame_size < 64 or cfg.image_size < 8 or cfg.shard_size < 1:
            raise CorpusError(f"{section} needs frame_size >= 64, image_size >= 8 and shard_size >= 1")
        if not 0 < cfg.center_box <= 1 or cfg.margin < 0:
            raise CorpusError(f"{section} needs 0 < center_box <= 1 and margin >= 0")
        return cfg


def attributes_of(speaker: Speaker) -> dict[str, Any]:
    """The labelled attributes of an identity, as drawn (seniors' hair is drawn grey)."""
    hair = "grey" if speaker.age_group == "senior" else HAIR_NAMES[speaker.hair_colour]
    return {"gender": speaker.gender, "age_group": speaker.age_group, "skin": int(speaker.skin), "hair": hair,
            "glasses": bool(speaker.glasses), "beard": bool(speaker.beard)}


def id_prefix(offset: int = OFFSET) -> str:
    """Identity id prefix of a corpus drawn at ``offset``: ``face`` (the face corpus), ``judge`` (the judge's)."""
    return PREFIXES.get(int(offset), f"id{int(offset)}_")


def identity_id(index: int, offset: int = OFFSET) -> str:
    return f"{id_prefix(offset)}{index:05d}"


def render_image(cfg: CorpusConfig, speaker: Speaker, image: int) -> np.ndarray:
    """One ``image_size`` crop of ``speaker``: new background, shirt, lighting, mouth and position."""
    from pipeline.data.faces import CenterDetector, crop_face

    rng = np.random.default_rng([cfg.seed, speaker.index, image, 0xFACE])
    lighting = float(rng.uniform(0.95, 1.05))
    shirt = SHIRT_COLOURS[int(rng.integers(len(SHIRT_COLOURS)))]
    layer = draw_face(speaker, cfg.frame_size, lighting, shirt)
    background = make_background(rng, cfg.frame_size)
    # Same face placement as the sample's clips (plan_clip): the crop is centred on (x, y), the head bobs a bit.
    x, y = float(rng.uniform(0.42, 0.58)), float(rng.uniform(0.42, 0.55))
    bob = rng.uniform(-1.5, 1.5, size=(1, 2))
    opening = np.array([float(rng.uniform(0.0, 0.6))])
    frame = render_frames(layer, background, (x * cfg.frame_size, y * cfg.frame_size), opening, bob)[0]
    box = CenterDetector(cfg.center_box).detect(frame, (x, y))[0]
    return crop_face(frame, box, cfg.margin, cfg.image_size)


def iter_identities(cfg: CorpusConfig, offset: int = OFFSET) -> Iterator[tuple[str, Speaker]]:
    for i in range(cfg.n_identities):
        yield identity_id(i, offset), make_speaker(cfg.seed, offset + i)


def render_identity(job: tuple[CorpusConfig, int] | tuple[CorpusConfig, int, int]) -> list[bytes]:
    """The encoded JPEG crops of one identity, ``(cfg, index[, offset])`` (module-level, so a process pool can
    run it)."""
    from pipeline.data.shards import encode_face

    cfg, index, offset = (*job, OFFSET) if len(job) == 2 else job
    speaker = make_speaker(cfg.seed, offset + index)
    return [encode_face(render_image(cfg, speaker, image)) for image in range(cfg.images_per_identity)]


def check_band(cfg: CorpusConfig, offset: int, section: str = "face_corpus") -> None:
    """CorpusError (one sentence) when the corpus's generator indices would leave its band (corpus_index)."""
    if offset < OFFSET:
        raise CorpusError(f"{section}: generator offset {offset:,} is below {OFFSET:,}, where the speech sample's "
                          f"speakers are drawn")
    if cfg.n_identities >= BAND:
        raise CorpusError(f"{section}.n_identities = {cfg.n_identities:,} is too many: a corpus keeps below "
                          f"{BAND:,} identities so that its generator indices ({offset:,}..."
                          f"{offset + cfg.n_identities - 1:,}) never reach another corpus's band and overlap its "
                          f"identities (use fewer than {BAND:,})")


def generate_face_corpus(out_dir: str | Path, cfg: CorpusConfig, progress: bool = True,
                         workers: int = 1, offset: int = OFFSET, section: str = "face_corpus") -> dict[str, Any]:
    """Write the corpus (module docstring) into ``out_dir``; returns its counts. Same config → same bytes, for any
    number of ``workers`` (processes drawing the identities; the shards are written here, in identity order).

    ``offset``: identity ``i`` is generator index ``offset + i`` (``OFFSET``: the face corpus; ``JUDGE_OFFSET``:
    the judge corpus). Any offset other than ``OFFSET`` is recorded in meta.json and identities.json. ``section``
    names the params section in messages."""
    from concurrent.futures import ProcessPoolExecutor

    from pipeline.data.shards import ShardWriter, encode_meta, shard_name

    offset = int(offset)
    check_band(cfg, offset, section)
    recorded = offset != OFFSET
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in list(out_dir.glob(f"{SPLIT}-*")):  # a smaller corpus must not leave old shards behind
        stale.unlink()
    identities: dict[str, dict[str, Any]] = {}
    total = cfg.n_identities * cfg.images_per_identity
    writer = None
    shard_index = 0
    written = 0
    jobs = [(cfg, i, offset) for i in range(cfg.n_identities)]
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    drawn = pool.map(render_identity, jobs, chunksize=8) if pool is not None else map(render_identity, jobs)
    bar = tqdm(total=total, desc=section.replace("_", " "), unit="image", disable=not progress)
    try:
        for (ident, speaker), faces in zip(iter_identities(cfg, offset), drawn):
            attributes = attributes_of(speaker)
            identities[ident] = {**attributes, "generator_index": speaker.index} if recorded else attributes
            for image, face in enumerate(faces):
                if writer is None:
                    writer = ShardWriter(out_dir / f"{shard_name(SPLIT, shard_index)}.tar")
                key = f"{ident}_i{image}"
                meta = {"key": key, "speaker_id": ident, "split": SPLIT, **attributes}
                writer.add(key, {"face": face, "meta": encode_meta(meta)})
                written += 1
                bar.update()
                if writer.count >= cfg.shard_size:
                    _close(writer, out_dir, shard_index)
                    writer, shard_index = None, shard_index + 1
        if writer is not None:
            _close(writer, out_dir, shard_index)
            shard_index += 1
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    counts = {"identities": len(identities), "images": written, "shards": shard_index}
    write_json(out_dir / "identities.json", identities)
    meta: dict[str, Any] = {"config": dataclasses.asdict(cfg), "counts": counts,
                            "attributes": {k: list(v) for k, v in ATTRIBUTES.items()}}
    if recorded:
        meta["generator"] = generator_record(cfg.seed, offset, cfg.n_identities, id_prefix(offset))
    write_json(out_dir / "meta.json", meta)
    return counts


def _close(writer, out_dir: Path, index: int) -> None:
    from pipeline.data.shards import shard_name, write_shard_stats

    writer.close()
    write_shard_stats(out_dir / f"{shard_name(SPLIT, index)}.stats.json", {"count": writer.count})

