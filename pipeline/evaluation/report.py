"""The report: paper Table 4 (Markdown), Figures 6, 5, 4 and 2, and the attribute agreement of the faces.

Reads only ``data/eval/<variant>/`` (``metrics.json``, ``faces.npz``, ``history.json`` written by the evaluate
stage) and ``data/eval_decoder/`` (the decoder's own evaluation and Figures 4 and 2). Writes into ``reports/``:
``table4.md`` (the face decoder's reconstruction numbers, every variant side by side, retrieval recall with
chance, attribute agreement with chance, convergence and the learn-something gate), ``figure6.png`` (rows:
original, Face-to-Face, each variant; columns: test speakers), ``figure5.png`` (per-epoch training loss of every
variant), ``figure4.png`` (original vs FD(true feature), train and test faces), ``figure2.png`` (FD of the
neutral prior at each size n) and ``summary.json`` (the same numbers, machine readable).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.arspm.variants import VARIANTS
from pipeline.common.errors import TrainingError
from pipeline.common.figures import pyplot, save_figure, save_grid_png
from pipeline.common.io import atomic_path, read_json, write_json


class ReportError(TrainingError):
    """Nothing to report (no evaluated variant) or inconsistent evaluation outputs."""


def load_evaluations(eval_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``variant -> {"metrics", "history", "faces", "keys"}`` for every evaluated variant, in Table 4 order."""
    eval_dir = Path(eval_dir)
    if not eval_dir.is_dir():
        raise ReportError(f"evaluation directory {eval_dir} not found (run the evaluate stages first)")
    found = {p.name for p in eval_dir.iterdir() if (p / "metrics.json").is_file()}
    order = [v for v in VARIANTS if v in found] + sorted(found - set(VARIANTS))
    if not order:
        raise ReportError(f"no evaluated variant in {eval_dir} (expected <variant>/metrics.json)")
    out: dict[str, dict[str, Any]] = {}
    for name in order:
        d = eval_dir / name
        entry: dict[str, Any] = {"metrics": read_json(d / "metrics.json"), "history": [], "faces": None, "keys": []}
        if (d / "history.json").is_file():
            entry["history"] = read_json(d / "history.json")
        if (d / "faces.npz").is_file():
            with np.load(d / "faces.npz", allow_pickle=False) as data:
                entry["faces"] = np.asarray(data["faces"])
                entry["keys"] = [str(k) for k in data["keys"]]
        out[name] = entry
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{float(value):.{digits}f}"


def convergence(evals: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per variant: first/last epoch loss and epochs needed to reach ``non_prior``'s final loss (Fig. 5 claim)."""
    baseline = evals.get("non_prior", {}).get("history") or []
    target = float(baseline[-1]["loss"]) if baseline else None
    out = {}
    for name, entry in evals.items():
        hist = entry["history"]
        if not hist:
            continue
        losses = [float(h["loss"]) for h in hist]
        reach = None
        if target is not None:
            reach = next((i + 1 for i, v in enumerate(losses) if v <= target), None)
        out[name] = {"first_epoch_loss": losses[0], "final_loss": losses[-1], "epochs": len(losses),
                     "epochs_to_non_prior_final": reach}
    return out


def gate(evals: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The learn-something numbers: recall@5 of ``neutral_fc`` (or the first variant) vs chance, gender accuracy."""
    name = "neutral_fc" if "neutral_fc" in evals else next(iter(evals))
    m = evals[name]["metrics"]
    k = "5" if "5" in m["recall"] else sorted(m["recall"], key=int)[-1]
    conv = convergence(evals)
    faster = None
    if "non_prior" in conv:
        base = conv["non_prior"]
        priors = {v: c for v, c in conv.items() if VARIANTS.get(v) and VARIANTS[v].prior is not None}
        if priors:
            faster = {v: c["first_epoch_loss"] < base["first_epoch_loss"] for v, c in priors.items()}
    return {
        "variant": name,
        "k": int(k),
        "recall": m["recall"][k],
        "chance": m["recall_chance"][k],
        "speaker_recall": m.get("speaker_recall", {}).get(k),
        "speaker_chance": m.get("speaker_recall_chance", {}).get(k),
        "above_chance": m["recall"][k] > m["recall_chance"][k],
        "voice_gender_accuracy": m.get("gender_agreement", {}).get("voice_classifier"),
        "prior_lower_first_epoch_loss_than_non_prior": faster,
    }


def decoder_markdown(dec: dict[str, Any]) -> list[str]:
    """The face decoder's own numbers (data/eval_decoder/metrics.json) as Markdown lines."""
    lines = ["# Face decoder FD: does it draw the face it is given? (paper Figure 4: `figure4.png`)", "",
             "FD(F) for the true face feature F of the first faces of each split. L1 ratio: pixel L1 to the true "
             "crop over the L1 of always answering the mean training face (1 = no better than the mean face). "
             "Speaker-mean oracle: the same ratio for each speaker's own mean crop. Diversity: pixel std of FD(F) "
             "across samples over that of the true crops (0 = one face for everyone).", "",
             "| split | faces | L1 ratio | speaker-mean oracle | diversity |", "| --- | ---: | ---: | ---: | ---: |"]
    for split in ("train", "test"):
        m = dec[split]
        lines.append(f"| {split} | {m['n']} | {_fmt(m['l1_ratio'])} | {_fmt(m['speaker_mean_l1_ratio'])} | "
                     f"{_fmt(m['diversity'])} |")
    r = dec["face_to_face_retrieval"]
    ks = sorted(r["recall"], key=int)
    lines += ["", "Face-to-Face retrieval: VGGFace(FD(F)) ranks the true features of all test faces "
              "(sample level) or one mean feature per test speaker (speaker level); chance in brackets.", "",
              "| | " + " | ".join(f"R@{k}" for k in ks) + " |", "| --- | " + " | ".join("---:" for _ in ks) + " |",
              f"| sample level (N={r['n']}) | " + " | ".join(f"{r['recall'][k]:.3f} ({r['recall_chance'][k]:.3f})"
                                                      for k in ks) + " |",
              "| speaker level | " + " | ".join(f"{r['speaker_recall'][k]:.3f} ({r['speaker_recall_chance'][k]:.3f})"
                                              for k in ks) + " |",
              "", f"Figure 2 (`figure2.png`): FD of the neutral prior at n = {', '.join(map(str, dec['figure2_n']))}.",
              ""]
    leak = dec.get("identity_leakage")
    if leak:
        matched = leak["test_speakers_with_train_match"]
        lines += [f"Identity leakage (dlib's recognizer, same person under {leak['same_person_distance']}): "
                  f"{'–' if matched is None else matched} of {leak['test_speakers_found']} test speakers whose face "
                  f"it found ({leak['test_speakers']} in all) have a train face that close "
                  f"({leak['train_faces_found']} of {leak['train_faces']} train faces found; median nearest distance "
                  f"{_fmt(leak['nearest_train_distance'])}). With a split by speaker this should be 0; with a split "
                  f"by video it says how many test people retrieval may already have seen.", ""]
    return lines


def attributes_markdown(evals: dict[str, dict[str, Any]], dec: dict[str, Any] | None) -> list[str]:
    """Attribute agreement: the probe's accuracy per attribute on true, Face-to-Face and generated test faces."""
    columns: list[tuple[str, dict[str, Any]]] = []
    if dec is not None:
        columns += [("true face", dec["attributes"]["true_face"]), ("Face-to-Face", dec["attributes"]["face_to_face"])]
    for name, entry in evals.items():
        reads = entry["metrics"].get("attributes", {})
        if "generated" in reads:
            columns.append((name, reads["generated"]))
    if not columns:
        return []
    names = list(columns[0][1])
    lines = ["## Attribute agreement (test faces)", "",
             "The attribute probe (a small CNN trained on the face corpus's true crops) reads each attribute from "
             "a face; the number is its agreement with the speaker's known attribute. Chance = the majority "
             "class's share among those speakers. male/female are evaluated on one gender only.", "",
             "| attribute | chance | " + " | ".join(c for c, _ in columns) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in columns) + " |"]
    for attr in names:
        first = columns[0][1][attr]
        chance = _fmt(first.get("chance"))
        cells = []
        for _, reads in columns:
            entry = reads.get(attr, {})
            cells.append(_fmt(entry.get("accuracy")) if entry.get("accuracy") is not None
                         else (entry.get("note") or "–"))
        lines.append(f"| {attr} | {chance} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


#: how the report names ``evaluate_decoder.identity_detector``'s detectors
DETECTOR_NAMES = {"cnn": "dlib's CNN detector (MMOD)", "hog": "dlib's HOG detector"}


def identity_markdown(evals: dict[str, dict[str, Any]]) -> list[str]:
    """The identity metric of a recognizer trained on real faces (dlib's ResNet), with its face-found rates."""
    rows = {name: e["metrics"].get("identity") for name, e in evals.items() if e["metrics"].get("identity")}
    if not rows:
        return []
    first = next(iter(rows.values()))
    ks = sorted(first["generated"]["recall"], key=int)
    lines = ["## Identity by a face recognizer trained on real faces (dlib ResNet, 128-d)", "",
             f"Each face is found with {DETECTOR_NAMES.get(first.get('detector', 'cnn'), 'a dlib detector')}, "
             f"aligned with its 5-point landmarks and embedded; a face "
             f"the detector misses counts as \"no face\" (the found columns). Distances are to the mean embedding of "
             f"the speaker's found true faces; the same person is closer than {first['same_person_distance']}. "
             f"Different speakers: the mean distance between two test speakers' true faces. Recall@k: the own "
             f"speaker among the test speakers with a found true face, over the samples where both faces were found "
             f"(n).", "",
             "| Model | true face found | different speakers | F2F found | F2F dist to own (n) | generated found | "
             "generated dist to own (n) | same person | " + " | ".join(f"R@{k}" for k in ks)
             + " | generated not found: no face / grayscale / too small |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in ks) + " | ---: |"]
    for name, m in rows.items():
        found, f2f, gen = m["face_found"], m["face_to_face"], m["generated"]
        lines.append(
            f"| {name} | {_fmt(found['true_face'])} | {_fmt(m['different_speakers'])} | {_fmt(found['face_to_face'])} "
            f"| {_fmt(f2f['distance_to_own'])} ({f2f['n_scored']}) | {_fmt(found['generated'])} | "
            f"{_fmt(gen['distance_to_own'])} ({gen['n_scored']}) | {_fmt(gen['same_person'])} | "
            + " | ".join(_fmt(gen["recall"][k]) for k in ks) + f" | {_misses(m, 'generated')} |")
    lines += ["", "A dash: nothing to score (the recognizer found no face to compare). It was trained on photographs; "
              "on cartoon or blurred faces it often finds none, and that rate is the result, not an error.", ""]
    return lines


def _misses(summary: dict[str, Any], name: str) -> str:
    """``no_face / grayscale / too_small`` counts of ``name``'s faces without an embedding (– for older metrics)."""
    counts = summary.get("not_found", {}).get(name)
    return " / ".join(str(counts.get(r, 0)) for r in ("no_face", "grayscale", "too_small")) if counts else "–"


def table4_markdown(evals: dict[str, dict[str, Any]], dec: dict[str, Any] | None = None) -> str:
    """The decoder's numbers, Table 4 (feature distances), retrieval, attribute and convergence tables."""
    first = next(iter(evals.values()))["metrics"]
    ks = sorted(first["recall"], key=int)
    lines = decoder_markdown(dec) if dec is not None else []
    lines += ["# Table 4: speech feature vs true face feature (test split)", "",
             "L1, L2: distances between the encoder's final feature S and the true face feature F (raw fc7, not "
             "normalised); Cos(deg): the angle between them. Primed columns: the same for VGGFace(FD(S)). "
             "Face-to-Face: VGGFace(FD(F)) vs F. Lower is better.", "",
             "| Model | L1 | L2 | Cos(deg) | L'1 | L'2 | Cos'(deg) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    if dec is not None and "face_to_face_distances" in dec:
        # evaluate_decoder's, over the whole test split; the first variant may be a one-gender subset.
        f2f = {f"face_to_face_{k}": v for k, v in dec["face_to_face_distances"].items()}
    else:
        f2f = first
    lines.append(f"| Face-to-Face | – | – | – | {_fmt(f2f['face_to_face_l1'])} | {_fmt(f2f['face_to_face_l2'])} "
                 f"| {_fmt(f2f['face_to_face_angle'], 2)} |")
    for name, entry in evals.items():
        m = entry["metrics"]
        lines.append(f"| {name} | {_fmt(m['l1'])} | {_fmt(m['l2'])} | {_fmt(m['angle'], 2)} | {_fmt(m['primed_l1'])} "
                     f"| {_fmt(m['primed_l2'])} | {_fmt(m['primed_angle'], 2)} |")
    lines += ["", "## Retrieval (SF2F style): recall@k of the true face among the test faces", "",
              "Sample level: gallery = all N test faces, hit = the query's own face. Speaker level: gallery = one "
              "mean face per test speaker. Chance = k / gallery size.", "",
              "| Model | N | " + " | ".join(f"R@{k} (chance)" for k in ks) + " | speakers | "
              + " | ".join(f"spk R@{k} (chance)" for k in ks) + " | median rank |",
              "| --- | ---: | " + " | ".join("---:" for _ in ks) + " | ---: | " + " | ".join("---:" for _ in ks)
              + " | ---: |"]
    for name, entry in evals.items():
        m = entry["metrics"]
        sample = " | ".join(f"{m['recall'][k]:.3f} ({m['recall_chance'][k]:.3f})" for k in ks)
        speaker = " | ".join(f"{m['speaker_recall'][k]:.3f} ({m['speaker_recall_chance'][k]:.3f})" for k in ks)
        lines.append(f"| {name} | {m['n_samples']} | {sample} | {m['n_speakers']} | {speaker} | "
                     f"{m['median_rank']:.1f} |")
    lines += [""] + attributes_markdown(evals, dec)
    lines += identity_markdown(evals)
    lines += ["Voice gender classifier accuracy on each variant's test samples: "
              + ", ".join(f"{name} {_fmt(e['metrics']['gender_agreement'].get('voice_classifier'))}"
                          for name, e in evals.items()), ""]
    conv = convergence(evals)
    if conv:
        lines += ["", "## Convergence (paper Fig. 5: prior variants converge faster than non_prior)", "",
                  "| Model | epochs | first-epoch loss | final loss | epochs to reach non_prior's final loss |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for name, c in conv.items():
            reach = c["epochs_to_non_prior_final"]
            lines.append(f"| {name} | {c['epochs']} | {c['first_epoch_loss']:.4f} | {c['final_loss']:.4f} | "
                         f"{'–' if reach is None else reach} |")
        lines.append("")
        lines.append("male/female train on one gender's data only, so their losses are on a different sample.")
    g = gate(evals)
    lines += ["", "## Learn-something gate", "",
              f"- recall@{g['k']} of `{g['variant']}` on unseen test speakers: {g['recall']:.3f} "
              f"(chance {g['chance']:.3f}) — {'above' if g['above_chance'] else 'NOT above'} chance; "
              f"speaker-level {_fmt(g['speaker_recall'])} (chance {_fmt(g['speaker_chance'])})",
              f"- voice gender classifier accuracy on the test split: {_fmt(g['voice_gender_accuracy'])}",
              f"- prior variants with a lower first-epoch loss than non_prior: "
              f"{g['prior_lower_first_epoch_loss_than_non_prior']}", ""]
    return "\n".join(lines)


def figure6(evals: dict[str, dict[str, Any]], path: str | Path, columns: int) -> None:
    """Face grid: rows original, Face-to-Face, each variant; columns = test speakers (blank if not in a subset)."""
    # Columns come from the first variant evaluated on every test speaker (not a one-gender subset).
    full = [n for n, e in evals.items() if e["faces"] is not None and not (VARIANTS.get(n) and VARIANTS[n].subset)]
    source = full[0] if full else next(n for n, e in evals.items() if e["faces"] is not None)
    keys = evals[source]["keys"][:columns]
    base = evals[source]["faces"]
    rows = [list(base[: len(keys), 0]), list(base[: len(keys), 1])]
    labels = ["original", "Face-to-Face"]
    for name, entry in evals.items():
        if entry["faces"] is None:
            continue
        where = {k: i for i, k in enumerate(entry["keys"])}
        rows.append([entry["faces"][where[k], 2] if k in where else None for k in keys])
        labels.append(name)
    save_grid_png(path, rows, labels)


def figure5(evals: dict[str, dict[str, Any]], path: str | Path) -> None:
    """Per-epoch training loss of every variant (the paper plots non_prior vs neutral_fc)."""
    fig, ax = pyplot().subplots(figsize=(6, 4))
    for name, entry in evals.items():
        hist = entry["history"]
        if hist:
            ax.plot([h["epoch"] for h in hist], [h["loss"] for h in hist], marker="o", ms=3, label=name,
                    lw=2.5 if name in ("non_prior", "neutral_fc") else 1.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("tri-item loss (train)")
    ax.set_title("Speech encoder training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def write_report(eval_dir: str | Path, out_dir: str | Path, params: dict[str, Any],
                 eval_decoder_dir: str | Path | None = None) -> list[Path]:
    """Write table4.md, figure6.png, figure5.png, figure4.png, figure2.png and summary.json; return their paths."""
    evals = load_evaluations(eval_dir)
    dec = None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    copied: list[Path] = []
    if eval_decoder_dir is not None:
        eval_decoder_dir = Path(eval_decoder_dir)
        if not (eval_decoder_dir / "metrics.json").is_file():
            raise ReportError(f"{eval_decoder_dir}/metrics.json not found (run the evaluate_decoder stage first)")
        dec = read_json(eval_decoder_dir / "metrics.json")
        for name in ("figure4.png", "figure2.png"):
            shutil.copyfile(eval_decoder_dir / name, out_dir / name)
            copied.append(out_dir / name)
    table = out_dir / "table4.md"
    with atomic_path(table) as tmp:
        tmp.write_text(table4_markdown(evals, dec), encoding="utf-8")
    fig6 = out_dir / "figure6.png"
    figure6(evals, fig6, int(params["grid_columns"]))
    fig5 = out_dir / "figure5.png"
    figure5(evals, fig5)
    summary = out_dir / "summary.json"
    write_json(summary, {"gate": gate(evals), "convergence": convergence(evals), "decoder": dec,
                         "variants": {n: e["metrics"] for n, e in evals.items()}})
    return [table, fig6, fig5, *copied, summary]
