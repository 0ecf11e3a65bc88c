"""Turn a params file (e.g. ``configs/paper.yaml``) into ``dvc exp run -S key=value`` arguments.

    dvc exp run -n paper $(python -m pipeline.ops.overlay configs/paper.yaml)

Every key of the config must exist in ``params.yaml`` (and be used by a stage in ``dvc.yaml``): a typo stops with one
sentence instead of silently adding a key no stage reads. By default only values that differ from ``params.yaml``
are printed (``--all`` prints every leaf). Values are written in the override grammar ``dvc exp run -S`` parses
(Hydra's): strings single-quoted, lists as ``[a,b]`` without spaces, so that the shell's word splitting of
``$(...)`` keeps one argument per key.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Mapping

from pipeline.common.params import ParamsError, declared_params, has_path, leaf_keys, load_params

# Characters that would break one-word-per-override under $(...) (whitespace, quotes) or trigger globbing.
_UNSAFE = re.compile(r"[\s'\"*?\[\]\\$`]")


def format_value(value: Any) -> str:
    """``value`` in the override grammar of ``dvc exp run -S`` (no spaces)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if _UNSAFE.search(value):
            raise ParamsError(f"value {value!r} has spaces, quotes or glob characters; set it in params.yaml instead")
        return f"'{value}'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping) and not value:
        return "{}"
    raise ParamsError(f"cannot express {value!r} as a -S override")


def _get(mapping: Mapping[str, Any], dotted: str) -> Any:
    node: Any = mapping
    for part in dotted.split("."):
        node = node[part]
    return node


def override_args(
    config: str | Path,
    params: str | Path = "params.yaml",
    dvc_yaml: str | Path = "dvc.yaml",
    only_changed: bool = True,
) -> list[str]:
    """``["-S", "section.key=value", ...]`` setting ``params`` to ``config`` (sorted by key).

    Raises ParamsError naming the problem: keys missing from ``params`` or not used by any stage of ``dvc_yaml``.
    """
    wanted = load_params(config)
    current = load_params(params)
    unknown = [key for key in leaf_keys(wanted) if not has_path(current, key)]
    if unknown:
        raise ParamsError(
            f"{config}: key(s) {', '.join(unknown)} do not exist in {params} (a typo, or a param no stage reads)"
        )
    if Path(dvc_yaml).is_file():
        declared = declared_params(dvc_yaml)
        unused = [
            key
            for key in leaf_keys(wanted)
            if not any(key == f"{s}.{d}" or key.startswith(f"{s}.{d}.") for s, ds in declared.items() for d in ds)
        ]
        if unused:
            raise ParamsError(f"{config}: key(s) {', '.join(unused)} are not used by any stage in {dvc_yaml}")
    args: list[str] = []
    for key in sorted(leaf_keys(wanted)):
        value = _get(wanted, key)
        if only_changed and _get(current, key) == value and type(_get(current, key)) is type(value):
            continue
        args += ["-S", f"{key}={format_value(value)}"]
    return args


def main(argv: list[str] | None = None) -> int:
    """CLI: print the ``-S`` arguments on one line; a bad config prints one sentence and exits 2."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="params file with the wanted values, e.g. configs/paper.yaml")
    parser.add_argument("--params", default="params.yaml", help="the project's params file")
    parser.add_argument("--dvc-yaml", default="dvc.yaml", help="the DAG the keys are checked against")
    parser.add_argument("--all", action="store_true", help="print every key, not only those that differ")
    args = parser.parse_args(argv)
    try:
        overrides = override_args(args.config, args.params, args.dvc_yaml, only_changed=not args.all)
    except ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(" ".join(overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
