"""Layer 5: scoring, the per-variant and decoder evaluations, and the report.

Imports any lower layer. ``report`` reads finished outputs only: its import closure holds no torch, model or
training module (tested). Nothing is imported here.
"""
