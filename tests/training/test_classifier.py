"""The classifier pipeline: every option checked before anything is written, and resume
noticing edited data."""

import json

import pytest
import torch

from conftest import NEG, POS, REVIEW_NEG, REVIEW_POS, TINY_CLF, run_cli, write_csv
from textrnn.api import load
from textrnn.errors import TextRNNError
from textrnn.training.classifier import train_classifier
from textrnn.training.lm import train_language_model


def _write(path, rows):
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    return path


@pytest.fixture
def data(tmp_path):
    rows = [(t, "pos") for t in POS] + [(t, "neg") for t in NEG]
    return _write(tmp_path / "train.jsonl", rows * 2), _write(tmp_path / "val.jsonl", rows)


def _cli_args(train, out, *extra):
    opts = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_CLF.items()]
    return ["train", "--task", "classify", str(train), "--out", str(out), "--max-steps", "4", *opts, *extra]


def test_a_late_option_error_never_touches_the_existing_run(tmp_path, data):
    train, val = data
    out = tmp_path / "clf"
    assert run_cli(_cli_args(train, out, "--val-file", str(val))).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert "model.safetensors" in before and "metrics.jsonl" in before
    res = run_cli(_cli_args(train, out, "--force", "--precision", "fp16", "--device", "cpu"))
    assert res.exit_code == 2 and "fp16 needs a CUDA GPU" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_a_late_option_error_leaves_no_half_made_run(tmp_path, data):
    train, _ = data
    out = tmp_path / "new"
    res = run_cli(_cli_args(train, out, "--precision", "fp16", "--device", "cpu"))
    assert res.exit_code == 2 and "fp16 needs a CUDA GPU" in res.stderr
    assert not out.exists()


def test_resume_notices_edited_validation_labels(tmp_path, data):
    train, val = data
    out = tmp_path / "clf"
    train_classifier(train, out=out, val_file=val, max_steps=4, **TINY_CLF)
    rows = [json.loads(line) for line in val.read_text().splitlines()]
    rows[0]["label"] = "neg" if rows[0]["label"] == "pos" else "pos"  # same texts, one label changed
    _write(val, [(r["text"], r["label"]) for r in rows])
    with pytest.raises(TextRNNError, match="different texts or labels"):
        train_classifier(train, out=out, val_file=val, max_steps=8, resume=True, **TINY_CLF)


@pytest.fixture
def clf_run(tmp_path, labelled):
    out = tmp_path / "clf"
    result = train_classifier(labelled, out=out, val_file=labelled, max_steps=40, **TINY_CLF)
    return out, result


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
            for t in REVIEW_POS:
                f.write(json.dumps({"text": t, "label": 1}) + "\n")
            for t in REVIEW_NEG:
                f.write(json.dumps({"text": t, "label": 0}) + "\n")
    train_classifier(path, out=tmp_path / "run", val_file=path, max_steps=40, **TINY_CLF)
    clf = load(tmp_path / "run", task="classify")
    assert clf.labels == [0, 1]
    assert clf.classify("great fine fun")[0] == 1


def test_init_from_language_model(tmp_path, labelled):
    text = tmp_path / "text.txt"
    text.write_text(("\n".join(REVIEW_POS + REVIEW_NEG) + "\n") * 20)
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


def test_gradual_unfreezing_keeps_the_pretrained_layers_until_their_turn(tmp_path, labelled):
    """ULMFiT from a language model: with the thaw past the run's end only the output layer
    learns (the encoder stays the LM's exactly); thawing early, the encoder learns too, at the
    rates of --layer-lr-decay."""
    text = tmp_path / "text.txt"
    text.write_text(("\n".join(REVIEW_POS + REVIEW_NEG) + "\n") * 20)
    train_language_model([text], out=tmp_path / "lm", tokenizer="word", max_steps=5, hidden=16, embed=16,
                         batch_size=2, seq_len=8, eval_every=5)
    lm = load(tmp_path / "lm")
    opts = {**TINY_CLF, "max_steps": 6, "eval_every": 6, "save_every": 6}
    frozen = train_classifier(labelled, out=tmp_path / "frozen", init_from=tmp_path / "lm", unfreeze_every=0.9,
                              **opts)
    thawed = train_classifier(labelled, out=tmp_path / "thawed", init_from=tmp_path / "lm", unfreeze_every=0.2,
                              layer_lr_decay=2.6, **opts)
    clf = {name: load(run.path, task="classify").model for name, run in (("frozen", frozen), ("thawed", thawed))}
    for name in ("rnn.weight_hh_l0", "embedding.weight"):
        pretrained = lm.model.encoder.get_parameter(name)
        assert torch.equal(clf["frozen"].encoder.get_parameter(name), pretrained), name
        assert not torch.equal(clf["thawed"].encoder.get_parameter(name), pretrained), name
    assert not torch.equal(clf["frozen"].head.weight, clf["thawed"].head.weight)
    scales = json.loads((tmp_path / "thawed" / "config.json").read_text())["lr_scales"]
    assert scales["encoder.rnn.weight_hh_l0"] == pytest.approx(1 / 2.6)
    assert scales["encoder.embedding.weight"] == pytest.approx(2.6 ** -2)
    deep = train_language_model([text], out=tmp_path / "deep", tokenizer="word", max_steps=2, hidden=16, embed=16,
                                layers=2, batch_size=2, seq_len=8, eval_every=2)
    run = train_classifier(labelled, out=tmp_path / "deep-clf", init_from=deep.path, **opts)  # 2 layers: forwards
    deep_clf = load(run.path, task="classify").model
    assert not deep_clf.cfg.bidirectional and deep_clf.cfg.layers == 2
    with pytest.raises(TextRNNError, match="drop --bidirectional"):
        train_classifier(labelled, out=tmp_path / "bi", init_from=deep.path, bidirectional=True, **opts)
    with pytest.raises(TextRNNError, match="--unfreeze-every .* needs --init-from"):
        train_classifier(labelled, out=tmp_path / "scratch", unfreeze_every=0.2, **opts)
    with pytest.raises(TextRNNError, match="--layer-lr-decay .* needs --init-from"):
        train_classifier(labelled, out=tmp_path / "scratch", layer_lr_decay=2.6, **opts)


def test_one_class_and_missing_column(tmp_path):
    one = write_csv(tmp_path / "one.csv", [("good", "pos"), ("fine", "pos")])
    with pytest.raises(TextRNNError, match="only one class"):
        train_classifier(one, out=tmp_path / "r1", max_steps=1)
    nolabel = write_csv(tmp_path / "nolabel.csv", [("good", "x")], header=("review", "stars"))
    with pytest.raises(TextRNNError, match="--label-column"):
        train_classifier(nolabel, out=tmp_path / "r2", max_steps=1)


@pytest.mark.parametrize("cell, layers", [("lstm", 1), ("minlstm", 2)])
def test_classifier_interrupt_and_resume_is_exact(tmp_path, labelled, cell, layers):
    import os
    import signal

    from textrnn import checkpoint

    opts = dict(TINY_CLF, dropout=0.2, eval_every=5, save_every=5, max_steps=20, cell=cell, layers=layers)
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
