"""``textrnn plot``: the loss and the gradient norms of one or more runs."""

from __future__ import annotations

import shutil

import click


@click.command("plot")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--output", "-o", type=click.Path(path_type=str), default=None,
              help="Write a PNG (loss by step and by time, gradient norms) here; needs "
                   "pip install 'textrnn[plot]'.")
@click.option("--terminal", is_flag=True, help="Draw the chart in the terminal (the default without --output).")
def plot_command(runs: tuple[str, ...], output: str | None, terminal: bool) -> None:
    """Plot the training of RUN (several runs overlaid): loss against steps and time, and the
    gradient norms, from each run's metrics.jsonl."""
    from ..plot import load_runs, terminal_chart, write_png

    loaded = load_runs(runs)
    if output is not None:
        click.echo(f"wrote {write_png(loaded, output)}")
    if terminal or output is None:
        click.echo(terminal_chart(loaded, width=min(100, shutil.get_terminal_size().columns)))
