import io

from rich.console import Console

from textrnn.cli import progress as progress_mod
from textrnn.training.trainer import Progress


def test_the_sample_is_printed_under_the_eval_line_dimmed_and_cut_to_a_few_lines(monkeypatch):
    console = Console(file=io.StringIO(), record=True, width=60)
    monkeypatch.setattr(progress_mod, "stderr_console", lambda: console)
    metrics = {"step": 20, "val_loss": 2.5, "val_ppl": 12.18}
    sample = "\n[bold]not markup\n" + "".join(f"line {i}\n" for i in range(2, 9)) + "x" * 200
    with progress_mod.TrainProgress() as bar:
        bar(Progress(20, 0, 0.5, 1.0, 2.6, 2.5, 100.0, 1e-3, "eval", metrics, sample))
    out = console.export_text()
    assert "step 20: val loss 2.5000" in out and "[bold]not markup" in out
    assert "line 4" in out and "line 5" not in out and "..." in out and "x" * 100 not in out
    assert progress_mod.sample_text("a\nb").style == "dim"
