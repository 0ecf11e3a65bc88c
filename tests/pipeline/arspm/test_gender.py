"""The gender stage's library: which labels the voice classifier trains on, and what it reports."""
from __future__ import annotations

from pipeline.arspm.gender import run_gender
from pipeline.arspm.gender_predictions import read_predictions
from pipeline.testing.app import GENDER
from pipeline.testing.shards import write_dummy_shards
from pipeline.training.checkpoints import load_checkpoint

PARAMS = {**GENDER, "epochs": 1}


def _shards(root, labelled, n_train=8, n_test=4):
    write_dummy_shards(root, "train", n_samples=n_train, labelled=labelled)
    write_dummy_shards(root, "test", n_samples=n_test, labelled=labelled, seed=1)
    return root


def test_a_gender_corpus_trains_the_classifier_when_the_manifest_has_no_labels(tmp_path):
    """AVSpeech's case: no label in the main shards; the classifier learns from the separate labelled corpus,
    its held-out accuracy is the corpus's test speakers', and every main sample still gets a prediction."""
    main = _shards(tmp_path / "shards", labelled=False)
    corpus = _shards(tmp_path / "corpus", labelled=True, n_train=12, n_test=6)
    metrics = run_gender(main, tmp_path / "out", PARAMS, tmp_path / "plots", corpus_dir=corpus)
    assert metrics["available"] and metrics["trained_on"] == "gender_corpus"
    assert metrics["corpus_labels"]["train"] == {"M": 6, "F": 6, "none": 0}
    assert metrics["corpus_test"]["n"] == 6 and metrics["test_accuracy"] == metrics["corpus_test"]["accuracy"]
    assert metrics["test"]["n"] == 0  # nothing to score in the main shards
    rows = read_predictions(tmp_path / "out")
    assert len(rows) == 12 and all(r["label"] is None and r["pred"] in ("M", "F") for r in rows)
    _, header = load_checkpoint(tmp_path / "out" / "model.pt", "voice_gender")
    assert header["trained_on"] == "gender_corpus"
    # the loop every model uses: a dvclive curve per epoch, and no resume state left once the model is saved
    assert len((tmp_path / "plots/plots/metrics/train/loss.tsv").read_text().splitlines()) == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".resume")] == []


def test_without_a_gender_corpus_the_manifest_labels_train_it(tmp_path):
    main = _shards(tmp_path / "shards", labelled=True)
    (tmp_path / "corpus").mkdir()  # an unconfigured gender corpus: empty shards directory
    metrics = run_gender(main, tmp_path / "out", PARAMS, tmp_path / "plots", corpus_dir=tmp_path / "corpus")
    assert metrics["trained_on"] == "manifest" and "corpus_test" not in metrics
    assert metrics["test"]["n"] == 4 and metrics["test_accuracy"] == metrics["test"]["accuracy"]


def test_no_labels_anywhere_means_no_classifier(tmp_path):
    main = _shards(tmp_path / "shards", labelled=False)
    corpus = _shards(tmp_path / "corpus", labelled=False)
    metrics = run_gender(main, tmp_path / "out", PARAMS, tmp_path / "plots", corpus_dir=corpus)
    assert metrics["available"] is False and metrics["trained_on"] is None
    assert not (tmp_path / "out" / "model.pt").exists()
    assert all(r["pred"] is None for r in read_predictions(tmp_path / "out"))
