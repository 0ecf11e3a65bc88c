"""Which identities of the synthetic face generator a face-image corpus holds, read back from its files.

Every synthetic person is ``make_speaker(seed, index)`` (``pipeline.data.sample.identity``): one RNG stream per
generator index. The corpora draw their identities from bands of indices that cannot meet:

- the speech sample's speakers: ``0 .. n_speakers - 1``;
- the face corpus (``face_corpus``, what the face encoder and the face decoder train on): identity ``i`` is index
  ``OFFSET + i``;
- the judge corpus (``judge_corpus``, what the judge alone trains on): identity ``i`` is index
  ``JUDGE_OFFSET + i``.

Each band holds fewer than ``BAND`` identities (``generate_face_corpus`` refuses more), so a corpus never reaches
the next band. A corpus written at any offset other than ``OFFSET`` records its offset in ``meta.json``
(``generator``) and each identity's index in ``identities.json`` (``generator_index``); one written at ``OFFSET``
records nothing new, so that the face corpus's files stay byte-identical to those written before the offset was an
argument (and DVC reruns nothing downstream). :func:`corpus_generator` reads both.

Kept apart from the renderer (``pipeline.data.sample``) so that reading a corpus's identities does not make the
face-drawing code a dependency of the stage that reads them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.data.attributes import CorpusError

#: identity i of the face corpus is generator index OFFSET + i (the speech sample uses 0 .. n_speakers-1)
OFFSET = 1_000_000
#: identity i of the judge corpus is generator index JUDGE_OFFSET + i: apart from the face corpus and the sample
JUDGE_OFFSET = 2_000_000
#: identities a corpus may hold at most (exclusive): one more would reach the next band
BAND = JUDGE_OFFSET - OFFSET


def generator_record(seed: int, offset: int, n_identities: int, id_prefix: str) -> dict[str, Any]:
    """The ``generator`` entry of a corpus's meta.json: how its identities were drawn."""
    return {"seed": int(seed), "offset": int(offset), "first_index": int(offset),
            "last_index": int(offset) + int(n_identities) - 1, "id_prefix": id_prefix,
            "rule": "identity i is make_speaker(seed, offset + i), named f'{id_prefix}{i:05d}'"}


def corpus_generator(corpus_dir: str | Path) -> dict[str, Any]:
    """``{"seed", "offset", "recorded", "indices": {identity id: generator index}}`` of a corpus, from its files.

    ``recorded`` is False for a corpus whose meta.json has no ``generator`` entry: one written at the face
    corpus's ``OFFSET``, which records nothing (module docstring); its indices are ``OFFSET + i`` for its
    ``config.n_identities`` identities, checked against the identity ids of identities.json. A missing or
    inconsistent file stops with one sentence."""
    from pipeline.common.io import read_json

    corpus_dir = Path(corpus_dir)
    meta_path, ids_path = corpus_dir / "meta.json", corpus_dir / "identities.json"
    for path in (meta_path, ids_path):
        if not path.is_file():
            raise CorpusError(f"{path} not found: {corpus_dir} is not a finished face corpus")
    meta, identities = read_json(meta_path), read_json(ids_path)
    try:
        config = meta["config"]
        seed, n = int(config["seed"]), int(config["n_identities"])
    except (KeyError, TypeError, ValueError):
        raise CorpusError(f"{meta_path} has no config with seed and n_identities") from None
    record = meta.get("generator")
    if record is None:
        indices = {f"face{i:05d}": OFFSET + i for i in range(n)}
        if set(indices) != set(identities):
            raise CorpusError(f"{meta_path} records no generator offset and its identities are not face00000.. "
                              f"face{n - 1:05d}, so which people it holds cannot be told")
        return {"seed": seed, "offset": OFFSET, "recorded": False, "indices": indices}
    try:
        offset = int(record["offset"])
        indices = {str(ident): int(entry["generator_index"]) for ident, entry in identities.items()}
    except (KeyError, TypeError, ValueError):
        raise CorpusError(f"{corpus_dir} records a generator offset but identities.json lacks an identity's "
                          f"generator_index") from None
    expected = set(range(offset, offset + n))
    if set(indices.values()) != expected or len(indices) != n or int(record.get("seed", seed)) != seed:
        raise CorpusError(f"{corpus_dir}: identities.json's generator indices are not offset {offset} + 0..{n - 1} "
                          f"as meta.json says")
    return {"seed": seed, "offset": offset, "recorded": True, "indices": indices}
