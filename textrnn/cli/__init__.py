"""The ``textrnn`` command. Parses options, calls the library, owns the terminal.

Heavy modules (torch, tokenizers, rich) are imported inside the commands, so ``--help``
and option errors answer at once. Every user error ends as one ``error: ...`` line on
stderr and exit status 2.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Optional

import click

from .. import __version__


def _is_main_rank() -> bool:
    """Whether this process reports (under torchrun, only rank 0 does)."""
    return os.environ.get("RANK", "0") == "0"


class _Group(click.Group):
    """Turns user errors (click's and textrnn's) into one line and exit status 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from ..errors import SharedError, TextRNNError

        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:
            click.echo(e.ctx.get_help())
            sys.exit(0)
        except click.ClickException as e:
            click.echo(f"error: {e.format_message()}", err=True)
            sys.exit(2)
        except TextRNNError as e:
            if not (isinstance(e, SharedError) and not _is_main_rank()):
                click.echo(f"error: {' '.join(str(e).split())}", err=True)  # (rank 0 reports shared errors)
            sys.exit(2)
        except (KeyboardInterrupt, click.exceptions.Abort):
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="textrnn")
def cli() -> None:
    """Train and use recurrent-network text models.

    \b
      textrnn train corpus.txt          train a character-level language model
      textrnn generate --temp 0.8       sample text from the latest one
    """
    from ..process import configure_process

    configure_process()  # before any command runs (the library changes no process-wide state itself)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


class _TrainProgress:
    """The rich progress bar fed by the training loop's callback."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self.console = _stderr_console()
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


@cli.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=str))
@click.option("--task", help="lm | classify  [default: classify for a .csv/.tsv/.jsonl input, else lm]")
@click.option("--out", "-o", type=click.Path(), help="Run directory [default: checkpoints/<input name>].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--force", is_flag=True, help="Overwrite an existing run in --out.")
@click.option("--tokenizer", help="char | word | bpe  [default: char (lm), word (classify)]")
@click.option("--vocab-size", type=int, help="Word vocabulary cap [20000] / BPE size [4096].")
@click.option("--cell", help="lstm | gru | rnn  [default: lstm]")
@click.option("--layers", type=int, help="Recurrent layers [1].")
@click.option("--hidden", type=int, help="Hidden units per layer [512 lm, 384 classify].")
@click.option("--embed", type=int, help="Embedding size [64 lm, 256 classify].")
@click.option("--dropout", type=float, help="Dropout [0 lm, 0.5 classify].")
@click.option("--embed-dropout", type=float,
              help="Drop whole tokens from the embedding while training [0 lm, 0.1 classify].")
@click.option("--tie-weights/--no-tie-weights", default=None, help="LM: share embedding and output weights.")
@click.option("--bidirectional/--unidirectional", default=None, help="Classifier: read both ways [bidirectional].")
@click.option("--batch-size", type=int, help="Parallel streams (lm) [32] or texts (classify) [256] per batch.")
@click.option("--seq-len", type=int, help="LM: tokens per BPTT window [128].")
@click.option("--max-len", type=int, help="Classifier: cut texts to this many tokens [512].")
@click.option("--lr", type=float, help="Peak learning rate [6e-3 lm, 4e-3 classify].")
@click.option("--weight-decay", type=float, help="AdamW weight decay [0.01].")
@click.option("--warmup-steps", type=int, help="Warm-up steps [100 lm, 50 classify].")
@click.option("--clip", type=float, help="Gradient-norm clip [1.0].")
@click.option("--epochs", type=float, help="Stop after this many epochs [10 lm, 5 classify, when no limit is given].")
@click.option("--max-steps", type=int, help="Stop after this many steps.")
@click.option("--max-time", help="Stop after this long, e.g. 45s, 5m, 1h30m.")
@click.option("--eval-every", type=int, help="Evaluate every N steps [500 lm, 100 classify].")
@click.option("--save-every", type=int, help="Save the last checkpoint every N steps [as --eval-every].")
@click.option("--val-fraction", type=float, help="Hold out this fraction as validation [0.1].")
@click.option("--val-file", type=click.Path(), help="Validate on this file instead.")
@click.option("--text-column", help="Table input: the text column [auto: text, sentence, review, ...].")
@click.option("--label-column", help="Classifier: the label column [auto: label, sentiment, ...].")
@click.option("--format", "fmt", help="Classifier input: csv | tsv | jsonl | txt [by extension].")
@click.option("--init-from", type=click.Path(), help="Classifier: start from this language-model run.")
@click.option("--encoding", default="utf-8", show_default=True, help="Text encoding of the input.")
@click.option("--dataset", metavar="NAME[:CONFIG]",
              help="LM: train on a Hugging Face dataset (INPUTS are then its data files, for builders "
                   "such as text, csv, json).")
@click.option("--seed", type=int, help="Random seed [1234].")
@click.option("--device", help="auto | cpu | cuda | mps  [default: auto]")
@click.option("--precision", help="auto | fp32 | bf16 | fp16  [auto: bf16 (or fp16) autocast on CUDA, fp32 elsewhere]")
@click.option("--compile/--no-compile", "compile_", default=None, help="Run the training step through torch.compile.")
def train(inputs: tuple[str, ...], task: Optional[str], out: Optional[str], resume: bool, force: bool,
          tokenizer: Optional[str], vocab_size: Optional[int], val_file: Optional[str],
          text_column: Optional[str], label_column: Optional[str], fmt: Optional[str],
          init_from: Optional[str], encoding: str, dataset: Optional[str], compile_: Optional[bool],
          **options: Any) -> None:
    """Train a language model on text files, directories or globs (default: the shipped
    tiny-shakespeare), or a classifier on a labelled CSV / TSV / JSONL file (--task classify).

    \b
    Many processes or GPUs:  torchrun --nproc-per-node 4 -m textrnn train corpus/"""
    from ..config import PRECISIONS, TOKENIZERS
    from ..errors import TextRNNError
    from ..data.tables import TABLE_SUFFIXES

    options["compile"] = compile_
    if task is None:
        task = "classify" if inputs and inputs[0].lower().endswith(TABLE_SUFFIXES) and not dataset else "lm"
    if task not in ("lm", "classify"):
        raise TextRNNError(f"--task must be lm or classify, got {task!r}")
    if tokenizer is not None and tokenizer not in TOKENIZERS:  # checked before importing torch
        raise TextRNNError(f"--tokenizer must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")
    if options.get("max_time") is not None:
        from ..config import parse_duration

        parse_duration(options["max_time"])
    if options.get("precision") is not None and options["precision"] not in PRECISIONS:
        raise TextRNNError(f"--precision must be one of {', '.join(PRECISIONS)}, got {options['precision']!r}")
    if task == "lm":
        for name, value in [("--label-column", label_column),
                            ("--format", fmt), ("--init-from", init_from), ("--max-len", options.get("max_len")),
                            ("--bidirectional", options.get("bidirectional"))]:
            if value:
                raise TextRNNError(f"{name} is for classifiers; add --task classify")
        from ..api import train as run_training

        args: tuple = (list(inputs) or None,)
        extra: dict[str, Any] = {"text_column": text_column, "dataset": dataset}
    else:
        if dataset:
            raise TextRNNError("--dataset trains language models; for a classifier give a labelled file")
        if os.environ.get("WORLD_SIZE", "1") != "1":
            raise TextRNNError("distributed training (torchrun) is for language models; "
                               "train the classifier as one process")
        if len(inputs) != 1:
            raise TextRNNError("--task classify takes exactly one labelled file (CSV, TSV or JSONL); "
                               "give validation data with --val-file")
        from ..api import train_classifier as run_training

        args = (inputs[0],)
        extra = {"text_column": text_column, "label_column": label_column, "format": fmt, "init_from": init_from}

    main_rank = _is_main_rank()
    with _TrainProgress() as progress:
        if task == "lm" and main_rank:
            extra["on_prepare"] = progress.prepare
        result = run_training(*args, out=out, resume=resume, force=force, tokenizer=tokenizer,
                              vocab_size=vocab_size, val_file=val_file, encoding=encoding,
                              on_progress=progress if main_rank else None, **extra, **options)
    status = {"interrupt": 130, "terminate": 143}.get(result.stopped_by or "", 0)  # saved, but stopped early
    if not main_rank:
        sys.exit(status)
    best = result.best or {}
    how = {"interrupt": "interrupted", "terminate": "terminated"}.get(result.stopped_by or "", "done")
    if task == "lm":
        bpc = f", {best['val_bpc']:.3f} bits/char" if "val_bpc" in best else ""
        score = f"best val loss {best.get('val_loss', float('nan')):.4f} nats/token{bpc}"
    else:
        score = (f"best val accuracy {best.get('val_acc', float('nan')):.2%}, "
                 f"macro-F1 {best.get('val_macro_f1', float('nan')):.4f}")
    progress.console.print(f"{how}: {result.steps} steps in {result.elapsed_s:.0f}s; {score} "
                           f"(step {best.get('step', '-')}); saved to {result.path}")
    if status:
        progress.console.print(f"continue with: textrnn train ... --out {result.path} --resume")
        sys.exit(status)


@cli.command()
@click.option("--checkpoint", "-c", type=click.Path(), help="Run directory [default: latest LM in ./checkpoints].")
@click.option("--prompt", "-p", default="", help="Text to start from.")
@click.option("--length", "-n", default=500, show_default=True, type=int, help="Tokens to generate.")
@click.option("--temp", "--temperature", "temperature", default=1.0, show_default=True, type=float,
              help="Sampling temperature (lower is more conservative).")
@click.option("--top-k", type=int, help="Sample only among the k most likely tokens.")
@click.option("--top-p", type=float, help="Sample only within the smallest set of probability >= p.")
@click.option("--num-samples", default=1, show_default=True, type=int, help="Sample N texts as one batch.")
@click.option("--seed", type=int, help="Random seed (same seed and checkpoint give the same text).")
@click.option("--greedy", is_flag=True, help="Always take the most likely token.")
@click.option("--device", default="cpu", show_default=True, help="auto | cpu | cuda | mps")
def generate(checkpoint: Optional[str], prompt: str, length: int, temperature: float, top_k: Optional[int],
             top_p: Optional[float], num_samples: int, seed: Optional[int], greedy: bool, device: str) -> None:
    """Sample text from a trained language model; one stream prints as it is sampled."""
    from ..generate import check_options

    check_options(10**9, temperature, top_k, top_p, greedy, length, num_samples)  # before loading torch
    from ..api import load

    lm = load(checkpoint, device=device)
    pieces = lm.stream(prompt, length, temperature=temperature, top_k=top_k, top_p=top_p,
                       greedy=greedy, num_samples=num_samples, seed=seed)
    out = sys.stdout
    if num_samples == 1:  # stream: write what is ready about 20 times a second
        buffer = [prompt]
        last_flush = time.perf_counter()
        for (piece,) in pieces:
            buffer.append(piece)
            now = time.perf_counter()
            if now - last_flush > 0.05:
                out.write("".join(buffer))
                out.flush()
                buffer.clear()
                last_flush = now
        buffer.append("\n")
        out.write("".join(buffer))
        out.flush()
        return
    texts = [[prompt] for _ in range(num_samples)]
    for step in pieces:
        for acc, piece in zip(texts, step):
            acc.append(piece)
    for i, parts in enumerate(texts):
        out.write(f"--- sample {i + 1} ---\n{''.join(parts)}\n")
    out.flush()


OUTPUT_FORMATS = ("csv", "tsv", "jsonl", "table")


def _output_format(fmt: Optional[str], output: Optional[str], input_format: str) -> str:
    from ..errors import TextRNNError

    if fmt is None and output and output != "-":
        fmt = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(
            "." + output.rsplit(".", 1)[-1].lower() if "." in output else "", None)
    if fmt is None:
        fmt = input_format if input_format in ("csv", "tsv", "jsonl") else "csv"
    if fmt not in OUTPUT_FORMATS:
        raise TextRNNError(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}")
    return fmt


def _check_output_path(output: Optional[str]) -> None:
    """Fail before any work if OUT cannot be written (the file itself is written at the end)."""
    import os
    from pathlib import Path

    from ..errors import TextRNNError

    if not output or output == "-":
        return
    path = Path(output)
    if path.is_dir():
        raise TextRNNError(f"--output {output}: is a directory; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise TextRNNError(f"--output {output}: folder {parent} does not exist; create it or choose another path")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise TextRNNError(f"--output {output}: not writable; choose another path")


def _render_rows(rows: list[dict], columns: list[str], fmt: str) -> str:
    import csv
    import io
    import json

    buf = io.StringIO()
    if fmt == "jsonl":
        for r in rows:
            buf.write(json.dumps({c: r.get(c) for c in columns}, ensure_ascii=False) + "\n")
    elif fmt == "tsv":
        # textrnn's TSV has no quoting and no escapes (``"`` and ``\`` are ordinary
        # characters, as textrnn.tables reads them): a field cannot hold a tab or a line
        # end, so each tab, \r and \n in a value is written as a space.
        for values in [columns] + [[r.get(c) for c in columns] for r in rows]:
            buf.write("\t".join(_tsv_field(v) for v in values) + "\n")
    else:
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return buf.getvalue()


def _tsv_field(value: Any) -> str:
    """One TSV field: tabs and line ends become spaces (see _render_rows)."""
    s = "" if value is None else str(value)
    return s.replace("\r\n", " ").replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _print_metrics(console, metrics: dict, names: list, skipped: int) -> None:
    from rich.table import Table

    console.print(f"accuracy {metrics['accuracy']:.2%}  macro-F1 {metrics['macro_f1']:.4f}"
                  + (f"  ({skipped} rows with labels the model does not know were left out)" if skipped else ""))
    per = Table(title="per class")
    for col in ("label", "precision", "recall", "f1", "support"):
        per.add_column(col, justify="left" if col == "label" else "right")
    for name, m in metrics["per_class"].items():
        per.add_row(name, f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}", str(m["support"]))
    console.print(per)
    conf = Table(title="confusion matrix (rows: true label, columns: predicted)")
    conf.add_column("true \\ predicted")
    for n in names:
        conf.add_column(str(n), justify="right")
    for n, row in zip(names, metrics["confusion"]):
        conf.add_row(str(n), *map(str, row))
    console.print(conf)


@cli.command()
@click.argument("file", required=False, type=click.Path(path_type=str))
@click.option("--checkpoint", "-c", type=click.Path(),
              help="Classifier run [default: latest classifier in ./checkpoints].")
@click.option("--text", "text", help="Classify this one text instead of a file.")
@click.option("--output", "-o", type=click.Path(), help="Write here instead of stdout.")
@click.option("--format", "fmt", help="Output: csv | tsv | jsonl | table [by --output extension, else input's].")
@click.option("--probs", is_flag=True, help="Add one probability column per class.")
@click.option("--text-column", help="The text column [auto].")
@click.option("--label-column", help="A gold-label column to score against [auto: label, sentiment, ...].")
@click.option("--input-format", help="csv | tsv | jsonl | txt [by extension; csv for stdin].")
@click.option("--encoding", default="utf-8", show_default=True, help="Text encoding of FILE.")
@click.option("--batch-size", default=256, show_default=True, type=int, help="Texts per inference batch.")
@click.option("--device", default="cpu", show_default=True, help="auto | cpu | cuda | mps")
def classify(file: Optional[str], checkpoint: Optional[str], text: Optional[str], output: Optional[str],
             fmt: Optional[str], probs: bool, text_column: Optional[str], label_column: Optional[str],
             input_format: Optional[str], encoding: str, batch_size: int, device: str) -> None:
    """Label each row of FILE (CSV, TSV, JSONL or text, '-' for stdin) with a trained classifier.

    Every input row is written back, in order, with two new columns: label and score (the
    probability of that label; predicted_label and predicted_score when FILE has a label or
    score column, overwritten in place if FILE already has them). When FILE has a label
    column, accuracy, macro-F1 and a confusion matrix over its labelled rows are printed
    to stderr.
    """
    from ..errors import TextRNNError

    if (file is None) == (text is None):
        raise TextRNNError("give a FILE to classify (or - for stdin), or --text \"...\"")
    if batch_size <= 0:
        raise TextRNNError(f"--batch-size must be positive, got {batch_size}")
    _check_output_path(output)
    if fmt is not None and fmt not in OUTPUT_FORMATS:
        raise TextRNNError(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}")
    from ..api import load
    from ..data.tables import Table, detect_label_column, detect_text_column, read_table

    if text is not None:
        table = Table(path="--text", format="txt", columns=["text"], rows=[{"text": text}], lines=[1])
    elif file == "-":
        table = read_table(sys.stdin.buffer.read(), format=input_format or "csv", encoding=encoding, name="<stdin>",
                           option="--input-format")
    else:
        table = read_table(file, format=input_format, encoding=encoding, option="--input-format")
    text_col = detect_text_column(table, text_column)
    gold_col = detect_label_column(table, label_column, required=False) if text is None else None

    clf = load(checkpoint, device=device, task="classify")
    clf._require("classify", "classify")
    names = clf.labels
    texts = ["" if r.get(text_col) is None else str(r.get(text_col)) for r in table.rows]
    p = clf.predict_proba(texts, batch_size=batch_size)  # (N, C)
    picked = p.argmax(axis=1)

    label_col, score_col = ("label", "score")
    if label_col in table.columns or score_col in table.columns:
        label_col, score_col = "predicted_label", "predicted_score"
    prob_cols = [f"prob_{n}" for n in names] if probs else []
    rows = []
    for r, i, row_p in zip(table.rows, picked, p):
        new = dict(r)
        new[label_col], new[score_col] = names[int(i)], round(float(row_p[int(i)]), 6)
        for c, v in zip(prob_cols, row_p):
            new[c] = round(float(v), 6)
        rows.append(new)
    # a file that already has these columns (an earlier run's output) gets them
    # overwritten in place: a re-run replaces the old predictions
    columns = table.columns + [c for c in [label_col, score_col, *prob_cols] if c not in table.columns]
    out_fmt = _output_format(fmt, output, table.format)

    if out_fmt == "table":
        from rich.console import Console
        from rich.table import Table as RichTable

        view = RichTable()
        for c in columns:
            view.add_column(c, overflow="fold")
        for r in rows:
            view.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
        if output and output != "-":
            import io

            buf = io.StringIO()
            Console(file=buf, width=200).print(view)
            rendered = buf.getvalue()
        else:
            Console().print(view)
            rendered = None
    else:
        rendered = _render_rows(rows, columns, out_fmt)
    if rendered is not None:
        if output and output != "-":
            from ..files import atomic_write

            try:
                atomic_write(output, rendered)
            except OSError as e:
                raise TextRNNError(f"--output {output}: cannot write it ({e.strerror or e}); "
                                   "free disk space or choose another --output") from None
        else:
            sys.stdout.write(rendered)
            sys.stdout.flush()

    if gold_col is not None:
        _score_against_gold(table, gold_col, names, picked)


def _score_against_gold(table, gold_col: str, names: list, picked) -> None:
    """Print metrics (stderr) over the rows whose gold label is one the model knows; rows
    with a blank label are not scored. A note instead when no row can be scored."""
    from ..classify import evaluate
    from ..data.tables import label_key

    index = {label_key(n): k for k, n in enumerate(names)}
    keys = [label_key(r.get(gold_col)) for r in table.rows]
    labelled = sum(k is not None for k in keys)
    known = [(index[k], int(i)) for k, i in zip(keys, picked) if k is not None and k in index]
    if not known:
        if labelled:
            why = (f"none of the labels in column {gold_col!r} is one the model knows "
                   f"({', '.join(map(str, names))})")
        else:
            why = f"column {gold_col!r} has no labels"
        click.echo(f"note: no rows could be scored: {why}", err=True)
        return
    gold, pred = zip(*known)
    _print_metrics(_stderr_console(), evaluate(gold, pred, names), names, labelled - len(known))
    if labelled < len(keys):
        click.echo(f"({len(keys) - labelled} rows without a label were not scored)", err=True)


@cli.command()
@click.argument("run", type=click.Path(path_type=str))
@click.argument("dest", type=click.Path(path_type=str))
@click.option("--half", is_flag=True, help="Store the weights as float16 (half the size).")
@click.option("--int8-embedding", is_flag=True, help="Store the embedding as int8 with a scale per row.")
def export(run: str, dest: str, half: bool, int8_embedding: bool) -> None:
    """Copy a trained model from RUN to DEST without its training state, to ship or share."""
    from ..checkpoint import export as export_run

    out = export_run(run, dest, half=half, int8_embedding=int8_embedding)
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    click.echo(f"exported {run} to {out} ({size / 1e6:.1f} MB)")


def main() -> None:
    cli()
