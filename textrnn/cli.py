"""The ``textrnn`` command. Parses options, calls the library, owns the terminal.

Heavy modules (torch, tokenizers, rich) are imported inside the commands, so ``--help``
and option errors answer at once. Every user error ends as one ``error: ...`` line on
stderr and exit status 2.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Optional

import click

from . import __version__


class _Group(click.Group):
    """Turns user errors (click's and textrnn's) into one line and exit status 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from .errors import TextRNNError

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
            click.echo(f"error: {' '.join(str(e).split())}", err=True)
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
        self.task = self.bar.add_task("train", total=1000, step=0, loss="-", val="-", speed="-")
        self.started = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.started:
            self.bar.__exit__(*exc)

    def __call__(self, p) -> None:
        if not self.started:  # only once training runs: input errors print nothing but themselves
            self.bar.__enter__()
            self.started = True
        fields: dict[str, Any] = {"step": p.step, "speed": f"{p.tokens_per_s:,.0f}"}
        if p.train_loss is not None:
            fields["loss"] = f"{p.train_loss:.3f}"
        if p.val_loss is not None:
            fields["val"] = f"{p.val_loss:.3f}"
        self.bar.update(self.task, completed=int(p.fraction * 1000), **fields)
        if p.event == "eval" and p.metrics:
            m = p.metrics
            bpc = f"  bpc {m['val_bpc']:.3f}" if "val_bpc" in m else ""
            self.bar.console.log(f"step {m['step']}: val loss {m['val_loss']:.4f}  ppl {m['val_ppl']:.2f}{bpc}")


@cli.command()
@click.argument("corpus", nargs=-1, type=click.Path(path_type=str))
@click.option("--out", "-o", type=click.Path(), help="Run directory [default: checkpoints/<corpus name>].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--force", is_flag=True, help="Overwrite an existing run in --out.")
@click.option("--tokenizer", default="char", show_default=True, help="char | word | bpe.")
@click.option("--vocab-size", type=int, help="Word vocabulary cap [20000] / BPE size [4096].")
@click.option("--cell", help="lstm | gru | rnn  [default: lstm]")
@click.option("--layers", type=int, help="Recurrent layers [1].")
@click.option("--hidden", type=int, help="Hidden units per layer [512].")
@click.option("--embed", type=int, help="Embedding size [64].")
@click.option("--dropout", type=float, help="Dropout [0].")
@click.option("--tie-weights/--no-tie-weights", default=None, help="Share embedding and output weights.")
@click.option("--batch-size", type=int, help="Parallel streams per batch [32].")
@click.option("--seq-len", type=int, help="Tokens per BPTT window [128].")
@click.option("--lr", type=float, help="Peak learning rate [4e-3].")
@click.option("--weight-decay", type=float, help="AdamW weight decay [0.01].")
@click.option("--warmup-steps", type=int, help="Warm-up steps [100].")
@click.option("--clip", type=float, help="Gradient-norm clip [1.0].")
@click.option("--epochs", type=float, help="Stop after this many epochs [10 when no limit is given].")
@click.option("--max-steps", type=int, help="Stop after this many steps.")
@click.option("--max-time", help="Stop after this long, e.g. 45s, 5m, 1h30m.")
@click.option("--eval-every", type=int, help="Evaluate every N steps [500].")
@click.option("--save-every", type=int, help="Save the last checkpoint every N steps [500].")
@click.option("--val-fraction", type=float, help="Hold out this last fraction as validation [0.1].")
@click.option("--val-file", type=click.Path(), help="Validate on this file instead.")
@click.option("--encoding", default="utf-8", show_default=True, help="Text encoding of the corpus.")
@click.option("--seed", type=int, help="Random seed [1234].")
@click.option("--device", help="auto | cpu | cuda | mps  [default: auto]")
def train(corpus: tuple[str, ...], out: Optional[str], resume: bool, force: bool, tokenizer: str,
          vocab_size: Optional[int], val_file: Optional[str], encoding: str, **options: Any) -> None:
    """Train a language model on CORPUS text files (default: the shipped tiny-shakespeare)."""
    from .config import TOKENIZERS
    from .errors import TextRNNError

    if tokenizer not in TOKENIZERS:  # checked before importing torch
        raise TextRNNError(f"--tokenizer must be one of {', '.join(TOKENIZERS)}, got {tokenizer!r}")
    if options.get("max_time") is not None:
        from .config import parse_duration

        parse_duration(options["max_time"])
    from .api import train as train_lm

    with _TrainProgress() as progress:
        result = train_lm(list(corpus) or None, out=out, resume=resume, force=force, tokenizer=tokenizer,
                          vocab_size=vocab_size, val_file=val_file, encoding=encoding,
                          on_progress=progress, **options)
    best = result.best or {}
    bpc = f", {best['val_bpc']:.3f} bits/char" if "val_bpc" in best else ""
    how = {"interrupt": "interrupted", "terminate": "terminated"}.get(result.stopped_by or "", "done")
    progress.console.print(
        f"{how}: {result.steps} steps in {result.elapsed_s:.0f}s; best val loss "
        f"{best.get('val_loss', float('nan')):.4f} nats/token{bpc} (step {best.get('step', '-')}); "
        f"saved to {result.path}"
    )


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
    from .generate import check_options

    check_options(10**9, temperature, top_k, top_p, greedy, length, num_samples)  # before loading torch
    from .api import load

    lm = load(checkpoint, device=device)
    pieces = lm.stream(prompt, length, temperature=temperature, top_k=top_k, top_p=top_p,
                       greedy=greedy, num_samples=num_samples, seed=seed)
    out = sys.stdout
    if num_samples == 1:
        out.write(prompt)
        last_flush = time.perf_counter()
        for (piece,) in pieces:
            out.write(piece)
            now = time.perf_counter()
            if now - last_flush > 0.05:
                out.flush()
                last_flush = now
        out.write("\n")
        out.flush()
        return
    texts = [[prompt] for _ in range(num_samples)]
    for step in pieces:
        for acc, piece in zip(texts, step):
            acc.append(piece)
    for i, parts in enumerate(texts):
        out.write(f"--- sample {i + 1} ---\n{''.join(parts)}\n")
    out.flush()


def main() -> None:
    cli()
