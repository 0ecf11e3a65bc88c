"""speech2face library: media, audio, faces, shards, features, priors, training loop, metrics.

Stages (``stages/``) are thin entry points that read their own ``params.yaml`` section and call into here.
"""
