"""Layer 3, the face models shared by every family: the face encoder (VGGFace), its features, the identity
recognizer and the attribute probe.

Imports ``pipeline.common``, ``pipeline.data`` and ``pipeline.training``. Nothing is imported here.
"""
