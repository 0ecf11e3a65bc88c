"""Layer 6, what a user runs on trained models: ``predict`` (a face from a recording) and ``app`` (the page).

Nothing is imported here.
"""
