"""``textrnn train``: a language model or a classifier. Its options are generated from their
declarations in :mod:`textrnn.config` (see :mod:`textrnn.cli.options`); only the options
given on the command line are passed to the pipeline, which fills in the rest."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .options import flag_name, train_params
from .progress import TrainProgress, is_main_rank


@click.command("train", params=train_params())
@click.argument("inputs", nargs=-1, type=click.Path(path_type=str))
def train_command(inputs: tuple[str, ...], **options: Any) -> None:
    """Train a language model on text files, directories or globs (default: the shipped
    tiny-shakespeare), or a classifier on a labelled CSV / TSV / JSONL file (--task classify).

    \b
    Many processes or GPUs:  torchrun --nproc-per-node 4 -m textrnn train corpus/"""
    from ..config import check_options
    from ..errors import TextRNNError

    given = {name: value for name, value in options.items() if value is not None}
    check_options(given)  # choices and --max-time, before torch is imported
    task = given.pop("task", None) or _infer_task(inputs, given)
    given = _for_task(task, given)
    if task == "classify":
        if os.environ.get("WORLD_SIZE", "1") != "1":
            raise TextRNNError("distributed training (torchrun) is for language models; "
                               "train the classifier as one process")
        if len(inputs) != 1:
            raise TextRNNError("--task classify takes exactly one labelled file (CSV, TSV or JSONL); "
                               "give validation data with --val-file")
        from ..api import train_classifier as run_training

        args: tuple = (inputs[0],)
    else:
        from ..api import train as run_training

        args = (list(inputs) or None,)
    main_rank = is_main_rank()
    with TrainProgress() as progress:
        if task == "lm" and main_rank:
            given["on_prepare"] = progress.prepare
        if main_rank:
            given["on_note"] = progress.note
        result = run_training(*args, on_progress=progress if main_rank else None, **given)
    _report(task, result, progress.console, main_rank)


def _infer_task(inputs: tuple[str, ...], given: dict[str, Any]) -> str:
    """classify for a table input (unless it is a --dataset's data file, or its rows are to condition a
    language model: --condition-column), else lm."""
    from ..data.tables import TABLE_SUFFIXES

    table = inputs and inputs[0].lower().endswith(TABLE_SUFFIXES)
    return "classify" if table and not given.get("dataset") and not given.get("condition_column") else "lm"


def _for_task(task: str, given: dict[str, Any]) -> dict[str, Any]:
    """The given options that apply to ``task``; one that is for the other task is an error
    (unless it is empty or off)."""
    from ..config import OPTIONS
    from ..errors import TextRNNError

    kept = {}
    for name, value in given.items():
        only, misuse = OPTIONS[name].metadata["only"], OPTIONS[name].metadata["misuse"]
        if only is None or only == task:
            kept[name] = value
        elif value:
            what = "classifiers; add --task classify" if only == "classify" else "language models; add --task lm"
            raise TextRNNError(misuse or f"{flag_name(name)} is for {what}")
    return kept


def _report(task: str, result: Any, console: Any, main_rank: bool) -> None:
    """The closing line (rank 0), and the exit status: 130 / 143 for a run stopped (and
    saved) by Ctrl-C / SIGTERM."""
    status = {"interrupt": 130, "terminate": 143}.get(result.stopped_by or "", 0)
    if not main_rank:
        sys.exit(status)
    best = result.best or {}
    how = {"interrupt": "interrupted", "terminate": "terminated"}.get(result.stopped_by or "", "done")
    if task == "lm":
        bpc = f", {best['val_bpc']:.3f} bits/char" if "val_bpc" in best else ""
        score = f"best val loss {best.get('val_loss', float('nan')):.4f} nats/token{bpc}"
        if getattr(result, "test", None):
            t = result.test
            score += (f"; test loss {t['test_loss']:.4f}, perplexity {t['test_ppl']:.2f}, "
                      f"{t['test_bpc']:.3f} bits/char, word perplexity {t['test_word_ppl']:.2f}")
    else:
        score = (f"best val accuracy {best.get('val_acc', float('nan')):.2%}, "
                 f"macro-F1 {best.get('val_macro_f1', float('nan')):.4f}")
    if result.stopped_by == "patience":
        how = "stopped early (no better for --patience evaluations)"
    if getattr(result, "folds", None):
        console.print(_folds_line(result.folds))
    console.print(f"{how}: {result.steps} steps in {result.elapsed_s:.0f}s; {score} "
                  f"(step {best.get('step', '-')}); saved to {result.path}")
    if status:
        console.print(f"continue with: textrnn train ... --out {result.path} --resume")
        sys.exit(status)


def _folds_line(cv: dict) -> str:
    """``5-fold cross-validation over 300 rows: accuracy 87.33% +- 2.10 (84.75-90.00), macro-F1 ...``."""
    acc, f1 = cv["accuracy"], cv["macro_f1"]
    return (f"{cv['folds']}-fold cross-validation over {cv['rows']} rows: accuracy {acc['mean']:.2%} "
            f"+- {acc['std'] * 100:.2f} ({acc['min']:.2%}-{acc['max']:.2%}), macro-F1 {f1['mean']:.4f} "
            f"+- {f1['std']:.4f}; the model below is trained on every row")
