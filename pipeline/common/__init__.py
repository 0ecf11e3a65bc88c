"""Layer 0, used by every other layer: errors, atomic I/O, params files, the stage runner, device choice, figures.

Imports nothing else of the project. Nothing is imported here, so that a module using one file does not run (and
depend on) the others.
"""
