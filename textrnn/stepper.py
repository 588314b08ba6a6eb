"""The one-token sampler cell: a :class:`~textrnn.model.LanguageModel` evaluated one step
at a time, as fast as PyTorch allows on a CPU (tested equal to the model's ``forward``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Union

import torch
from torch import Tensor

from .model import State

LayerState = Union[Tensor, tuple[Tensor, Tensor]]  # one layer's: (h, c) for an LSTM, else h; each (B, H)

if TYPE_CHECKING:  # pragma: no cover
    from .model import LanguageModel


class Stepper:
    """Evaluates a :class:`LanguageModel` one token per call, as fast as PyTorch allows.

    ``nn.LSTM`` on a one-token input spends most of its time setting up; this does the
    cell arithmetic directly with pre-transposed weights, and folds the embedding and the
    first layer's input projection into one ``(V, gates*H)`` table, so a step is one
    row lookup plus one matrix-vector product per layer and one for the head (with an adaptive
softmax: ``asm.log_prob``, log-probabilities, times ``logit_scale``). The result
    equals ``LanguageModel.forward`` (tested). Use under ``torch.inference_mode()``.
    """

    def __init__(self, model: LanguageModel, logit_scale: float = 1.0, banned: Optional[list[int]] = None,
                 label: int = 0):
        cfg = model.cfg
        self.cell, self.layers, self.hidden = cfg.cell, cfg.layers, cfg.hidden
        rnn = model.encoder.rnn
        with torch.no_grad():
            w_ih = [getattr(rnn, f"weight_ih_l{k}").detach() for k in range(cfg.layers)]
            w_hh = [getattr(rnn, f"weight_hh_l{k}").detach() for k in range(cfg.layers)]
            b_ih = [getattr(rnn, f"bias_ih_l{k}").detach() for k in range(cfg.layers)]
            b_hh = [getattr(rnn, f"bias_hh_l{k}").detach() for k in range(cfg.layers)]
            emb = model.encoder.embedding.weight.detach()
            if model.encoder.label_embedding is not None:  # a conditioned model: the label joins every input
                emb = emb + model.encoder.label_embedding.weight.detach()[label]
            # input side of layer 0 for every token: (V, G*H)
            self.table = torch.addmm(b_ih[0], emb, w_ih[0].t())
            self.w_ih_t = [None] + [w.t().contiguous() for w in w_ih[1:]]
            self.w_hh_t = [w.t().contiguous() for w in w_hh]
            self.b_ih = b_ih
            if cfg.cell == "gru":  # the hidden bias sits inside the reset gate for n
                self.b_hh = b_hh
            else:  # LSTM / RNN: both biases simply add
                self.table = self.table + b_hh[0]
                self.b_in = [None] + [bi + bh for bi, bh in zip(b_ih[1:], b_hh[1:])]
                self.b_hh = b_hh
            self.asm, self.logit_scale, self.banned = model.asm, logit_scale, banned
            if model.asm is None:
                self._fold_head(model, logit_scale, banned)

    def _fold_head(self, model: LanguageModel, logit_scale: float, banned: Optional[list[int]]) -> None:
        head_w, head_b = model.head.weight.detach(), model.head.bias.detach()  # (V, E or H), (V,)
        if model.proj is not None:  # fold the projection (H -> E) into the head: one product per step
            head_b = torch.addmv(head_b, head_w, model.proj.bias.detach())
            head_w = head_w @ model.proj.weight.detach()  # (V, H)
        self.head_w_t = head_w.t().contiguous() * logit_scale  # (H, V)
        self.head_b = head_b * logit_scale
        if banned:
            self.head_b[banned] = float("-inf")

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> list:
        z = lambda: torch.zeros(batch, self.hidden, device=device)  # noqa: E731
        if self.cell == "lstm":
            return [(z(), z()) for _ in range(self.layers)]
        return [z() for _ in range(self.layers)]

    @staticmethod
    def from_module_state(state: State) -> list:
        """Convert an ``nn.LSTM``-style state ``(layers, B, H)`` into per-layer tensors."""
        if isinstance(state, tuple):
            h, c = state
            return [(h[k], c[k]) for k in range(h.shape[0])]
        return [state[k] for k in range(state.shape[0])]

    @staticmethod
    def to_module_state(state: list) -> State:
        """The inverse of :meth:`from_module_state`: per-layer tensors -> ``(layers, B, H)``."""
        if isinstance(state[0], tuple):
            return torch.stack([h for h, _ in state]), torch.stack([c for _, c in state])
        return torch.stack(state)

    def __call__(self, ids: Tensor, state: list) -> tuple[Tensor, list]:
        """``ids`` (B,) -> logits (B, V); ``state`` is updated and returned."""
        x_proj = self.table.index_select(0, ids)  # (B, G*H)
        new_state = []
        x = None
        for k in range(self.layers):
            if k > 0:
                bias = self.b_in[k] if self.cell != "gru" else self.b_ih[k]
                x_proj = torch.addmm(bias, x, self.w_ih_t[k])  # (B, G*H)
            layer_state, x = cell_step(self.cell, x_proj, state[k], self.w_hh_t[k], self.b_hh[k])
            new_state.append(layer_state)
        if self.asm is None:
            return torch.addmm(self.head_b, x, self.head_w_t), new_state  # (B, V)
        logits = self.asm.log_prob(x.float()) * self.logit_scale  # (B, V): adaptive softmax log-probabilities
        if self.banned:
            logits[:, self.banned] = float("-inf")
        return logits, new_state


def cell_step(cell: str, x_proj: Tensor, state: LayerState, w_hh_t: Tensor, b_hh: Tensor) -> tuple[LayerState, Tensor]:
    """One step of one recurrent layer (PyTorch's gate order and equations). ``x_proj`` (B, G*H):
    the input times ``weight_ih`` plus ``bias_ih``, and for an LSTM or RNN plus ``bias_hh`` too
    (both biases simply add); ``w_hh_t`` (H, G*H): ``weight_hh`` transposed; ``b_hh`` (G*H,): used
    by a GRU only (its hidden bias sits inside the reset gate). ``state``: the layer's ``(h, c)``
    (LSTM) or ``h`` (B, H). Returns the layer's new state and its output ``h`` (B, H)."""
    if cell == "lstm":
        h, c = lstm_update(torch.addmm(x_proj, state[0], w_hh_t), state[1])  # gates (B, 4H): i f g o
        return (h, c), h
    if cell == "gru":
        h = gru_update(x_proj, torch.addmm(b_hh, state, w_hh_t), state)  # (B, 3H): r z n
        return h, h
    h = torch.tanh(torch.addmm(x_proj, state, w_hh_t))
    return h, h


def lstm_update(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """One LSTM cell update from its pre-activations ``gates`` (..., 4H), in PyTorch's gate order
    i f g o (both biases included), and the cell state ``c`` (..., H): the new ``(h, c)``."""
    H = c.shape[-1]
    ifo = torch.sigmoid(gates)
    g = torch.tanh(gates[..., 2 * H : 3 * H])
    c = torch.addcmul(ifo[..., H : 2 * H] * c, ifo[..., :H], g)
    return ifo[..., 3 * H :] * torch.tanh(c), c


def gru_update(x_proj: Tensor, gh: Tensor, h: Tensor) -> Tensor:
    """One GRU cell update: ``x_proj`` the input side (..., 3H) with its bias, ``gh`` the hidden
    side (..., 3H) with its bias (it sits inside the reset gate for n), ``h`` (..., H): the new h."""
    H = h.shape[-1]
    rz = torch.sigmoid(x_proj[..., : 2 * H] + gh[..., : 2 * H])
    n = torch.tanh(torch.addcmul(x_proj[..., 2 * H :], rz[..., :H], gh[..., 2 * H :]))
    return n + rz[..., H:] * (h - n)
