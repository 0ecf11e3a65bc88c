"""dvc.yaml declares exactly what each stage uses, caches everything, and a param change reruns only what it touches.

The static checks read dvc.yaml/params.yaml. The dynamic ones change one knob in a copy of a tiny project on which
the DAG has run, and compare what ``dvc status --json`` reports (the stage whose params changed) and the stages
downstream of it in ``dvc dag`` (what ``dvc repro`` may then run; byte-identical outputs can stop it earlier)
with the exact expected sets.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.common.params import load_params
from pipeline.testing.project import (
    changed_stages,
    clone_workspace,
    dag_edges,
    ran_stages,
    read_params,
    run_dvc,
    session_base,
    shared_tiny_run,
    stage_names,
    with_descendants,
    write_params,
)


def _dvc_yaml(repo_root: Path) -> dict[str, Any]:
    return yaml.safe_load((repo_root / "dvc.yaml").read_text(encoding="utf-8"))


def _stage_bodies(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: stage.get("do", stage) for name, stage in spec["stages"].items()}


def _out_entries(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    entries = []
    for kind in ("outs", "metrics", "plots"):
        for entry in body.get(kind) or []:
            if isinstance(entry, str):
                entries.append((entry, {}))
            else:
                (path, opts), = entry.items()
                entries.append((path, opts or {}))
    return entries


# ----------------------------------------------------------------------------------------------- static


def test_every_output_cached_and_not_persisted(repo_root: Path) -> None:
    """``cache: false`` or ``persist: true`` would keep an output out of the run-cache a teammate pulls."""
    for name, body in _stage_bodies(_dvc_yaml(repo_root)).items():
        for path, opts in _out_entries(body):
            assert opts.get("cache", True) is True, f"{name}: {path} has cache: false"
            assert opts.get("persist", False) is False, f"{name}: {path} has persist: true"


def _expanded_outs(spec: dict[str, Any], params: dict[str, Any]) -> list[str]:
    """Every output path, with foreach stages expanded over their items (``${item}``)."""
    outs = []
    for stage in spec["stages"].values():
        body = stage.get("do", stage)
        paths = [path for path, _ in _out_entries(body)]
        if "foreach" in stage:
            section, _, key = str(stage["foreach"]).strip("${} ").partition(".")
            items = params[section][key]
            paths = [p.replace("${item}", str(item)) for p in paths for item in items]
        outs += paths
    return outs


def test_metrics_and_plots_are_stage_outputs(repo_root: Path) -> None:
    spec = _dvc_yaml(repo_root)
    bodies = _stage_bodies(spec)
    outs = _expanded_outs(spec, load_params(repo_root / "params.yaml"))
    for name, body in bodies.items():
        for path in body.get("metrics") or []:
            assert isinstance(path, (str, dict)), name
    plot_files = []
    for plot in spec.get("plots") or []:
        (_, definition), = plot.items() if isinstance(plot, dict) else ((plot, {}),)
        y = (definition or {}).get("y", {})
        plot_files += list(y) if isinstance(y, dict) else []
    assert plot_files, "top-level plots expected"
    for file in plot_files:
        owners = [o for o in outs if file == o or file.startswith(o.rstrip("/") + "/")]
        assert owners, f"plot file {file} is not inside any stage output"


# preflight exists to check other stages' settings before they run (seconds, before any download). The gender
# corpus goes through the download and preprocess code with their settings, so that its spectrograms are made
# exactly like the ones the classifier then labels.
_SECTION_KEYS = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
CROSS_SECTION_CHECKS = {
    "preflight": {"manifest.labels", "gender_corpus.labels", "train_encoder.variants"},
    "gender_corpus_download": {f"download.{k}" for k in _SECTION_KEYS["download"]},
    "gender_corpus_preprocess": {f"preprocess.{k}" for k in _SECTION_KEYS["preprocess"]},
}


def test_stage_params_are_leaf_keys_of_its_own_section(repo_root: Path) -> None:
    params = load_params(repo_root / "params.yaml")
    for name, body in _stage_bodies(_dvc_yaml(repo_root)).items():
        for entry in body.get("params") or []:
            assert isinstance(entry, str), f"{name}: use 'section.key' entries, not {entry!r}"
            section, _, key = entry.partition(".")
            assert section == name or entry in CROSS_SECTION_CHECKS.get(name, ()), \
                f"{name} depends on another stage's param {entry}"
            assert key in params[section], f"{name}: {entry} missing from params.yaml"
            assert not isinstance(params[section][key], dict), f"{name}: {entry} is a section, not a leaf"


# The code deps (every file a stage runs, and only those) are generated and checked by pipeline.ops.deps:
# tests/pipeline/ops/test_deps.py.


# ----------------------------------------------------------------------------------------------- dynamic

ALL_VARIANTS = ("non_prior", "neutral_fc")
ENCODERS = {f"train_encoder@{v}" for v in ALL_VARIANTS}
EVALUATES = {f"evaluate@{v}" for v in ALL_VARIANTS}
TRAINING_TAIL = ENCODERS | EVALUATES | {"compare", "report"}  # compare draws AR-SPM's neutral_fc faces
SF2F = {"sf2f_train", "sf2f_fuser"}
SELFSUP = {"contrastive", "train_selfsup_gan"}
SCLDM = {"scldm_autoencoder", "scldm_train", "scldm_sample"}
PRIOR_TAIL = {"scldm_train", "scldm_sample"}  # SCLDM's face prior averages the priors stage's neutral-prior faces


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_tiny_run(session_base(tmp_path_factory))


@pytest.fixture()
def project(tiny_run: Path, tmp_path: Path) -> Path:
    return clone_workspace(tiny_run, tmp_path / "project")


@pytest.fixture(scope="module")
def tiny_edges(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    """The tiny project's DAG, read once (from a copy: the shared run is read-only): no knob below changes it."""
    return dag_edges(clone_workspace(tiny_run, tmp_path_factory.mktemp("dag") / "project"))


@pytest.mark.slow
def test_unchanged_project_is_up_to_date(project: Path) -> None:
    assert changed_stages(project) == set()
    proc = run_dvc(project, "repro", check=True)
    assert ran_stages(proc.stdout) == set()


@pytest.mark.slow
def test_editing_the_renderer_reruns_only_the_stages_that_draw(project: Path) -> None:
    """A comment edit in the face renderer reruns sample, face_corpus and judge_corpus; their outputs are
    byte-identical, so nothing after them runs (before the layers, this retrained the face encoder and reran every
    evaluation)."""
    renderer = project / "pipeline" / "data" / "sample" / "face.py"
    renderer.write_text(renderer.read_text() + "\n# a comment: the drawing is unchanged\n")
    assert changed_stages(project) == {"sample", "face_corpus", "judge_corpus"}
    proc = run_dvc(project, "repro", check=True)
    assert ran_stages(proc.stdout) == {"sample", "face_corpus", "judge_corpus"}
    assert changed_stages(project) == set()


@pytest.mark.slow
def test_a_family_edit_reruns_only_that_family_and_the_comparison(project: Path) -> None:
    """Code under pipeline/families/sf2f/ is a dependency of SF2F's stages and of compare only, never of an AR-SPM
    stage (the layer contract keeps it so)."""
    modules = project / "pipeline" / "families" / "sf2f" / "modules.py"
    modules.write_text(modules.read_text() + "\n# edited\n")
    assert changed_stages(project) == {"sf2f_train", "sf2f_fuser", "compare"}


KNOBS = {
    "priors.n": ({"priors": {"n": 3}}, {"priors"}, {"priors", "evaluate_decoder"} | TRAINING_TAIL | PRIOR_TAIL),
    "train_decoder.lr": (
        {"train_decoder": {"lr": 0.002}},
        {"train_decoder"},
        {"train_decoder", "evaluate_decoder"} | TRAINING_TAIL,
    ),
    "preprocess.image_size": (  # the gender corpus is preprocessed with the same settings as the main corpus
        {"preprocess": {"image_size": 32}},
        {"preprocess", "gender_corpus_preprocess"},
        {"preprocess", "gender_corpus_preprocess", "face_encoder", "features", "gender", "priors", "train_decoder",
         "evaluate_decoder"} | TRAINING_TAIL | SF2F | SELFSUP | SCLDM,
    ),
    "gender_corpus.test_fraction": (
        {"gender_corpus": {"test_fraction": 0.5}},
        {"gender_corpus"},
        {"gender_corpus", "gender_corpus_download", "gender_corpus_preprocess", "gender", "priors",
         "evaluate_decoder"} | TRAINING_TAIL | PRIOR_TAIL,
    ),
    "face_corpus.n_identities": (
        {"face_corpus": {"n_identities": 10}},
        {"face_corpus"},
        {"face_corpus", "face_encoder", "features", "priors", "train_decoder", "attribute_probe",
         "evaluate_decoder", "judge"} | TRAINING_TAIL | SF2F | SCLDM,
    ),
    "attribute_probe.epochs": (
        {"attribute_probe": {"epochs": 2}},
        {"attribute_probe"},
        {"attribute_probe", "evaluate_decoder"} | EVALUATES | {"compare", "report"},
    ),
    "train_encoder.lambdas": ({"train_encoder": {"lambdas": [1.0, 0.0, 1.2]}}, ENCODERS, TRAINING_TAIL),
    "evaluate.recall_k": ({"evaluate": {"recall_k": [1]}}, EVALUATES, EVALUATES | {"report"}),
    # a family's key reruns only that family, the comparison and the report
    "sf2f_train.lr": ({"sf2f_train": {"lr": 0.001}}, {"sf2f_train"}, SF2F | {"compare", "report"}),
    "sf2f_fuser.steps": ({"sf2f_fuser": {"steps": 3}}, {"sf2f_fuser"}, {"sf2f_fuser", "compare", "report"}),
    "contrastive.embed_dim": ({"contrastive": {"embed_dim": 16}}, {"contrastive"},
                              SELFSUP | PRIOR_TAIL | {"compare", "report"}),
    "train_selfsup_gan.steps": ({"train_selfsup_gan": {"steps": 3}}, {"train_selfsup_gan"},
                                {"train_selfsup_gan", "compare", "report"}),
    "scldm_autoencoder.widths": ({"scldm_autoencoder": {"widths": [4, 4, 8]}}, {"scldm_autoencoder"},
                                 SCLDM | {"compare", "report"}),
    "scldm_train.prior": ({"scldm_train": {"prior": False}}, {"scldm_train"}, PRIOR_TAIL | {"compare", "report"}),
    # the sampler's keys rerun sampling, the comparison and the report, never the training
    "scldm_sample.guidance_scale": ({"scldm_sample": {"guidance_scale": 3.0}}, {"scldm_sample"},
                                    {"scldm_sample", "compare", "report"}),
    "scldm_sample.ddim_steps": ({"scldm_sample": {"ddim_steps": 3}}, {"scldm_sample"},
                                {"scldm_sample", "compare", "report"}),
    "judge.epochs": ({"judge": {"epochs": 2}}, {"judge"}, {"judge", "compare", "report"}),
    "compare.kway_trials": ({"compare": {"kway_trials": 7}}, {"compare"}, {"compare", "report"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("knob", sorted(KNOBS))
def test_param_change_reruns_exactly_its_stage_and_downstream(project: Path, tiny_edges, knob: str) -> None:
    overrides, direct, downstream = KNOBS[knob]
    write_params(project, overrides)
    assert changed_stages(project) == direct
    assert with_descendants(direct, tiny_edges) == downstream
    upstream_untouched = {"sample", "manifest", "download"}
    assert not downstream & upstream_untouched


@pytest.mark.slow
def test_variant_list_adds_and_removes_stages(project: Path) -> None:
    variants = list(read_params(project)["train_encoder"]["variants"])
    assert tuple(variants) == ALL_VARIANTS
    write_params(project, {"train_encoder": {"variants": variants + ["neutral"]}})
    new = {"train_encoder@neutral", "evaluate@neutral"}
    assert new <= set(stage_names(project))
    # the existing variants are untouched; preflight re-checks the variant list (seconds)
    assert changed_stages(project) == new | {"preflight"}
    assert with_descendants(new, dag_edges(project)) == new | {"report"}
    proc = run_dvc(project, "repro", "manifest", check=True)
    assert ran_stages(proc.stdout) == {"preflight"}  # its marker is unchanged: manifest and all after it skip

    write_params(project, {"train_encoder": {"variants": ["non_prior"]}})
    names = set(stage_names(project))
    assert "train_encoder@neutral_fc" not in names and "evaluate@neutral_fc" not in names
    assert changed_stages(project) == {"preflight"}  # only the cheap re-check of the list


@pytest.mark.slow
def test_unknown_params_key_is_refused(project: Path) -> None:
    """``-S`` with a key params.yaml does not have, and a typo'd key in params.yaml, both stop with a clear message."""
    proc = run_dvc(project, "exp", "run", "-S", "priors.nn=5")
    assert proc.returncode != 0
    assert "Key 'nn' is not in struct" in proc.stdout + proc.stderr

    params = read_params(project)
    params["priors"]["nn"] = params["priors"].pop("n")  # a renamed key: DVC itself names the missing one
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    proc = run_dvc(project, "repro", "--single-item", "priors")
    assert proc.returncode != 0
    assert "Parameters 'priors.n' are missing from 'params.yaml'" in proc.stdout + proc.stderr

    params["priors"]["n"] = 3  # an extra, typo'd key beside the real one: the stage refuses it
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    proc = run_dvc(project, "repro", "--single-item", "priors")
    assert proc.returncode != 0
    assert "unknown params key 'priors.nn'" in proc.stdout + proc.stderr
    assert "did you mean 'n'?" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_a_bad_override_stops_its_stage_with_one_sentence(project: Path) -> None:
    """``dvc exp run -S`` values reach the stage through params.yaml and its schema, like every other value."""
    proc = run_dvc(project, "exp", "run", "-S", "priors.n=abc")
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "priors: error: params key 'priors.n' = 'abc' is not allowed: it must be a valid integer" in output
    assert "Traceback" not in output


@pytest.mark.slow
def test_prior_n_larger_than_train_set_uses_all_and_says_so(project: Path) -> None:
    write_params(project, {"priors": {"n": 1000}})
    proc = run_dvc(project, "repro", "--single-item", "priors")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ran_stages(proc.stdout) == {"priors"}
    output = proc.stdout + proc.stderr
    assert "asked for n=1000" in output and "using" in output
    metrics = yaml.safe_load((project / "metrics" / "priors.json").read_text(encoding="utf-8"))
    neutral = metrics["groups"]["neutral"]
    assert neutral["capped"] is True and neutral["n_used"] == neutral["n_available"] < 1000


@pytest.mark.slow
def test_dvc_repro_of_train_decoder_with_two_processes(project: Path) -> None:
    """``nproc: 2`` through ``dvc repro``: one stage, one command, two ranks under torchrun, outputs cached."""
    import json

    write_params(project, {"train_decoder": {"nproc": 2}})
    proc = run_dvc(project, "repro", "-s", "train_decoder", check=True,
                   env={"GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"})
    assert "train_decoder: trained by 2 processes under torchrun (rank 0 wrote the outputs)" in proc.stdout
    assert json.loads((project / "metrics" / "decoder.json").read_text())["world_size"] == 2
    assert "train_decoder" not in changed_stages(project)  # its new outputs are recorded in dvc.lock
