"""Classifier: model, training on tiny separable data, prediction and the CLI."""

import csv
import io
import json

import pytest
import torch
from click.testing import CliRunner

from textrnn.api import load
from textrnn.classify import evaluate
from textrnn.cli import cli
from textrnn.config import ModelConfig
from textrnn.errors import TextRNNError
from textrnn.model import Classifier
from textrnn.training.classifier import train_classifier
from textrnn.training.lm import train_language_model

POS = ["a great fine film", "great acting and a fine story", "fine fun great", "what a great joy",
       "fine and great", "a joy , great fun"]
NEG = ["a bad dull film", "awful acting and a bad story", "dull bad awful", "what a bad mess",
       "awful and dull", "a mess , bad plot"]
TINY_CLF = dict(hidden=16, embed=16, batch_size=4, eval_every=10, save_every=10, warmup_steps=2, lr=0.02,
                dropout=0.0)


def write_csv(path, rows, header=("review", "sentiment")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def labelled(tmp_path):
    rows = [(t, "positive") for t in POS] + [(t, "negative") for t in NEG]
    rows = rows * 3
    return write_csv(tmp_path / "reviews.csv", rows)


@pytest.fixture
def clf_run(tmp_path, labelled):
    out = tmp_path / "clf"
    result = train_classifier(labelled, out=out, val_file=labelled, max_steps=40, **TINY_CLF)
    return out, result


def test_packed_padded_equals_one_by_one():
    torch.manual_seed(0)
    for cell in ("lstm", "gru", "rnn"):
        model = Classifier(ModelConfig(vocab_size=20, cell=cell, hidden=8, embed=6, layers=2, bidirectional=True,
                                       num_classes=3, dropout=0.0)).eval()
        lengths = torch.tensor([7, 3, 5, 1])
        ids = torch.randint(1, 20, (4, 7))
        for i, n in enumerate(lengths):
            ids[i, n:] = 0
        batched = model(ids, lengths)
        single = torch.cat([model(ids[i:i + 1, :n], lengths[i:i + 1]) for i, n in enumerate(lengths)])
        torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)
        # the padding value does not matter
        ids2 = ids.clone()
        for i, n in enumerate(lengths):
            ids2[i, n:] = 13
        torch.testing.assert_close(model(ids2, lengths), batched)


def test_learns_a_separable_set_and_keeps_label_names(clf_run):
    out, result = clf_run
    assert result.best["val_acc"] == 1.0
    clf = load(out, task="classify")
    assert clf.labels == ["negative", "positive"]
    assert clf.classify("a great joy")[0] == "positive"
    assert [lab for lab, _ in clf.classify(["bad dull mess", "fine great fun"])] == ["negative", "positive"]
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "classify" and config["labels"] == ["negative", "positive"]


def test_integer_labels_round_trip(tmp_path):
    path = tmp_path / "ints.jsonl"
    with open(path, "w") as f:
        for _ in range(3):
            for t in POS:
                f.write(json.dumps({"text": t, "label": 1}) + "\n")
            for t in NEG:
                f.write(json.dumps({"text": t, "label": 0}) + "\n")
    train_classifier(path, out=tmp_path / "run", val_file=path, max_steps=40, **TINY_CLF)
    clf = load(tmp_path / "run", task="classify")
    assert clf.labels == [0, 1]
    assert clf.classify("great fine fun")[0] == 1


def test_evaluate_metrics():
    m = evaluate([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["per_class"]["c"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3, abs=1e-4)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_init_from_language_model(tmp_path, labelled):
    text = tmp_path / "text.txt"
    text.write_text(("\n".join(POS + NEG) + "\n") * 20)
    train_language_model([text], out=tmp_path / "lm", tokenizer="word", max_steps=5, hidden=16, embed=16,
                         batch_size=2, seq_len=8, eval_every=5)
    lm = load(tmp_path / "lm")
    train_classifier(labelled, out=tmp_path / "clf", val_file=labelled, init_from=tmp_path / "lm", max_steps=1,
                     **{**TINY_CLF, "lr": 1e-9, "warmup_steps": 0})
    clf = load(tmp_path / "clf", task="classify")
    assert clf.tokenizer.to_json() == lm.tokenizer.to_json()
    # the forward direction starts from the LM's weights (a tiny learning rate barely moves them)
    torch.testing.assert_close(clf.model.encoder.rnn.weight_hh_l0, lm.model.encoder.rnn.weight_hh_l0,
                               atol=1e-6, rtol=0)
    with pytest.raises(TextRNNError, match="model size"):
        train_classifier(labelled, out=tmp_path / "clf2", init_from=tmp_path / "lm", hidden=99, max_steps=1)
    # a run started from an LM resumes with the same optimizer groups (slower pretrained rates)
    opts = {**TINY_CLF, "eval_every": 2, "save_every": 2}
    train_classifier(labelled, out=tmp_path / "clf3", init_from=tmp_path / "lm", max_steps=2, **opts)
    resumed = train_classifier(labelled, out=tmp_path / "clf3", init_from=tmp_path / "lm", max_steps=4,
                               resume=True, **opts)
    assert resumed.steps == 4
    scales = json.loads((tmp_path / "clf3" / "config.json").read_text())["lr_scales"]
    assert scales and set(scales.values()) == {0.25}


def test_one_class_and_missing_column(tmp_path):
    one = write_csv(tmp_path / "one.csv", [("good", "pos"), ("fine", "pos")])
    with pytest.raises(TextRNNError, match="only one class"):
        train_classifier(one, out=tmp_path / "r1", max_steps=1)
    nolabel = write_csv(tmp_path / "nolabel.csv", [("good", "x")], header=("review", "stars"))
    with pytest.raises(TextRNNError, match="--label-column"):
        train_classifier(nolabel, out=tmp_path / "r2", max_steps=1)


# -- CLI ---------------------------------------------------------------------------------

def run(args, **kw):
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


CLI_TINY = ["--hidden", "16", "--embed", "16", "--batch-size", "4", "--eval-every", "10", "--lr", "0.02",
            "--dropout", "0", "--warmup-steps", "2"]


@pytest.fixture
def cli_run(tmp_path, labelled, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = run(["train", str(labelled), "--val-file", str(labelled), "--max-steps", "40", *CLI_TINY])
    assert res.exit_code == 0, res.output
    assert "val accuracy" in res.output
    return tmp_path / "checkpoints" / "reviews"


def test_cli_train_then_classify_keeps_rows_and_order(cli_run, tmp_path):
    rows = [("dull bad awful", "negative", "x1"), ("great fine fun", "positive", "x2"),
            ('a "great" joy,\nfine', "positive", "x3"), ("what a mess", "negative", "x4")]
    path = write_csv(tmp_path / "new.csv", rows, header=("review", "sentiment", "id"))
    res = run(["classify", str(path), "--probs"])
    assert res.exit_code == 0, res.output
    out = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [r["id"] for r in out] == ["x1", "x2", "x3", "x4"]
    assert [r["review"] for r in out] == [r[0] for r in rows]
    assert list(out[0]) == ["review", "sentiment", "id", "label", "score", "prob_negative", "prob_positive"]
    assert [r["label"] for r in out] == ["negative", "positive", "positive", "negative"]
    for r in out:
        assert float(r["score"]) == pytest.approx(max(float(r["prob_negative"]), float(r["prob_positive"])), abs=1e-5)
    assert "accuracy 100.00%" in res.stderr and "confusion" in res.stderr


def test_cli_classify_jsonl_output_stdin_and_text(cli_run, tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("great fun\nbad mess\n")
    out = tmp_path / "pred.jsonl"
    assert run(["classify", str(path), "--output", str(out)]).exit_code == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["label"] for g in got] == ["positive", "negative"] and got[0]["text"] == "great fun"
    res = run(["classify", "-", "--input-format", "txt"], input="awful dull\n")
    assert res.exit_code == 0 and "negative" in res.stdout
    res = run(["classify", "--text", "a great fine joy", "--format", "jsonl"])
    assert json.loads(res.stdout)["label"] == "positive"
    res = run(["classify", "--text", "a great fine joy", "--format", "table"])
    assert res.exit_code == 0 and "positive" in res.stdout


def _one_line_error(res, *fragments):
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_cli_classifier_errors(cli_run, tmp_path):
    lm_text = tmp_path / "t.txt"
    lm_text.write_text("some text for a language model\n" * 50)
    assert run(["train", str(lm_text), "--max-steps", "2", "--hidden", "8", "--embed", "8", "--batch-size", "2",
                "--seq-len", "8", "--out", str(tmp_path / "lm")]).exit_code == 0
    nocol = write_csv(tmp_path / "nocol.csv", [("1", "2")], header=("a", "b"))
    existing = tmp_path / "keep.csv"
    existing.write_text("precious\n")
    _one_line_error(run(["classify", str(nocol)]), "--text-column")
    _one_line_error(run(["classify", "--text", "x", "--checkpoint", str(tmp_path / "lm")]), "language model")
    _one_line_error(run(["generate", "--checkpoint", str(cli_run)]), "classifier")
    _one_line_error(run(["classify", "--text", "x", "--output", str(tmp_path / "no" / "dir.csv")]), "does not exist")
    _one_line_error(run(["classify", "--text", "x", "--output", str(tmp_path)]), "is a directory")
    _one_line_error(run(["classify"]), "FILE")
    _one_line_error(run(["train", str(nocol), "--text-column", "a", "--label-column", "b",
                         "--out", str(tmp_path / "r")]),
                    "only one class")
    assert existing.read_text() == "precious\n"


def test_classifier_interrupt_and_resume_is_exact(tmp_path, labelled):
    import os
    import signal

    from textrnn import checkpoint

    opts = dict(TINY_CLF, dropout=0.2, eval_every=5, save_every=5, max_steps=20)
    train_classifier(labelled, out=tmp_path / "full", val_file=labelled, **opts)

    def stop_at_8(p):
        if p.step == 8 and p.event == "step":
            os.kill(os.getpid(), signal.SIGINT)

    first = train_classifier(labelled, out=tmp_path / "part", val_file=labelled, on_progress=stop_at_8,
                             report_every=1, **opts)
    assert first.stopped_by == "interrupt" and first.steps == 8
    train_classifier(labelled, out=tmp_path / "part", val_file=labelled, resume=True, **opts)
    full, part = checkpoint.read_metrics(tmp_path / "full"), checkpoint.read_metrics(tmp_path / "part")
    assert [m["step"] for m in part] == [m["step"] for m in full] == [5, 10, 15, 20]
    for a, b in zip(full, part):
        assert a["val_loss"] == b["val_loss"] and a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6)


def test_shipped_sentiment_classifier():
    from textrnn.checkpoint import SHIPPED

    shipped = SHIPPED[0]
    size = sum(p.stat().st_size for p in shipped.iterdir() if p.is_file())
    assert size <= 10 * 1024 * 1024, size
    clf = load(shipped, task="classify")
    assert clf.labels == [0, 1]
    got = clf.classify(["a gorgeous , witty , deeply moving film .", "a dull , lifeless mess ."])
    assert [label for label, _ in got] == [1, 0]


def test_macro_f1_ignores_classes_absent_from_gold_and_predictions():
    m = evaluate([0, 0, 1], [0, 0, 1], ["a", "b", "c"])
    assert m["macro_f1"] == 1.0 and m["per_class"]["c"]["support"] == 0
    m = evaluate([0, 1], [0, 0], ["a", "b", "c"])  # b is in gold only: it counts (F1 0)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0) / 2, abs=1e-4)
    assert evaluate([], [], ["a", "b"])["macro_f1"] == 0.0


def test_prediction_rows_add_label_and_score_or_predicted_columns():
    import numpy as np

    from textrnn.classify import prediction_rows

    probs = np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32)
    rows = [{"text": "a", "id": 1}, {"text": "b", "id": 2}]
    out, columns = prediction_rows(rows, ["text", "id"], ["neg", "pos"], probs)
    assert columns == ["text", "id", "label", "score"]
    assert [(r["label"], r["score"]) for r in out] == [("pos", 0.8), ("neg", 0.9)]
    assert rows == [{"text": "a", "id": 1}, {"text": "b", "id": 2}]  # the input is not changed
    # an input with a label column gets predicted_* columns; classifying the output again
    # overwrites them in place
    gold = [{"text": "a", "label": "pos"}, {"text": "b", "label": "pos"}]
    first, cols1 = prediction_rows(gold, ["text", "label"], ["neg", "pos"], probs, with_probs=True)
    assert cols1 == ["text", "label", "predicted_label", "predicted_score", "prob_neg", "prob_pos"]
    assert first[1]["predicted_label"] == "neg" and first[1]["label"] == "pos" and first[0]["prob_neg"] == 0.2
    again, cols2 = prediction_rows(first, cols1, ["neg", "pos"], probs[::-1], with_probs=True)
    assert cols2 == cols1 and [r["predicted_label"] for r in again] == ["neg", "pos"]


def test_score_against_gold_counts_unknown_and_unlabelled_rows():
    from textrnn.classify import score_against_gold

    score = score_against_gold([1, "0", None, " ", "maybe", 1.0], [1, 0, 0, 1, 1, 0], [0, 1])
    assert (score["labelled"], score["unknown"], score["unlabelled"]) == (4, 1, 2)
    assert score["metrics"] == evaluate([1, 0, 1], [1, 0, 0], [0, 1])
    nothing = score_against_gold(["x", "y"], [0, 1], [0, 1])
    assert nothing["metrics"] is None and (nothing["labelled"], nothing["unknown"]) == (2, 2)
    assert score_against_gold(["", None], [0, 1], [0, 1])["labelled"] == 0
