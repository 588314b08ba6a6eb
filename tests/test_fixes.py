"""Regression tests for review findings: label normalisation, TSV output, re-classifying,
blank gold labels, macro-F1, long fields, export, and the global RNG."""

import json

import pytest
import torch
from click.testing import CliRunner

from conftest import FIXTURES, TINY
from textrnn import checkpoint
from textrnn.api import load
from textrnn.classify import evaluate
from textrnn.cli import cli
from textrnn.errors import TextRNNError
from textrnn.generate import check_options
from textrnn.pipeline import train_classifier, train_language_model
from textrnn.tables import label_key, parse_labels, read_table

POS = ["a great fine film", "great acting and a fine story", "fine fun great", "what a great joy"]
NEG = ["a bad dull film", "awful acting and a bad story", "dull bad awful", "what a bad mess"]
TINY_CLF = dict(hidden=16, embed=16, batch_size=4, eval_every=10, save_every=10, warmup_steps=2, lr=0.02,
                dropout=0.0)


def run(args, **kw):
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


@pytest.fixture(scope="module")
def int_clf(tmp_path_factory):
    """A classifier with integer labels 0 (negative) and 1 (positive)."""
    root = tmp_path_factory.mktemp("fixes")
    path = root / "ints.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n"
                            for _ in range(3) for lab, ts in ((1, POS), (0, NEG)) for t in ts))
    train_classifier(path, out=root / "clf", val_file=path, max_steps=40, **TINY_CLF)
    return root / "clf"


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixes_lm") / "run"
    train_language_model([FIXTURES / "tiny.txt"], out=out, max_steps=4, eval_every=2, save_every=2,
                         **{k: v for k, v in TINY.items() if k not in ("eval_every", "save_every")})
    return out


# --- B2: one label normalisation -----------------------------------------------------


def test_label_key_is_the_normalisation_of_parse_labels():
    assert [label_key(v) for v in (True, False, 1.0, "+1", " 0 ", "-2", 3, " pos ")] == \
        ["true", "false", 1, 1, 0, -2, 3, "pos"]
    assert [label_key(v) for v in (None, "", "  ", 0.5, [1])] == [None] * 5
    assert parse_labels(["+1", 0.0, True]) == (["0", "1", "true"], [1, 0, 2])
    with pytest.raises(TextRNNError, match="row 1 has no label"):
        parse_labels([" ", "a"])


def test_cli_gold_labels_are_normalised_like_training(int_clf, tmp_path):
    path = tmp_path / "gold.jsonl"  # floats and "+1": the same labels as 1 and 0
    path.write_text(json.dumps({"text": "fine fun great", "label": 1.0}) + "\n"
                    + json.dumps({"text": "dull bad awful", "label": 0.0}) + "\n"
                    + json.dumps({"text": "what a great joy", "label": "+1"}) + "\n")
    res = run(["classify", str(path), "--checkpoint", str(int_clf)])
    assert res.exit_code == 0, res.output
    assert "accuracy 100.00%" in res.stderr and "left out" not in res.stderr


# --- B3 / B4: TSV output round trips; re-classifying overwrites predictions -----------


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


# --- B5 / B6: blank gold labels, unknown labels, macro-F1 -----------------------------


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


def test_macro_f1_ignores_classes_absent_from_gold_and_predictions():
    m = evaluate([0, 0, 1], [0, 0, 1], ["a", "b", "c"])
    assert m["macro_f1"] == 1.0 and m["per_class"]["c"]["support"] == 0
    m = evaluate([0, 1], [0, 0], ["a", "b", "c"])  # b is in gold only: it counts (F1 0)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0) / 2, abs=1e-4)
    assert evaluate([], [], ["a", "b"])["macro_f1"] == 0.0


# --- B8: long fields ------------------------------------------------------------------


@pytest.mark.parametrize("ext,sep", [("csv", ","), ("tsv", "\t")])
def test_fields_over_128_kib(tmp_path, ext, sep):
    long = "word " * 60_000  # 300 KB
    p = tmp_path / f"long.{ext}"
    p.write_text(f"text{sep}label\n{long}{sep}1\nshort{sep}0\n")
    assert read_table(p).values("text") == [long, "short"]


# --- B9: export -----------------------------------------------------------------------


def test_export_to_an_existing_file_is_a_one_line_error(lm_run, tmp_path):
    dest = tmp_path / "taken"
    dest.write_text("x")
    with pytest.raises(TextRNNError, match=r"taken: exists and is not a directory; give a new or empty directory"):
        checkpoint.export(lm_run, dest)
    res = run(["export", str(lm_run), str(dest)])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1 and "taken" in res.stderr
    assert dest.read_text() == "x"


def test_export_int8_saves_embedding_dtype_in_config(lm_run, tmp_path):
    dest = checkpoint.export(lm_run, tmp_path / "q", int8_embedding=True)
    assert json.loads((dest / "config.json").read_text())["embedding_dtype"] == "int8"
    plain = checkpoint.export(lm_run, tmp_path / "p")
    assert "embedding_dtype" not in json.loads((plain / "config.json").read_text())


def test_shipped_config_names_its_int8_embedding():
    shipped = checkpoint.SHIPPED[0]
    assert json.loads((shipped / "config.json").read_text())["embedding_dtype"] == "int8"
    assert checkpoint.load(shipped).task == "classify"


def test_save_last_cleans_up_after_any_failure(lm_run, tmp_path, monkeypatch):
    ck = checkpoint.load(lm_run)
    run_dir = tmp_path / "r"
    run_dir.mkdir()

    def fail(model, dest):
        raise TextRNNError(f"{dest}: cannot write the checkpoint (disk full)")

    monkeypatch.setattr(checkpoint, "save_weights", fail)
    with pytest.raises(TextRNNError, match="disk full"):
        checkpoint.save_last(run_dir, ck.model, {})
    assert list(run_dir.iterdir()) == []

    def boom(model, dest):
        raise ValueError("bug")

    monkeypatch.setattr(checkpoint, "save_weights", boom)
    with pytest.raises(ValueError):
        checkpoint.save_last(run_dir, ck.model, {})
    assert list(run_dir.iterdir()) == []


# --- B10 and option messages ----------------------------------------------------------


def test_unseeded_generation_leaves_the_global_rng_alone(lm_run):
    lm = load(lm_run)
    torch.manual_seed(0)
    a = lm.generate("First", 20)
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(1))
    assert lm.generate("First", 20) != a or lm.generate("First", 20) != a  # still random without a seed


def test_top_k_zero_message():
    with pytest.raises(TextRNNError, match=r"^--top-k must be >= 1, got 0$"):
        check_options(10**9, 1.0, 0, None, False, 10, 1)
    with pytest.raises(TextRNNError, match="at most the vocabulary size 50, got 51"):
        check_options(50, 1.0, 51, None, False, 10, 1)
    res = run(["generate", "--top-k", "0"])
    assert res.exit_code == 2 and "--top-k must be >= 1" in res.stderr and "1000000000" not in res.stderr


def test_bad_input_format_names_the_option(tmp_path):
    src = tmp_path / "x.csv"
    src.write_text("text\nhi\n")
    res = run(["classify", str(src), "--input-format", "xlsx"])
    assert res.exit_code == 2 and res.stderr.startswith("error: --input-format: unknown table format 'xlsx'")
    (tmp_path / "x.dat").write_text("text\nhi\n")
    res = run(["classify", str(tmp_path / "x.dat")])
    assert res.exit_code == 2 and "pass --input-format (csv" in res.stderr
