"""Using a trained classifier: ``predict`` labels and probabilities, ``evaluate`` them.

Inference runs under ``torch.inference_mode()``; results come back in input order. A one-layer
model on the CPU is read step by step by a :class:`CpuReader`; any other runs ``forward`` on
batches sorted by length (little padding).
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch

from ..checkpoint import WEIGHTS, load
from ..config import default
from ..data.batches import length_buckets, pad_batch
from ..data.labels import label_key, match_labels
from ..runconfig import Calibration
from ..errors import TextRNNError
from ..model import Classifier
from .calibration import calibration_of, expected_calibration_error, record_calibration
from .quantize import Int8Product
from .stepper import gru_update
from ..tokenizer import Tokenizer


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], max_len: int) -> list[np.ndarray]:
    """Token ids of each text, cut to ``max_len``."""
    return tokenizer.encode_many(texts, max_len)


def predict_logits(model: Classifier, ids: Sequence[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """Logits ``(N, C)`` (float32) for encoded texts, in input order. A one-layer model on the CPU reads
    them with a :class:`CpuReader` (same results, fewer operations, ``CpuReader.GROUP`` texts at a time);
    others run ``forward`` on batches of ``batch_size`` texts of similar lengths."""
    device = next(model.parameters()).device
    logits = np.zeros((len(ids), model.cfg.num_classes), dtype=np.float32)
    if not len(ids):
        return logits
    model.eval()
    with torch.inference_mode():
        if CpuReader.reads(model):
            reader = cpu_reader_for(model)
            for first in range(0, len(ids), CpuReader.GROUP):
                group = reader.logits(ids[first : first + CpuReader.GROUP])  # (G, C)
                logits[first : first + len(group)] = group.numpy()
            return logits
        order = np.arange(len(ids))
        for index in length_buckets([len(s) for s in ids], batch_size, order, pool=len(ids)):
            x, lengths = pad_batch([ids[i] for i in index])
            logits[index] = model(x.to(device), lengths).float().cpu().numpy()  # (B, C)
    return logits


def probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` ``(N, C)``, float32: the one way a classifier's logits become its
    probabilities (``temperature``: the run's fitted one, :func:`textrnn.inference.calibration.temperature_of`)."""
    return torch.softmax(torch.from_numpy(np.asarray(logits, dtype=np.float32)) / temperature, dim=-1).numpy()


def predict_ids(model: Classifier, ids: Sequence[np.ndarray], batch_size: int = 256,
                temperature: float = 1.0) -> np.ndarray:
    """Class probabilities ``(N, C)`` for encoded texts, in input order: ``softmax(logits / temperature)``
    of :func:`predict_logits` (the CpuReader's or ``forward``'s alike)."""
    return probabilities(predict_logits(model, ids, batch_size), temperature)


_READERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> (its weights' versions, CpuReader)


def cpu_reader_for(model: Classifier) -> "CpuReader":
    """``model``'s :class:`CpuReader`, made once and kept while its weights stay as they are (it is
    made anew after any change to them, such as a training step): making one prepares the
    weights (int8: quantizes and packs them), which costs more than reading a few texts."""
    try:
        key = (model.int8_products, *((p.data_ptr(), p._version) for p in model.parameters()))
    except RuntimeError:  # weights made under torch.inference_mode() have no version to watch
        return CpuReader(model)
    held = _READERS.get(model)
    if held is None or held[0] != key:
        held = _READERS[model] = (key, CpuReader(model))
    return held[1]


class CpuReader:
    """The fast CPU classifier: a one-layer :class:`Classifier`'s logits, read step by step (equal to
    ``forward``: tested).

    ``forward`` runs the recurrent layer over packed sequences and pools its whole output. This
    does the cell arithmetic step by step instead (the equations of :mod:`textrnn.inference.stepper`), in
    place, on the rows sorted longest first, so that step ``t`` updates just the rows still
    running (a prefix of the batch, and contiguous): the backward direction reads each text
    reversed; the input side is projected once per distinct token of a group of texts rather
    than once per position; the pooling (last state, max, mean) is kept as running values,
    never an output sequence; the first step, from the zero state, has no hidden-side product. On
    a CPU most of the time left is that product itself: for a model exported with ``--int8``
    (``model.int8_products``) it runs in int8 (:class:`~textrnn.inference.quantize.Int8Product`; probabilities
    within about 0.01 of float32, tested), where PyTorch has int8 products for the CPU.
    """

    GROUP = 4096  # texts read together: one table of projected inputs (its distinct tokens'), one batch

    def __init__(self, model: Classifier):
        cfg, rnn = model.cfg, model.encoder.rnn
        self.cell, self.hidden, self.head = cfg.cell, cfg.hidden, model.head
        ends = ["_l0", "_l0_reverse"][: 2 if cfg.bidirectional else 1]
        weight = {name: [getattr(rnn, name + end).detach().float() for end in ends]
                  for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        self.embedding = model.encoder.embedding.weight.detach().float()  # (V, E)
        self.w_ih = torch.cat(weight["weight_ih"])  # (D*G, E), G = gates x H
        self.b_hh = weight["bias_hh"]  # per direction (G,): a GRU's (it sits inside the reset gate)
        self.b_ih = torch.cat(weight["bias_ih"] if self.cell == "gru"  # LSTM / RNN: both biases simply add
                              else [bi + bh for bi, bh in zip(weight["bias_ih"], weight["bias_hh"])])  # (D*G,)
        self.w_hh_t = [w.t().contiguous() for w in weight["weight_hh"]]  # per direction (H, G)
        if self.cell == "lstm":  # g doubled, so that its tanh is taken through the (cheaper) sigmoid
            g = slice(2 * self.hidden, 3 * self.hidden)
            self.w_ih.view(len(ends), 4 * self.hidden, -1)[:, g] *= 2
            self.b_ih.view(len(ends), 4 * self.hidden)[:, g] *= 2
            for w in self.w_hh_t:
                w[:, g] *= 2
        self.int8 = [Int8Product.make(w.t()) for w in self.w_hh_t] if model.int8_products else []
        if None in self.int8:  # not on this CPU: float32 products
            self.int8 = []

    @staticmethod
    def reads(model: Classifier) -> bool:
        """Whether a CpuReader reads ``model``: one LSTM, GRU or RNN layer, on the CPU (a minGRU / minLSTM
        reads a whole batch in a few products and a scan: ``forward``)."""
        return (model.cfg.layers == 1 and model.cfg.cell in ("lstm", "gru", "rnn")
                and next(model.parameters()).device.type == "cpu")

    def logits(self, ids: Sequence[np.ndarray]) -> torch.Tensor:
        """Logits ``(N, C)`` of encoded texts, in input order, read as one batch (its memory is a
        few rows per text: no output sequence). Use under ``torch.inference_mode()``."""
        distinct = np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s in ids] + [np.zeros(1, np.int64)]))
        inputs = torch.mm(self.embedding[torch.from_numpy(distinct)], self.w_ih.t()).add_(self.b_ih)  # (U, D*G)
        tables = inputs.chunk(len(self.w_hh_t), dim=1)  # per direction (U, G): each distinct token's input side
        index = np.argsort([-len(s) for s in ids], kind="stable")  # longest first
        x, lengths = pad_batch([ids[i] for i in index])  # (B, T), (B,)
        steps = torch.arange(x.shape[1])
        backward = x.gather(1, (lengths[:, None] - 1 - steps).clamp_min(0))  # (B, T): each text reversed
        running = (lengths[None, :] > steps[:, None]).sum(1).tolist()  # rows still running at each step
        pooled = [self._direction(table, torch.from_numpy(np.searchsorted(distinct, seq.t().numpy())), running, d)
                  for d, (table, seq) in enumerate(zip(tables, (x, backward)))]
        last, top, total = (torch.cat(parts, dim=-1) for parts in zip(*pooled))  # (B, D*H) each
        out = torch.empty(len(ids), self.head.out_features)
        out[index] = self.head(torch.cat([last, top, total / lengths[:, None].to(total.dtype)], dim=-1))
        return out

    def _direction(self, table: torch.Tensor, rows: torch.Tensor, running: list[int],
                   d: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Direction ``d`` over one batch: ``rows`` (T, B) the rows of ``table`` (U, G) each step reads,
        ``running[t]`` the rows still running at step t. Returns each text's last state, max and
        sum over its steps, each (B, H)."""
        B, H = rows.shape[1], self.hidden
        h, top, total = torch.zeros(B, H), torch.full((B, H), float("-inf")), torch.zeros(B, H)
        c2 = torch.zeros(B, H) if self.cell == "lstm" else None  # the LSTM's cell state, doubled
        for t, n in enumerate(running):
            x, hn = table.index_select(0, rows[t, :n]), h[:n]  # (n, G) this step's input side, (n, H)
            if c2 is not None:  # tanh(v) = 2 sigmoid(2v) - 1 (g comes doubled; c is kept doubled)
                i, f, g, o = (self._hidden_side(d, hn, x) if t else x).sigmoid_().split(H, dim=1)  # g: sigmoid(2g)
                c2[:n].mul_(f).addcmul_(i, g, value=4).sub_(i, alpha=2)  # 2c = f 2c + 2 i tanh(g)
                torch.addcmul(o, o, torch.sigmoid(c2[:n]), value=2, out=hn).sub_(o, alpha=2)  # o tanh(c)
            elif self.cell == "gru":
                hn.copy_(gru_update(x, self._hidden_side(d, hn) if t else self.b_hh[d].expand_as(x), hn))
            else:
                torch.tanh(self._hidden_side(d, hn, x) if t else x, out=hn)
            torch.maximum(top[:n], hn, out=top[:n])
            total[:n] += hn
        return h, top, total

    def _hidden_side(self, d: int, h: torch.Tensor, x: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Direction ``d``'s hidden-side product of ``h`` (n, H): added into the input side ``x`` (n, G)
        in place (LSTM, RNN), or without ``x``, with the hidden bias (a GRU's: inside its reset gate)."""
        if x is None:
            return self.int8[d](h).add_(self.b_hh[d]) if self.int8 else torch.addmm(self.b_hh[d], h, self.w_hh_t[d])
        return x.add_(self.int8[d](h)) if self.int8 else x.addmm_(h, self.w_hh_t[d])


def predict(model: Classifier, tokenizer: Tokenizer, texts: Sequence[str], *, max_len: int = default("max_len"),
            batch_size: int = 256, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities ``(N, C)`` for raw texts, in input order, each cut to ``max_len`` tokens (give the
    run's, ``run.train.max_len``), at ``temperature`` (give the run's)."""
    return predict_ids(model, encode_texts(tokenizer, texts, max_len), batch_size, temperature)


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

UNCERTAIN = "uncertain"
"""The label of a row whose top probability is below the ``min_confidence`` asked for."""


def check_min_confidence(min_confidence: Optional[float], names: Sequence[Any], where: str,
                         option: str = "--min-confidence") -> None:
    """A one-line error unless ``min_confidence`` is None or in (0, 1), and the model ``where`` (its labels
    ``names``) has no label of its own named :data:`UNCERTAIN`; ``option`` names the setting."""
    if min_confidence is None:
        return
    if not 0 < min_confidence < 1:
        raise TextRNNError(f"{option} must be a probability between 0 and 1 (exclusive), got {min_confidence}")
    if any(label_key(n) == UNCERTAIN for n in names):
        raise TextRNNError(f"{where}: the model has a label named {UNCERTAIN!r}, the label {option} gives rows below "
                           f"it; leave out {option}, or rename that label in its config.json \"labels\" (keeping "
                           f"\"{UNCERTAIN}\" under \"label_aliases\")")


def predicted_labels(probs: np.ndarray, names: Sequence[Any], min_confidence: Optional[float] = None) -> list:
    """Each row's most likely label name (``probs`` (N, C), its columns in the order of ``names``), or
    :data:`UNCERTAIN` where its probability is below ``min_confidence`` (None: never)."""
    top = probs.argmax(axis=1)  # (N,)
    sure = np.ones(len(probs), dtype=bool) if min_confidence is None else probs.max(axis=1) >= min_confidence
    return [names[int(i)] if ok else UNCERTAIN for i, ok in zip(top, sure)]


def prediction_rows(rows: Sequence[dict], columns: Sequence[str], names: Sequence[Any], probs: np.ndarray, *,
                    with_probs: bool = False, min_confidence: Optional[float] = None) -> tuple[list[dict], list[str]]:
    """Each input row (a copy, in order) with its prediction, and the output columns.

    ``probs`` is ``(N, C)``, its columns in the order of ``names``. The new columns are
    ``label`` (the most likely name, or :data:`UNCERTAIN` below ``min_confidence``) and ``score``
    (its probability), or ``predicted_label`` and ``predicted_score`` when the input already has a
    ``label`` or ``score`` column; with ``with_probs`` one ``prob_<name>`` column per class follows.
    An input that already has these columns (an earlier run's output) gets them
    overwritten in place, so classifying it again replaces the old predictions.
    """
    label_col, score_col = ("label", "score")
    if label_col in columns or score_col in columns:
        label_col, score_col = "predicted_label", "predicted_score"
    prob_cols = [f"prob_{n}" for n in names] if with_probs else []
    out = []
    for row, row_p, label in zip(rows, probs, predicted_labels(probs, names, min_confidence)):
        new = dict(row)
        new[label_col], new[score_col] = label, round(float(row_p.max()), 6)
        for c, v in zip(prob_cols, row_p):
            new[c] = round(float(v), 6)
        out.append(new)
    return out, list(columns) + [c for c in [label_col, score_col, *prob_cols] if c not in columns]


def score_against_gold(gold: Sequence[Any], predicted: Sequence[int], names: Sequence[Any],
                       aliases: Optional[Mapping[str, Any]] = None, *, probs: Optional[np.ndarray] = None,
                       min_confidence: Optional[float] = None) -> dict[str, Any]:
    """Score ``predicted`` (indices into ``names``) against the raw ``gold`` values of a
    label column, over the rows whose gold label is one the model knows, by name or by one of
    its ``aliases`` (:func:`~textrnn.data.labels.match_labels`: the shipped sst2's ``0`` is
    ``negative``). Gold labels are normalised as in training (``1``, ``1.0`` and ``"+1"`` are
    the same label).

    Returns plain data: ``metrics`` (:func:`evaluate`'s, over the scored rows; None when no
    row could be scored), ``labelled`` (rows with a gold label), ``unknown`` (labelled rows
    whose label the model does not know: left out), ``unlabelled`` (rows with a blank or
    missing label: not scored) and ``scored`` (the scored rows' positions). Given the rows'
    ``probs`` (N, C), also ``ece``: the expected calibration error over the scored rows; and with
    ``min_confidence``, ``confident``: ``metrics`` over the scored rows whose top probability is at
    least that (None when there is none) and their count, ``rows``.
    """
    matched = match_labels(gold, names, aliases)
    labelled = sum(label_key(g) is not None for g in gold)
    scored = [i for i, m in enumerate(matched) if m is not None]
    metrics = _metrics([matched[i] for i in scored], [int(predicted[i]) for i in scored], names)
    score = {"metrics": metrics, "labelled": labelled, "unknown": labelled - len(scored),
             "unlabelled": len(gold) - labelled, "scored": scored}
    if probs is not None:
        score["ece"] = round(expected_calibration_error(probs[scored], [matched[i] for i in scored]), 5)
        if min_confidence is not None:
            sure = [i for i in scored if probs[i].max() >= min_confidence]
            score["confident"] = {"metrics": _metrics([matched[i] for i in sure], [int(predicted[i]) for i in sure],
                                                      names), "rows": len(sure)}
    return score


def _metrics(gold: list[int], predicted: list[int], names: Sequence[Any]) -> Optional[dict[str, Any]]:
    return evaluate(gold, predicted, names) if gold else None


def calibrate_run(run_dir: str | os.PathLike, ids: Sequence[np.ndarray], labels: Sequence[int], fitted_on: str,
                  device: str = "cpu") -> Optional[Calibration]:
    """Fit the temperature of the classifier run in ``run_dir`` (its best weights) on the encoded
    held-out rows ``ids`` and their label indices ``labels``, and record it in its config.json (what a
    classifier training run does at its end). None, and nothing written, when the run has no best
    weights yet or there are no rows."""
    if not len(ids) or not (Path(run_dir) / WEIGHTS).exists():
        return None
    ck = load(run_dir, device=device)
    calibration = calibration_of(predict_logits(ck.model, ids), labels, fitted_on)
    record_calibration(run_dir, calibration)
    return calibration
