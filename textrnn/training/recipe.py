"""Defaults that fit the run: the size, regularization, output layer and precision a new
language model takes for the options the user did not set, chosen from the corpus (its size in
tokens, its tokenizer), the budget (``--max-time``, ``--epochs`` or ``--max-steps``) and the device.

Three small tables, measured by the team (docs/train.md's "Defaults that fit the corpus" and
docs/measurements.md give the measurements and the reasoning; ``benchmarks/quality.py`` measures the outcome):

- :data:`TRAIN_SPEED`: training tokens per second of the reference model (1x512 LSTM, 64-wide
  embedding, characters, batch 32 x 128) on each kind of device. Another model's speed is
  estimated from its multiply-adds per token (:func:`relative_cost`), which predicts the measured
  word-level speeds within 15%.
- :data:`SIZES`: the model for a budget, in tokens the reference model would train on: bigger
  models only pay when the budget lets them see enough text.
- :data:`REGULARIZATION`: dropout and weight drop for the number of passes over the corpus the
  budget allows (epochs): none when each token is seen about once, more the more often it is.

Batch shape: a character model with a ``--max-time`` budget on a CPU takes :data:`CPU_BATCH` (more,
smaller steps: there a step is compute-bound at any batch, so halving it costs far fewer tokens/s than
it gains in updates); elsewhere the declared 32 x 128.

Output layer: words and BPE pieces get a 256-wide embedding and, when the output layer would cost
more than the recurrent layer (a large vocabulary), the adaptive softmax. Everything the user sets
stays as set; the choice is recorded in the run's ``config.json`` (``"fit"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ..config import FITTED, MIN_CELLS, auto_cutoffs, default
from .runtime import cpu_trains_bf16

# measured: 1x512 char LSTM, batch 32 x 128, fp32: 23-26k tokens/s on 2 AMD EPYC cores; per thread,
# as the speed grows about linearly with the threads torch uses up to a few cores. CUDA and MPS: not
# measured by the team yet (no GPU lent); rough, conservative figures.
TRAIN_SPEED = {"cpu": 11_500, "cuda": 300_000, "mps": 40_000}  # reference tokens/s (cpu: per thread)
CPU_BF16_SPEEDUP = 1.67  # measured: bf16 autocast on a CPU with native bf16 LSTM kernels, same model
CPU_THREADS_COUNTED = 8  # beyond this many threads the speed is not assumed to grow
EVAL_SHARE = 0.9  # the share of a --max-time budget that trains (evaluations and sampling take the rest)

# (reference-model tokens in a --max-time budget at least, layers, hidden): the last row that fits is
# taken (an --epochs or --max-steps budget keeps 1x512: a bigger model would take longer, not fit the time).
# Measured on tiny-shakespeare, 5 minutes: 6.2M (fp32, 2 threads): 1x512 beat 1x768; 10.4M (bf16):
# 1x768 beat 1x512 and 1x1024. The rows past 1x768 are extrapolated (about 3-5x the budget a step).
SIZES = ((0, 1, 512), (8e6, 1, 768), (30e6, 1, 1024), (150e6, 2, 1024))

# (passes over the corpus at least, input dropout, output dropout, weight drop), the last row that fits.
# Characters: on tiny-shakespeare (5 minutes, 6 passes) dropout 0.1/0.2/0.2 only slowed learning (1.5055
# against 1.4676); on 300 KB of SST-2 sentences (17 passes) it lowered the test loss from 1.5955 to 1.4629
# (0.15/0.3/0.3: 1.4658); the 40-pass row is extrapolated. Words and BPE pieces: a 13k-word vocabulary
# overfits within 5 minutes even with dropout 0.4 (best validation at 10 passes, worse by 17); the
# strongest measured setting was the best (AWD-LSTM's word-level values are 0.4-0.65); the 2-pass row is
# interpolated.
REGULARIZATION = {"char": ((0.0, 0.0, 0.0, 0.0), (12.0, 0.1, 0.2, 0.2), (40.0, 0.15, 0.3, 0.3)),
                  "word": ((0.0, 0.0, 0.0, 0.0), (2.0, 0.2, 0.4, 0.4), (8.0, 0.3, 0.6, 0.6))}
WORD_EMBED = 256  # the embedding width for words and BPE pieces (64 suits characters)

# (batch_size, seq_len) of a character model with a --max-time budget on a CPU, and its tokens/s relative to the
# reference shape (32 x 128). Measured on tiny-shakespeare, 5 minutes, 2 threads fp32, best validation loss:
# 32 x 128 1.5262 (946 steps), 16 x 128 1.4959, 32 x 64 1.4875, 16 x 64 1.4675 (2,971 steps); see docs/measurements.md.
# Words and BPE pieces (the output layer dominates) and GPUs (whose speed grows with the batch) keep 32 x 128.
CPU_BATCH = (16, 64)
CPU_BATCH_SPEED = 0.82


@dataclass(frozen=True)
class Fit:
    """What the fit chose and why: ``options`` (only options the user left unset), ``message``
    (one line for the terminal) and ``basis`` (the facts it was chosen from), all kept in
    config.json."""

    options: dict[str, Any]
    message: str
    basis: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"chose": self.options, "message": self.message, "basis": self.basis}


def _macs(layers: int, hidden: int, embed: int, vocab_size: int, adaptive: bool) -> tuple[float, float]:
    """Multiply-adds per token of (the LSTM layers, the output layer); the adaptive softmax computes
    its head and, on average, a fraction of its tails (hidden/4 wide)."""
    rnn = 4 * hidden * (hidden + embed) + 4 * hidden * 2 * hidden * (layers - 1)
    cutoffs = auto_cutoffs(vocab_size) if adaptive else []
    if not cutoffs:
        return rnn, hidden * vocab_size
    return rnn, hidden * (cutoffs[0] + len(cutoffs)) + 0.3 * hidden * (vocab_size - cutoffs[0]) / 4


def relative_cost(layers: int, hidden: int, embed: int, vocab_size: int, adaptive: bool) -> float:
    """Multiply-adds per training token of a model (recurrent layers plus output layer), relative to
    the reference model's (1x512, embedding 64, 65 characters)."""
    return sum(_macs(layers, hidden, embed, vocab_size, adaptive)) / sum(_macs(1, 512, 64, 65, False))


def device_speed(device: torch.device) -> tuple[float, str]:
    """Reference tokens/s on ``device`` and its description ("2 CPU threads", "a CUDA GPU")."""
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return TRAIN_SPEED["cpu"] * min(threads, CPU_THREADS_COUNTED), f"{threads} CPU thread{'s' * (threads > 1)}"
    return TRAIN_SPEED[device.type], "a CUDA GPU" if device.type == "cuda" else "Apple MPS"


def fit_defaults(*, kind: str, vocab_size: int, train_tokens: int, train_bytes: int, given: dict[str, Any],
                 max_time: Optional[float], epochs: Optional[float], max_steps: Optional[int],
                 tokens_per_step: int, device: torch.device, world: int = 1) -> Fit:
    """The fitted options (:data:`~textrnn.config.FITTED`) for a new language model (see the module's
    text). ``given``: the options the user set (kept); the stop options are the run's (at least
    one is set); ``world``: the processes training together (torchrun), each on a ``device``."""
    speed, where = device_speed(device)
    precision = "bf16" if _cpu_bf16(device, given) else default("precision")
    if given.get("precision", precision) == "bf16" and device.type == "cpu":
        speed *= CPU_BF16_SPEEDUP
    shape = default("batch_size"), default("seq_len")
    if max_time is not None and device.type == "cpu" and kind == "char":
        shape = CPU_BATCH
    shape = given.get("batch_size", shape[0]), given.get("seq_len", shape[1])
    if shape == CPU_BATCH and device.type == "cpu":  # (measured on a CPU; a GPU's figure is the reference's)
        speed *= CPU_BATCH_SPEED
    speed, where = speed * world, where if world == 1 else f"{world} x {where}"
    # the budget in tokens: the reference model's for --max-time (the fitted model's are fewer by its cost)
    if max_time is not None:
        budget_tokens, budget = speed * max_time * EVAL_SHARE, f"{_duration(max_time)} on {where}"
    elif max_steps is not None:
        budget_tokens, budget = max_steps * tokens_per_step, f"{max_steps:,} steps"
    else:
        budget_tokens, budget = epochs * train_tokens, f"{epochs:g} epochs"
    layers, hidden = default("layers"), default("hidden")  # an epoch or step budget: its time grows with the size
    if max_time is not None:
        layers, hidden = [(lay, hid) for least, lay, hid in SIZES if budget_tokens >= least][-1]
    layers, hidden = given.get("layers", layers), given.get("hidden", hidden)
    embed = given.get("embed", default("embed") if kind == "char" else WORD_EMBED)
    adaptive = given.get("adaptive_softmax", _wants_adaptive(hidden, embed, vocab_size, given))
    if max_time is not None:
        budget_tokens /= relative_cost(layers, hidden, embed, vocab_size, adaptive)
    passes = budget_tokens / max(1, train_tokens)
    if epochs is not None:  # (also when a time or step limit comes first)
        passes = min(passes, epochs)
    rows = REGULARIZATION["char" if kind == "char" else "word"]
    _, p_in, p_out, p_wd = [row for row in rows if passes >= row[0]][-1]
    if given.get("cell", default("cell")) in MIN_CELLS:  # no hidden-to-hidden weights to drop
        p_wd = 0.0
    chosen = {"layers": layers, "hidden": hidden, "embed": embed, "adaptive_softmax": adaptive,
              "input_dropout": p_in, "output_dropout": p_out, "weight_drop": p_wd, "precision": precision,
              "batch_size": shape[0], "seq_len": shape[1]}
    assert set(chosen) == FITTED, "every fitted option is chosen here"
    kept = {k: given[k] for k in FITTED if k in given}
    options, chosen = {k: v for k, v in chosen.items() if k not in kept}, {**chosen, **kept}
    basis = {"train_tokens": train_tokens, "train_bytes": train_bytes, "tokenizer": kind, "vocab_size": vocab_size,
             "budget": budget, "reference_tokens_per_s": speed, "expected_epochs": round(passes, 2)}
    cell = given.get("cell", default("cell")).upper()
    message = (f"{_describe(chosen, cell)}: chosen for {_size(train_bytes)} of text ({_count(train_tokens)} "
               f"{kind} tokens) and {budget} (about {passes:.1f} epochs); options you set are kept")
    return Fit(options, message, basis)


def _cpu_bf16(device: torch.device, given: dict[str, Any]) -> bool:
    """bf16 autocast on a CPU with native bf16 LSTM kernels (AVX-512 BF16, AMX): measured 1.67x the
    float32 speed for the reference model, the same loss after 60 steps (docs/measurements.md)."""
    return (device.type == "cpu" and given.get("cell", default("cell")) == "lstm"
            and cpu_trains_bf16("lstm"))


def _wants_adaptive(hidden: int, embed: int, vocab_size: int, given: dict[str, Any]) -> bool:
    """The adaptive softmax when the full output layer would cost more than one recurrent layer
    (and the user did not ask to tie the output layer to the embedding)."""
    rnn, out = _macs(1, hidden, embed, vocab_size, adaptive=False)
    return not given.get("tie_weights") and len(auto_cutoffs(vocab_size)) > 0 and out > rnn


def _describe(c: dict[str, Any], cell: str) -> str:
    out = f"{c['layers']}x{c['hidden']} {cell}, embedding {c['embed']}"
    if c["adaptive_softmax"]:
        out += ", adaptive softmax"
    if c["input_dropout"] or c["output_dropout"] or c["weight_drop"]:
        out += (f", dropout {c['input_dropout']:g} in / {c['output_dropout']:g} out, "
                f"weight drop {c['weight_drop']:g}")
    else:
        out += ", no dropout"
    out += ", bf16" if c["precision"] == "bf16" else ""
    return out + f", batch {c['batch_size']} x {c['seq_len']}"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} s"


def _size(n: float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} KB"


def _count(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.0f}k"
