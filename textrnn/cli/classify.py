"""``textrnn classify``: label the rows of a table (or one text) with a trained classifier.
The rows and the scores come from :mod:`textrnn.inference.classify`; this module reads the input,
writes the rows and prints the scores."""

from __future__ import annotations

import sys
from typing import Optional

import click

from ..config import DEVICES
from .output import OUTPUT_FORMATS, check_output_path, output_format, write_output


@click.command("classify")
@click.argument("file", required=False, type=click.Path(path_type=str))
@click.option("--checkpoint", "-c", type=click.Path(),
              help="Classifier run [default: latest classifier in ./checkpoints].")
@click.option("--text", "text", help="Classify this one text instead of a file.")
@click.option("--output", "-o", type=click.Path(), help="Write here instead of stdout.")
@click.option("--format", "fmt", help="Output: csv | tsv | jsonl | table [by --output extension, else input's].")
@click.option("--probs", is_flag=True, help="Add one probability column per class.")
@click.option("--min-confidence", type=float, metavar="P",
              help="Label a row 'uncertain' when its most likely label's probability is below P (0 < P < 1).")
@click.option("--text-column", help="The text column [auto].")
@click.option("--label-column", help="A gold-label column to score against [auto: label, sentiment, ...].")
@click.option("--input-format", help="csv | tsv | jsonl | txt [by extension; csv for stdin].")
@click.option("--encoding", default="utf-8", show_default=True, help="Text encoding of FILE.")
@click.option("--batch-size", default=256, show_default=True, type=int,
              help="Texts per inference batch of a model run whole (on a GPU, or of several layers); "
                   "a one-layer model on the CPU reads thousands at a time, step by step.")
@click.option("--device", default="cpu", show_default=True, help=" | ".join(DEVICES))
def classify_command(file: Optional[str], checkpoint: Optional[str], text: Optional[str], output: Optional[str],
                     fmt: Optional[str], probs: bool, min_confidence: Optional[float], text_column: Optional[str],
                     label_column: Optional[str],
                     input_format: Optional[str], encoding: str, batch_size: int, device: str) -> None:
    """Label each row of FILE (CSV, TSV, JSONL or text, '-' for stdin) with a trained classifier.

    Every input row is written back, in order, with two new columns: label and score (the
    probability of that label; predicted_label and predicted_score when FILE has a label or
    score column, overwritten in place if FILE already has them); with --min-confidence P, a
    row whose label's probability is below P is labelled 'uncertain' (its score unchanged).
    When FILE has a label column, accuracy, macro-F1, the expected calibration error and a
    confusion matrix over its labelled rows are printed to stderr (with --min-confidence,
    also accuracy and macro-F1 over the confident rows, and how many they are). A label
    matches the model's by name or by an alias the model keeps (the shipped sst2's 0 and 1
    are negative and positive).
    """
    from ..errors import TextRNNError

    if (file is None) == (text is None):
        raise TextRNNError("give a FILE to classify (or - for stdin), or --text \"...\"")
    if batch_size <= 0:
        raise TextRNNError(f"--batch-size must be positive, got {batch_size}")
    from ..inference.classify import check_min_confidence, prediction_rows

    check_min_confidence(min_confidence, [], "")  # (its range, before anything is read)
    check_output_path(output)
    if fmt is not None and fmt not in OUTPUT_FORMATS:
        raise TextRNNError(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}")
    from ..api import load
    from ..data.labels import detect_label_column, detect_text_column
    from ..data.table_output import render_rows

    table = _read_input(file, text, input_format, encoding)
    text_col = detect_text_column(table, text_column)
    gold_col = detect_label_column(table, label_column, required=False) if text is None else None

    clf = load(checkpoint, device=device, task="classify")
    clf.require("classify", "classify")
    names = clf.labels
    check_min_confidence(min_confidence, names, str(clf.path))
    texts = ["" if r.get(text_col) is None else str(r.get(text_col)) for r in table.rows]
    p = clf.predict_proba(texts, batch_size=batch_size)  # (N, C)
    rows, columns = prediction_rows(table.rows, table.columns, names, p, with_probs=probs,
                                    min_confidence=min_confidence)
    out_fmt = output_format(fmt, output, table.format)
    if out_fmt == "table":
        rendered = _render_table(rows, columns, to_file=bool(output and output != "-"))
    else:
        rendered = render_rows(rows, columns, out_fmt)
    if rendered is not None:
        write_output(rendered, output)
    if gold_col is not None:
        _report_gold([r.get(gold_col) for r in table.rows], gold_col, names, clf.label_aliases, p, min_confidence)


def _read_input(file: Optional[str], text: Optional[str], input_format: Optional[str], encoding: str):
    from ..data.tables import Table, read_table

    if text is not None:
        return Table(path="--text", format="txt", columns=["text"], rows=[{"text": text}], lines=[1])
    if file == "-":
        return read_table(sys.stdin.buffer.read(), format=input_format or "csv", encoding=encoding, name="<stdin>",
                          option="--input-format")
    return read_table(file, format=input_format, encoding=encoding, option="--input-format")


def _render_table(rows: list[dict], columns: list[str], to_file: bool) -> Optional[str]:
    """A rich table: rendered 200 columns wide for a file, else printed (returns None)."""
    from rich.console import Console
    from rich.table import Table as RichTable

    view = RichTable()
    for c in columns:
        view.add_column(c, overflow="fold")
    for r in rows:
        view.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
    if not to_file:
        Console().print(view)
        return None
    import io

    buf = io.StringIO()
    Console(file=buf, width=200).print(view)
    return buf.getvalue()


def _report_gold(gold: list, gold_col: str, names: list, aliases: dict, p, min_confidence: Optional[float]) -> None:
    """Print metrics (stderr) over the rows whose gold label is one the model knows (``p``: the rows'
    probabilities (N, C)); rows with a blank label are not scored. A note instead when no row can be scored."""
    from ..inference.classify import score_against_gold

    score = score_against_gold(gold, p.argmax(axis=1), names, aliases, probs=p, min_confidence=min_confidence)
    if score["metrics"] is None:
        if score["labelled"]:
            why = (f"none of the labels in column {gold_col!r} is one the model knows "
                   f"({', '.join(map(str, names))})")
        else:
            why = f"column {gold_col!r} has no labels"
        click.echo(f"note: no rows could be scored: {why}", err=True)
        return
    _print_metrics(score["metrics"], names, score["unknown"], _confidence_lines(score, min_confidence))
    if score["unlabelled"]:
        click.echo(f"({score['unlabelled']} rows without a label were not scored)", err=True)


def _confidence_lines(score: dict, min_confidence: Optional[float]) -> list[str]:
    """The expected calibration error over the scored rows; with ``min_confidence``, the confident rows' scores."""
    scored = len(score["scored"])
    lines = [f"expected calibration error {score['ece']:.2%} (15 bins of confidence, {scored} rows)"]
    if min_confidence is not None:
        sure, n = score["confident"]["metrics"], score["confident"]["rows"]
        on_them = f": accuracy {sure['accuracy']:.2%}  macro-F1 {sure['macro_f1']:.4f}" if sure else ""
        lines.append(f"confident rows (probability >= {min_confidence:g}): {n} of {scored} ({n / scored:.1%})"
                     f"{on_them}; the others are labelled 'uncertain'")
    return lines


def _print_metrics(metrics: dict, names: list, skipped: int, more: list[str]) -> None:
    """Accuracy and macro-F1 over all scored rows, the lines ``more``, the per-class table, the confusion matrix."""
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    console.print(f"accuracy {metrics['accuracy']:.2%}  macro-F1 {metrics['macro_f1']:.4f}"
                  + (f"  ({skipped} rows with labels the model does not know were left out)" if skipped else ""))
    for line in more:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
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
