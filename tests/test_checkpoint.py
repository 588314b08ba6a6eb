"""Checkpoint safety: atomic files, locking, and loading that never runs code."""

import json
import os
import pickle

import pytest
import torch

from conftest import TINY
from textrnn import checkpoint
from textrnn.errors import TextRNNError
from textrnn.training.lm import train_language_model


@pytest.fixture
def run_dir(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    train_language_model([tiny_corpus], out=out, max_steps=4, eval_every=2, save_every=2,
                         **{k: v for k, v in TINY.items() if k not in ("eval_every", "save_every")})
    return out


class _Payload:
    """Unpickling this would create the file named in ``target``."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_malicious_trainer_state_never_runs(run_dir, tmp_path):
    target = tmp_path / "pwned.txt"
    with open(run_dir / "last" / "trainer.pt", "wb") as f:
        pickle.dump({"step": 1, "evil": _Payload(str(target))}, f)
    # the file is a valid pickle whose loading would call open(target, "w")
    with pytest.raises(TextRNNError, match="unsafe"):
        checkpoint.load_trainer_state(run_dir)
    assert not target.exists()


def test_malicious_torch_save_in_trainer_state(run_dir, tmp_path):
    target = tmp_path / "pwned2.txt"
    torch.save({"step": 1, "evil": _Payload(str(target))}, run_dir / "last" / "trainer.pt")
    with pytest.raises(TextRNNError, match="trainer.pt"):
        checkpoint.load_trainer_state(run_dir)
    assert not target.exists()


def test_truncated_weights(run_dir):
    w = run_dir / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    with pytest.raises(TextRNNError, match="model.safetensors"):
        checkpoint.load(run_dir)


def test_weights_that_do_not_match_the_config(run_dir):
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["model"]["hidden"] = 64
    (run_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(TextRNNError, match="match"):
        checkpoint.load(run_dir)


def test_tokenizer_that_does_not_match_the_vocabulary(run_dir):
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["model"]["vocab_size"] += 3
    (run_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(TextRNNError, match="tokenizer.json has"):
        checkpoint.load(run_dir)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(TextRNNError, match="no such checkpoint"):
        checkpoint.load(tmp_path / "nothing")
    with pytest.raises(TextRNNError, match="not a textrnn checkpoint"):
        checkpoint.load(tmp_path)


def test_last_swap_survives_a_crash_between_renames(run_dir):
    # simulate a crash after `last` was renamed away and before the new one arrived
    os.replace(run_dir / "last", run_dir / "last.old")
    assert checkpoint.last_dir(run_dir) == run_dir / "last.old"
    assert checkpoint.load_trainer_state(run_dir)["step"] == 4


def test_shipped_config_names_its_int8_weights():
    shipped = checkpoint.SHIPPED["sst2"]
    config = json.loads((shipped / "config.json").read_text())
    assert config["embedding_dtype"] == config["recurrent_dtype"] == "int8"
    ck = checkpoint.load(shipped)
    assert ck.task == "classify" and ck.model.int8_products


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


def test_a_bug_while_saving_is_not_reported_as_a_full_disk(lm_run, tmp_path, monkeypatch):
    ck = checkpoint.load(lm_run)
    run_dir = tmp_path / "r"
    run_dir.mkdir()

    def bug(obj, f, *a, **k):
        raise RuntimeError("a bug in what is saved")

    monkeypatch.setattr(checkpoint.torch, "save", bug)
    with pytest.raises(RuntimeError, match="a bug in what is saved"):
        checkpoint.save_last(run_dir, ck.model, {"step": 1})
    assert list(run_dir.iterdir()) == []


def test_a_full_disk_while_saving_is_one_user_error(lm_run, tmp_path, monkeypatch):
    ck = checkpoint.load(lm_run)
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    real_open = open

    def full_disk_open(path, mode="r", *a, **k):
        if str(path).endswith(checkpoint.TRAINER) and "w" in mode:
            raise OSError(28, "No space left on device")
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr("builtins.open", full_disk_open)
    with pytest.raises(TextRNNError, match="cannot write the checkpoint .*No space left on device"):
        checkpoint.save_last(run_dir, ck.model, {"step": 1})
    assert list(run_dir.iterdir()) == []
