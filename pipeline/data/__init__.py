"""Layer 1, the data path: the embedded sample and recipes, manifest, download, preprocess (media, audio, face
crops) into WebDataset shards, and the readers of shards and feature files that every model uses.

Imports only ``pipeline.common``. Nothing is imported here (see ``pipeline.common``).
"""
