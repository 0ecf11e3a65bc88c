"""The README stays a first screen, docs/stages.md documents every params key, and every command and link in the
docs points at something that exists."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

DOCS = ("README.md", "docs/stages.md", "docs/params.md", "docs/operations.md", "docs/results.md", "docs/design.md", "docs/contracts.md")


def _leaf_keys(section: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in section.items():
        if isinstance(value, dict):
            keys += _leaf_keys(value, f"{prefix}{key}.")
        else:
            keys.append(f"{prefix}{key}")
    return keys


def _section_text(stages_md: str, section: str) -> str:
    """The text under the heading that names ``section`` in backticks, up to the next heading of that level."""
    lines = stages_md.splitlines()
    for i, line in enumerate(lines):
        match = re.match(r"^(#+) ", line)
        if match and re.search(rf"`{re.escape(section)}`", line):
            level = len(match.group(1))
            body = []
            for later in lines[i + 1:]:
                heading = re.match(r"^(#+) ", later)
                if heading and len(heading.group(1)) <= level:
                    break
                body.append(later)
            return "\n".join(body)
    return ""


def test_the_readme_is_a_first_screen(repo_root: Path) -> None:
    lines = (repo_root / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; its details belong in docs/"
    text = "\n".join(lines)
    assert "make demo" in text and "make test" in text


def test_every_params_key_is_documented_under_its_section(repo_root: Path) -> None:
    params = yaml.safe_load((repo_root / "params.yaml").read_text(encoding="utf-8"))
    stages_md = (repo_root / "docs" / "stages.md").read_text(encoding="utf-8")
    missing = []
    for section, keys in params.items():
        body = _section_text(stages_md, section)
        assert body, f"docs/stages.md has no heading naming `{section}`"
        for key in _leaf_keys(keys):
            if not any(f"`{name}`" in body for name in (key, key.split(".")[-1], f"{section}.{key}")):
                missing.append(f"{section}.{key}")
    assert not missing, f"docs/stages.md does not document {', '.join(missing)}"


def test_every_python_m_command_in_the_docs_names_a_module(repo_root: Path) -> None:
    """Renamed modules must not leave a command in the docs or the Makefile that no longer runs."""
    for name in (*DOCS, "Makefile"):
        text = (repo_root / name).read_text(encoding="utf-8")
        for module in set(re.findall(r"python3? -m ((?:pipeline|stages)(?:\.\w+)+)", text)):
            parts = module.split(".")
            file = repo_root.joinpath(*parts).with_suffix(".py")
            assert file.is_file() or (repo_root.joinpath(*parts) / "__main__.py").is_file(), f"{name}: {module}"


def test_relative_links_resolve(repo_root: Path) -> None:
    for name in DOCS:
        path = repo_root / name
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
                continue
            resolved = (path.parent / target).resolve()
            if resolved.is_relative_to(repo_root / "reports"):  # written by make demo
                continue
            assert resolved.exists(), f"{name} links to {target}, which does not exist"


def test_the_params_reference_is_generated_from_the_schemas(repo_root: Path) -> None:
    from pipeline.ops.params_check import reference

    assert (repo_root / "docs" / "params.md").read_text(encoding="utf-8") == reference(repo_root), \
        "docs/params.md is stale: run `make deps` (python -m pipeline.ops.params_check --docs docs/params.md)"
