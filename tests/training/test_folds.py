"""--folds K: stratified folds, no row of a fold's test part in its training, the summary, the errors."""

import json

import numpy as np
import pytest

from conftest import TINY_CLF, one_line_error, run_cli
from textrnn.errors import TextRNNError
from textrnn.training import classifier
from textrnn.training.folds import FOLDS_FILE, check_folds, stratified_folds, summary


def test_folds_cover_every_row_once_with_each_label_spread():
    labels = [0] * 10 + [1] * 5 + [2] * 3
    folds = stratified_folds(labels, 3, seed=1)
    rows = np.concatenate(folds)
    assert sorted(rows.tolist()) == list(range(18))
    for f in folds:
        counts = np.bincount(np.asarray(labels)[f], minlength=3)
        assert counts[0] in (3, 4) and counts[1] in (1, 2) and counts[2] == 1
    assert [f.tolist() for f in stratified_folds(labels, 3, seed=1)] == [f.tolist() for f in folds]


def test_summary_mean_and_spread():
    per = [{"fold": i, "rows": 10, "accuracy": a, "macro_f1": a - 0.1} for i, a in enumerate([0.8, 0.9, 1.0])]
    s = summary(per)
    assert s["rows"] == 30 and s["accuracy"]["mean"] == pytest.approx(0.9)
    assert s["accuracy"]["std"] == pytest.approx(0.1) and (s["accuracy"]["min"], s["accuracy"]["max"]) == (0.8, 1.0)
    assert s["macro_f1"]["mean"] == pytest.approx(0.8)


def test_check_folds():
    check_folds(5, 5, "f")
    with pytest.raises(TextRNNError, match="f has only 4 labelled rows; give --folds 4 or fewer"):
        check_folds(5, 4, "f")
    with pytest.raises(TextRNNError, match=">= 2"):
        check_folds(1, 10, "f")


def test_cross_validation_trains_each_fold_without_its_test_rows(tmp_path, labelled, monkeypatch):
    seen = []
    train_rows = classifier._train_rows

    def spy(out, train, *args, **kw):
        seen.append(list(train.texts))
        return train_rows(out, train, *args, **kw)

    monkeypatch.setattr(classifier, "_train_rows", spy)
    notes = []
    result = classifier.train_classifier(labelled, out=tmp_path / "cv", folds=3, max_steps=4, on_note=notes.append,
                                         **{k: v for k, v in TINY_CLF.items()})
    assert len(seen) == 4 and len(seen[-1]) == 36  # three folds, then every row
    for texts in seen[:3]:
        assert len(texts) == 24  # 36 rows, a third held out each time
    cv = json.loads((result.path / FOLDS_FILE).read_text())
    assert cv == result.folds and cv["folds"] == 3 and cv["rows"] == 36
    assert [f["rows"] for f in cv["per_fold"]] == [12, 12, 12]
    assert cv["accuracy"]["mean"] == pytest.approx(np.mean([f["accuracy"] for f in cv["per_fold"]]), abs=1e-5)
    assert [n.split(":")[0] for n in notes] == ["fold 1 of 3", "fold 2 of 3", "fold 3 of 3"]


def test_cross_validation_held_out_rows_are_not_in_the_fold_vocabulary(tmp_path, labelled, monkeypatch):
    """A word that occurs only in one row is unknown to the model of the fold that holds that row out."""
    import csv

    rows = list(csv.reader(open(labelled)))[1:]
    rows[0][0] += " zyzzyva"
    path = tmp_path / "one_rare.csv"
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([["review", "sentiment"], *rows])
    vocabularies = []
    execute = classifier.execute

    def spy(out, run, tok, *args, **kw):
        vocabularies.append("zyzzyva" in tok.hf.get_vocab())
        return execute(out, run, tok, *args, **kw)

    monkeypatch.setattr(classifier, "execute", spy)
    classifier.train_classifier(path, out=tmp_path / "cv", folds=3, max_steps=1, **TINY_CLF)
    assert vocabularies[:3].count(False) == 1 and vocabularies[3]  # one fold did not see it; the final run did


def test_bad_folds_are_one_line_errors(tmp_path, labelled):
    base = ["train", "--task", "classify", str(labelled), "--max-steps", "1"]
    one_line_error(run_cli([*base, "-o", str(tmp_path / "a"), "--folds", "99"]), "--folds 99", "36 labelled rows")
    one_line_error(run_cli([*base, "-o", str(tmp_path / "b"), "--folds", "1"]), "--folds must be")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_cli_prints_the_cross_validated_scores(tmp_path, labelled):
    opts = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_CLF.items()]
    res = run_cli(["train", "--task", "classify", str(labelled), "-o", str(tmp_path / "cv"), "--folds", "2",
                   "--max-steps", "2", *opts])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "2-fold cross-validation over 36 rows: accuracy" in out and "trained on every row" in out
