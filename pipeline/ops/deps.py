"""The code ``deps:`` of every stage in ``dvc.yaml``, generated from the exact set of project files the stage runs.

    python -m pipeline.ops.deps --write   # rewrite the code deps of every stage (make deps)
    python -m pipeline.ops.deps --check   # exit 1 naming each stage whose code deps differ from what it runs

A stage runs ``python -m stages.<name>``: its code is the import closure of that module, files not folders, so
that an edit reruns exactly the stages that run the edited file. The closure follows every ``import`` and
``from ... import`` of the project's packages (function-level ones included, since they run too), the
``__init__.py`` of every package on the way (importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py``),
and a module that the code runs in a child process as ``[..., "-m", "<module>"]`` (the yt-dlp worker).

Only entries under ``stages/``, ``pipeline/`` and ``models/`` are code; data deps (``data/...``, ``${...}``) and
their comments stay as they are. ``--write`` edits ``dvc.yaml`` as text, so every comment and the layout stay.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path
from typing import Iterable, Mapping

import yaml

from pipeline.common.errors import PipelineError

PROJECT_PACKAGES = ("pipeline", "models", "stages")
CODE_PREFIXES = tuple(f"{package}/" for package in PROJECT_PACKAGES)
_ENTRY = re.compile(r"\bpython3?\s+-m\s+([A-Za-z_][\w.]*)")


class DepsError(PipelineError, ValueError):
    """dvc.yaml cannot be read or a stage's entry module cannot be found."""


def module_file(module: str, root: Path) -> Path | None:
    """The file that defines ``module`` (``a/b.py`` or ``a/b/__init__.py``) under ``root``, or None."""
    parts = module.split(".")
    as_file = root.joinpath(*parts).with_suffix(".py")
    if as_file.is_file():
        return as_file
    as_package = root.joinpath(*parts) / "__init__.py"
    return as_package if as_package.is_file() else None


def _is_project(module: str) -> bool:
    return module.split(".")[0] in PROJECT_PACKAGES


def imported_modules(path: Path, root: Path) -> set[str]:
    """Project modules that running ``path`` imports (at any depth of its code) or runs as ``-m`` children."""
    package = path.relative_to(root).parent.parts
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            # ``from a import b`` may import the submodule a.b; kept only where that file exists (below)
            modules |= {module} | {f"{module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, (ast.List, ast.Tuple)):
            items = node.elts
            for flag, name in zip(items, items[1:]):
                if (isinstance(flag, ast.Constant) and flag.value == "-m" and isinstance(name, ast.Constant)
                        and isinstance(name.value, str)):
                    modules.add(name.value)
    return {m for m in modules if _is_project(m)}


def files_of(module: str, root: Path) -> set[Path]:
    """The files that importing ``module`` runs by itself: its own and its packages' ``__init__.py``."""
    parts = module.split(".")
    found = set()
    for depth in range(1, len(parts) + 1):
        path = module_file(".".join(parts[:depth]), root)
        if path is not None:
            found.add(path)
    return found


def imported_files(path: Path, root: Path) -> set[Path]:
    """Project files that ``path`` makes run directly (one step of the closure)."""
    files: set[Path] = set()
    for module in imported_modules(path, root):
        files |= files_of(module, root)
    return files


def import_closure(modules: Iterable[str], root: Path) -> set[str]:
    """Every project file (relative to ``root``, POSIX) that running ``modules`` runs, following imports."""
    root = Path(root)
    todo: list[Path] = []
    for module in modules:
        if module_file(module, root) is None:
            raise DepsError(f"module {module} has no file under {root}")
        todo += sorted(files_of(module, root))
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imported_files(path, root) - seen)
    return {p.relative_to(root).as_posix() for p in seen}


def import_graph(root: Path) -> dict[str, set[str]]:
    """``file -> files it imports`` over every module of the project's packages (relative POSIX paths).

    A package's own ``__init__.py`` is left out of its modules' edges: Python runs it before any of them, so a
    package that re-exports one of its modules is no cycle."""
    root = Path(root)
    graph = {}
    for package in PROJECT_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            own = {parent / "__init__.py" for parent in path.parents}
            graph[path.relative_to(root).as_posix()] = {p.relative_to(root).as_posix()
                                                        for p in imported_files(path, root) - own if p != path}
    return graph


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components of more than one file (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:  # iterative, so deep import chains do not hit the recursion limit
        nonlocal counter
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


# ----------------------------------------------------------------------------------------------- dvc.yaml


def _read_dvc_yaml(path: Path) -> dict:
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DepsError(f"cannot read {path}: {exc}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("stages"), dict):
        raise DepsError(f"{path} has no stages")
    return spec


def stage_bodies(dvc_yaml: Path) -> dict[str, dict]:
    """``stage name -> its body`` (the ``do:`` of a foreach/matrix stage), in dvc.yaml's order."""
    spec = _read_dvc_yaml(Path(dvc_yaml))
    return {name: stage.get("do", stage) for name, stage in spec["stages"].items()}


def entry_module(body: Mapping) -> str:
    """The module a stage's ``cmd`` runs (``python -m <module>``)."""
    cmd = body.get("cmd", "")
    cmd = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
    match = _ENTRY.search(cmd)
    if match is None:
        raise DepsError(f"cmd {cmd!r} does not run 'python -m <module>'")
    return match.group(1)


def is_code(dep: str) -> bool:
    return str(dep).startswith(CODE_PREFIXES)


def expected_deps(root: Path) -> dict[str, list[str]]:
    """``stage -> sorted files of code it runs`` for every stage of ``root/dvc.yaml``."""
    root = Path(root)
    return {name: sorted(import_closure([entry_module(body)], root))
            for name, body in stage_bodies(root / "dvc.yaml").items()}


def check(root: Path) -> list[str]:
    """One line per stage whose listed code deps differ from the files it runs (empty: all exact)."""
    root = Path(root)
    problems = []
    expected = expected_deps(root)
    for name, body in stage_bodies(root / "dvc.yaml").items():
        listed = [str(d) for d in body.get("deps") or [] if is_code(d)]
        folders = sorted(d for d in listed if not (root / d).is_file())
        missing = sorted(set(expected[name]) - set(listed))
        extra = sorted(set(listed) - set(expected[name]) - set(folders))
        if missing:
            problems.append(f"{name} runs {', '.join(missing)} but does not list them")
        if extra:
            problems.append(f"{name} lists {', '.join(extra)} but does not run them")
        if folders:
            problems.append(f"{name} lists {', '.join(folders)}, which is not a file (list the files it runs)")
    for cycle in find_cycles(import_graph(root)):  # a cycle makes a layer's closure drag in the whole loop
        problems.append(f"import cycle: {' -> '.join(cycle)} (break it: see docs/design.md, Layers)")
    return problems


_STAGE_LINE = re.compile(r"^  ([A-Za-z_][\w-]*):\s*(#.*)?$")
_DEPS_LINE = re.compile(r"^(\s*)deps:\s*(#.*)?$")
_ITEM_LINE = re.compile(r"^(\s*)-\s+(\S+)")


def rewrite(text: str, deps: Mapping[str, list[str]]) -> str:
    """``text`` of dvc.yaml with every stage's code deps replaced by ``deps[stage]`` (data deps, comments and
    layout kept; the code entries go where the first one was, else at the top of the list)."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    stage = None
    in_stages = False
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"^\S", line):
            in_stages = line.startswith("stages:")
            stage = None
        elif in_stages and _STAGE_LINE.match(line):
            stage = _STAGE_LINE.match(line).group(1)
        match = _DEPS_LINE.match(line)
        if not (in_stages and stage in deps and match):
            out.append(line)
            i += 1
            continue
        out.append(line)
        indent = len(match.group(1))
        i += 1
        block: list[str] = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            block.append(lines[i])
            i += 1
        items = [(n, _ITEM_LINE.match(b)) for n, b in enumerate(block)]
        item_indent = next((m.group(1) for _, m in items if m), " " * (indent + 2))
        code_at = [n for n, m in items if m and is_code(m.group(2))]
        where = code_at[0] if code_at else 0
        generated = [f"{item_indent}- {dep}\n" for dep in deps[stage]]
        kept = [b for n, b in enumerate(block) if n not in set(code_at)]
        before = sum(1 for n in range(where) if n not in set(code_at))
        out += kept[:before] + generated + kept[before:]
    return "".join(out)


def write(root: Path) -> bool:
    """Rewrite ``root/dvc.yaml``'s code deps; True when the file changed."""
    path = Path(root) / "dvc.yaml"
    text = path.read_text(encoding="utf-8")
    new = rewrite(text, expected_deps(root))
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.ops.deps", description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the code deps of every stage in dvc.yaml")
    mode.add_argument("--check", action="store_true", help="exit 1 when a stage's code deps are not exact")
    parser.add_argument("--root", default=".", help="the project's root (default: .)")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    try:
        if args.write:
            changed = write(root)
            print(f"deps: {'rewrote' if changed else 'unchanged:'} the code deps of "
                  f"{len(stage_bodies(root / 'dvc.yaml'))} stages in {root / 'dvc.yaml'}")
            return 0
        problems = check(root)
    except DepsError as exc:
        print(f"deps: error: {exc}", file=sys.stderr)
        return 2
    for line in problems:
        print(f"deps: {line}", file=sys.stderr)
    if problems:
        print("deps: run `python -m pipeline.ops.deps --write` (make deps) to regenerate them", file=sys.stderr)
        return 1
    print(f"deps: the code deps of every stage are exact ({len(stage_bodies(root / 'dvc.yaml'))} stages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
