"""DVC stage ``gender_corpus_download``: the gender corpus's clips into raw shards, with the download stage's code.

    python -m stages.gender_corpus_download --manifest data/gender_corpus/manifest --out data/gender_corpus/raw \
        --metrics metrics/gender_corpus_download.json

It reads the ``download`` section of params.yaml, as the download stage does: one set of download settings.
"""
from __future__ import annotations

import sys

from stages.download import main

if __name__ == "__main__":
    sys.exit(main())
