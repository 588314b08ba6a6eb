"""``textrnn export`` (``--format checkpoint``): a run's model copied without its training state,
as float16 or with int8 weights, loading back as float32."""

import json
import shutil

import pytest
import torch

from conftest import TINY, one_line_error, run_cli as run
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
    assert json.loads((plain / "config.json").read_text())["embedding_dtype"] is None


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


def test_an_int8_export_exported_again_says_how_its_weights_are_stored(int_clf, tmp_path):
    """The weights of an int8 export load as float32: exported again without --int8 they are stored as floats,
    and its config.json must not say int8 (which would also run the products in int8)."""
    small = export_run(int_clf, tmp_path / "q", int8=True)
    again = export_run(small, tmp_path / "again", half=True)
    config = json.loads((again / "config.json").read_text())
    assert config["embedding_dtype"] is None and config["recurrent_dtype"] is None
    assert config["weights_dtype"] == "float16" and config["exported_from"] == str(small)
    assert not checkpoint.load(again).model.int8_products


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


def _full_disk(tensors, filename, *args, **kwargs):
    """As ``safetensors.torch.save_file`` on a full disk: part of the file written, then an OSError."""
    with open(filename, "wb") as f:
        f.write(b"\0" * 100)
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_export_leaves_nothing_behind_and_a_retry_works(existing, lm_run, tmp_path, monkeypatch):
    import textrnn.export.run as export_module

    dest = tmp_path / "shipped"
    if existing:  # an empty directory given as DEST stays as it was
        dest.mkdir()
    monkeypatch.setattr(export_module, "save_file", _full_disk)
    with pytest.raises(TextRNNError) as failed:
        export_run(lm_run, dest, half=True)
    message = str(failed.value)
    assert len(message.splitlines()) == 1 and message.startswith(f"{dest}: cannot write the export")
    assert "No space left on device" in message and "choose another DEST" in message
    assert [p.name for p in tmp_path.iterdir()] == (["shipped"] if existing else [])  # no temporary file or folder
    assert not existing or list(dest.iterdir()) == []  # no config, tokenizer or metrics without the weights
    one_line_error(run(["export", str(lm_run), str(dest)]), str(dest), "No space left on device", "another DEST")
    monkeypatch.undo()
    export_run(lm_run, dest, half=True)  # the retry
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shipped"]
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "metrics.jsonl", "model.safetensors",
                                                      "tokenizer.json"]
    assert checkpoint.load(dest).run.weights_dtype == "float16"


def test_half_int8_keeps_rows_of_tiny_weights(lm_run, tmp_path):
    """A row whose largest weight is below float16's normal range (6.1e-5 * 127) keeps its scale in float32."""
    from safetensors.torch import load_file

    run_dir = tmp_path / "run"
    shutil.copytree(lm_run, run_dir)
    ck = checkpoint.load(run_dir)
    tiny = {"encoder.embedding.weight": (1, 1e-6), "encoder.rnn.weight_hh_l0": (0, 2e-3)}  # name: (row, max |w|)
    with torch.no_grad():
        state = ck.model.state_dict()
        for name, (row, size) in tiny.items():
            state[name][row] = torch.linspace(-size, size / 3, state[name].shape[1])
    checkpoint.save_weights(ck.model, run_dir / checkpoint.WEIGHTS)
    dest = export_run(run_dir, tmp_path / "q", half=True, int8=True)
    stored = load_file(str(dest / checkpoint.WEIGHTS))
    small = checkpoint.load(dest).model.state_dict()
    for name, (row, size) in tiny.items():
        weight = ck.model.state_dict()[name]  # (rows, columns)
        err = (small[name] - weight).abs().amax(dim=1)  # (rows,)
        assert (err <= weight.abs().amax(dim=1) / 254 * 1.001).all(), name  # half a step of each row's own scale
        assert small[name][row].abs().max() > 0.99 * size
    assert {stored[n].dtype for n in stored if n.endswith(".scale")} == {torch.float32}


def test_exports_with_float16_scales_still_load(lm_run, tmp_path):
    """Exports made before the scales were kept in float32 (the shipped sst2 among them) load as they did:
    codes times the float16 scale."""
    from safetensors.torch import load_file, save_file

    dest = export_run(lm_run, tmp_path / "q", half=True, int8=True)
    stored = load_file(str(dest / checkpoint.WEIGHTS))
    old = {n: t.half() if n.endswith(".scale") else t for n, t in stored.items()}
    save_file(old, str(dest / checkpoint.WEIGHTS))
    loaded = checkpoint.load(dest).model.state_dict()
    for name in (n[:-len(".int8")] for n in old if n.endswith(".int8")):
        torch.testing.assert_close(loaded[name], old[name + ".int8"].float() * old[name + ".scale"].float()[:, None],
                                   rtol=0, atol=0)
    shipped = checkpoint.load(checkpoint.SHIPPED["sst2"])
    scales = load_file(str(checkpoint.SHIPPED["sst2"] / checkpoint.WEIGHTS))
    emb = "encoder.embedding.weight"
    assert scales[emb + ".scale"].dtype == torch.float16
    expanded = scales[emb + ".int8"].float() * scales[emb + ".scale"].float()[:, None]
    assert torch.equal(shipped.model.state_dict()[emb], expanded)
