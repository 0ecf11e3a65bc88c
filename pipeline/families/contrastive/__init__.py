"""Voice–face contrastive pretraining (stage ``contrastive``), without labels: the shared first stage of the
families built on matched speech and face embeddings (the self-supervised GAN, ``pipeline.families.selfsup``; SCLDM).

Not a face generator itself, so not in the families' table; the families that build on it import it (and no
other family).

- ``modules``: ``SpeechEncoder`` (pooled embedding + time tokens), ``FaceEncoder``, the symmetric ``InfoNCE`` loss
  with a learnable temperature.
- ``model``: the pair, its checkpoint and ``load_contrastive`` (refuses another embedding width in one sentence).
- ``train``: the stage's training, on ``pipeline.data.label_free`` (image, spectrogram, key and video id only).
"""
