"""A classifier started from a classifier (--init-from a classifier run): the labels its output
layer keeps, the rows' new words, its defaults, resume, and the errors."""

import pytest
import torch

from conftest import NEG, POS, TINY_CLF, one_line_error, run_cli, write_csv
from textrnn import checkpoint
from textrnn.config import default
from textrnn.errors import TextRNNError
from textrnn.model import Classifier
from textrnn.training.adapt import adapted_config, copy_classifier, head_rows
from textrnn.training.classifier import train_classifier

NEW = ["a splendid great meal", "the waiter was great", "soggy bad fries", "a cold bad soup"]  # unseen words
STEPS = dict(max_steps=4, eval_every=2, save_every=2, batch_size=4, warmup_steps=1)


@pytest.fixture
def ints_with_new_words(tmp_path):
    """Rows labelled 0 / 1 as int_clf's are, some with words int_clf never saw."""
    rows = [(t, 1) for t in POS + NEW[:2]] + [(t, 0) for t in NEG + NEW[2:]]
    return write_csv(tmp_path / "mine.csv", rows * 2, header=("text", "label"))


def test_head_rows_match_labels_by_name_or_make_new_rows():
    assert head_rows([0, 1], [0, 1], "auto", "f") == ([0, 1], [0, 1])
    assert head_rows(["1", "0"], [0, 1], "auto", "f") == ([0, 1], [0, 1])  # the source's order, matched as 0 / 1
    assert head_rows(["b", "c"], ["a", "b", "c"], "auto", "f") == (["b", "c"], [1, 2])  # a subset: its rows
    assert head_rows(["a", "z"], ["a", "b"], "auto", "f") == (["a", "z"], [0, None])  # z: a new row
    assert head_rows(["x", "y"], ["a", "b"], "auto", "f") == (["x", "y"], [None, None])
    assert head_rows(["a"], ["a", "b"], "keep", "f") == (["a", "b"], [0, 1])  # the whole layer
    assert head_rows([0, 1], [0, 1], "new", "f") == ([0, 1], [None, None])
    with pytest.raises(TextRNNError, match=r"f: label 'neutral' is not one of .*--head new"):
        head_rows(["negative", "neutral"], ["negative", "positive"], "keep", "f")


def test_copy_classifier_keeps_old_rows_and_starts_new_words_at_the_mean(int_clf):
    source = checkpoint.load(int_clf)
    vocab = source.run.model.vocab_size
    model = Classifier(adapted_config(source, {}, vocab + 3, 3))
    added = copy_classifier(model, source.model, [1, None, 0])
    old = source.model.encoder.embedding.weight  # (V, E)
    new = model.encoder.embedding.weight  # (V + 3, E)
    assert added == 3
    assert torch.equal(new[:vocab], old)
    assert torch.allclose(new[vocab:], old.mean(0).expand(3, -1))
    assert torch.equal(model.head.weight[0], source.model.head.weight[1])
    assert torch.equal(model.head.weight[2], source.model.head.weight[0])
    assert torch.equal(model.head.bias[2], source.model.head.bias[0])
    fresh = Classifier(adapted_config(source, {}, vocab + 3, 3))
    assert not torch.equal(model.head.weight[1], source.model.head.weight[0])
    assert model.head.weight[1].shape == fresh.head.weight[1].shape


def test_fine_tunes_a_classifier_with_its_labels_new_words_and_adapt_defaults(tmp_path, int_clf, ints_with_new_words):
    notes = []
    result = train_classifier(ints_with_new_words, out=tmp_path / "mine", init_from=int_clf, on_note=notes.append,
                              **STEPS)
    run = checkpoint.read_run(result.path)
    source = checkpoint.read_run(int_clf)
    assert run.labels == [0, 1]
    added = run.init_from.added_tokens
    assert added > 0 and run.model.vocab_size == source.model.vocab_size + added
    assert (run.model.hidden, run.model.embed, run.model.bidirectional) == (16, 16, True)  # the source's shape
    assert run.train.lr == default("lr", "adapt") and run.train.patience == default("patience", "adapt")
    assert len(notes) == 1 and notes[0].startswith(f"starting from classifier {int_clf}: ")
    assert "new words" in notes[0] and "its output layer (labels 0, 1)" in notes[0]
    trained = checkpoint.load(result.path)
    assert trained.tokenizer.unk_id not in trained.tokenizer.encode("splendid waiter soggy").tolist()


def test_a_third_label_gets_a_new_row_and_the_others_keep_theirs(tmp_path, int_clf):
    rows = [(t, 1) for t in POS] + [(t, 0) for t in NEG] + [(t, 2) for t in ["so so", "it was okay", "fine I guess"]]
    three = write_csv(tmp_path / "three.csv", rows * 2, header=("text", "label"))
    notes = []
    result = train_classifier(three, out=tmp_path / "three", init_from=int_clf, on_note=notes.append, **STEPS)
    assert checkpoint.read_run(result.path).labels == [0, 1, 2]
    assert "rows for 2 of 3 labels" in notes[0]
    assert checkpoint.load(result.path).model.head.weight.shape[0] == 3


def test_resume_of_a_fine_tuned_classifier_is_exact(tmp_path, int_clf, ints_with_new_words):
    import os
    import signal

    def stop_at_3(p):
        if p.step == 3 and p.event == "step":
            os.kill(os.getpid(), signal.SIGINT)

    opts = dict(STEPS, max_steps=6, dropout=0.2)
    full = train_classifier(ints_with_new_words, out=tmp_path / "full", init_from=int_clf, **opts)
    first = train_classifier(ints_with_new_words, out=tmp_path / "part", init_from=int_clf, on_progress=stop_at_3,
                             report_every=1, **opts)
    assert first.stopped_by == "interrupt"
    part = train_classifier(ints_with_new_words, out=tmp_path / "part", init_from=int_clf, resume=True, **opts)
    a, b = checkpoint.load(full.path, which="last").model, checkpoint.load(part.path, which="last").model
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_errors_name_the_fix(tmp_path, int_clf, ints_with_new_words):
    common = ["train", "--task", "classify", "--max-steps", "1", "--init-from", str(int_clf)]
    named = write_csv(tmp_path / "named.csv", [(t, "neutral") for t in POS] + [(t, 0) for t in NEG])
    one_line_error(run_cli([*common, str(named), "-o", str(tmp_path / "a"), "--head", "keep"]),
                   "label 'neutral' is not one of", "--head new")
    one_line_error(run_cli([*common, str(ints_with_new_words), "-o", str(tmp_path / "b"), "--hidden", "99"]),
                   "size and tokenizer come from it", "--hidden")
    one_line_error(run_cli([*common, str(ints_with_new_words), "-o", str(tmp_path / "c"), "--tokenizer", "char"]),
                   "--tokenizer")
    one_line_error(run_cli([*common, str(ints_with_new_words), "-o", str(tmp_path / "d"), "--head", "both"]),
                   "--head must be")
    assert not any((tmp_path / n).exists() for n in "abcd")


def test_the_cli_says_what_it_starts_from(tmp_path, int_clf, ints_with_new_words):
    opts = [f"--{k.replace('_', '-')}={v}" for k, v in dict(TINY_CLF, **STEPS).items()]
    res = run_cli(["train", "--task", "classify", str(ints_with_new_words), "-o", str(tmp_path / "run"),
                   "--init-from", str(int_clf), *opts])
    assert res.exit_code == 0, res.output
    assert f"starting from classifier {int_clf}" in " ".join(res.output.split())


@pytest.fixture
def named_clf(tmp_path, int_clf):
    """int_clf with its labels renamed as the shipped sst2's are: negative / positive, 0 / 1 kept as aliases."""
    import json
    import shutil

    run = tmp_path / "named"
    shutil.copytree(int_clf, run, ignore=shutil.ignore_patterns("last", ".lock"))
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "labels": ["negative", "positive"],
                                                 "label_aliases": {"0": "negative", "1": "positive"}}))
    return run


def test_a_renamed_source_keeps_its_layer_for_rows_of_the_old_values(tmp_path, named_clf, ints_with_new_words):
    """Rows labelled 0 / 1 against a source named negative / positive (its aliases 0 / 1, as the shipped sst2):
    the same labels, so its output layer is kept; the run answers the names and keeps the aliases."""
    aliases = {"0": "negative", "1": "positive"}
    assert head_rows([0, 1], ["negative", "positive"], "auto", "f", aliases) == (["negative", "positive"], [0, 1])
    assert head_rows(["1"], ["negative", "positive"], "keep", "f", aliases) == (["negative", "positive"], [0, 1])
    notes = []
    result = train_classifier(ints_with_new_words, out=tmp_path / "mine", init_from=named_clf, on_note=notes.append,
                              **STEPS)
    run = checkpoint.read_run(result.path)
    assert run.labels == ["negative", "positive"] and run.label_aliases == aliases
    assert "its output layer (labels negative, positive)" in notes[0]


def test_cross_validation_from_a_renamed_source_scores_the_rows_old_values(tmp_path, named_clf, ints_with_new_words):
    """Each fold's model answers negative / positive; the held-out rows' 0 / 1 are those labels (not all wrong)."""
    result = train_classifier(ints_with_new_words, out=tmp_path / "a", init_from=named_clf, folds=2, **STEPS)
    assert result.folds["accuracy"]["mean"] > 0.5
