"""``textrnn generate``: sample text from a trained language model."""

from __future__ import annotations

import sys
import time
from typing import Iterator, Optional

import click

from ..config import DEVICES


@click.command("generate")
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
@click.option("--device", default="cpu", show_default=True, help=" | ".join(DEVICES))
@click.option("--interactive", "-i", is_flag=True, help="A prompt loop: type text, the continuation streams back.")
def generate_command(checkpoint: Optional[str], prompt: str, length: int, temperature: float, top_k: Optional[int],
                     top_p: Optional[float], num_samples: int, seed: Optional[int], greedy: bool,
                     device: str, interactive: bool) -> None:
    """Sample text from a trained language model; one stream prints as it is sampled."""
    from ..generate import check_options

    check_options(10**9, temperature, top_k, top_p, greedy, length, num_samples)  # before loading torch
    if interactive:  # the loop lives in cli/interactive.py
        from .interactive import interact
        return interact(checkpoint, device, prompt, num_samples, seed=seed, length=length, temperature=temperature,
                        top_k=top_k, top_p=top_p, greedy=greedy)
    from ..api import load

    lm = load(checkpoint, device=device)
    pieces = lm.stream(prompt, length, temperature=temperature, top_k=top_k, top_p=top_p,
                       greedy=greedy, num_samples=num_samples, seed=seed)
    if num_samples == 1:
        _write_stream(prompt, (piece for (piece,) in pieces))
        return
    texts = [[prompt] for _ in range(num_samples)]
    for step in pieces:
        for acc, piece in zip(texts, step):
            acc.append(piece)
    out = sys.stdout
    for i, parts in enumerate(texts):
        out.write(f"--- sample {i + 1} ---\n{''.join(parts)}\n")
    out.flush()


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
