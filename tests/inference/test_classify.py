"""Using a classifier: metrics, output rows, gold-label scoring, the shipped sentiment model."""

import pytest

from textrnn.api import load
from textrnn.inference.classify import evaluate


def test_evaluate_metrics():
    m = evaluate([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["per_class"]["c"]["f1"] == 0.0
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3, abs=1e-4)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_macro_f1_ignores_classes_absent_from_gold_and_predictions():
    m = evaluate([0, 0, 1], [0, 0, 1], ["a", "b", "c"])
    assert m["macro_f1"] == 1.0 and m["per_class"]["c"]["support"] == 0
    m = evaluate([0, 1], [0, 0], ["a", "b", "c"])  # b is in gold only: it counts (F1 0)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0) / 2, abs=1e-4)
    assert evaluate([], [], ["a", "b"])["macro_f1"] == 0.0


def test_prediction_rows_add_label_and_score_or_predicted_columns():
    import numpy as np

    from textrnn.inference.classify import prediction_rows

    probs = np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32)
    rows = [{"text": "a", "id": 1}, {"text": "b", "id": 2}]
    out, columns = prediction_rows(rows, ["text", "id"], ["neg", "pos"], probs)
    assert columns == ["text", "id", "label", "score"]
    assert [(r["label"], r["score"]) for r in out] == [("pos", 0.8), ("neg", 0.9)]
    assert rows == [{"text": "a", "id": 1}, {"text": "b", "id": 2}]  # the input is not changed
    # an input with a label column gets predicted_* columns; classifying the output again
    # overwrites them in place
    gold = [{"text": "a", "label": "pos"}, {"text": "b", "label": "pos"}]
    first, cols1 = prediction_rows(gold, ["text", "label"], ["neg", "pos"], probs, with_probs=True)
    assert cols1 == ["text", "label", "predicted_label", "predicted_score", "prob_neg", "prob_pos"]
    assert first[1]["predicted_label"] == "neg" and first[1]["label"] == "pos" and first[0]["prob_neg"] == 0.2
    again, cols2 = prediction_rows(first, cols1, ["neg", "pos"], probs[::-1], with_probs=True)
    assert cols2 == cols1 and [r["predicted_label"] for r in again] == ["neg", "pos"]


def test_score_against_gold_counts_unknown_and_unlabelled_rows():
    from textrnn.inference.classify import score_against_gold

    score = score_against_gold([1, "0", None, " ", "maybe", 1.0], [1, 0, 0, 1, 1, 0], [0, 1])
    assert (score["labelled"], score["unknown"], score["unlabelled"]) == (4, 1, 2)
    assert score["metrics"] == evaluate([1, 0, 1], [1, 0, 0], [0, 1])
    nothing = score_against_gold(["x", "y"], [0, 1], [0, 1])
    assert nothing["metrics"] is None and (nothing["labelled"], nothing["unknown"]) == (2, 2)
    assert score_against_gold(["", None], [0, 1], [0, 1])["labelled"] == 0


def test_score_against_gold_matches_labels_by_name_or_alias():
    from textrnn.inference.classify import score_against_gold

    names, aliases = ["negative", "positive"], {"0": "negative", "1": "positive"}
    score = score_against_gold([1, "0", "positive", None, "2"], [1, 0, 0, 1, 1], names, aliases)
    assert (score["labelled"], score["unknown"], score["unlabelled"], score["scored"]) == (4, 1, 1, [0, 1, 2])
    assert score["metrics"] == evaluate([1, 0, 1], [1, 0, 0], names)
    assert score_against_gold([1, "0"], [1, 0], names)["metrics"] is None  # without the aliases: unknown


def test_rows_below_min_confidence_are_uncertain_and_keep_their_score():
    import numpy as np

    from textrnn.inference.classify import prediction_rows, predicted_labels

    probs = np.array([[0.2, 0.8], [0.45, 0.55], [0.7, 0.3]], dtype=np.float32)
    assert predicted_labels(probs, ["neg", "pos"], 0.6) == ["pos", "uncertain", "neg"]
    assert predicted_labels(probs, ["neg", "pos"]) == ["pos", "pos", "neg"]
    out, _ = prediction_rows([{"t": "a"}, {"t": "b"}, {"t": "c"}], ["t"], ["neg", "pos"], probs, min_confidence=0.7)
    assert [(r["label"], r["score"]) for r in out] == [("pos", 0.8), ("uncertain", 0.55), ("neg", 0.7)]


def test_score_against_gold_reports_calibration_and_the_confident_rows():
    import numpy as np

    from textrnn.inference.calibration import expected_calibration_error
    from textrnn.inference.classify import score_against_gold

    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.8, 0.2], [0.45, 0.55], [0.5, 0.5]])  # the last row: no gold label
    gold = ["a", "a", "b", "b", None]
    score = score_against_gold(gold, probs.argmax(1), ["a", "b"], probs=probs, min_confidence=0.7)
    assert score["ece"] == pytest.approx(expected_calibration_error(probs[:4], [0, 0, 1, 1]), abs=1e-5)
    assert score["metrics"] == evaluate([0, 0, 1, 1], [0, 1, 0, 1], ["a", "b"])  # all scored rows, as before
    assert score["confident"] == {"metrics": evaluate([0, 1], [0, 0], ["a", "b"]), "rows": 2}
    none = score_against_gold(gold, probs.argmax(1), ["a", "b"], probs=probs, min_confidence=0.95)
    assert none["confident"] == {"metrics": None, "rows": 0}
    assert "confident" not in score_against_gold(gold, probs.argmax(1), ["a", "b"], probs=probs)


def test_min_confidence_must_be_a_probability_and_uncertain_not_a_label_of_the_model():
    from textrnn.errors import TextRNNError
    from textrnn.inference.classify import check_min_confidence

    check_min_confidence(None, ["uncertain", "b"], "run")
    check_min_confidence(0.5, ["a", "b"], "run")
    for bad in (0, 1, -0.2, 1.5, float("nan")):
        with pytest.raises(TextRNNError, match="--min-confidence must be a probability between 0 and 1"):
            check_min_confidence(bad, ["a", "b"], "run")
    with pytest.raises(TextRNNError, match=r"^run: the model has a label named 'uncertain'.*label_aliases"):
        check_min_confidence(0.5, ["a", " Uncertain"[1:].lower()], "run")


def test_shipped_sentiment_classifier():
    from textrnn.checkpoint import SHIPPED

    shipped = SHIPPED["sst2"]
    size = sum(p.stat().st_size for p in shipped.iterdir() if p.is_file())
    assert size <= 10 * 1024 * 1024, size
    clf = load(shipped, task="classify")
    assert clf.labels == ["negative", "positive"] and clf.label_aliases == {"0": "negative", "1": "positive"}
    got = clf.classify(["a gorgeous , witty , deeply moving film .", "a dull , lifeless mess ."])
    assert [label for label, _ in got] == ["positive", "negative"]


def _classifier(cell: str, bidirectional: bool, layers: int = 1):
    import torch

    from textrnn.config import ModelConfig
    from textrnn.model import Classifier

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=30, cell=cell, layers=layers, hidden=8, embed=6, bidirectional=bidirectional,
                      num_classes=3)
    return Classifier(cfg).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_reader_gives_the_logits_of_forward(cell, bidirectional):
    """The CpuReader (step by step, rows longest first, pooling kept running) equals the packed
    forward pass, in input order, with an empty text among them."""
    import numpy as np
    import torch

    from textrnn.inference.classify import CpuReader
    from textrnn.data.batches import pad_batch

    model = _classifier(cell, bidirectional)
    rng = np.random.default_rng(1)
    texts = [rng.integers(0, 30, size=n) for n in [3, 9, 0, 5, 9, 1, 4, 2]]
    x, lengths = pad_batch(texts)
    with torch.inference_mode():
        expected = model(x, lengths)
        got = CpuReader(model).logits(texts)
    assert CpuReader.reads(model)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_predict_ids_reads_one_layer_models_and_runs_deeper_ones_forward(monkeypatch):
    import numpy as np
    import torch

    from textrnn.inference.classify import CpuReader, predict_ids
    from textrnn.data.batches import pad_batch

    monkeypatch.setattr(CpuReader, "GROUP", 2)  # texts read two at a time
    rng = np.random.default_rng(2)
    texts = [rng.integers(0, 30, size=n) for n in [6, 2, 7, 7, 1]]
    for layers in (1, 2):
        model = _classifier("lstm", True, layers)
        assert CpuReader.reads(model) == (layers == 1)
        with torch.inference_mode():
            expected = torch.softmax(model(*pad_batch(texts)), dim=-1).numpy()
        np.testing.assert_allclose(predict_ids(model, texts, batch_size=2), expected, atol=1e-6)


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_predict_ids_runs_a_one_layer_minimal_cell_forward(cell):
    """The CpuReader steps LSTM / GRU / RNN layers; a minGRU / minLSTM classifier (no hidden-side product)
    is read by ``forward``."""
    import numpy as np
    import torch

    from textrnn.inference.classify import CpuReader, predict_ids
    from textrnn.data.batches import pad_batch

    model = _classifier(cell, True)
    assert not CpuReader.reads(model)
    texts = [np.random.default_rng(3).integers(0, 30, size=n) for n in [6, 2, 7, 1]]
    with torch.inference_mode():
        expected = torch.softmax(model(*pad_batch(texts)), dim=-1).numpy()
    np.testing.assert_allclose(predict_ids(model, texts, batch_size=2), expected, atol=1e-6)


def _int8_available() -> bool:
    import torch

    return "fbgemm" in torch.backends.quantized.supported_engines


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_int8_products_is_close_to_forward(cell):
    """A model marked ``int8_products`` (an --int8 export) is read with int8 hidden-side products:
    probabilities within 0.01 of the float forward pass; without int8 products, in float32."""
    import numpy as np
    import torch

    from textrnn.inference.classify import CpuReader
    from textrnn.data.batches import pad_batch
    from textrnn.inference.quantize import Int8Product

    if not _int8_available():
        pytest.skip("this PyTorch has no fbgemm int8 products")
    model = _classifier(cell, True)
    model.int8_products = True
    rng = np.random.default_rng(3)
    texts = [rng.integers(0, 30, size=n) for n in [12, 3, 0, 7, 12, 1]]
    with torch.inference_mode():
        expected = torch.softmax(model(*pad_batch(texts)), dim=-1)
        reader = CpuReader(model)
        got = torch.softmax(reader.logits(texts), dim=-1)
        assert len(reader.int8) == 2  # one product per direction
        torch.testing.assert_close(got, expected, atol=1e-2, rtol=0)
        assert not torch.allclose(got, expected, atol=1e-6, rtol=0)  # (it did run in int8)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(Int8Product, "make", classmethod(lambda cls, w, b=None: None))  # not on this CPU
            fallback = CpuReader(model)
            assert fallback.int8 == []
            torch.testing.assert_close(torch.softmax(fallback.logits(texts), dim=-1), expected, atol=1e-6, rtol=0)


def test_a_models_reader_is_kept_until_its_weights_change():
    import numpy as np
    import torch

    from textrnn.inference.classify import CpuReader, cpu_reader_for

    model = _classifier("lstm", True)
    texts = [np.array([1, 2, 3]), np.array([4])]
    reader = cpu_reader_for(model)
    assert cpu_reader_for(model) is reader
    with torch.inference_mode():
        before = reader.logits(texts)
    with torch.no_grad():
        model.head.bias.add_(1.0)  # as an optimizer step would
    changed = cpu_reader_for(model)
    assert changed is not reader
    with torch.inference_mode():
        torch.testing.assert_close(changed.logits(texts), before + 1.0)
        torch.testing.assert_close(changed.logits(texts), CpuReader(model).logits(texts))
    model.int8_products = True
    assert cpu_reader_for(model) is not changed
    with torch.inference_mode():
        made_here = _classifier("gru", False)
    assert cpu_reader_for(made_here) is not cpu_reader_for(made_here)  # nothing to watch: made each time
