"""Confidence that means something: a classifier's temperature, and how far its confidence is from its accuracy.

A network trained with cross-entropy is usually over-confident: of the texts it labels with
probability 0.95, fewer than 95% are right. Temperature scaling (Guo et al., 2017) divides the
logits by one number ``T > 0`` fitted on held-out labelled rows (:func:`fit_temperature`): the
labels, and so accuracy, never change; only the probabilities do. Expected calibration error
(:func:`expected_calibration_error`) measures what is left: the rows in 15 equal-width bins of
top-label confidence, and the gap between each bin's accuracy and its mean confidence, weighted by
its share of the rows.

A run keeps its temperature in config.json (:class:`~textrnn.runconfig.Calibration`,
:func:`record_calibration`; :func:`textrnn.inference.classify.calibrate_run` fits and records it);
every probability textrnn gives of that run is ``softmax(logits / T)`` (:func:`temperature_of`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..checkpoint import CONFIG, write_file
from ..runconfig import Calibration, RunConfig

BINS = 15
LOWEST, HIGHEST = 0.05, 20.0  # the temperatures searched
PRIOR_SD = 1.0  # a weak normal prior on log T (see fit_temperature)


def temperature_of(run: RunConfig) -> float:
    """The run's temperature (1: none fitted)."""
    return run.calibration.temperature if run.calibration is not None else 1.0


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` over the last axis, in float64: ``(N, C)`` -> ``(N, C)``."""
    z = np.asarray(logits, dtype=np.float64) / temperature  # (N, C)
    z -= z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(logits: np.ndarray, labels: Sequence[int], temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats) of ``labels`` under ``softmax(logits / temperature)``."""
    z = np.asarray(logits, dtype=np.float64) / temperature  # (N, C)
    top = z.max(axis=1, keepdims=True)  # (N, 1)
    log_norm = np.log(np.exp(z - top).sum(axis=1)) + top[:, 0]  # (N,)
    y = np.asarray(labels, dtype=np.int64)
    return float(np.mean(log_norm - z[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, labels: Sequence[int]) -> float:
    """The temperature ``T`` in [:data:`LOWEST`, :data:`HIGHEST`] that minimizes the NLL of ``labels``
    under ``softmax(logits / T)``: ``logits`` (N, C), ``labels`` (N,) indices. Deterministic: a grid on
    log T, then a golden-section search around its best point.

    The total NLL has a weak normal prior on log T added (sd :data:`PRIOR_SD`: on a few hundred rows it
    moves T by well under 1%). Where the model gets every row right the NLL falls without end as
    T -> 0; the prior keeps T where the rows give evidence for, not at the bottom of the range.
    """
    z, y = np.asarray(logits, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if not len(y):
        return 1.0

    def objective(log_t: float) -> float:
        return nll(z, y, math.exp(log_t)) * len(y) + 0.5 * (log_t / PRIOR_SD) ** 2

    grid = np.linspace(math.log(LOWEST), math.log(HIGHEST), 121)
    k = int(np.argmin([objective(u) for u in grid]))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = objective(a), objective(b)
    for _ in range(60):  # the bracket shrinks to 0.618^60 of a grid step
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = objective(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = objective(b)
    return float(math.exp((lo + hi) / 2))


def expected_calibration_error(probs: np.ndarray, labels: Sequence[int], bins: int = BINS) -> float:
    """Expected calibration error of ``probs`` (N, C) against ``labels`` (N,) indices: the rows put in
    ``bins`` equal-width bins of top-label confidence ((0, 1/bins], ..., ((bins-1)/bins, 1]), and
    ``sum_b n_b / N * |accuracy_b - mean confidence_b|``. 0 for no rows."""
    probs, y = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if not len(y):
        return 0.0
    confidence = probs.max(axis=1)  # (N,)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)  # (N,)
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)  # (N,)
    gap = np.abs(np.bincount(which, correct, bins) - np.bincount(which, confidence, bins))  # (bins,): n_b |acc - conf|
    return float(gap.sum() / len(y))


def calibration_of(logits: np.ndarray, labels: Sequence[int], fitted_on: Optional[str] = None) -> Calibration:
    """The fitted temperature of ``logits`` (N, C) and ``labels`` (N,), with the ECE on those rows before
    and after (:class:`~textrnn.runconfig.Calibration`, rounded as config.json keeps it)."""
    t = fit_temperature(logits, labels)
    return Calibration(temperature=round(t, 5), fitted_on=fitted_on, rows=len(labels),
                       ece_before=round(expected_calibration_error(softmax(logits), labels), 5),
                       ece_after=round(expected_calibration_error(softmax(logits, t), labels), 5))


def record_calibration(run_dir: str | os.PathLike, calibration: Calibration) -> None:
    """Write ``calibration`` into the run's config.json, the rest of the file as it is (its layout and
    schema kept: the shipped version-0 files stay version 0)."""
    path = Path(run_dir) / CONFIG
    content = json.loads(path.read_text(encoding="utf-8"))
    content["calibration"] = asdict(calibration)
    RunConfig.from_dict(content, str(path))  # (what is written reads back)
    write_file(path, json.dumps(content, indent=2, ensure_ascii=False) + "\n")
