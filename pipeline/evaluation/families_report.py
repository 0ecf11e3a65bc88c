"""The comparison of the model families, rendered: ``reports/families.md``, ``reports/families.png``,
``reports/families_cost.md`` and, for each family that samples, ``reports/disentanglement-<family>.png`` (part of
the ``report`` stage, which owns ``reports/``).

Reads ``data/compare/`` (``metrics.json`` and ``faces.npz``, written by ``compare``) and the comparison's cost file.
Every number stands beside its chance level (or, for KID and diversity, beside the true faces' own level). The
figure's columns are Figure 6's test speakers (``pipeline.evaluation.evaluate.grid_keys``): the original, then one
row per family. A disentanglement figure has one row per test voice and one column per z (seed): along a row,
one voice with several z; down a column, one z with several voices. The cost (parameters, training seconds, milliseconds per face) has a file of its own, since it
holds wall-clock numbers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.common.errors import TrainingError
from pipeline.common.figures import save_grid_png
from pipeline.common.io import atomic_path, read_json

ATTRIBUTE_COLUMNS = ("gender", "hair", "glasses", "skin", "age_group")


class FamiliesReportError(TrainingError):
    """The comparison's outputs are missing or inconsistent."""


def _f(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def _with_chance(value: Any, chance: Any) -> str:
    return f"{_f(value)} ({_f(chance)})"


def identity_table(families: dict[str, Any], ks: list[int]) -> list[str]:
    head = ("| family | " + " | ".join(f"R@{k} sample" for k in ks) + " | "
            + " | ".join(f"R@{k} speaker" for k in ks) + " | cos own | cos other | gap |")
    lines = [head, "|" + " --- |" * (1 + 2 * len(ks) + 3)]
    for name, m in families.items():
        s, p, c = m["sample_recall"], m["speaker_recall"], m["cosine"]
        cells = [_with_chance(s.get(f"recall@{k}"), s.get(f"chance@{k}")) for k in ks]
        cells += [_with_chance(p.get(f"recall@{k}"), p.get(f"chance@{k}")) for k in ks]
        cells += [_f(c["own"]), _f(c["other"]), _f(c["gap"])]
        lines.append(f"| {m['title']} | " + " | ".join(cells) + " |")
    return lines


def kway_table(families: dict[str, Any]) -> list[str]:
    """One row per family (the judge on its generated faces) and, for a family with its own encoders, one row of
    those encoders on the true faces."""
    ks = sorted({int(key.split("@")[1]) for m in families.values() for key in m["kway"] if key.startswith("accuracy@")})
    lines = ["| family | faces, embedded by | " + " | ".join(f"{k}-way" for k in ks) + " |",
             "|" + " --- |" * (2 + len(ks))]
    for m in families.values():
        rows = [("generated, the judge", m["kway"])]
        if m.get("encoders"):
            rows.append(("true, its own encoders", m["encoders"]["kway"]))
        for what, kway in rows:
            lines.append(f"| {m['title']} | {what} | " + " | ".join(
                _with_chance(kway.get(f"accuracy@{k}"), kway.get(f"chance@{k}")) for k in ks) + " |")
    return lines


def attributes_table(families: dict[str, Any], true_faces: dict[str, Any] | None) -> list[str]:
    lines = ["| faces | " + " | ".join(ATTRIBUTE_COLUMNS) + " |", "|" + " --- |" * (1 + len(ATTRIBUTE_COLUMNS))]
    rows = [(m["title"], m.get("attributes")) for m in families.values()]
    rows.append(("true faces (the probe's ceiling)", (true_faces or {}).get("attributes")))
    for m in families.values():  # what the family's condition holds (compare's voice_neighbours)
        vote = (m.get("encoders") or {}).get("voice_neighbours")
        if vote:
            rows.append((f"{m['title']}: its voice space's {vote['k']} nearest training voices (no face drawn)",
                         vote["attributes"]))
    for title, attrs in rows:
        if not attrs:
            lines.append(f"| {title} | " + " | ".join("–" for _ in ATTRIBUTE_COLUMNS) + " |")
            continue
        lines.append(f"| {title} | " + " | ".join(_with_chance(attrs.get(a, {}).get("accuracy"),
                                                              attrs.get(a, {}).get("chance"))
                                                 for a in ATTRIBUTE_COLUMNS) + " |")
    return lines


def realism_table(families: dict[str, Any]) -> list[str]:
    lines = ["| family | KID (judge space) | real vs real | pixel diversity ratio | embedding diversity ratio |",
             "| --- | --- | --- | --- | --- |"]
    for m in families.values():
        kid, div, emb = m["kid"], m["diversity"], m["embedding_diversity"]
        ref = (f"{kid['real_vs_real_mean']:.2e} ± {kid['real_vs_real_std']:.1e}"
               if kid.get("real_vs_real_mean") is not None else "–")
        lines.append(f"| {m['title']} | {kid['kid_judge_mean']:.2e} | {ref} | {_f(div.get('diversity_ratio'))} "
                     f"(true 1.000) | {_f(emb.get('ratio'))} (true 1.000) |")
    return lines


def families_markdown(metrics: dict[str, Any], ks: list[int]) -> str:
    families = metrics["families"]
    lines = [
        "# The model families on the same test clips",
        "",
        f"Judge: **{metrics['judge']['name']}** ({metrics['judge']['kind']}); no family trains against it. "
        f"{metrics['test_clips']} test clips of {metrics['test_speakers']} unseen speakers; chance in brackets.",
        "",
        "## Identity (judge embeddings, cosine)",
        "",
        "Sample level: each generated face ranks every true test face. Speaker level: one mean embedding per "
        "speaker (blocks of 100 speakers above 100, as SF2F). cos own / other: the generated face against its own "
        "speaker's mean true face and against the others' (gap 0 = blind to identity).",
        "",
        *identity_table(families, ks),
        "",
        "## K-way matching",
        "",
        ("A voice's generated face against K true faces of K speakers, its own among them, in the judge's space; for "
         "a family with its own voice and face encoders, also the voice against the K true faces in those encoders' "
         "space (how well the family matches real faces to voices, beside how well its drawn faces carry that)."),
        "",
        *kway_table(families),
        "",
        "## Attributes (attribute probe on the generated face vs the speaker's attributes)",
        "",
        ("For a family with its own speech space, a last row gives the speaker's attributes as the test voice's "
         "nearest training voices in that space hold them (their majority): what drawing the faces of the nearest "
         "training voices would score, a yardstick for what the family's condition carries."),
        "",
        *attributes_table(families, metrics.get("true_faces")),
        "",
        "## Realism and spread",
        "",
        "KID in the judge's space (MMD² with a cubic polynomial kernel; not Inception KID: a Fréchet distance on a "
        "few dozen faces is unreliable); real vs real is the same measure between two halves of the true faces. "
        "Diversity: per-pixel spread across a family's faces over the true faces' (1 = as varied as real faces).",
        "",
        *realism_table(families),
        "",
        *noise_lines(families),
        "Costs: [families_cost.md](families_cost.md). Faces: [families.png](families.png).",
        "",
    ]
    return "\n".join(lines)


def noise_lines(families: dict[str, Any]) -> list[str]:
    """The disentanglement section: each sampling family's spread over z and over voices, and its figure."""
    sampling = {name: m for name, m in families.items() if m.get("noise")}
    if not sampling:
        return []
    lines = ["## What the noise changes", "",
             ("Test voices x seeds (z), each face drawn alone; spreads are per-pixel spreads over the true faces' "
              "(as the diversity ratio): over z for one voice, and over voices for one z."), "",
             "| family | spread over z | spread over voices | figure |", "| --- | --- | --- | --- |"]
    for name, m in sampling.items():
        n = m["noise"]
        lines.append(f"| {m['title']} | {_f(n.get('z_spread'))} | {_f(n.get('voice_spread'))} | "
                     f"[disentanglement-{name}.png](disentanglement-{name}.png) |")
    return lines + [""]


def cost_markdown(cost: dict[str, Any], titles: dict[str, str]) -> str:
    lines = ["# What each family costs", "", "Wall-clock numbers of the machine that ran the pipeline (they vary "
             "between runs, so they stay out of the compared outputs).", "",
             "| family | parameters (drawing a face) | training seconds | training stages | ms per face | device |",
             "| --- | ---: | ---: | --- | ---: | --- |"]
    for name, c in cost.get("families", {}).items():
        seconds = "–" if c.get("train_seconds") is None else f"{c['train_seconds']:.0f}"
        lines.append(f"| {titles.get(name, name)} | {c['parameters']:,} | {seconds} | "
                     f"{', '.join(c.get('train_stages', [])) or '–'} | {c['ms_per_face']:.1f} | {c.get('device', '')} |")
    return "\n".join(lines) + "\n"


def families_figure(compare_dir: Path, metrics: dict[str, Any], path: Path, columns: int) -> None:
    with np.load(compare_dir / "faces.npz", allow_pickle=False) as data:
        keys = [str(k) for k in data["keys"]]
        order = [str(k) for k in data["figure_keys"]][:columns]
        where = {k: i for i, k in enumerate(keys)}
        rows = [[data["true"][where[k]] for k in order]]
        labels = ["original"]
        for name in metrics["families"]:
            faces = data[f"family_{name}"]
            rows.append([faces[where[k]] for k in order])
            labels.append(metrics["families"][name]["title"].split(" (")[0])
        speakers = {str(k): str(s) for k, s in zip(data["keys"], data["speakers"])}
    save_grid_png(path, rows, labels, [speakers[k] for k in order])


def noise_figures(compare_dir: Path, metrics: dict[str, Any], out_dir: Path) -> list[Path]:
    """``disentanglement-<family>.png`` for each family with a noise grid in ``faces.npz``."""
    written = []
    with np.load(compare_dir / "faces.npz", allow_pickle=False) as data:
        speakers = {str(k): str(s) for k, s in zip(data["keys"], data["speakers"])}
        for name in metrics["families"]:
            if f"noise_{name}" not in data.files:
                continue
            grid, keys = data[f"noise_{name}"], [str(k) for k in data[f"noise_keys_{name}"]]
            path = out_dir / f"disentanglement-{name}.png"
            save_grid_png(path, [list(row) for row in grid], [f"voice of {speakers[k]}" for k in keys],
                          [f"z{j + 1}" for j in range(grid.shape[1])])
            written.append(path)
    return written


def write_families_report(compare_dir: str | Path, cost_path: str | Path, out_dir: str | Path,
                          columns: int) -> list[Path]:
    """Write families.md, families_cost.md, families.png and the disentanglement figures into ``out_dir``; return
    their paths."""
    compare_dir, out_dir = Path(compare_dir), Path(out_dir)
    if not (compare_dir / "metrics.json").is_file() or not (compare_dir / "faces.npz").is_file():
        raise FamiliesReportError(f"{compare_dir} holds no comparison (run the compare stage first)")
    metrics = read_json(compare_dir / "metrics.json")
    ks = sorted({int(key.split("@")[1]) for m in metrics["families"].values() for key in m["sample_recall"]
                 if key.startswith("recall@")})
    out_dir.mkdir(parents=True, exist_ok=True)
    md, cost_md, png = out_dir / "families.md", out_dir / "families_cost.md", out_dir / "families.png"
    with atomic_path(md) as tmp:
        tmp.write_text(families_markdown(metrics, ks), encoding="utf-8")
    cost = read_json(cost_path) if Path(cost_path).is_file() else {}
    with atomic_path(cost_md) as tmp:
        tmp.write_text(cost_markdown(cost, {n: m["title"] for n, m in metrics["families"].items()}),
                       encoding="utf-8")
    families_figure(compare_dir, metrics, png, columns)
    return [md, cost_md, png, *noise_figures(compare_dir, metrics, out_dir)]
