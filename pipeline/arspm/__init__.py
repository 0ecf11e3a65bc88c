"""Layer 4, AR-SPM (the first model family): the voice gender classifier, face priors, the Table 4 variants, and
the face decoder and speech encoder training.

Imports layers 0-3 and never ``pipeline.families``, so that an edit to another family cannot rerun an AR-SPM
stage. Nothing is imported here.
"""
