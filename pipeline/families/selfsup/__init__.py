"""The self-supervised family: *From Inference to Generation* (Choi, Park, Lee, ICLR 2020), rebuilt from its
description (no public code exists).

Two stages, neither of which reads a label: ``contrastive`` (``pipeline.families.contrastive``: a speech and a
face encoder trained to match a clip's voice and face against the other clips of a batch) and
``train_selfsup_gan`` (here): a generator G(z, c) conditioned on the frozen contrastive speech embedding c, with
noise z for what the voice does not say, against a projection discriminator with spectral normalisation, and an
identity term through the frozen contrastive face encoder.

- ``modules``: ``Generator``, ``ProjectionDiscriminator`` and the losses, pure ``nn.Module``s and functions.
- ``model``: the checkpoint (generator, discriminator and a copy of the frozen encoders) and the seeded noise.
- ``train``: the stage's training; ``generator``: the family's ``FaceGenerator``.
"""
