"""Check a whole params file (or params.yaml with an overlay such as configs/paper.yaml) against every stage's
schema, and list the schemas for the docs and the tests.

    python -m pipeline.ops.params_check                            # params.yaml
    python -m pipeline.ops.params_check --overlay configs/paper.yaml
    python -m pipeline.ops.params_check --docs docs/params.md   # write the params reference (make deps does)

Each stage declares its section's schema as ``Params`` in its entry point (``stages/<name>.py``); this collects
them through dvc.yaml's stage commands. Exit 0 and a one-line summary when every section is valid, else exit 2
and one sentence per invalid section.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any, Mapping

from pipeline.common.errors import PipelineError
from pipeline.common.params import ParamsError, load_params, validate_params
from pipeline.common.schema import Section, validate_section
from pipeline.ops.deps import entry_module, stage_bodies


def stage_schemas(root: Path = Path(".")) -> dict[str, type[Section]]:
    """``section -> schema`` of every stage in ``root/dvc.yaml`` that declares one, plus the runtime ``cluster``
    section's (in dvc.yaml's order)."""
    from pipeline.data.engine import ClusterParams

    schemas: dict[str, type[Section]] = {}
    for body in stage_bodies(Path(root) / "dvc.yaml").values():
        module = importlib.import_module(entry_module(body))
        schema = getattr(module, "Params", None)
        if schema is not None:
            schemas.setdefault(schema.SECTION, schema)
    schemas[ClusterParams.SECTION] = ClusterParams
    return schemas


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overlay.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, Mapping) and isinstance(
            merged.get(key), Mapping) else value
    return merged


def check_params(params: Mapping[str, Any], root: Path = Path(".")) -> list[str]:
    """One sentence per problem: keys dvc.yaml does not declare, then each section's first invalid value."""
    problems = validate_params(params, Path(root) / "dvc.yaml")
    for section, schema in stage_schemas(root).items():
        if section not in params:
            problems.append(f"params section '{section}' is missing")
            continue
        try:
            validate_section(schema, params[section], section)
        except PipelineError as exc:
            problems.append(str(exc))
    return problems


def _type_text(annotation: Any) -> str:
    import typing

    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin is list:
        (element,) = typing.get_args(annotation)
        if typing.get_origin(element) is typing.Annotated:
            element, *rules = typing.get_args(element)
            return f"list of {_type_text(element)} ({_rules_text([m for r in rules for m in r.metadata])})"
        return f"list of {_type_text(element)}"
    return getattr(annotation, "__name__", str(annotation))


def _rules_text(metadata: list[Any]) -> str:
    words = []
    for rule in metadata:
        for name, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if hasattr(rule, name) and getattr(rule, name) is not None:
                words.append(f"{symbol} {getattr(rule, name)}")
        if getattr(rule, "min_length", None):
            words.append(f"at least {rule.min_length} item(s)")
        if getattr(rule, "max_length", None):
            words.append(f"at most {rule.max_length} item(s)")
        if getattr(rule, "pattern", None):
            words.append(f"matches `{rule.pattern}`".replace("|", "\\|"))
        if getattr(rule, "func", None) is not None and getattr(rule.func, "__name__", "") == "_device_name":
            words.append("auto, cpu, cuda, cuda:N or mps")
    return ", ".join(words)


def reference(root: Path = Path(".")) -> str:
    """docs/params.md: every section's keys with their type, what is allowed and what they mean."""
    lines = ["# Params reference", "",
             "Generated from the stages' schemas by `python -m pipeline.ops.params_check --docs docs/params.md`",
             "(`make deps`); a test checks it is current. Every key is required, unknown keys are refused, floats",
             "must be finite and integers whole. What each stage does with them: [stages.md](stages.md).", ""]
    for section, schema in stage_schemas(root).items():
        lines += [f"## `{section}`", "", (schema.__doc__ or "").strip().splitlines()[0].replace("``", "`"), "",
                  "| key | type | allowed | meaning |", "| --- | --- | --- | --- |"]
        for name, field in schema.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, Section):
                for sub, sub_field in annotation.model_fields.items():
                    lines.append(f"| `{name}.{sub}` | {_type_text(sub_field.annotation)} | "
                                 f"{_rules_text(list(sub_field.metadata))} | {sub_field.description or ''} |")
                continue
            lines.append(f"| `{name}` | {_type_text(annotation)} | {_rules_text(list(field.metadata))} | "
                         f"{field.description or ''} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.ops.params_check", description=__doc__.splitlines()[0])
    parser.add_argument("params", nargs="?", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--overlay", help="a config to merge over it first, e.g. configs/paper.yaml")
    parser.add_argument("--docs", help="write the params reference generated from the schemas to this file")
    args = parser.parse_args(argv)
    if args.docs:
        Path(args.docs).write_text(reference(), encoding="utf-8")
        print(f"params: wrote {args.docs}")
        return 0
    try:
        params = load_params(args.params)
        if args.overlay:
            overlay = load_params(args.overlay)
            unknown = [f"{s}.{k}" for s, v in overlay.items() if isinstance(v, Mapping) for k in v
                       if not isinstance(params.get(s), Mapping) or k not in params[s]]
            if unknown:
                raise ParamsError(f"{args.overlay} sets {', '.join(unknown)}, which {args.params} does not have")
            params = deep_merge(params, overlay)
        problems = check_params(params)
    except PipelineError as exc:
        print(f"params: error: {exc}", file=sys.stderr)
        return 2
    for line in problems:
        print(f"params: error: {line}", file=sys.stderr)
    if problems:
        return 2
    where = f"{args.params} with {args.overlay}" if args.overlay else args.params
    print(f"params: {where}: every section is valid ({len(stage_schemas())} schemas)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
