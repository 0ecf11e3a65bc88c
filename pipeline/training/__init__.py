"""Layer 2, one training loop for every model: the loop, torchrun data parallelism, checkpoints, augmentation and
the frozen networks a trainer runs through.

Imports ``pipeline.common`` and ``pipeline.data``. Nothing is imported here.
"""
