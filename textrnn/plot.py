"""Charts of training runs, from each run's ``metrics.jsonl``: training and validation loss
against steps and against elapsed time, and the gradient norms (``textrnn plot``).

:func:`load_runs` reads the runs, :func:`terminal_chart` draws a compact text chart (no extra
dependency) and :func:`write_png` a figure with matplotlib (``pip install 'textrnn[plot]'``).
Nothing here prints.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from . import checkpoint, files
from .errors import TextRNNError

MARKERS = "*o+x#%@&"
SPARKS = "▁▂▃▄▅▆▇█"
PLOT_EXTRA = "pip install 'textrnn[plot]'"


@dataclass
class Run:
    """A run's name (its directory's) and its rows of ``metrics.jsonl``."""

    name: str
    metrics: list[dict[str, Any]]

    def series(self, key: str, x: str = "step") -> tuple[list[float], list[float]]:
        """``key`` against ``x`` over the evaluations that recorded both."""
        rows = [m for m in self.metrics if isinstance(m.get(key), (int, float)) and m.get(x) is not None]
        return [float(m[x]) for m in rows], [float(m[key]) for m in rows]

    def layers(self) -> list[str]:
        """The per-layer gradient-norm fields, in the order first recorded."""
        return list(dict.fromkeys(k for m in self.metrics for k in m if k.startswith("grad_norm/")))


def load_runs(paths: Sequence[str | os.PathLike]) -> list[Run]:
    """The runs in ``paths``; a path that is no run, or a run with no evaluation yet, is an error."""
    runs = []
    for path in paths:
        path = Path(path)
        checkpoint.require_run(path)  # (a missing or foreign directory: its one-line error; only metrics are read)
        metrics = checkpoint.read_metrics(path)
        if not metrics:
            raise TextRNNError(f"{path}: has no metrics yet ({checkpoint.METRICS} is written at the first "
                               "evaluation); train it longer or lower --eval-every")
        runs.append(Run(path.resolve().name or str(path), metrics))
    names = [r.name for r in runs]
    for run, path in zip(runs, paths):
        if names.count(run.name) > 1:  # two runs of the same name: label them by their paths
            run.name = str(path)
    return runs


def sparkline(values: Sequence[float]) -> str:
    """One character per value, from ▁ (the lowest) to █ (the highest)."""
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    return "".join(SPARKS[round((v - lo) / span * (len(SPARKS) - 1))] for v in values)


def _grid_chart(lines: list[tuple[str, list[float], list[float]]], width: int, height: int) -> list[str]:
    """A character-cell chart of the ``(marker, xs, ys)`` lines, with the y range on the left
    and the x range below."""
    xs = [x for _, lx, _ in lines for x in lx]
    ys = [y for _, _, ly in lines for y in ly if math.isfinite(y)]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    labels = [f"{v:.4g}" for v in (y1, (y0 + y1) / 2, y0)]
    pad = max(len(s) for s in labels)
    cols = max(10, width - pad - 2)
    grid = [[" "] * cols for _ in range(height)]

    def col(x: float) -> int:
        return round((x - x0) / ((x1 - x0) or 1.0) * (cols - 1))

    def row(y: float) -> int:
        return height - 1 - round((y - y0) / ((y1 - y0) or 1.0) * (height - 1))

    for marker, lx, ly in lines:
        points = [(col(x), y) for x, y in zip(lx, ly) if math.isfinite(y)]
        for (c0, v0), (c1, v1) in zip(points, points[1:]):  # the segments between evaluations
            for c in range(c0, c1 + 1):
                grid[row(v0 + (v1 - v0) * (c - c0) / max(1, c1 - c0))][c] = marker
        for c, v in points[:1]:
            grid[row(v)][c] = marker
    out = []
    for i, cells in enumerate(grid):
        label = labels[0] if i == 0 else labels[2] if i == height - 1 else labels[1] if i == height // 2 else ""
        out.append(f"{label:>{pad}} |{''.join(cells).rstrip()}")
    left, right = f"{x0:g}", f"{x1:g}"
    out.append(" " * pad + " +" + "-" * cols)
    out.append(" " * (pad + 2) + left + " " * max(1, cols - len(left) - len(right)) + right)
    return out


def _last(run: Run, key: str) -> Optional[float]:
    _, ys = run.series(key)
    return ys[-1] if ys else None


def terminal_chart(runs: Sequence[Run], width: int = 80, height: int = 12) -> str:
    """Validation loss against steps for every run (one marker each), then per run its last
    values and sparklines of the validation loss and the gradient norm."""
    lines = [(MARKERS[i % len(MARKERS)], *run.series("val_loss")) for i, run in enumerate(runs)]
    lines = [line for line in lines if line[1]]
    out = ["validation loss by step"]
    if lines:
        out += _grid_chart(lines, width, height)
    for i, run in enumerate(runs):
        shown = {"step": "step {:g}", "train_loss": "train {:.4g}", "val_loss": "val {:.4g}",
                 "grad_norm": "grad norm {:.3g}", "grad_clipped": "clipped {:.0%}"}
        facts = [form.format(v) for k, form in shown.items() if (v := _last(run, k)) is not None]
        out.append(f"{MARKERS[i % len(MARKERS)]} {run.name}: " + "  ".join(facts))
        for key, what in (("val_loss", "val loss"), ("grad_norm", "grad norm")):
            spark = sparkline(run.series(key)[1])
            if spark:
                out.append(f"    {what:<9} {spark[-max(10, width - 14):]}")
    return "\n".join(out)


def write_png(runs: Sequence[Run], dest: str | os.PathLike) -> Path:
    """A PNG of the loss against steps and time, and the gradient norms (total and per layer)."""
    try:
        from matplotlib.figure import Figure  # (a figure without pyplot: no global backend state)
    except ImportError:
        raise TextRNNError(f"--output needs matplotlib, which is not installed: {PLOT_EXTRA} "
                           "(or leave out --output for a chart in the terminal)") from None
    fig = Figure(figsize=(12, 8), layout="constrained")
    (by_step, by_time), (norms, layers) = fig.subplots(2, 2)
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        for key, style in (("train_loss", "--"), ("val_loss", "-")):
            label = f"{run.name} {key.split('_')[0]}"
            by_step.plot(*run.series(key), style, color=color, label=label)
            xs, ys = run.series(key, "elapsed_s")
            by_time.plot([x / 60 for x in xs], ys, style, color=color, label=label)
        norms.plot(*run.series("grad_norm"), "-", color=color, label=f"{run.name} mean")
        norms.plot(*run.series("grad_norm_max"), ":", color=color, label=f"{run.name} max")
        for key in run.layers():
            layers.plot(*run.series(key), label=f"{run.name} {key.split('/', 1)[1]}")
    for ax, x, y, title in ((by_step, "step", "loss (nats/token)", "loss by step"),
                            (by_time, "minutes", "loss (nats/token)", "loss by time"),
                            (norms, "step", "norm before clipping", "gradient norm"),
                            (layers, "step", "norm", "gradient norm per layer")):
        ax.set(xlabel=x, ylabel=y, title=title)
        if ax.has_data():
            ax.legend(fontsize="small")
    for ax in (norms, layers):
        if ax.has_data():
            ax.set_yscale("log")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    try:
        files.atomic_write(dest, buffer.getvalue())
    except OSError as e:
        raise TextRNNError(f"--output {dest}: cannot write it ({e.strerror or e})") from None
    return Path(dest)
