"""speech2face library, in layers that mirror the DAG (docs/design.md, Layers)::

    common < data < training < faces < (arspm | families) < evaluation < (serve | ops)

A module imports only from its own layer or lower ones (tested); ``testing`` (builders for the tests) may import
anything. Stages (``stages/``) are thin entry points that read their own ``params.yaml`` section and call in here.
"""
