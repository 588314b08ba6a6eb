"""The ONNX functions equal the PyTorch models they were exported from (onnxruntime, within 1e-4)."""

import json

import pytest

pytest.importorskip("onnx", reason='the onnx extra is not installed: pip install -e ".[onnx]"')
pytest.importorskip("onnxruntime", reason='the onnx extra is not installed: pip install -e ".[onnx]"')

import torch  # noqa: E402

from conftest import run_cli, tiny_lm  # noqa: E402
from textrnn.export import onnx as onnx_export  # noqa: E402
from textrnn.config import ModelConfig  # noqa: E402
from textrnn.model import Classifier  # noqa: E402

TOL = dict(rtol=0, atol=1e-4)


def _run(path, fn, inputs):
    """Outputs of the exported function at ``path`` on ``inputs`` (torch tensors), as tensors."""
    got = onnx_export.session(path).run(fn.outputs, {n: t.numpy() for n, t in zip(fn.inputs, inputs)})
    return [torch.from_numpy(g) for g in got]


def _flat(state):
    return list(state) if isinstance(state, tuple) else [state]


def _check_lm(model, tmp_path, label=(), ids=None):
    """The exported prompt function over random ids and a random state, and the step function run
    token by token from the same state, equal ``model.forward`` (its last logits, every step's logits,
    the final state)."""
    step, prompt = onnx_export.write_functions(model, tmp_path)
    g = torch.Generator().manual_seed(2)
    cfg = model.cfg
    ids = torch.randint(0, cfg.vocab_size, (3, 9), generator=g) if ids is None else ids
    state = tuple(torch.randn(cfg.layers, ids.shape[0], cfg.hidden, generator=g)
                  for _ in onnx_export.state_names(cfg.cell))
    with torch.no_grad():
        expected, expected_state = model(ids, state if cfg.cell == "lstm" else state[0])  # (B, T, V)
    logits, *final = _run(tmp_path / "prompt.onnx", prompt, (ids, *state, *label))
    torch.testing.assert_close(logits, expected[:, -1], **TOL)
    for got, want in zip(final, _flat(expected_state)):
        torch.testing.assert_close(got, want, **TOL)
    carried = list(state)
    for t in range(ids.shape[1]):
        logits, *carried = _run(tmp_path / "step.onnx", step, (ids[:, t], *carried, *label))
        torch.testing.assert_close(logits, expected[:, t], **TOL)
    for got, want in zip(carried, _flat(expected_state)):
        torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "mingru", "minlstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_step_and_prompt_functions_equal_the_model(cell, layers, tmp_path):
    _check_lm(tiny_lm(cell, layers), tmp_path)


@pytest.mark.parametrize("options", [
    dict(cell="lstm", embed=6, tie_weights=True, hidden_dropout=0.3, weight_drop=0.5),  # projection; per-layer runs
    dict(cell="gru", hidden=32, adaptive_softmax=True, adaptive_cutoffs="3,7"),  # log-probabilities
    dict(cell="minlstm", embed=6, tie_weights=True, hidden_dropout=0.3),  # a minimal cell's own locked dropout
])
def test_the_functions_of_regularized_tied_and_adaptive_softmax_models(options, tmp_path):
    _check_lm(tiny_lm(layers=2, **options), tmp_path)


def test_a_conditioned_model_takes_its_label_in_the_step_function(tmp_path):
    model = tiny_lm("lstm", 2, condition_tokens=[9, 10])
    ids = torch.tensor([[10, 1, 2, 3, 4, 5], [9, 3, 3, 2, 1, 1]])  # each row after its label's marker
    _check_lm(model, tmp_path, label=(torch.tensor([2, 1]),), ids=ids)
    assert [fn.inputs for fn in onnx_export.functions(model)] == [["ids", "h", "c", "label"]] * 2


@pytest.mark.parametrize("cell, bidirectional", [
    ("lstm", False), ("lstm", True), ("gru", True), ("mingru", True), ("minlstm", False)])
def test_the_classifier_function_equals_the_model_on_padded_batches(cell, bidirectional, tmp_path):
    torch.manual_seed(0)
    model = Classifier(ModelConfig(vocab_size=13, cell=cell, layers=2, hidden=8, embed=6, dropout=0.0,
                                   num_classes=3, bidirectional=bidirectional)).eval()
    (fn,) = onnx_export.write_functions(model, tmp_path)
    g = torch.Generator().manual_seed(3)
    for batch, length in ((5, 11), (1, 3)):
        lengths = torch.randint(1, length + 1, (batch,), generator=g)
        lengths[0] = length
        ids = torch.randint(1, 13, (batch, length), generator=g)
        ids[torch.arange(length)[None, :] >= lengths[:, None]] = 0  # padding
        with torch.no_grad():
            expected = model(ids, lengths)
        logits, probs = _run(tmp_path / "classifier.onnx", fn, (ids, lengths))
        torch.testing.assert_close(logits, expected, **TOL)
        torch.testing.assert_close(probs, torch.softmax(expected, dim=-1), **TOL)


def test_max_difference_sees_a_function_that_differs(tmp_path):
    model = tiny_lm("gru", 1)
    step, _ = onnx_export.write_functions(model, tmp_path)
    inputs = onnx_export.random_inputs(step)
    assert onnx_export.max_difference(step, tmp_path / "step.onnx", inputs) <= onnx_export.TOLERANCE
    with torch.no_grad():
        model.head.bias += 0.01
    assert onnx_export.max_difference(step, tmp_path / "step.onnx", inputs) == pytest.approx(0.01, rel=1e-3)


def test_export_of_a_classifier_run(int_clf, tmp_path):
    res = run_cli(["export", str(int_clf), str(tmp_path / "onnx"), "--format", "onnx"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (tmp_path / "onnx").iterdir())
    assert names == ["classifier.onnx", "model.json", "tokenizer.json"]
    meta = json.loads((tmp_path / "onnx" / "model.json").read_text())
    assert meta["task"] == "classify" and meta["labels"] == [0, 1]
    assert meta["functions"]["classifier"]["inputs"] == ["ids", "lengths"]


def test_an_exported_classifier_gives_the_probabilities_at_the_runs_temperature(int_clf, tmp_path):
    """model.json names the temperature and the label aliases; the exported probs are softmax(logits / T), as
    the run's own (textrnn.load(...).predict_proba)."""
    import shutil

    from textrnn.api import load
    from textrnn.data.batches import pad_batch
    from textrnn.inference.calibration import record_calibration
    from textrnn.runconfig import Calibration

    run = tmp_path / "run"
    shutil.copytree(int_clf, run, ignore=shutil.ignore_patterns("last", ".lock"))
    record_calibration(run, Calibration(3.0))
    assert run_cli(["export", str(run), str(tmp_path / "onnx"), "--format", "onnx"]).exit_code == 0
    meta = json.loads((tmp_path / "onnx" / "model.json").read_text())
    assert meta["temperature"] == 3.0 and meta["label_aliases"] == {}
    clf = load(run, task="classify")
    texts = ["a great fine film", "dull bad awful", "what a great joy"]
    ids, lengths = pad_batch(clf.tokenizer.encode_many(texts, meta["max_len"]))
    (fn,) = onnx_export.functions(clf.model, 3.0)
    logits, probs = _run(tmp_path / "onnx" / "classifier.onnx", fn, (ids, lengths))
    torch.testing.assert_close(probs, torch.softmax(logits / 3.0, dim=-1), **TOL)
    torch.testing.assert_close(probs, torch.from_numpy(clf.predict_proba(texts)), **TOL)
