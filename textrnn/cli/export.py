"""``textrnn export``: a trained model without its training state, or as ONNX functions."""

from __future__ import annotations

import click

EXPORT_FORMATS = ("checkpoint", "onnx")


@click.command("export")
@click.argument("run", type=click.Path(path_type=str))
@click.argument("dest", type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="checkpoint", show_default=True,
              help="checkpoint: a run directory textrnn loads; onnx: ONNX functions, tokenizer.json and a sampler "
                   "that run without PyTorch (needs the onnx extra).")
@click.option("--half", is_flag=True, help="Store the weights as float16 (half the size).")
@click.option("--int8-embedding", is_flag=True, help="Store the embedding as int8 with a scale per row.")
@click.option("--int8", is_flag=True,
              help="Store the embedding and the recurrent weights as int8 with a scale per row; a model so exported "
                   "runs its step-by-step products on a CPU in int8 (faster classify and sampling; results within "
                   "about 0.01 in probability).")
def export_command(run: str, dest: str, fmt: str, half: bool, int8_embedding: bool, int8: bool) -> None:
    """Copy a trained model from RUN to DEST without its training state, to ship or share;
    with --format onnx, as ONNX functions that run without PyTorch."""
    from ..errors import TextRNNError

    if fmt == "onnx" and (half or int8_embedding or int8):
        raise TextRNNError("--half, --int8-embedding and --int8 apply to --format checkpoint; "
                           "an ONNX export is float32")
    if fmt == "onnx":
        from ..export.onnx import export_onnx

        out = export_onnx(run, dest)
    else:
        from ..export.run import export as export_run

        out = export_run(run, dest, half=half, int8_embedding=int8_embedding, int8=int8)
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    click.echo(f"exported {run} to {out} ({size / 1e6:.1f} MB)")
