"""What the terminal shows while a run trains: the rich progress bars, fed by the pipeline's
callbacks, and which process shows them (under torchrun, rank 0 only)."""

from __future__ import annotations

import os
from typing import Any


def is_main_rank() -> bool:
    """Whether this process reports (under torchrun, only rank 0 does)."""
    return os.environ.get("RANK", "0") == "0"


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


class TrainProgress:
    """The rich progress bar fed by the training loop's callback."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self.console = stderr_console()
        self.bar = Progress(
            TextColumn("[bold]train"), BarColumn(), TaskProgressColumn(),
            TextColumn("step {task.fields[step]}"), TextColumn("loss {task.fields[loss]}"),
            TextColumn("val {task.fields[val]}"), TextColumn("{task.fields[speed]} tok/s"),
            TimeRemainingColumn(), console=self.console, transient=False,
        )
        self.task = None
        self.started = False
        self.stages: dict[str, Any] = {}

    def _start(self) -> None:
        if not self.started:  # only once work runs: input errors print nothing but themselves
            self.bar.__enter__()
            self.started = True

    def prepare(self, stage: str, done: int, total: int) -> None:
        """Corpus preparation (hashing, tokenizer training, encoding): bytes done of total."""
        if stage not in self.stages:
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            if not self.stages:
                self.prep = Progress(TextColumn("[bold]{task.description:>10}"), BarColumn(), DownloadColumn(),
                                     TransferSpeedColumn(), console=self.console, transient=True)
                self.prep.__enter__()
            self.stages[stage] = self.prep.add_task(stage, total=total or None)
        self.prep.update(self.stages[stage], completed=done)

    def note(self, line: str) -> None:
        """A line the pipeline reports before training (e.g. what the fit chose)."""
        self.console.print(line, highlight=False, markup=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.stages:
            self.prep.__exit__(*exc)
        if self.started:
            self.bar.__exit__(*exc)

    def __call__(self, p) -> None:
        if self.stages:  # preparation is over
            self.prep.__exit__(None, None, None)
            self.stages = {}
        self._start()
        if self.task is None:
            self.task = self.bar.add_task("train", total=1000, step=0, loss="-", val="-", speed="-")
        fields: dict[str, Any] = {"step": p.step, "speed": f"{p.tokens_per_s:,.0f}"}
        if p.train_loss is not None:
            fields["loss"] = f"{p.train_loss:.3f}"
        if p.val_loss is not None:
            fields["val"] = f"{p.val_loss:.3f}"
        self.bar.update(self.task, completed=int(p.fraction * 1000), **fields)
        if p.event == "eval" and p.metrics:
            m = p.metrics
            if "val_acc" in m:
                detail = f"acc {m['val_acc']:.2%}  macro-F1 {m['val_macro_f1']:.4f}"
            else:
                detail = f"ppl {m['val_ppl']:.2f}" + (f"  bpc {m['val_bpc']:.3f}" if "val_bpc" in m else "")
            self.bar.console.print(f"step {m['step']}: val loss {m['val_loss']:.4f}  {detail}")
        if p.event == "eval" and p.sample:
            self.bar.console.print(sample_text(p.sample), no_wrap=True, overflow="ellipsis")


SAMPLE_LINES = 4


def sample_text(sample: str):
    """A sample as shown under the bar: dimmed, its first lines only (never read as markup)."""
    from rich.text import Text

    lines = sample.strip("\n").splitlines()
    shown = "\n".join("  " + line for line in lines[:SAMPLE_LINES]) + ("\n  ..." if len(lines) > SAMPLE_LINES else "")
    return Text(shown, style="dim")
