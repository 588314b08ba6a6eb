"""Checkpoint safety: atomic files, locking, and loading that never runs code."""

import json
import os
import pickle

import pytest
import torch

from conftest import TINY, run_cli as run
from textrnn import checkpoint
from textrnn.export.run import export as export_run
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


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    dest = tmp_path / "f.json"
    checkpoint.write_file(dest, "old")

    def fail(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "replace", fail)
    with pytest.raises(TextRNNError, match="No space left"):
        checkpoint.write_file(dest, "new")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temporary left behind


def test_last_swap_survives_a_crash_between_renames(run_dir):
    # simulate a crash after `last` was renamed away and before the new one arrived
    os.replace(run_dir / "last", run_dir / "last.old")
    assert checkpoint.last_dir(run_dir) == run_dir / "last.old"
    assert checkpoint.load_trainer_state(run_dir)["step"] == 4


def test_export_half_loads_and_matches(run_dir, tmp_path):
    dest = export_run(run_dir, tmp_path / "shipped", half=True)
    assert sorted(p.name for p in dest.iterdir() if not p.name.startswith(".")) == [
        "config.json", "metrics.jsonl", "model.safetensors", "tokenizer.json"]
    full, half = checkpoint.load(run_dir), checkpoint.load(dest)
    assert (dest / "model.safetensors").stat().st_size < 0.6 * (run_dir / "model.safetensors").stat().st_size
    ids = torch.tensor([full.tokenizer.encode("First Citizen").tolist()])
    with torch.no_grad():
        torch.testing.assert_close(half.model(ids)[0], full.model(ids)[0], atol=5e-3, rtol=0)
    with pytest.raises(TextRNNError, match="not empty"):
        export_run(run_dir, dest)


def test_export_int8_embedding(run_dir, tmp_path):
    dest = export_run(run_dir, tmp_path / "q", half=True, int8_embedding=True)
    full, small = checkpoint.load(run_dir), checkpoint.load(dest)
    err = (small.model.encoder.embedding.weight - full.model.encoder.embedding.weight).abs()
    row_max = full.model.encoder.embedding.weight.abs().amax(dim=1, keepdim=True)
    assert (err <= row_max / 127 * 0.51 + 1e-3).all()  # within half a quantization step (+ fp16 scale)
    ids = torch.tensor([full.tokenizer.encode("First Citizen").tolist()])
    with torch.no_grad():
        torch.testing.assert_close(small.model(ids)[0], full.model(ids)[0], atol=3e-2, rtol=0)


def test_export_to_an_existing_file_is_a_one_line_error(lm_run, tmp_path):
    dest = tmp_path / "taken"
    dest.write_text("x")
    with pytest.raises(TextRNNError, match=r"taken: exists and is not a directory; give a new or empty directory"):
        export_run(lm_run, dest)
    res = run(["export", str(lm_run), str(dest)])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1 and "taken" in res.stderr
    assert dest.read_text() == "x"


def test_export_int8_saves_embedding_dtype_in_config(lm_run, tmp_path):
    dest = export_run(lm_run, tmp_path / "q", int8_embedding=True)
    assert json.loads((dest / "config.json").read_text())["embedding_dtype"] == "int8"
    plain = export_run(lm_run, tmp_path / "p")
    assert "embedding_dtype" not in json.loads((plain / "config.json").read_text())


def test_shipped_config_names_its_int8_weights():
    shipped = checkpoint.SHIPPED["sst2"]
    config = json.loads((shipped / "config.json").read_text())
    assert config["embedding_dtype"] == config["recurrent_dtype"] == "int8"
    ck = checkpoint.load(shipped)
    assert ck.task == "classify" and ck.model.int8_products


@pytest.mark.parametrize("which", ["classifier", "lm"])
def test_export_int8_stores_the_recurrent_weights_as_int8(which, int_clf, lm_run, tmp_path):
    from safetensors.torch import load_file

    from textrnn.inference.quantize import quantize_rows

    run = int_clf if which == "classifier" else lm_run
    dest = export_run(run, tmp_path / "q", int8=True)
    config = json.loads((dest / "config.json").read_text())
    assert config["embedding_dtype"] == config["recurrent_dtype"] == "int8"
    stored = load_file(str(dest / "model.safetensors"))
    full, small = checkpoint.load(run), checkpoint.load(dest)
    for name, weight in full.model.state_dict().items():
        if name.startswith("encoder.rnn.weight_") or name == "encoder.embedding.weight":
            assert stored[name + ".int8"].dtype == torch.int8 and name not in stored
            codes, scale = quantize_rows(weight)
            torch.testing.assert_close(small.model.state_dict()[name], codes.float() * scale[:, None])
        else:  # biases, the head: as they were
            assert torch.equal(small.model.state_dict()[name], weight)
    assert small.model.int8_products and not full.model.int8_products


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


def test_loading_last_weights_that_do_not_exist_is_an_error(lm_run, tmp_path):
    assert checkpoint.load(lm_run, which="last").model is not None
    exported = export_run(lm_run, tmp_path / "exported")  # an export has no last/
    with pytest.raises(TextRNNError, match="has no last/ checkpoint"):
        checkpoint.load(exported, which="last")
    with pytest.raises(TextRNNError, match="which must be 'best' or 'last'"):
        checkpoint.load(lm_run, which="newest")


def test_export_of_a_tied_projected_regularized_model(tmp_path, tiny_corpus):
    """embed 16 != hidden 32 with --tie-weights: the tied head.weight is dropped from the file and re-tied
    on load; the projection and the AWD-LSTM options round-trip."""
    run = tmp_path / "run"
    opts = {k: v for k, v in TINY.items() if k not in ("eval_every", "save_every")}
    train_language_model([tiny_corpus], out=run, max_steps=2, eval_every=2, save_every=2, tie_weights=True,
                         layers=2, hidden_dropout=0.2, weight_drop=0.3, output_dropout=0.1, ar=1.0, **opts)
    dest = export_run(run, tmp_path / "shipped", half=True)
    full, half = checkpoint.load(run), checkpoint.load(dest)
    assert full.model.proj is not None and full.model.cfg.weight_drop == 0.3
    assert half.model.head.weight.data_ptr() == half.model.encoder.embedding.weight.data_ptr()
    ids = torch.tensor([full.tokenizer.encode("First Citizen").tolist()])
    with torch.no_grad():
        torch.testing.assert_close(half.model(ids)[0], full.model(ids)[0], atol=5e-3, rtol=0)
