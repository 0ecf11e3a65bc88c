"""Layer 6, tools that drive DVC itself: the params overlay, the remote check, the prior sweep, the demo summary,
and the generators of dvc.yaml's code deps and of the DAG drawings.

Nothing is imported here.
"""
