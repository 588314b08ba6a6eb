"""``textrnn export`` (``--format checkpoint``): a run's model copied without its training state,
as float16 or with int8 weights, loading back as float32."""

import json

import pytest
import torch

from conftest import TINY, run_cli as run
from textrnn import checkpoint
from textrnn.errors import TextRNNError
from textrnn.export.run import export as export_run
from textrnn.training.lm import train_language_model


@pytest.fixture
def run_dir(tmp_path, tiny_corpus):
    out = tmp_path / "run"
    train_language_model([tiny_corpus], out=out, max_steps=4, eval_every=2, save_every=2,
                         **{k: v for k, v in TINY.items() if k not in ("eval_every", "save_every")})
    return out


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
