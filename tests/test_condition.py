"""Language models conditioned on a label: the markers, the corpus, training and generation."""

import json

import pytest

from conftest import run_cli
from textrnn import condition
from textrnn.api import load
from textrnn.errors import TextRNNError
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
    config = {"condition": {"column": "label", "labels": ["neg", "pos"]}}
    assert condition.prompt_start(config, "pos") == marks["pos"] + " " and condition.prompt_start(config, None) == ""
    with pytest.raises(TextRNNError, match="--condition joy: not a label of this model; its labels: neg, pos"):
        condition.prompt_start(config, "joy")
    with pytest.raises(TextRNNError, match="trained without labels"):
        condition.prompt_start({"condition": None}, "pos")


def test_the_corpus_lines_start_with_their_label_marker(conditioned):
    config = json.loads((conditioned / "config.json").read_text())
    assert config["condition"] == {"column": "label", "labels": ["down", "up"]}
    assert config["data"]["condition_column"] == "label"
    lm = load(conditioned)
    assert lm.conditions == ["down", "up"]
    assert len(condition.marker_ids(config, lm.tokenizer)) == 2  # each marker is one token


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
