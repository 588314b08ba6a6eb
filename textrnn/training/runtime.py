"""Where and how a run computes: the device, the precision, the random-number states.

No process-wide side effects: these are called by the pipelines and the trainer.
"""

from __future__ import annotations

import functools
import random
from typing import Optional

import numpy as np
import torch

from ..errors import TextRNNError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TextRNNError("--device cuda: no CUDA GPU is available here; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise TextRNNError("--device mps: Apple MPS is not available here; use --device cpu or auto")
    return torch.device(name)


def capture_rng() -> dict:
    """RNG states of python, numpy and torch in a ``weights_only``-loadable form."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def autocast_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for ``--precision`` on ``device`` (None: plain float32).

    ``auto`` is bf16 on a CUDA GPU that supports it, else fp16 there, and float32 on CPU
    and MPS (where bf16 matrix products are often slower than float32)."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        try:  # (emulated bf16, as on V100 / T4, is slower than fp16)
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # older torch
            native = torch.cuda.is_bf16_supported()
        return torch.bfloat16 if native else torch.float16
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise TextRNNError(f"--precision fp16 needs a CUDA GPU (this run is on {device.type}); "
                           "use --precision bf16 or fp32")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def check_precision(precision: str, device: torch.device, cell: str = "lstm") -> Optional[torch.dtype]:
    """:func:`autocast_dtype`, and a one-line error when this machine cannot train ``cell``
    layers at that precision (bf16 on a CPU without bf16 kernels). Call it before anything
    of a run is written."""
    dtype = autocast_dtype(precision, device)
    if dtype == torch.bfloat16 and device.type == "cpu" and not cpu_trains_bf16(cell):
        raise TextRNNError(f"--precision bf16: this CPU cannot train {cell.upper()} layers in bf16 "
                           "(its oneDNN kernels need AVX-512 BF16 or AMX); use --precision fp32")
    return dtype


@functools.lru_cache(maxsize=None)
def cpu_trains_bf16(cell: str = "lstm") -> bool:
    """Whether a tiny ``cell`` layer runs forward and backward under CPU bf16 autocast here.

    oneDNN's bf16 LSTM primitive exists only on CPUs with native bf16 (AVX-512 BF16, AMX);
    elsewhere (e.g. AMD EPYC without it) creating it fails with "could not create a
    primitive descriptor". Trying it is the only reliable test."""
    from torch import nn

    from ..mincells import GATES, MinRNN

    with torch.random.fork_rng(devices=[]):  # (the layer's initialisation leaves the caller's RNG alone)
        if cell in GATES:  # minGRU / minLSTM: matrix products and a float32 scan (bf16 products run on any CPU)
            layer = MinRNN(cell, 8, 8)
        else:
            layer = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell](8, 8, batch_first=True)
    x = torch.zeros(2, 3, 8, requires_grad=True)  # (B, T, E)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = layer(x)  # (B, T, H)
        out.float().sum().backward()
    except RuntimeError:
        return False
    return True
