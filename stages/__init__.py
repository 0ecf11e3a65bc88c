"""One thin entry point per DVC stage: parse params and paths, call ``pipeline``."""
