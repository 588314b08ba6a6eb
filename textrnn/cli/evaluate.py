"""``textrnn evaluate``: how well a trained language model predicts text files. The numbers
come from :mod:`textrnn.inference.scoring`; this module prints them (a table, or JSON) and writes
the ``--per-line`` rows (CSV / TSV / JSONL, as ``classify`` writes its rows)."""

from __future__ import annotations

import json
from typing import Any, Optional

import click

from ..config import DEVICES
from .output import check_output_path, output_format, write_output

SUMMARY_FORMATS = ("table", "json")
LINE_COLUMNS = ["file", "line", "tokens", "nats", "bits_per_char", "perplexity", "text"]


@click.command("evaluate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--checkpoint", "-c", type=click.Path(),
              help="Language-model run [default: latest language model in ./checkpoints].")
@click.option("--format", "fmt", default="table", show_default=True, help="Summary: table | json.")
@click.option("--per-line", is_flag=True, help="Also score each non-empty line on its own, written as rows.")
@click.option("--output", "-o", type=click.Path(),
              help="--per-line rows go here (csv, tsv or jsonl by extension) [default: csv on stdout].")
@click.option("--encoding", help="Text encoding of FILES [default: the run's own].")
@click.option("--device", default="cpu", show_default=True, help=" | ".join(DEVICES))
def evaluate_command(files: tuple[str, ...], checkpoint: Optional[str], fmt: str, per_line: bool,
                     output: Optional[str], encoding: Optional[str], device: str) -> None:
    """Score each text FILE with a trained language model, the state carried through the text
    as validation does: tokens, nats/token, perplexity, bits per character, word-level
    perplexity (per whitespace word plus one end-of-line per line), share of unknown tokens.

    \b
    textrnn evaluate test.txt                      the latest language model
    textrnn evaluate -c checkpoints/run a.txt b.txt --format json
    textrnn evaluate texts.txt --per-line -o scores.csv"""
    from ..errors import TextRNNError

    if fmt not in SUMMARY_FORMATS:
        raise TextRNNError(f"--format must be one of {', '.join(SUMMARY_FORMATS)}, got {fmt!r}")
    if output and not per_line:
        raise TextRNNError("--output is where the --per-line rows go; add --per-line")
    check_output_path(output)
    from ..api import load
    from ..inference.scoring import check_text_file

    for f in files:  # every file checked before the model is loaded
        check_text_file(f)
    lm = load(checkpoint, device=device)
    lm.require("lm", "evaluate")
    results = lm.evaluate(list(files), encoding=encoding, per_line=per_line)
    rows = [{"file": r["file"], **line} for r in results for line in r.pop("per_line", [])]
    to_stdout = per_line and not (output and output != "-")
    if fmt == "json":
        doc = {"checkpoint": str(lm.path), "files": results}
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False), err=to_stdout)
    else:
        _print_table(results, str(lm.path), stderr=to_stdout)
    if per_line:
        from ..data.table_output import render_rows

        out_fmt = output_format(None, output, "csv")
        write_output(render_rows(rows, LINE_COLUMNS, "csv" if out_fmt == "table" else out_fmt), output)


def _print_table(results: list[dict[str, Any]], run: str, stderr: bool) -> None:
    """One small table per file (fits any terminal width)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=stderr)
    console.print(f"evaluated with {run}")
    for r in results:
        view = Table(title=r["file"], title_justify="left", show_header=False)
        view.add_column("what")
        view.add_column("value", justify="right")
        for what, value in [("tokens", f"{r['tokens']:,}"), ("nats/token", f"{r['loss']:.4f}"),
                            ("perplexity", f"{r['perplexity']:.6g}"), ("bits/char", f"{r['bits_per_char']:.4f}"),
                            (f"word perplexity ({r['words']:,} words + {r['lines']:,} lines)",
                             f"{r['word_perplexity']:.6g}"),
                            ("unknown tokens", f"{r['unknown_share']:.2%}"), ("time", f"{r['seconds']:.1f}s")]:
            view.add_row(what, value)
        console.print(view)
