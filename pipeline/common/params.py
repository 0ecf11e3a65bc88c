"""Reading one stage's section of ``params.yaml``, checked against what ``dvc.yaml`` declares.

Each stage reads only its own section, so that ``dvc.yaml`` can list exactly the leaf keys it depends on. A key
that ``params.yaml`` has but no stage declares would change nothing when edited (DVC does not watch it), and a
declared key missing from ``params.yaml`` breaks ``dvc repro``: ``load_section`` refuses both with one sentence
that names the key (and the closest known key, for typos).
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from pipeline.common.errors import PipelineError

#: sections read at run time that no stage declares on purpose: how a stage runs, not what it computes (the
#: ``cluster`` engine settings, ``pipeline.data.engine``), so that changing them never reruns a stage
RUNTIME_SECTIONS = ("cluster",)


class ParamsError(PipelineError, ValueError):
    """A params file or section is missing or malformed."""


# ``${section.key}`` templating in dvc.yaml (cmd, deps, foreach) reads params.yaml too.
_INTERPOLATION = re.compile(r"\$\{\s*([A-Za-z_][\w-]*)\.([A-Za-z_][\w.-]*?)\s*\}")


#: libyaml's loader where PyYAML was built with it: every stage reads params.yaml and dvc.yaml at start, and the
#: pure-Python loader took 1.3 s of an 8-s evaluate stage (0.1 s with libyaml), about 40 s over the demo's stages
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(stream: Any) -> Any:
    """``yaml.safe_load``, with libyaml's loader when there is one (same values, about 10x faster)."""
    return yaml.load(stream, Loader=SAFE_LOADER)  # a safe loader (libyaml or Python)


def _read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return safe_load(fh)
    except yaml.YAMLError as err:
        raise ParamsError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from err


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The whole params file as a mapping; ParamsError when it is missing or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file {path} not found (run from the repository root)")
    data = _read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"params file {path} must be a mapping of sections")
    return data


def leaf_keys(mapping: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of every non-mapping value in ``mapping`` (lists are leaves)."""
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from leaf_keys(value, dotted + ".")
        else:
            yield dotted


def declared_params(dvc_yaml: str | Path, params_file: str = "params.yaml") -> dict[str, set[str]]:
    """Keys of ``params_file`` that ``dvc_yaml`` uses, by section: ``{"priors": {"n", "seed", ...}}``.

    Counts the stages' ``params`` lists (plain ``section.key`` entries and ``{params_file: [...]}`` mappings) and
    every ``${section.key}`` interpolation (``cmd``, ``deps``, ``foreach``).
    """
    dvc_yaml = Path(dvc_yaml)
    text = dvc_yaml.read_text(encoding="utf-8")
    spec = safe_load(text) or {}
    declared: dict[str, set[str]] = {}

    def add(dotted: str) -> None:
        section, _, key = str(dotted).partition(".")
        if key:
            declared.setdefault(section, set()).add(key)

    for stage in (spec.get("stages") or {}).values():
        body = stage.get("do", stage) if isinstance(stage, dict) else {}
        for entry in body.get("params") or []:
            if isinstance(entry, str):
                add(entry)
            elif isinstance(entry, dict):
                for file, keys in entry.items():
                    if Path(str(file)).name == Path(params_file).name:
                        for key in keys or []:
                            add(key)
    for section, key in _INTERPOLATION.findall(text):
        if section not in ("item", "key"):  # foreach loop variables, not params
            add(f"{section}.{key}")
    return declared


def has_path(mapping: Mapping[str, Any], dotted: str) -> bool:
    node: Any = mapping
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def section_problems(section: str, values: Mapping[str, Any], declared: set[str]) -> list[str]:
    """Sentences describing keys of ``values`` that no stage declares, and declared keys ``values`` lacks."""
    problems = []
    known = sorted(declared)
    for leaf in leaf_keys(values):
        if not any(leaf == d or leaf.startswith(d + ".") for d in declared):
            close = difflib.get_close_matches(leaf, known, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            problems.append(
                f"unknown params key '{section}.{leaf}': no stage in dvc.yaml uses it ({hint}"
                f"known keys: {', '.join(known)})"
            )
    for key in known:
        if not has_path(values, key):
            problems.append(f"params key '{section}.{key}' is declared in dvc.yaml but missing from params.yaml")
    return problems


def validate_params(params: Mapping[str, Any], dvc_yaml: str | Path) -> list[str]:
    """Every mismatch between a params mapping and what ``dvc_yaml`` declares (empty list: consistent)."""
    declared = declared_params(dvc_yaml)
    problems = []
    for section, values in params.items():
        if section in RUNTIME_SECTIONS:
            continue
        if section not in declared:
            close = difflib.get_close_matches(str(section), sorted(declared), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            problems.append(f"unknown params section '{section}': no stage in dvc.yaml uses it{hint}")
        elif not isinstance(values, Mapping):
            problems.append(f"params section '{section}' must be a mapping")
        else:
            problems.extend(section_problems(str(section), values, declared[section]))
    for section in sorted(set(declared) - set(params)):
        problems.append(f"params section '{section}' is used by dvc.yaml but missing from params.yaml")
    return problems


def load_section(
    section: str, path: str | Path = "params.yaml", dvc_yaml: str | Path | None = None
) -> dict[str, Any]:
    """Return the mapping under ``section`` in the YAML file ``path``.

    When a ``dvc.yaml`` sits beside ``path`` (or ``dvc_yaml`` is given) and declares params of ``section``, the
    section's keys must be exactly the declared ones. Raises ParamsError with one readable sentence when the file
    or section is missing or a key is unknown/missing.
    """
    path = Path(path)
    data = load_params(path)
    if section not in data or not isinstance(data[section], dict):
        raise ParamsError(f"params file {path} has no '{section}' section")
    values = dict(data[section])
    dvc_path = Path(dvc_yaml) if dvc_yaml is not None else path.parent / "dvc.yaml"
    if dvc_path.is_file():
        declared = declared_params(dvc_path, params_file=path.name).get(section)
        if declared:
            problems = section_problems(section, values, declared)
            if problems:
                raise ParamsError(f"{path}: " + "; ".join(problems))
    return values


def require(params: dict[str, Any], *keys: str, section: str = "") -> None:
    """Fail with a clear message when any of ``keys`` is absent from ``params``."""
    missing = [k for k in keys if k not in params]
    if missing:
        where = f" in section '{section}'" if section else ""
        raise ParamsError(f"missing params key(s){where}: {', '.join(missing)}")
