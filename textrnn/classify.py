"""Using a trained classifier: ``predict`` labels and probabilities, ``evaluate`` them.

Inference runs under ``torch.inference_mode()`` in batches sorted by length (little
padding); results come back in input order.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from .data.batches import length_buckets, pad_batch
from .model import Classifier
from .tokenizer import Tokenizer


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], max_len: int) -> list[np.ndarray]:
    """Token ids of each text, cut to ``max_len``."""
    return tokenizer.encode_many(texts, max_len)


def predict_ids(model: Classifier, ids: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """Class probabilities ``(N, C)`` for encoded texts, in input order."""
    device = next(model.parameters()).device
    probs = np.zeros((len(ids), model.cfg.num_classes), dtype=np.float32)
    if not len(ids):
        return probs
    model.eval()
    with torch.inference_mode():
        order = np.arange(len(ids))
        for index in length_buckets([len(s) for s in ids], batch_size, order, pool=len(ids)):
            x, lengths = pad_batch([ids[i] for i in index])
            logits = model(x.to(device), lengths)  # (B, C)
            probs[index] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return probs


def predict(model: Classifier, tokenizer: Tokenizer, texts: Sequence[str], *, max_len: int = 512,
            batch_size: int = 256) -> np.ndarray:
    """Class probabilities ``(N, C)`` for raw texts, in input order."""
    return predict_ids(model, encode_texts(tokenizer, texts, max_len), batch_size)


def evaluate(gold: Sequence[int], predicted: Sequence[int], label_names: Sequence[Any]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision / recall / F1, and the confusion matrix
    (rows: gold label, columns: predicted). Macro-F1 averages over the classes that occur
    in ``gold`` or ``predicted`` (a class that never occurs has no F1 to speak of); every
    class is listed in ``per_class``."""
    gold = np.asarray(gold, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    n = len(label_names)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (gold, predicted), 1)
    present = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0  # (C,)
    per_class, f1s = {}, []
    for c, name in enumerate(label_names):
        tp = confusion[c, c]
        precision = tp / confusion[:, c].sum() if confusion[:, c].sum() else 0.0
        recall = tp / confusion[c, :].sum() if confusion[c, :].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[str(name)] = {"precision": round(float(precision), 5), "recall": round(float(recall), 5),
                                "f1": round(float(f1), 5), "support": int(confusion[c, :].sum())}
        if present[c]:
            f1s.append(f1)
    return {"accuracy": round(float((gold == predicted).mean()) if len(gold) else 0.0, 5),
            "macro_f1": round(float(np.mean(f1s)) if f1s else 0.0, 5), "per_class": per_class,
            "confusion": confusion.tolist()}


# -- labelling the rows of a table, and scoring them against a gold column ----------------


def prediction_rows(rows: Sequence[dict], columns: Sequence[str], names: Sequence[Any], probs: np.ndarray, *,
                    with_probs: bool = False) -> tuple[list[dict], list[str]]:
    """Each input row (a copy, in order) with its prediction, and the output columns.

    ``probs`` is ``(N, C)``, its columns in the order of ``names``. The new columns are
    ``label`` (the most likely name) and ``score`` (its probability), or
    ``predicted_label`` and ``predicted_score`` when the input already has a ``label`` or
    ``score`` column; with ``with_probs`` one ``prob_<name>`` column per class follows.
    An input that already has these columns (an earlier run's output) gets them
    overwritten in place, so classifying it again replaces the old predictions.
    """
    label_col, score_col = ("label", "score")
    if label_col in columns or score_col in columns:
        label_col, score_col = "predicted_label", "predicted_score"
    prob_cols = [f"prob_{n}" for n in names] if with_probs else []
    out = []
    for row, row_p in zip(rows, probs):
        i = int(row_p.argmax())
        new = dict(row)
        new[label_col], new[score_col] = names[i], round(float(row_p[i]), 6)
        for c, v in zip(prob_cols, row_p):
            new[c] = round(float(v), 6)
        out.append(new)
    return out, list(columns) + [c for c in [label_col, score_col, *prob_cols] if c not in columns]


def score_against_gold(gold: Sequence[Any], predicted: Sequence[int], names: Sequence[Any]) -> dict[str, Any]:
    """Score ``predicted`` (indices into ``names``) against the raw ``gold`` values of a
    label column, over the rows whose gold label is one the model knows. Gold labels are
    normalised as in training (``1``, ``1.0`` and ``"+1"`` are the same label).

    Returns plain data: ``metrics`` (:func:`evaluate`'s, over the scored rows; None when no
    row could be scored), ``labelled`` (rows with a gold label), ``unknown`` (labelled rows
    whose label the model does not know: left out) and ``unlabelled`` (rows with a blank or
    missing label: not scored).
    """
    from .data.labels import label_key

    index = {label_key(n): k for k, n in enumerate(names)}
    keys = [label_key(g) for g in gold]
    labelled = sum(k is not None for k in keys)
    known = [(index[k], int(i)) for k, i in zip(keys, predicted) if k is not None and k in index]
    metrics = evaluate(*zip(*known), names) if known else None
    return {"metrics": metrics, "labelled": labelled, "unknown": labelled - len(known),
            "unlabelled": len(keys) - labelled}
