"""Training, evaluation, report and inference on a tiny generated workspace (dummy shards, features, priors)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from pipeline.arspm import train_encoder as encoder_training
from pipeline.arspm import variant_inputs, variants
from pipeline.arspm.train_decoder import train_decoder
from pipeline.arspm.train_encoder import train_encoder
from pipeline.common.errors import TrainingError
from pipeline.data.attributes import ATTRIBUTES
from pipeline.evaluation.evaluate import EvaluationError, evaluate_variant
from pipeline.evaluation.report import write_report
from pipeline.testing.training import DIM, IMAGE_SIZE, TINY_DECODER, TINY_ENCODER, TINY_EVALUATE, make_training_inputs
from pipeline.training import frozen, loop
from pipeline.training.checkpoints import load_checkpoint, read_header

VARIANTS = ("non_prior", "gender_fc", "male")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("training")
    paths = make_training_inputs(root)
    models = paths["models"]
    paths["decoder_metrics"] = train_decoder(paths["shards"], paths["shards"], paths["features"],
                                             paths["face_encoder"],
                                             models / "decoder.pt", root / "metrics/decoder.json",
                                             root / "plots/decoder", TINY_DECODER)
    for v in VARIANTS:
        train_encoder(v, paths["shards"], paths["features"], paths["priors"], paths["gender"],
                      models / "decoder.pt", paths["face_encoder"], models / f"encoder-{v}.pt",
                      root / f"metrics/encoder-{v}.json", root / f"plots/encoder-{v}", TINY_ENCODER)
        evaluate_variant(v, paths["shards"], paths["features"], paths["priors"], paths["gender"],
                         models / f"encoder-{v}.pt", models / "decoder.pt", paths["face_encoder"],
                         root / f"eval/{v}", root / f"metrics/eval-{v}.json", TINY_EVALUATE, paths["probe"])
    paths["root"] = root
    return paths


def test_decoder_checkpoint_metrics_and_curves(workspace):
    root = workspace["root"]
    model, header = load_checkpoint(workspace["models"] / "decoder.pt", "face_decoder")
    assert header["config"]["feature_dim"] == DIM and header["config"]["image_size"] == IMAGE_SIZE
    assert model(torch.zeros(1, DIM)).shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    m = json.loads((root / "metrics/decoder.json").read_text())
    assert m["epochs"] == 2 and m["samples_per_epoch"] == 8 and np.isfinite(m["final"]["loss"])
    tsv = (root / "plots/decoder/plots/metrics/train/loss.tsv").read_text().splitlines()
    assert tsv[0] == "step\tloss" and len(tsv) == 3  # one row per epoch, no timestamp column
    assert not loop.resume_path_for(workspace["models"] / "decoder.pt").exists()


def test_decoder_trains_on_corpus_and_train_crops_together(workspace, tmp_path):
    """faces: both = the corpus's crops and the train split's in one epoch (here the dummy corpus is a copy of the
    train shards, so an epoch holds each crop twice); an unknown value is one sentence."""
    p = workspace
    corpus = tmp_path / "corpus"
    shutil.copytree(p["shards"], corpus)
    m = train_decoder(corpus, p["shards"], p["features"], p["face_encoder"], tmp_path / "d.pt", tmp_path / "d.json",
                      tmp_path / "plots", {**TINY_DECODER, "faces": "both", "epochs": 1})
    assert m["faces"] == "both" and m["samples_per_epoch"] == 2 * 8
    with pytest.raises(TrainingError, match="must be 'corpus', 'shards' or 'both', got 'all'"):
        train_decoder(corpus, p["shards"], p["features"], p["face_encoder"], tmp_path / "e.pt", tmp_path / "e.json",
                      tmp_path / "plots2", {**TINY_DECODER, "faces": "all", "epochs": 1})


def test_decoder_trains_on_the_corpus_in_bf16(workspace, tmp_path):
    """Corpus features are computed under autocast but cached in fp32: BatchNorm recalibration (no autocast)
    once crashed on bf16 features."""
    p = workspace
    corpus = tmp_path / "corpus"
    shutil.copytree(p["shards"], corpus)
    m = train_decoder(corpus, p["shards"], p["features"], p["face_encoder"], tmp_path / "d.pt", tmp_path / "d.json",
                      tmp_path / "plots", {**TINY_DECODER, "faces": "corpus", "precision": "bf16", "epochs": 1})
    assert m["precision"] == "bf16" and np.isfinite(m["final"]["loss"])


def test_encoder_variants_record_variant_and_subset(workspace):
    root = workspace["root"]
    for v in VARIANTS:
        header = read_header(workspace["models"] / f"encoder-{v}.pt")
        assert header["variant"] == v and len(header["history"]) == 2
        assert header["config"]["fusion"] == variants.VARIANTS[v].fusion
    male = json.loads((root / "metrics/encoder-male.json").read_text())
    assert male["samples_per_epoch"] == 4  # dummy shards: even speakers are male, half of 8 samples
    assert set(json.loads((root / "metrics/encoder-gender_fc.json").read_text())["final"]) >= {"loss", "l1", "l2", "cos"}


def test_evaluation_outputs(workspace):
    root = workspace["root"]
    m = json.loads((root / "metrics/eval-non_prior.json").read_text())
    for key in ("l1", "l2", "angle", "primed_l1", "primed_l2", "primed_angle", "face_to_face_l1",
                "face_to_face_l2", "face_to_face_angle"):
        assert np.isfinite(m[key]), key
    assert m["n_samples"] == 6 and m["recall_chance"] == {"1": 1 / 6, "2": 2 / 6}
    assert set(m["recall"]) == {"1", "2"} and 0 <= m["recall"]["2"] <= 1
    assert m["gender_agreement"]["voice_classifier"] == 1.0  # dummy predictions equal the labels
    table = pq.read_table(root / "eval/non_prior/per_sample.parquet")
    assert table.num_rows == 6 and {"key", "angle", "primed_angle", "rank"} <= set(table.column_names)
    # what the attribute probe read from each sample's faces, by class name, so a misread speaker can be traced
    columns = set(table.column_names)
    assert {"probe_generated_gender", "probe_true_face_gender", "probe_face_to_face_gender"} <= columns
    for face in ("generated", "face_to_face", "true_face"):
        for attribute, classes in ATTRIBUTES.items():
            if f"probe_{face}_{attribute}" in columns:
                read = set(table.column(f"probe_{face}_{attribute}").to_pylist())
                assert read <= {str(c) for c in classes}, (face, attribute, read)
    with np.load(root / "eval/non_prior/faces.npz") as faces:
        assert faces["faces"].shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE, 3) and faces["faces"].dtype == np.uint8
    assert (root / "eval/non_prior/grid.png").stat().st_size > 0
    assert json.loads((root / "eval/male/metrics.json").read_text())["n_samples"] == 3


def test_evaluation_is_deterministic(workspace, tmp_path):
    p = workspace
    evaluate_variant("male", p["shards"], p["features"], p["priors"], p["gender"], p["models"] / "encoder-male.pt",
                     p["models"] / "decoder.pt", p["face_encoder"], tmp_path / "male", tmp_path / "m.json",
                     TINY_EVALUATE, p["probe"])
    for name in ("per_sample.parquet", "faces.npz", "grid.png", "metrics.json"):
        assert (tmp_path / "male" / name).read_bytes() == (p["root"] / "eval/male" / name).read_bytes(), name


def test_report(workspace, tmp_path):
    written = write_report(workspace["root"] / "eval", tmp_path / "reports", {"grid_columns": 4})
    assert [w.name for w in written] == ["table4.md", "figure6.png", "figure5.png", "summary.json"]
    text = (tmp_path / "reports/table4.md").read_text()
    for v in VARIANTS:
        assert f"| {v} |" in text
    assert "Face-to-Face" in text and "chance" in text
    summary = json.loads((tmp_path / "reports/summary.json").read_text())
    assert summary["gate"]["variant"] == "non_prior" and "chance" in summary["gate"]


def test_wrong_variant_checkpoint_and_bad_prior(workspace, tmp_path):
    p = workspace
    with pytest.raises(EvaluationError, match="trained as variant 'male'"):
        evaluate_variant("female", p["shards"], p["features"], p["priors"], p["gender"],
                         p["models"] / "encoder-male.pt", p["models"] / "decoder.pt", p["face_encoder"],
                         tmp_path / "x", tmp_path / "x.json", TINY_EVALUATE, p["probe"])
    bad = tmp_path / "priors"
    bad.mkdir()
    np.savez(bad / "priors.npz", neutral=np.zeros(DIM + 1, np.float32), male=np.zeros(DIM + 1, np.float32),
             female=np.zeros(DIM + 1, np.float32))
    with pytest.raises(TrainingError, match="prior has shape"):
        variant_inputs.load_variant_priors(bad, DIM)
    with pytest.raises(TrainingError, match="unknown variant"):
        variants.get_variant("bogus")


def test_resume_continues_from_last_epoch(workspace, tmp_path, monkeypatch, capsys):
    p = workspace
    out = tmp_path / "encoder.pt"
    args = (p["shards"], p["features"], p["priors"], p["gender"], p["models"] / "decoder.pt", p["face_encoder"],
            out, tmp_path / "m.json", tmp_path / "plots")

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(encoder_training, "save_final", crash)
    with pytest.raises(KeyboardInterrupt):
        train_encoder("non_prior", *args, {**TINY_ENCODER, "epochs": 1})
    state = torch.load(loop.resume_path_for(out), weights_only=True)
    assert state["epoch"] == 1
    monkeypatch.undo()
    metrics = train_encoder("non_prior", *args, {**TINY_ENCODER, "epochs": 1 + 1})
    # params changed (epochs), so the old state is ignored: fingerprint guards resumes from other params
    assert "ignoring" in capsys.readouterr().err and metrics["epochs"] == 2
    shutil.rmtree(tmp_path / "plots")
    monkeypatch.setattr(encoder_training, "save_final", crash)
    with pytest.raises(KeyboardInterrupt):
        train_encoder("non_prior", *args, TINY_ENCODER)
    monkeypatch.undo()
    saved = torch.load(loop.resume_path_for(out), weights_only=True)
    saved["epoch"], saved["history"] = 1, saved["history"][:1]  # as if killed after the first of two epochs
    torch.save(saved, loop.resume_path_for(out))
    metrics = train_encoder("non_prior", *args, TINY_ENCODER)
    assert "resuming" in capsys.readouterr().err
    assert metrics["epochs"] == 2 and metrics["loss_curve"][0] == pytest.approx(saved["history"][0]["loss"])
    assert not loop.resume_path_for(out).exists()
    assert len((tmp_path / "plots/plots/metrics/train/loss.tsv").read_text().splitlines()) == 3


def test_predict_cli_on_real_media(workspace, grid_dir, tmp_path, capsys):
    from pipeline.serve.predict import main

    clip = sorted(p for p in grid_dir.iterdir() if p.suffix.lower() in (".mp4", ".mpg", ".wav", ".avi"))[0]
    out = tmp_path / "face.png"
    common = ["--encoder", str(workspace["models"] / "encoder-gender_fc.pt"),
              "--decoder", str(workspace["models"] / "decoder.pt"), "--priors", str(workspace["priors"])]
    # gender_fc needs the voice gender classifier: a clear one-line error without it
    assert main(["--audio", str(clip), *common, "--out", str(out)]) == 2
    assert "--gender-model" in capsys.readouterr().err
    common[1] = str(workspace["models"] / "encoder-male.pt")
    assert main(["--audio", str(clip), *common, "--out", str(out)]) == 0
    from PIL import Image

    assert Image.open(out).size == (IMAGE_SIZE, IMAGE_SIZE)
    assert main(["--audio", __file__, *common, "--out", str(out)]) == 2
    assert "not an audio or video file" in capsys.readouterr().err
    assert main(["--audio", str(clip), *common[:2], "--decoder", str(workspace["face_encoder"]),
                 "--out", str(out)]) == 2
    assert "expected 'face_decoder'" in capsys.readouterr().err


def test_recalibrate_batchnorm_uses_exact_averages_and_restores_momentum():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 1))
    batches = [torch.randn(4, 3) * 2 + 5 for _ in range(3)] + [torch.randn(1, 3)]  # the 1-sample batch is skipped
    model.train()
    model(torch.randn(4, 3))  # stale statistics from other data
    used = loop.recalibrate_batchnorm(model, batches, model)
    bn = model[0]
    assert used == 3 and not model.training and bn.momentum == 0.1
    # momentum=None: a plain average of the three batch means / unbiased variances
    stacked = torch.stack(batches[:3])
    assert torch.allclose(bn.running_mean, stacked.mean(dim=1).mean(dim=0), atol=1e-5)
    assert torch.allclose(bn.running_var, stacked.var(dim=1, unbiased=True).mean(dim=0), atol=1e-5)
    assert loop.recalibrate_batchnorm(torch.nn.Linear(3, 1), batches, model) == 0


def test_one_feature_type_everywhere(workspace, tmp_path):
    """features/meta.json's relu drives the face encoder; a decoder or encoder trained on the other kind stops."""
    p = workspace
    assert read_header(p["models"] / "decoder.pt")["feature_relu"] is True
    assert read_header(p["models"] / "encoder-male.pt")["feature_relu"] is True
    pre = tmp_path / "features_pre"
    shutil.copytree(p["features"], pre)
    meta = json.loads((pre / "meta.json").read_text())
    (pre / "meta.json").write_text(json.dumps({**meta, "relu": False}))
    device = torch.device("cpu")
    assert frozen.load_face_encoder(p["face_encoder"], p["features"], device)[0].fc7_relu is True
    assert frozen.load_face_encoder(p["face_encoder"], pre, device)[0].fc7_relu is False
    with pytest.raises(TrainingError, match="decoder.pt was trained on post-ReLU face features but .* holds "
                                            "pre-ReLU ones"):
        train_encoder("non_prior", p["shards"], pre, p["priors"], p["gender"], p["models"] / "decoder.pt",
                      p["face_encoder"], tmp_path / "e.pt", tmp_path / "e.json", tmp_path / "plots", TINY_ENCODER)
    with pytest.raises(TrainingError, match="trained on post-ReLU face features"):
        evaluate_variant("male", p["shards"], pre, p["priors"], p["gender"], p["models"] / "encoder-male.pt",
                         p["models"] / "decoder.pt", p["face_encoder"], tmp_path / "x", tmp_path / "x.json",
                         TINY_EVALUATE, p["probe"])
    # a decoder trained on pre-ReLU features records it and is accepted with them
    decoder = train_decoder(p["shards"], p["shards"], pre, p["face_encoder"], tmp_path / "d.pt", tmp_path / "d.json",
                            tmp_path / "dplots", {**TINY_DECODER, "epochs": 1})
    assert decoder["epochs"] == 1 and read_header(tmp_path / "d.pt")["feature_relu"] is False
    frozen.check_feature_kind(read_header(tmp_path / "d.pt"), tmp_path / "d.pt", pre)
    del meta["relu"]
    (pre / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(Exception, match="does not say whether the features are pre- or post-ReLU"):
        frozen.load_face_encoder(p["face_encoder"], pre, device)


def test_missing_gender_prediction_stays_none(tmp_path):
    from pipeline.arspm.gender_predictions import write_predictions
    write_predictions(tmp_path / "predictions.parquet",
                      [{"key": "a", "split": "train", "label": None, "p_female": None, "pred": None},
                       {"key": "b", "split": "train", "label": "F", "p_female": 0.2, "pred": "M"}])
    predictions = variant_inputs.load_gender_predictions(tmp_path)
    assert predictions == {"a": (None, None), "b": ("F", "M")}
    assert variant_inputs.sample_gender({"key": "a"}, predictions) is None
    assert variant_inputs.sample_gender({"key": "b", "gender": "F"}, predictions) == "F"


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_is_recorded(workspace, tmp_path, precision):
    """Autocast (and fp16's GradScaler) through the one training loop: finite losses, fp32 weights, recorded."""
    params = {**TINY_ENCODER, "precision": precision, "num_workers": 0}
    metrics = train_encoder("non_prior", workspace["shards"], workspace["features"], workspace["priors"],
                            workspace["gender"], workspace["models"] / "decoder.pt", workspace["face_encoder"],
                            tmp_path / "enc.pt", tmp_path / "enc.json", tmp_path / "plots", params)
    assert metrics["precision"] == precision and np.isfinite(metrics["final"]["loss"])
    model, _ = load_checkpoint(tmp_path / "enc.pt", "speech_encoder")
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())


def test_unknown_precision_is_one_sentence(workspace, tmp_path):
    with pytest.raises(TrainingError, match=r"^precision must be one of fp32, bf16, fp16, got 'fp8'$"):
        train_encoder("non_prior", workspace["shards"], workspace["features"], workspace["priors"],
                      workspace["gender"], workspace["models"] / "decoder.pt", workspace["face_encoder"],
                      tmp_path / "enc.pt", tmp_path / "enc.json", tmp_path / "plots",
                      {**TINY_ENCODER, "precision": "fp8"})


def test_loader_workers_read_every_sample_once_per_epoch(workspace):
    from pipeline.data.datasets import SplitDataset, make_loader

    dataset = SplitDataset(workspace["shards"], "train", fields=("meta",), shuffle=True, seed=0, buffer_size=4)
    keys_by_workers = {}
    for workers in (0, 2):
        dataset.set_epoch(1)
        keys_by_workers[workers] = [k for batch in make_loader(dataset, 3, num_workers=workers) for k in batch["key"]]
    assert sorted(keys_by_workers[2]) == sorted(keys_by_workers[0]) and len(set(keys_by_workers[2])) == 8


def test_more_loader_workers_than_shards_is_one_sentence(workspace, tmp_path):
    from pipeline.data.datasets import SplitDataset

    shards = len(SplitDataset(workspace["shards"], "train").shard_paths)
    with pytest.raises(TrainingError, match=rf"num_workers {shards + 1} is more than the split's {shards} shard"):
        train_encoder("non_prior", workspace["shards"], workspace["features"], workspace["priors"],
                      workspace["gender"], workspace["models"] / "decoder.pt", workspace["face_encoder"],
                      tmp_path / "enc.pt", tmp_path / "enc.json", tmp_path / "plots",
                      {**TINY_ENCODER, "num_workers": shards + 1})


def test_running_mean_weights_by_count():
    running = loop.RunningMean()
    running.update({"loss": 1.0}, n=3)
    running.update({"loss": 3.0}, n=1)
    assert running.means() == {"loss": 1.5} and running.count == 4
