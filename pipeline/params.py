"""Reading one stage's section of ``params.yaml``.

Each stage reads only its own section, so that ``dvc.yaml`` can list exactly the leaf keys it depends on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class ParamsError(ValueError):
    """A params file or section is missing or malformed."""


def load_section(section: str, path: str | Path = "params.yaml") -> dict[str, Any]:
    """Return the mapping under ``section`` in the YAML file ``path``.

    Raises ParamsError with one readable sentence when the file or section is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file {path} not found (run from the repository root)")
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if section not in data or not isinstance(data[section], dict):
        raise ParamsError(f"params file {path} has no '{section}' section")
    return dict(data[section])


def require(params: dict[str, Any], *keys: str, section: str = "") -> None:
    """Fail with a clear message when any of ``keys`` is absent from ``params``."""
    missing = [k for k in keys if k not in params]
    if missing:
        where = f" in section '{section}'" if section else ""
        raise ParamsError(f"missing params key(s){where}: {', '.join(missing)}")
