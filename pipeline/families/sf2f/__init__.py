"""The SF2F family: *Speech Fusion to Face* (Bai, Ma, Wang, Yeo et al., arXiv 2006.05888, 2020), reimplemented.

SF2F encodes 1.0-1.5 s of 40-band log-mel speech with a 1-D Inception CNN into a unit 512-d embedding,
fuses the embeddings of several 1.25-s segments of one speaker with a one-layer attention fuser, and decodes the
embedding into a face with an upsampling CNN, trained against a patch discriminator and an identity
(auxiliary-classifier) discriminator.

- ``modules``: the pure ``nn.Module``s, no I/O: ``Inception1DBlock``, ``VoiceEncoder``, ``AttentionFuser``,
  ``FaceDecoder`` (64 or 128 px, output in [0, 1]), ``PatchDiscriminator`` and ``IdentityDiscriminator``. Every
  width is a constructor argument; the defaults are the paper's sizes.
- ``logmel``: SF2F's 40-band HTK log-mel, computed from the compressed STFT the shards store
  (``pipeline.data.audio``), its per-band normalisation, the random training crops (100-150 frames) and the
  fuser's 125-frame segments.
"""
