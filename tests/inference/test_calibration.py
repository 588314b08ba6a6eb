"""Temperature scaling and expected calibration error; a run's temperature in every probability path."""

import json
import shutil

import numpy as np
import pytest
import torch

from textrnn import checkpoint
from textrnn.api import load
from textrnn.inference.calibration import (LOWEST, expected_calibration_error, fit_temperature, nll, record_calibration,
                                           softmax, temperature_of)
from textrnn.inference.classify import CpuReader, calibrate_run, predict_ids, predict_logits, probabilities
from textrnn.runconfig import Calibration


def _sampled(temperature, n=20000, classes=4, seed=0):
    """Logits (n, classes) and labels drawn from softmax(logits / temperature)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, size=(n, classes))
    p = softmax(logits, temperature)
    labels = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    return logits, labels


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_temperature_the_labels_were_drawn_at(true_t):
    logits, labels = _sampled(true_t)
    t = fit_temperature(logits, labels)
    assert t == pytest.approx(true_t, rel=0.04)
    assert nll(logits, labels, t) <= min(nll(logits, labels, t * 0.98), nll(logits, labels, t * 1.02))
    assert fit_temperature(logits, labels) == t  # deterministic


def test_fit_temperature_stays_finite_where_every_row_is_right():
    logits = np.array([[3.0, -3.0], [-2.0, 2.0], [4.0, 0.0]])
    t = fit_temperature(logits, [0, 1, 0])  # the NLL alone falls without end as T -> 0
    assert LOWEST < t < 1.0
    assert fit_temperature(np.zeros((0, 2)), []) == 1.0


def test_expected_calibration_error_of_a_hand_computed_case():
    # confidences 0.85 (right) and 0.83 (wrong) share the bin (0.8, 0.867]; 0.7 (right) and 0.55 (wrong) are alone
    probs = np.array([[0.85, 0.15], [0.17, 0.83], [0.3, 0.7], [0.55, 0.45]])
    labels = [0, 0, 1, 1]
    expected = 2 / 4 * abs(0.5 - 0.84) + 1 / 4 * abs(1 - 0.7) + 1 / 4 * abs(0 - 0.55)
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)
    assert expected_calibration_error(np.array([[1.0, 0.0], [0.0, 1.0]]), [0, 1]) == 0.0
    assert expected_calibration_error(np.zeros((0, 2)), []) == 0.0


def test_temperature_scaling_lowers_the_error_of_an_over_confident_model():
    logits, labels = _sampled(3.0)  # read at T = 1: far too confident
    t = fit_temperature(logits, labels)
    before, after = (expected_calibration_error(softmax(logits, x), labels) for x in (1.0, t))
    assert after < 0.02 < 0.1 < before
    assert (softmax(logits, t).argmax(1) == softmax(logits).argmax(1)).all()  # the labels do not change


def _int8_classifier():
    from textrnn.config import ModelConfig
    from textrnn.model import Classifier

    torch.manual_seed(0)
    model = Classifier(ModelConfig(vocab_size=30, cell="lstm", layers=1, hidden=8, embed=6, bidirectional=True,
                                   num_classes=3)).eval()
    model.int8_products = True  # (as an --int8 export loads)
    return model


def test_the_temperature_is_applied_alike_on_the_cpu_reader_and_forward(monkeypatch):
    """predict_ids divides the logits by the temperature whichever way it reads them: the CpuReader (here in int8
    products, as an --int8 export) or the batched forward pass."""
    from textrnn.data.batches import pad_batch

    model = _int8_classifier()
    rng = np.random.default_rng(3)
    texts = [rng.integers(0, 30, size=n) for n in [12, 3, 0, 7, 12, 1]]
    assert CpuReader.reads(model)
    with torch.inference_mode():
        reader_logits = CpuReader(model).logits(texts)  # (N, C)
        forward_logits = model(*pad_batch(texts))  # (N, C)
    for t in (1.0, 0.4, 2.5):
        fast = predict_ids(model, texts, temperature=t)
        np.testing.assert_allclose(fast, torch.softmax(reader_logits / t, dim=-1).numpy(), atol=1e-6)
        with monkeypatch.context() as m:
            m.setattr(CpuReader, "reads", staticmethod(lambda model: False))  # the forward pass instead
            whole = predict_ids(model, texts, temperature=t)
        np.testing.assert_allclose(whole, torch.softmax(forward_logits / t, dim=-1).numpy(), atol=1e-6)
        np.testing.assert_allclose(fast, whole, atol=1e-2)  # (int8 products: within 0.01, as without a temperature)
    flat, sharp = predict_ids(model, texts, temperature=3.0), predict_ids(model, texts, temperature=0.3)
    assert (flat.max(1) < predict_ids(model, texts).max(1)).all() and (sharp.max(1) > flat.max(1)).all()


def _calibrated_copy(run, dest, temperature):
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("last", ".lock"))
    record_calibration(dest, Calibration(temperature, "test", 3))
    return dest


def test_a_run_trained_to_the_end_records_the_temperature_of_its_validation_rows(int_clf):
    run = checkpoint.read_run(int_clf)
    c = run.calibration
    assert c is not None and c.rows == 24 and c.fitted_on.endswith("ints.jsonl") and c.temperature > 0
    assert c.ece_before >= 0 and c.ece_after >= 0
    assert json.loads((int_clf / "config.json").read_text())["calibration"]["temperature"] == c.temperature


def test_the_api_gives_probabilities_at_the_runs_temperature(int_clf, tmp_path):
    hot = load(_calibrated_copy(int_clf, tmp_path / "hot", 4.0), task="classify")
    assert hot.run.calibration.temperature == 4.0 == temperature_of(hot.run)
    texts = ["a great fine film", "a bad dull film", "fine"]
    logits = predict_logits(hot.model, hot.tokenizer.encode_many(texts, hot.run.train.max_len))
    np.testing.assert_allclose(hot.predict_proba(texts), probabilities(logits, 4.0), atol=1e-6)
    plain = load(int_clf, task="classify")
    assert [lab for lab, _ in hot.classify(texts)] == [lab for lab, _ in plain.classify(texts)]


def test_calibrate_run_records_the_fit_and_keeps_the_rest_of_the_file(int_clf, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(int_clf, run_dir, ignore=shutil.ignore_patterns("last", ".lock"))
    before = json.loads((run_dir / "config.json").read_text())
    ck = checkpoint.load(run_dir)
    ids = ck.tokenizer.encode_many(["a great fine film", "a bad dull film"] * 5, 64)
    c = calibrate_run(run_dir, ids, [1, 0] * 5, "rows.csv")
    after = json.loads((run_dir / "config.json").read_text())
    assert after["calibration"] == {"temperature": c.temperature, "fitted_on": "rows.csv", "rows": 10,
                                    "ece_before": c.ece_before, "ece_after": c.ece_after}
    assert {k: v for k, v in after.items() if k != "calibration"} == \
        {k: v for k, v in before.items() if k != "calibration"}
    assert calibrate_run(run_dir, [], [], "none") is None
