"""textrnn classify end to end: output formats that round-trip, re-classifying, gold-label scoring."""

import csv
import io
import json

import pytest

from conftest import one_line_error, run_cli as run, write_csv
from textrnn.data.tables import read_table


def test_cli_gold_labels_are_normalised_like_training(int_clf, tmp_path):
    path = tmp_path / "gold.jsonl"  # floats and "+1": the same labels as 1 and 0
    path.write_text(json.dumps({"text": "fine fun great", "label": 1.0}) + "\n"
                    + json.dumps({"text": "dull bad awful", "label": 0.0}) + "\n"
                    + json.dumps({"text": "what a great joy", "label": "+1"}) + "\n")
    res = run(["classify", str(path), "--checkpoint", str(int_clf)])
    assert res.exit_code == 0, res.output
    assert "accuracy 100.00%" in res.stderr and "left out" not in res.stderr


def test_the_shipped_classifier_answers_names_and_scores_gold_0_and_1(tmp_path):
    """sst2 writes negative / positive; a file labelled 0 / 1 (SST-2's own) is scored against them."""
    from pathlib import Path

    dev = (Path(__file__).resolve().parents[2] / "corpora" / "sst2" / "dev.tsv").read_text().splitlines()
    src = tmp_path / "dev.tsv"
    src.write_text("\n".join(dev[:41]) + "\n")
    res = run(["classify", str(src), "--checkpoint", "sst2", "--format", "jsonl"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 40 and {r["predicted_label"] for r in rows} == {"negative", "positive"}
    assert {r["label"] for r in rows} == {"0", "1"}  # the gold column as it was
    assert "accuracy" in res.stderr and "left out" not in res.stderr and "no rows" not in res.stderr


def test_min_confidence_labels_rows_uncertain_and_reports_the_confident_rows(int_clf, tmp_path):
    src = tmp_path / "gold.csv"
    src.write_text("text,label\nfine fun great,1\ndull bad awful,0\nfilm,1\nwhat a great joy,0\n")
    plain = run(["classify", str(src), "-c", str(int_clf), "--format", "jsonl"])
    assert plain.exit_code == 0, plain.output
    rows = [json.loads(line) for line in plain.stdout.splitlines()]
    p = sorted(r["predicted_score"] for r in rows)[1]  # one row below it, three at or above
    res = run(["classify", str(src), "-c", str(int_clf), "--format", "jsonl", "--min-confidence", str(p)])
    assert res.exit_code == 0, res.output
    got = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["predicted_label"] for r in got] == [r["predicted_label"] if r["predicted_score"] >= p else "uncertain"
                                                   for r in rows]
    assert [r["predicted_score"] for r in got] == [r["predicted_score"] for r in rows]
    lines = res.stderr.splitlines()
    assert lines[0] == plain.stderr.splitlines()[0]  # accuracy over all rows, as before
    assert lines[1].startswith("expected calibration error ") and lines[1].endswith("(15 bins of confidence, 4 rows)")
    assert lines[2].startswith(f"confident rows (probability >= {p:g}): 3 of 4 (75.0%): accuracy ")
    assert "macro-F1" in lines[2] and "expected calibration error" in plain.stderr and "confident" not in plain.stderr


@pytest.mark.parametrize("value", ["0", "1", "-0.5", "2", "nan"])
def test_a_min_confidence_that_is_no_probability_is_one_line(value, int_clf):
    one_line_error(run(["classify", "--text", "fine", "-c", str(int_clf), "--min-confidence", value]),
                   "--min-confidence must be a probability between 0 and 1")


def test_min_confidence_with_a_model_that_has_a_label_named_uncertain_is_one_line(int_clf, tmp_path):
    import shutil

    clf = tmp_path / "clf"
    shutil.copytree(int_clf, clf, ignore=shutil.ignore_patterns("last", ".lock"))
    config = json.loads((clf / "config.json").read_text())
    (clf / "config.json").write_text(json.dumps({**config, "labels": ["certain", "uncertain"]}))
    assert run(["classify", "--text", "fine", "-c", str(clf)]).exit_code == 0
    one_line_error(run(["classify", "--text", "fine", "-c", str(clf), "--min-confidence", "0.6"]),
                   f"{clf}: the model has a label named 'uncertain'", "label_aliases")


def test_tsv_output_round_trips_quotes_and_backslashes_and_reruns(int_clf, tmp_path):
    texts = ['a "great" fine film', 'say \\"hi\\" \\ back\\slash', '"quoted"', "it's \\n not a newline"]
    src = tmp_path / "in.tsv"
    src.write_text("text\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(texts)))
    first, second = tmp_path / "out1.tsv", tmp_path / "out2.tsv"
    assert run(["classify", str(src), "-c", str(int_clf), "-o", str(first)]).exit_code == 0
    t1 = read_table(first)
    assert t1.values("text") == texts
    assert t1.columns == ["text", "label", "predicted_label", "predicted_score"]
    # classifying the output again replaces the predictions in place (and changes no text)
    res = run(["classify", str(first), "-c", str(int_clf), "-o", str(second), "--probs"])
    assert res.exit_code == 0, res.output
    t2 = read_table(second)
    assert t2.values("text") == texts and t2.values("label") == t1.values("label")
    assert t2.columns == ["text", "label", "predicted_label", "predicted_score", "prob_0", "prob_1"]
    assert t2.values("predicted_label") == t1.values("predicted_label")
    assert run(["classify", str(second), "-c", str(int_clf), "-o", str(first), "--probs"]).exit_code == 0
    assert read_table(first).columns == t2.columns and read_table(first).values("text") == texts


def test_tsv_output_of_tabs_and_newlines_reads_back_one_row_each(int_clf, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "great\tfine\nfun"}) + "\n" + json.dumps({"text": "bad\r\nmess"}) + "\n")
    res = run(["classify", str(src), "-c", str(int_clf), "--format", "tsv"])
    assert res.exit_code == 0, res.output
    t = read_table(res.stdout.encode(), format="tsv")
    assert t.values("text") == ["great fine fun", "bad mess"] and t.columns == ["text", "label", "score"]


def test_classify_with_all_blank_labels_classifies_every_row(int_clf, tmp_path):
    src = tmp_path / "blank.csv"
    src.write_text("text,label\nfine fun great,\ndull bad awful, \n")
    res = run(["classify", str(src), "-c", str(int_clf)])
    assert res.exit_code == 0, res.output
    assert len(res.stdout.strip().splitlines()) == 3  # header + both rows
    assert "accuracy" not in res.stderr
    assert res.stderr.strip().splitlines() == ["note: no rows could be scored: column 'label' has no labels"]


def test_classify_scores_only_labelled_rows(int_clf, tmp_path):
    src = tmp_path / "some.csv"
    src.write_text("text,label\nfine fun great,1\ndull bad awful,\nwhat a bad mess,0\n")
    res = run(["classify", str(src), "-c", str(int_clf)])
    assert res.exit_code == 0, res.output
    assert len(res.stdout.strip().splitlines()) == 4
    assert "accuracy 100.00%" in res.stderr and "1 rows without a label were not scored" in res.stderr


def test_classify_notes_when_no_gold_label_is_known(int_clf, tmp_path):
    src = tmp_path / "other.csv"
    src.write_text("text,label\nfine fun great,pos\ndull bad awful,neg\n")
    res = run(["classify", str(src), "-c", str(int_clf)])
    assert res.exit_code == 0, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("note: no rows could be scored"), res.stderr


def test_bad_input_format_names_the_option(tmp_path):
    src = tmp_path / "x.csv"
    src.write_text("text\nhi\n")
    res = run(["classify", str(src), "--input-format", "xlsx"])
    assert res.exit_code == 2 and res.stderr.startswith("error: --input-format: unknown table format 'xlsx'")
    (tmp_path / "x.dat").write_text("text\nhi\n")
    res = run(["classify", str(tmp_path / "x.dat")])
    assert res.exit_code == 2 and "pass --input-format (csv" in res.stderr


def test_output_format_follows_the_table_extensions():
    from textrnn.cli.output import output_format
    from textrnn.data.tables import EXTENSIONS

    for suffix, fmt in EXTENSIONS.items():
        expected = fmt if fmt != "txt" else "jsonl"  # no text output: the input's format
        assert output_format(None, f"out{suffix}", "jsonl") == expected
    assert output_format(None, "-", "tsv") == "tsv" and output_format(None, None, "txt") == "csv"
    assert output_format("table", "out.csv", "csv") == "table"


CLI_TINY = ["--hidden", "16", "--embed", "16", "--batch-size", "4", "--eval-every", "10", "--lr", "0.02",
            "--dropout", "0", "--warmup-steps", "2"]


@pytest.fixture
def cli_run(tmp_path, labelled, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # on the CPU even where a GPU is: the labels asserted below are what this tiny model learns there
    res = run(["train", str(labelled), "--val-file", str(labelled), "--max-steps", "40", "--device", "cpu", *CLI_TINY])
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


def test_cli_classifier_errors(cli_run, tmp_path):
    lm_text = tmp_path / "t.txt"
    lm_text.write_text("some text for a language model\n" * 50)
    assert run(["train", str(lm_text), "--max-steps", "2", "--hidden", "8", "--embed", "8", "--batch-size", "2",
                "--seq-len", "8", "--out", str(tmp_path / "lm")]).exit_code == 0
    nocol = write_csv(tmp_path / "nocol.csv", [("1", "2")], header=("a", "b"))
    existing = tmp_path / "keep.csv"
    existing.write_text("precious\n")
    one_line_error(run(["classify", str(nocol)]), "--text-column")
    one_line_error(run(["classify", "--text", "x", "--checkpoint", str(tmp_path / "lm")]), "language model")
    one_line_error(run(["generate", "--checkpoint", str(cli_run)]), "classifier")
    one_line_error(run(["classify", "--text", "x", "--output", str(tmp_path / "no" / "dir.csv")]), "does not exist")
    one_line_error(run(["classify", "--text", "x", "--output", str(tmp_path)]), "is a directory")
    one_line_error(run(["classify"]), "FILE")
    one_line_error(run(["train", str(nocol), "--text-column", "a", "--label-column", "b",
                        "--out", str(tmp_path / "r")]),
                   "only one class")
    assert existing.read_text() == "precious\n"


def test_three_labels_calibrate_and_take_min_confidence(tmp_path):
    """A 3-label classifier: its run records a temperature; classify reports the ECE and the confident rows."""
    from conftest import NEG, POS, TINY_CLF
    from textrnn import checkpoint
    from textrnn.training.classifier import train_classifier

    meh = ["so so film", "an okay story", "fine I guess"]
    rows = [(t, "pos") for t in POS] + [(t, "neg") for t in NEG] + [(t, "meh") for t in meh]
    data = write_csv(tmp_path / "three.csv", rows * 3, header=("text", "label"))
    result = train_classifier(data, out=tmp_path / "clf", val_file=data, max_steps=20, **TINY_CLF)
    run_config = checkpoint.read_run(result.path)
    assert run_config.labels == ["meh", "neg", "pos"] and run_config.calibration.rows == 33
    res = run(["classify", str(data), "-c", str(result.path), "--format", "jsonl", "--min-confidence", "0.5"])
    assert res.exit_code == 0, res.output
    labels = {json.loads(line)["predicted_label"] for line in res.stdout.splitlines()}
    assert labels <= {"meh", "neg", "pos", "uncertain"}
    report = res.stderr.splitlines()
    assert report[1].startswith("expected calibration error ") and "33 rows" in report[1]
    assert report[2].startswith("confident rows (probability >= 0.5): ") and " of 33 (" in report[2]
