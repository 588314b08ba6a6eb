"""The classifier pipeline: every option checked before anything is written, and resume
noticing edited data."""

import json

import pytest

from conftest import NEG, POS, TINY_CLF, run_cli
from textrnn.errors import TextRNNError
from textrnn.training.classifier import train_classifier


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
