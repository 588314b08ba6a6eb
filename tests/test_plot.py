import json

import pytest

from textrnn import checkpoint
from textrnn.errors import TextRNNError
from textrnn.plot import Run, load_runs, sparkline, terminal_chart, write_png


def make_run(path, losses, grad=1.0):
    """A run directory with one metrics row per validation loss (every 10 steps)."""
    path.mkdir(parents=True)
    (path / checkpoint.CONFIG).write_text(json.dumps({"task": "lm"}))
    rows = [{"step": 10 * (i + 1), "elapsed_s": 3.0 * (i + 1), "train_loss": v + 0.1, "val_loss": v,
             "grad_norm": grad * (i + 1), "grad_norm_max": 2 * grad * (i + 1), "grad_clipped": 0.5,
             "grad_norm/encoder.embedding": 0.1, "grad_norm/head": grad} for i, v in enumerate(losses)]
    checkpoint.write_metrics(path, rows)
    return path


def test_terminal_chart_overlays_two_runs_with_their_last_values(tmp_path):
    runs = load_runs([make_run(tmp_path / "small", [3.0, 2.5, 2.2]), make_run(tmp_path / "big", [3.1, 2.0, 1.5, 1.2])])
    assert [r.name for r in runs] == ["small", "big"]
    chart = terminal_chart(runs, width=60, height=8)
    lines = chart.splitlines()
    assert lines[0] == "validation loss by step" and lines[1].lstrip().startswith("3.1 |")
    grid = "\n".join(lines[1:9])
    assert "*" in grid and "o" in grid and lines[10].split() == ["10", "40"]
    assert "* small: step 30  train 2.3  val 2.2  grad norm 3  clipped 50%" in chart
    assert "o big: step 40" in chart and "grad norm ▁▃▆█" in chart
    assert max(len(line) for line in lines[:11]) <= 60  # (the chart; the last values take a line each)


def test_runs_of_the_same_name_are_labelled_by_path_and_series_skip_missing_values(tmp_path):
    a, b = make_run(tmp_path / "x" / "run", [2.0]), make_run(tmp_path / "y" / "run", [1.0])
    assert [r.name for r in load_runs([a, b])] == [str(a), str(b)]
    run = Run("r", [{"step": 1, "val_loss": 2.0}, {"step": 2}, {"step": 3, "val_loss": None}])
    assert run.series("val_loss") == ([1.0], [2.0]) and run.layers() == []
    assert sparkline([1, 2, 3]) == "▁▅█" and sparkline([5, 5]) == "▁▁" and sparkline([]) == ""


def test_a_missing_run_or_one_without_metrics_is_a_one_line_error(tmp_path):
    with pytest.raises(TextRNNError, match="no such checkpoint"):
        load_runs([tmp_path / "nope"])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / checkpoint.CONFIG).write_text("{}")
    with pytest.raises(TextRNNError, match="has no metrics yet"):
        load_runs([empty])


def test_png_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    runs = load_runs([make_run(tmp_path / "a", [3.0, 2.5]), make_run(tmp_path / "b", [2.9, 2.0])])
    out = write_png(runs, tmp_path / "plot.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_png_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # (import matplotlib then fails)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    runs = load_runs([make_run(tmp_path / "a", [3.0])])
    with pytest.raises(TextRNNError, match=r"pip install 'textrnn\[plot\]'"):
        write_png(runs, tmp_path / "plot.png")
    assert not (tmp_path / "plot.png").exists()
