"""Language models conditioned on a label: the markers, the corpus, training and generation."""

import json

import pytest

from conftest import one_line_error, run_cli
from textrnn import condition
from textrnn.data import cache
from textrnn.api import load
from textrnn.errors import TextRNNError
from textrnn.runconfig import Condition
from textrnn.training.lm import train_language_model

SMALL = dict(hidden=48, embed=16, batch_size=8, seq_len=32, warmup_steps=5, lr=0.01, sample_length=0, fit=False)


def _table(path, rows):
    path.write_text("label,text\n" + "".join(f"{label},{text}\n" for label, text in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def conditioned(tmp_path_factory):
    """A small model trained on rows whose text is all a's (label up) or all b's (label down)."""
    tmp = tmp_path_factory.mktemp("cond")
    rows = [("up", "aaaa aaa aaaaa"), ("down", "bbb bbbb bb bbb")] * 150
    corpus = _table(tmp / "rows.csv", rows)
    run = train_language_model([corpus], out=tmp / "run", condition_column="label", max_steps=120,
                               eval_every=120, save_every=120, **SMALL)
    return run.path


def test_markers_are_private_use_characters_one_per_label():
    marks = condition.markers(["neg", "pos"])
    assert [ord(m) for m in marks.values()] == [condition.MARKER_BASE, condition.MARKER_BASE + 1]
    labelled = Condition(column="label", labels=["neg", "pos"])
    assert condition.prompt_start(labelled, "pos") == marks["pos"] + " "
    assert condition.prompt_start(labelled, None) == ""
    with pytest.raises(TextRNNError, match="--condition joy: not a label of this model; its labels: neg, pos"):
        condition.prompt_start(labelled, "joy")
    with pytest.raises(TextRNNError, match="trained without labels"):
        condition.prompt_start(None, "pos")


def test_the_corpus_lines_start_with_their_label_marker(conditioned):
    config = json.loads((conditioned / "config.json").read_text())
    assert config["condition"] == {"column": "label", "labels": ["down", "up"]}
    assert config["data"]["condition_column"] == "label"
    lm = load(conditioned)
    assert lm.conditions == ["down", "up"]
    assert len(condition.marker_ids(lm.run.condition, lm.tokenizer)) == 2  # each marker is one token


def test_generation_follows_the_label_and_never_writes_a_marker(conditioned):
    lm = load(conditioned)
    up = lm.generate("", 40, condition="up", greedy=True)
    down = lm.generate("", 40, condition="down", greedy=True)
    assert up.count("a") > 20 and "b" not in up.split("\n")[0], up
    assert down.count("b") > 20 and "a" not in down.split("\n")[0], down
    sampled = lm.generate("", 300, num_samples=4, seed=3)  # no label given: any text, but never a marker
    assert not any(chr(c) in "".join(sampled) for c in range(condition.MARKER_BASE, condition.MARKER_BASE + 2))
    records = list(lm.generate_many("", 10, num_samples=2, condition="up", seed=1))
    assert [r["condition"] for r in records] == ["up", "up"] and records[0]["prompt"] == ""
    with pytest.raises(TextRNNError, match="its labels: down, up"):
        lm.generate("", 5, condition="sideways")


def test_cli_conditioned_training_and_generation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus = _table(tmp_path / "reviews.csv", [("pos", "great fun"), ("neg", "dull mess")] * 40)
    res = run_cli(["train", str(corpus), "--condition-column", "label", "--max-steps", "2", "--hidden", "16",
                   "--embed", "8", "--batch-size", "2", "--seq-len", "8", "--sample-length", "0"])
    assert res.exit_code == 0, res.output  # a table with --condition-column trains a language model
    assert json.loads((tmp_path / "checkpoints" / "reviews" / "config.json").read_text())["task"] == "lm"
    res = run_cli(["generate", "--condition", "pos", "--length", "10", "--seed", "1"])
    assert res.exit_code == 0 and len(res.stdout) == 11, res.output
    res = run_cli(["generate", "--condition", "happy", "--length", "10"])
    assert res.exit_code == 2 and "its labels: neg, pos" in res.output


def test_bad_conditioned_input_is_one_error(tmp_path, tiny_corpus):
    with pytest.raises(TextRNNError, match="needs labelled tables"):
        train_language_model([tiny_corpus], out=tmp_path / "a", condition_column="label", max_steps=1)
    no_label = tmp_path / "rows.csv"
    no_label.write_text("label,text\npos,fine\n,missing label\n" * 20, encoding="utf-8")
    with pytest.raises(TextRNNError, match=r"rows.csv, line 3: no 'label' value to condition on"):
        train_language_model([no_label], out=tmp_path / "b", condition_column="label", max_steps=1)
    with pytest.raises(TextRNNError, match="no column 'mood' to condition on"):
        train_language_model([no_label], out=tmp_path / "c", condition_column="mood", max_steps=1)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_column_of_ids_is_refused_by_its_label_count(tmp_path):
    """More labels than condition.MAX_LABELS (an ID column chosen by mistake) is one error, before any work;
    from 65,534 labels the markers would be noncharacters, from 131,073 outside Unicode."""
    rows = [(f"id{i}", "some text") for i in range(1001)]
    ids = _table(tmp_path / "ids.csv", rows)
    with pytest.raises(TextRNNError, match=r"ids.csv: --condition-column label: more than 1000 labels"):
        train_language_model([ids], out=tmp_path / "a", condition_column="label", max_steps=1, **SMALL)
    assert not (tmp_path / "a").exists()
    one_line_error(run_cli(["train", str(ids), "--out", str(tmp_path / "b"), "--condition-column", "label",
                            "--max-steps", "1"]), "ids.csv", "--condition-column label", "choose")
    fits = _table(tmp_path / "fits.csv", rows[:1000])  # the cap itself is fine
    assert len(cache.condition_labels([fits], encoding="utf-8", text_column=None, column="label")) == 1000
    with pytest.raises(TextRNNError, match="more than 1000 labels"):
        condition.markers([str(i) for i in range(131_073)])  # (was chr()'s ValueError)


def test_text_that_holds_a_marker_is_refused(tmp_path):
    """A marker in a row's text would switch the label in mid-row: refused with the file and line."""
    marker = chr(condition.MARKER_BASE + 1)
    rows = _table(tmp_path / "rows.csv", [("pos", "fine"), ("neg", f"dull {marker} mess"), ("pos", "good")] * 20)
    with pytest.raises(TextRNNError, match=r"rows.csv, line 3: the text holds U\+F0001, a character textrnn "
                                           r"reserves for label markers"):
        train_language_model([rows], out=tmp_path / "a", condition_column="label", max_steps=1, **SMALL)
    one_line_error(run_cli(["train", str(rows), "--out", str(tmp_path / "b"), "--condition-column", "label",
                            "--max-steps", "1"]), "rows.csv, line 3", "U+F0001", "remove")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_check_no_markers():
    condition.check_no_markers("plain text, even \U000f03e8 just past the reserved range", "--prompt")
    for c in (condition.MARKER_BASE, condition.MARKER_BASE + condition.MAX_LABELS - 1):
        with pytest.raises(TextRNNError) as e:
            condition.check_no_markers(f"ab{chr(c)}", "--prompt")
        assert str(e.value) == (f"--prompt: the text holds U+{c:04X}, a character textrnn reserves for label "
                                "markers (U+F0000 to U+F03E7); remove it")


@pytest.mark.parametrize("kind", ["word", "char"])
def test_a_rare_label_keeps_its_marker(kind, tmp_path):
    """A label with one row: a word vocabulary capped below its marker's count, or (char) a row that falls in
    the validation tail, still has its marker as one token."""
    words = " ".join(f"w{i}" for i in range(40))
    rows = [("common", words)] * 60 + [("rare", "w1 w2")]
    table = _table(tmp_path / "rows.csv", rows)
    run = train_language_model([table], out=tmp_path / "run", condition_column="label", tokenizer=kind,
                               vocab_size=10 if kind == "word" else None, max_steps=1, **SMALL)
    lm = load(run.path)
    ids = condition.marker_ids(lm.run.condition, lm.tokenizer)
    assert len(ids) == 2 and lm.tokenizer.unk_id not in ids
    assert lm.tokenizer.vocab_size <= (10 if kind == "word" else 10 ** 6)
    assert lm.generate("", 5, condition="rare", greedy=True)


def test_fine_tuning_a_word_model_on_labels_says_what_to_do(tmp_path):
    """A word model given to --init-from keeps its vocabulary, which has no markers: the error says so
    (not "use --tokenizer word")."""
    words = _table(tmp_path / "rows.csv", [("pos", "great fun"), ("neg", "dull mess")] * 200)
    source = train_language_model([words], out=tmp_path / "words", tokenizer="word", max_steps=1, **SMALL)
    one_line_error(run_cli(["train", str(words), "--out", str(tmp_path / "tuned"), "--condition-column", "label",
                            "--init-from", str(source.path), "--max-steps", "1"]),
                   "label 'neg''s marker is not in the word vocabulary of the model given to --init-from",
                   "train without --init-from")
