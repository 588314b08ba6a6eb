"""``textrnn export``: a trained model without its training state."""

from __future__ import annotations

import click


@click.command("export")
@click.argument("run", type=click.Path(path_type=str))
@click.argument("dest", type=click.Path(path_type=str))
@click.option("--half", is_flag=True, help="Store the weights as float16 (half the size).")
@click.option("--int8-embedding", is_flag=True, help="Store the embedding as int8 with a scale per row.")
def export_command(run: str, dest: str, half: bool, int8_embedding: bool) -> None:
    """Copy a trained model from RUN to DEST without its training state, to ship or share."""
    from ..checkpoint import export as export_run

    out = export_run(run, dest, half=half, int8_embedding=int8_embedding)
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    click.echo(f"exported {run} to {out} ({size / 1e6:.1f} MB)")
