"""DVC stage ``gender_corpus_preprocess``: the gender corpus's raw clips into sample shards, with the preprocess code.

    python -m stages.gender_corpus_preprocess --raw data/gender_corpus/raw --out data/gender_corpus/shards \
        --metrics metrics/gender_corpus_preprocess.json

It reads the ``preprocess`` section of params.yaml, so the classifier trains on spectrograms made exactly like the
ones it classifies.
"""
from __future__ import annotations

import sys

from stages.preprocess import main

if __name__ == "__main__":
    sys.exit(main())
