"""``textrnn generate``: sample text from a trained language model."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, Iterator, Optional

import click

from ..config import DEVICES

GENERATE_FORMATS = ("text", "jsonl")
_EXTENSIONS = {".jsonl": "jsonl", ".txt": "text"}  # --output's extension -> format


def _sampling_options(command: Callable) -> Callable:
    """One option per :class:`~textrnn.inference.options.SamplingOptions` field, its flag, help and default
    from the declaration (default None on the command line: given or not)."""
    from ..inference.options import SamplingOptions, repeatable, value_type

    for f in reversed(SamplingOptions.fields()):
        m = f.metadata
        decls = [m["flag"], *(d for d in (m["alias"], m["short"]) if d), f.name]
        kind = value_type(f)
        default = "" if f.default is None or repeatable(f) or kind is bool else f"  [default: {f.default}]"
        extra: dict[str, Any] = {"is_flag": True} if kind is bool else {"type": kind, "multiple": repeatable(f)}
        command = click.option(*decls, default=None, help=m["help"] + default, metavar=m["metavar"],
                               **extra)(command)
    return command


@click.command("generate")
@click.option("--checkpoint", "-c", type=click.Path(),
              help="Run directory or shipped model [default: latest LM in ./checkpoints, else english-char].")
@click.option("--prompt", "-p", default="", help="Text to start from.")
@_sampling_options
@click.option("--batch-size", default=100, show_default=True, type=int, help="Samples drawn together.")
@click.option("--output", "-o", type=click.Path(), help="Write the samples to this .jsonl or .txt file (atomically, "
              "with a progress bar) instead of stdout.")
@click.option("--format", "fmt", type=click.Choice(GENERATE_FORMATS),
              help="text | jsonl (one record per sample: sample, seed, prompt, text, settings)  "
                   "[default: by --output's extension, else text]")
@click.option("--condition", help="A label of a model trained with --condition-column: write text of that kind.")
@click.option("--device", default="cpu", show_default=True, help=" | ".join(DEVICES))
@click.option("--interactive", "-i", is_flag=True, help="A prompt loop: type text, the continuation streams back.")
def generate_command(checkpoint: Optional[str], prompt: str, batch_size: int, output: Optional[str],
                     fmt: Optional[str], condition: Optional[str], device: str, interactive: bool,
                     **sampling: Any) -> None:
    """Sample text from a trained language model; one stream prints as it is sampled, many
    samples go to --output (JSONL or text) or stdout.

    \b
    textrnn generate --temp 0.8 --prompt "ROMEO:"
    textrnn generate --num-samples 1000 --output samples.jsonl
    textrnn generate --stop '\\n\\n' --ban thee --ban thou
    """
    from ..errors import TextRNNError
    from ..inference.options import given_options
    from .output import check_output_path

    options = given_options(sampling)  # checked before loading torch (the vocabulary's bound after)
    if batch_size <= 0:
        raise TextRNNError(f"--batch-size must be positive, got {batch_size}")
    fmt = _format(fmt, output)
    check_output_path(output)
    if interactive:  # the loop lives in cli/interactive.py
        from .interactive import interact
        return interact(checkpoint, device, prompt, options, condition)
    from ..api import load
    from ..checkpoint import SHIPPED
    from .output import write_output

    lm = load(checkpoint, device=device)
    if checkpoint is None and lm.path in SHIPPED.values():
        click.echo(f"note: no language model under ./checkpoints; sampling from the shipped {lm.path.name} "
                   "(train your own: textrnn train FILE, or fine-tune it: --init-from english-char)", err=True)
    num_samples = options.get("num_samples", 1)
    if num_samples == 1 and fmt == "text" and not output:
        pieces = lm.stream(prompt, condition=condition, **options)
        _write_stream(prompt, (piece for (piece,) in pieces))
        return
    records = lm.generate_many(prompt, batch_size=batch_size, condition=condition, **options)
    write_output("".join(_render(r, fmt) for r in _with_progress(records, num_samples, bool(output))), output)


def _format(fmt: Optional[str], output: Optional[str]) -> str:
    """--format, else what --output's extension names (.jsonl, .txt), else text."""
    from ..errors import TextRNNError

    if fmt is None and output and output != "-":
        fmt = _EXTENSIONS.get(os.path.splitext(output)[1].lower())
        if fmt is None:
            raise TextRNNError(f"--output {output}: samples are written as .jsonl or .txt; "
                               "use one of those extensions or give --format")
    return fmt or "text"


def _render(record: dict, fmt: str) -> str:
    if fmt == "jsonl":
        return json.dumps(record, ensure_ascii=False) + "\n"
    return f"--- sample {record['sample']} (seed {record['seed']}) ---\n{record['prompt']}{record['text']}\n"


def _with_progress(records: Iterator[dict], total: int, show: bool) -> Iterator[dict]:
    """The records, counted on a progress bar on stderr (when the samples go to a file)."""
    if not show:
        yield from records
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("samples", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("samples", total=total)
        for record in records:
            bar.advance(task)
            yield record


def _write_stream(prompt: str, pieces: Iterator[str]) -> None:
    """Write one stream as it is sampled: what is ready, about 20 times a second."""
    out = sys.stdout
    buffer = [prompt]
    last_flush = time.perf_counter()
    for piece in pieces:
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
