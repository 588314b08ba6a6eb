"""Stratified k-fold cross-validation of a classifier (``textrnn train --task classify --folds K``):
how the rows are cut into folds, and how the folds' scores are summed up. Training each fold is
:func:`textrnn.training.classifier.train_classifier`'s."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import TextRNNError

FOLDS_FILE = "folds.json"
"""Where a run trained with ``--folds`` keeps the folds' scores (next to config.json)."""


def check_folds(k: Any, rows: int, where: str) -> None:
    """A one-line error unless ``k`` folds can be cut from ``rows`` rows."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        raise TextRNNError(f"--folds must be a whole number >= 2, got {k!r}")
    if k > rows:
        raise TextRNNError(f"--folds {k}: {where} has only {rows} labelled rows; give --folds {max(2, min(10, rows))} "
                           f"or fewer")


def stratified_folds(labels: Sequence[int], k: int, seed: int) -> list[np.ndarray]:
    """``k`` disjoint sets of row indices covering every row, each with about a ``k``-th of every
    label's rows (a label's rows in a seeded random order, dealt round the folds in turn, each
    label starting at the fold after the last one dealt to); each set sorted."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    at = 0
    for label in np.unique(labels):
        for i in rng.permutation(np.flatnonzero(labels == label)):
            folds[at % k].append(int(i))
            at += 1
    return [np.sort(np.array(f, dtype=np.int64)) for f in folds]


def summary(per_fold: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, spread (sample standard deviation), lowest and highest accuracy and macro-F1 over the folds."""
    out: dict[str, Any] = {"folds": len(per_fold), "rows": int(sum(f["rows"] for f in per_fold))}
    for name in ("accuracy", "macro_f1"):
        values = np.array([f[name] for f in per_fold], dtype=np.float64)
        out[name] = {"mean": round(float(values.mean()), 5),
                     "std": round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 5),
                     "min": round(float(values.min()), 5), "max": round(float(values.max()), 5)}
    out["per_fold"] = per_fold
    return out
