"""The DAG drawings in README.md and docs/, generated from dvc.yaml (and the variant list in params.yaml).

    python -m pipeline.ops.dag --write   # redraw every drawing between its markers (make deps does it too)
    python -m pipeline.ops.dag --check   # exit 1 when a drawing differs from dvc.yaml

Edges are computed as DVC computes them: stage A feeds stage B when a dep of B is an output of A, lies inside
one, or holds one. Two drawings:

- ``compact`` (README): one line per stage definition in run order with the stages it reads from; a
  ``foreach`` stage is one line (``train_encoder@variant``), so it stays short however many variants run;
- ``full`` (docs/stages.md, docs/design.md): a Mermaid flowchart of every expanded stage.

Each sits between ``<!-- dag:NAME:start -->`` and ``<!-- dag:NAME:end -->`` in the files of :data:`DRAWINGS`.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Mapping

import yaml

from pipeline.common.errors import PipelineError

#: file -> the drawings it holds
DRAWINGS = {"README.md": ("compact",), "docs/stages.md": ("full",), "docs/design.md": ("full",)}
_VAR = re.compile(r"\$\{\s*([\w.]+)\s*\}")


class DagError(PipelineError, ValueError):
    """dvc.yaml or params.yaml cannot be read, or a drawing's markers are missing."""


def _lookup(params: Mapping[str, Any], dotted: str) -> Any:
    value: Any = params
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise DagError(f"dvc.yaml uses ${{{dotted}}}, which params.yaml does not have")
        value = value[part]
    return value


def _paths(body: Mapping[str, Any], kinds: tuple[str, ...], params: Mapping[str, Any], item: Any) -> list[str]:
    paths = []
    for kind in kinds:
        for entry in body.get(kind) or []:
            path = entry if isinstance(entry, str) else next(iter(entry))
            path = _VAR.sub(lambda m: str(item) if m.group(1) == "item" else str(_lookup(params, m.group(1))), path)
            paths.append(path.rstrip("/"))
    return paths


def expanded_stages(root: Path) -> dict[str, dict[str, Any]]:
    """``stage -> {"group", "deps", "outs"}`` for every stage DVC runs, ``foreach`` stages expanded
    (``name@item``), in dvc.yaml's order; ``group`` is the stage definition's name."""
    root = Path(root)
    try:
        spec = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))
        params = yaml.safe_load((root / "params.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DagError(f"cannot read dvc.yaml and params.yaml in {root}: {exc}") from exc
    stages: dict[str, dict[str, Any]] = {}
    for name, stage in spec["stages"].items():
        if "foreach" in stage:
            items = stage["foreach"]
            if isinstance(items, str):
                items = _lookup(params, _VAR.fullmatch(items.strip()).group(1))
            instances = [(f"{name}@{item}", item) for item in items]
            body = stage["do"]
        else:
            instances, body = [(name, None)], stage
        for full, item in instances:
            stages[full] = {"group": name, "deps": _paths(body, ("deps",), params, item),
                            "outs": _paths(body, ("outs", "metrics", "plots"), params, item)}
    return stages


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def edges(stages: Mapping[str, Mapping[str, Any]]) -> set[tuple[str, str]]:
    """``(upstream, downstream)`` pairs: a dep of downstream is, lies in, or holds an output of upstream."""
    found = set()
    for down, body in stages.items():
        for up, other in stages.items():
            if up != down and any(_inside(dep, out) or _inside(out, dep)
                                  for dep in body["deps"] for out in other["outs"]):
                found.add((up, down))
    return found


def _label(stage: str, stages: Mapping[str, Mapping[str, Any]]) -> str:
    group = stages[stage]["group"]
    return f"{group}@variant" if "@" in stage else group


def _run_order(stages: Mapping[str, Any], pairs: set[tuple[str, str]]) -> list[str]:
    """Topological order, ties broken by dvc.yaml's order (Kahn)."""
    order, done = [], set()
    names = list(stages)
    while len(order) < len(names):
        ready = next(n for n in names if n not in done and all(u in done for u, d in pairs if d == n))
        order.append(ready)
        done.add(ready)
    return order


def compact(root: Path) -> str:
    """One line per stage definition: ``name  <- what it reads from``."""
    stages = expanded_stages(root)
    pairs = edges(stages)
    rows: dict[str, set[str]] = {}
    for stage in _run_order(stages, pairs):
        rows.setdefault(_label(stage, stages), set())
    for up, down in pairs:
        rows[_label(down, stages)].add(_label(up, stages))
    index = {label: i for i, label in enumerate(rows)}
    width = max(len(label) for label in rows) + 2
    groups = sorted({body["group"] for stage, body in stages.items() if "@" in stage})
    lines = ["```text",
             f"{len(rows)} stage definitions, {len(stages)} stages ({', '.join(groups)}: one per entry of "
             f"train_encoder.variants)", ""]
    for label, ups in rows.items():
        reads = ", ".join(sorted(ups - {label}, key=index.get))
        lines.append(f"{label:<{width}}<- {reads}" if reads else label)
    lines.append("```")
    return "\n".join(lines)


def full(root: Path) -> str:
    """A Mermaid flowchart of every expanded stage."""
    stages = expanded_stages(root)
    pairs = edges(stages)
    ids = {stage: "s" + re.sub(r"\W", "_", stage) for stage in stages}
    lines = ["```mermaid", "flowchart LR"]
    lines += [f'  {ids[stage]}["{stage}"]' for stage in _run_order(stages, pairs)]
    lines += [f"  {ids[up]} --> {ids[down]}" for up, down in sorted(pairs, key=lambda p: (list(stages).index(p[0]),
                                                                                          list(stages).index(p[1])))]
    lines.append("```")
    return "\n".join(lines)


def render(text: str, name: str, drawing: str, where: str) -> str:
    start, end = f"<!-- dag:{name}:start -->", f"<!-- dag:{name}:end -->"
    if start not in text or end not in text:
        raise DagError(f"{where} has no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{drawing}\n{end}{tail}"


def _files(root: Path) -> dict[Path, str]:
    """Every drawing file's text with its drawings redrawn."""
    drawn = {"compact": compact(root), "full": full(root)}
    out = {}
    for rel, names in DRAWINGS.items():
        path = Path(root) / rel
        text = path.read_text(encoding="utf-8")
        for name in names:
            text = render(text, name, drawn[name], rel)
        out[path] = text
    return out


def check(root: Path) -> list[str]:
    """The files whose drawings differ from dvc.yaml (empty: all current)."""
    return [str(path.relative_to(root)) for path, text in _files(root).items()
            if path.read_text(encoding="utf-8") != text]


def write(root: Path) -> list[str]:
    """Redraw every drawing; returns the files that changed."""
    changed = []
    for path, text in _files(root).items():
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(str(path.relative_to(root)))
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.ops.dag", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="redraw the DAG drawings in README.md and docs/")
    mode.add_argument("--check", action="store_true", help="exit 1 when a drawing differs from dvc.yaml")
    parser.add_argument("--root", default=".", help="the project's root (default: .)")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    try:
        if args.write:
            changed = write(root)
            print(f"dag: redrew {', '.join(changed)}" if changed else "dag: every drawing is current")
            return 0
        stale = check(root)
    except DagError as exc:
        print(f"dag: error: {exc}", file=sys.stderr)
        return 2
    if stale:
        print(f"dag: the drawings in {', '.join(stale)} differ from dvc.yaml: run `python -m pipeline.ops.dag "
              f"--write` (make deps)", file=sys.stderr)
        return 1
    print("dag: every drawing matches dvc.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
