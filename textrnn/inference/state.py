"""The recurrent state, in its two layouts, and everything done to it (one home).

A *module state* is what ``nn.LSTM`` / ``GRU`` / ``RNN`` (and :class:`~textrnn.mincells.MinRNN`) take and
give: ``(h, c)`` for an LSTM, else ``h`` (GRU, RNN, minGRU, minLSTM), each ``(layers, B, H)``.
A *layer state* is what the :class:`~textrnn.inference.stepper.Stepper` steps: a list with one entry per
layer, ``(h, c)`` or ``h``, each ``(B, H)``. Rows are streams: the functions below make, stack, select
and repeat rows without caring which cell made them.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from ..model import State as ModuleState  # (h, c) for an LSTM, else h; each (layers, B, H)

LayerState = Union[Tensor, tuple[Tensor, Tensor]]  # one layer's: (h, c) or h; each (B, H)
State = list  # list[LayerState], one per layer


def zeros(cell: str, layers: int, batch: int, hidden: int, device: torch.device | str = "cpu") -> State:
    """The zero state of ``batch`` rows (what a fresh text starts from)."""
    z = lambda: torch.zeros(batch, hidden, device=device)  # noqa: E731
    return [(z(), z()) if cell == "lstm" else z() for _ in range(layers)]


def from_module(state: ModuleState) -> State:
    """A module state ``(layers, B, H)`` as per-layer tensors."""
    if isinstance(state, tuple):
        h, c = state
        return [(h[k], c[k]) for k in range(h.shape[0])]
    return [state[k] for k in range(state.shape[0])]


def to_module(state: State) -> ModuleState:
    """The inverse of :func:`from_module`: per-layer tensors -> ``(layers, B, H)``."""
    if isinstance(state[0], tuple):
        return torch.stack([h for h, _ in state]), torch.stack([c for _, c in state])
    return torch.stack(state)


def flat(state: ModuleState) -> tuple[Tensor, ...]:
    """A module state as a tuple of tensors (``(h, c)`` or ``(h,)``): the ONNX functions' inputs and outputs."""
    return tuple(state) if isinstance(state, tuple) else (state,)


def unflat(tensors: Sequence[Tensor]) -> ModuleState:
    """The inverse of :func:`flat`."""
    return tuple(tensors) if len(tensors) == 2 else tensors[0]  # type: ignore[return-value]


def detach(state: Optional[ModuleState]) -> Optional[ModuleState]:
    """Cut the autograd graph at a window boundary (truncated BPTT); None stays None."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)  # type: ignore[return-value]
    return state.detach()


def _each(layer: LayerState, fn) -> LayerState:
    return tuple(fn(t) for t in layer) if isinstance(layer, tuple) else fn(layer)


def stack(states: Sequence[State]) -> State:
    """States of a few rows each, one below the other."""
    return [tuple(torch.cat(parts) for parts in zip(*layers)) if isinstance(layers[0], tuple) else torch.cat(layers)
            for layers in zip(*states)]


def select(state: State, index: Tensor) -> State:
    """The rows ``index`` (a 1-D tensor of row numbers) of ``state``."""
    return [_each(layer, lambda t: t.index_select(0, index)) for layer in state]


def row(state: State, k: int) -> State:
    """Row ``k`` of ``state``, as a state of one row."""
    return [_each(layer, lambda t: t[k : k + 1]) for layer in state]


def repeat(state: State, n: int) -> State:
    """A state of one row as ``n`` equal rows."""
    return [_each(layer, lambda t: t.expand(n, -1).contiguous()) for layer in state]
